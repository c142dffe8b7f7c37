"""Reports read offline (no script or stylesheet from a CDN, plots linked by relative path), open with
the run's verdict, and show readers no code, logs or test markers."""

import re

import pandas as pd
import yaml

from conftest import ROOT
from modelfactory.core import evaluate
from modelfactory.ops import render, report
from modelfactory.ops.render import render_notebook
from modelfactory.ops.report import write_index


def test_notebook_html_needs_no_network(tmp_path):
    copy = tmp_path / "evaluate.ipynb"
    copy.write_text((ROOT / "notebooks/evaluate.ipynb").read_text())
    html = render_notebook(copy).read_text()
    assert not re.search(r"<script[^>]+src=\"https?://", html)
    assert not re.search(r"<link[^>]+href=\"https?://", html)
    assert "data:image/png;base64," in html and "Holdout metrics" in html


def test_index_links_stages_and_plots(tmp_path):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "diagnostics.png").write_bytes(b"\x89PNG")
    manifest = {
        "run_id": "20261127-000000-diabetes-abcd", "model": "diabetes", "env": "dev", "status": "failed",
        "created": "t0", "finished": "t1", "params_hash": "0123456789ab", "data_hash": None,
        "git": {"commit": "abc", "dirty": True}, "command": "modelfactory run",
        "headline_metrics": {"holdout_rmse": 53.7771},
        "stages": {"explore": {"status": "succeeded", "html": "explore.html", "duration_s": 1.5},
                   "evaluate": {"status": "failed", "html": "evaluate.html", "duration_s": 0.4,
                                "error": {"summary": "ValueError: <bad>"}}},
    }
    page = write_index(tmp_path, manifest).read_text()
    assert '<a href="explore.html">explore</a>' in page and '<a href="evaluate.html">evaluate</a>' in page
    assert "ValueError: &lt;bad&gt;" in page
    assert '<img src="evaluate/diagnostics.png"' in page
    assert "53.777" in page and "abc (uncommitted changes)" in page
    assert "holdout_rmse" not in page  # the metric's name as people write it: RMSE


REJECTED_RUN = {
    "run_id": "20261130-182526-diabetes-9723", "model": "diabetes", "env": "dev", "pipeline": "training",
    "status": "succeeded", "created": "t0", "finished": "t1", "params_hash": "0123456789ab", "data_hash": "a6ff6bfa3400",
    "git": {"commit": "abc", "dirty": False}, "command": "modelfactory run --model diabetes --set train.alpha=1000",
    "data": {"source": "sklearn", "name": "diabetes", "uri": "sklearn:diabetes", "version": "1.9.1",
             "hash": "a6ff6bfa3400" + "0" * 52},
    "headline_metrics": {"holdout_rmse": 58.7514, "holdout_mae": 49.78, "holdout_r2": 0.34876,
                         "baseline_rmse": 73.2217, "baseline_mae": 64.0, "baseline_r2": -0.0119,
                         "champion_rmse": 53.7771, "champion_mae": 42.81, "champion_r2": 0.4541},
    "gate": {"passed": False, "version": "2", "champion_version": "1",
             "reason": "rmse 58.75 is worse than champion v1's 53.78"},
    "promotion": {"promoted": False, "champion": "1", "previous": None,
                  "reason": "not promoted: rejected by the gate (rmse 58.75 is worse than champion v1's 53.78)"},
    "stages": {"evaluate": {"status": "succeeded", "html": "evaluate.html", "report": "evaluate-report.html",
                            "duration_s": 1.0}},
}
PARAMS = {"model": {"name": "diabetes", "task": "regression"}, "report": {"decimals": 3},
          "train": {"estimator": "sklearn.linear_model.Ridge", "alpha": 1000, "scale_features": True,
                    "preprocess": {"numeric_impute": "median"}},
          "evaluate": {"primary_metric": "rmse", "metrics": ["mae", "rmse", "r2"]}}


def test_verdict_names_model_data_version_decision_and_metrics():
    facts = report.build_verdict(REJECTED_RUN, PARAMS)
    assert facts["headline"] == "candidate v2 rejected: rmse 58.75 is worse than champion v1's 53.78"
    assert facts["outcome"] == "rejected" and facts["registered"] == "diabetes-dev version 2"
    assert facts["model"] == {"estimator": "Ridge", "class": "sklearn.linear_model.Ridge",
                              "hyperparameters": {"alpha": 1000}, "task": "regression"}
    assert facts["data"] == "sklearn:diabetes version 1.9.1 (hash a6ff6bfa3400)"
    # the primary metric first; every value with report.decimals decimals; champion before baseline
    assert facts["metrics"] == [("RMSE", "58.751", "53.777", "73.222"), ("MAE", "49.780", "42.810", "64.000"),
                                ("R²", "0.349", "0.454", "-0.012")]


def test_index_opens_with_the_verdict(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    page = write_index(tmp_path, REJECTED_RUN).read_text()
    verdict_section = page[page.index('<section class="verdict"'):page.index("</section>")]
    assert page.index('<section class="verdict"') < page.index("<h2>Plots</h2>") < page.index("<h2>Stages</h2>")
    for words in ("candidate v2 rejected: rmse 58.75 is worse than champion v1&#x27;s 53.78", "<b>Ridge</b> (alpha=1000)",
                  "sklearn:diabetes version 1.9.1 (hash a6ff6bfa3400)", "diabetes-dev version 2", "<b>no</b>: the gate rejected it",
                  "champion v1", "58.751", "53.777", "73.222"):
        assert words in verdict_section, words
    assert "holdout_rmse" not in page
    assert '<a href="evaluate-report.html">evaluate</a>' in page and '<a href="evaluate.html">notebook</a>' in page


def test_readers_page_has_no_code_logs_or_test_markers_and_links_the_whole_notebook(tmp_path):
    import nbformat

    for stage, log in (("explore", "INFO mlflow"), ("evaluate", "Successfully registered model")):
        copy = tmp_path / f"{stage}.ipynb"
        nb = nbformat.read(ROOT / f"notebooks/{stage}.ipynb", as_version=4)
        if stage == "explore":  # a log line on stderr, as MLflow writes them (the saved explore has none)
            nb.cells[2].outputs.insert(0, nbformat.v4.new_output(
                "stream", name="stderr", text="2026/11/30 19:36:07 INFO mlflow.tracking: a log line\n"))
        nbformat.write(nb, copy)
        full = render_notebook(copy).read_text()
        readers = render.report_page(copy).read_text()
        assert log in full and "NBVAL_CHECK_OUTPUT" in full and "open_stage" in full  # the whole notebook
        for hidden in (log, "NBVAL_CHECK_OUTPUT", "open_stage", "highlight hl-ipython3"):  # the last: a code cell
            assert hidden not in readers, (stage, hidden)
        assert f'href="{stage}.html"' in readers and 'href="index.html"' in readers
        assert "data:image/png;base64," in readers and "<table" in readers


def test_comparison_chart_has_a_panel_per_metric_on_its_own_scale():
    comparison = pd.DataFrame({"rmse": [53.8, 73.2, 53.7], "r2": [0.45, -0.01, 0.454]},
                              index=["candidate", "baseline", "champion"])
    fig = evaluate.plot_comparison(comparison)
    assert len(fig.axes) == 2
    rmse, r2 = fig.axes
    assert rmse.get_title().startswith("RMSE") and r2.get_title().startswith("R²")
    assert rmse.get_ylim()[1] > 73.2 and 0.454 < r2.get_ylim()[1] < 1  # R² is not squashed under RMSE's scale
    assert r2.get_ylim()[0] < -0.01  # the negative baseline shows too


def test_plot_captions_travel_inside_the_png(tmp_path):
    comparison = pd.DataFrame({"rmse": [53.8, 73.2]}, index=["candidate", "baseline"])
    fig = evaluate.plot_comparison(comparison)
    caption = render.figure_caption(fig)
    assert caption == "Holdout metrics: candidate, baseline"
    for title in (caption, "R² · residuals", "rmse ≤ 70 (not Latin-1)"):
        fig.savefig(tmp_path / "plot.png", metadata={"Title": title})
        assert render.png_caption(tmp_path / "plot.png") == title
    (tmp_path / "gate_checks.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # no caption recorded: its name in words
    assert render.png_caption(tmp_path / "gate_checks.png") == "Gate checks"


def test_a_decision_shows_as_a_table_not_a_line():
    shown = render.Facts({"passed": False, "reason": "rmse <b>58.75</b> is worse", "checks": [{"a": 1}]})
    assert shown == {"passed": False, "reason": "rmse <b>58.75</b> is worse", "checks": [{"a": 1}]}
    table = shown._repr_html_()
    assert table.startswith('<table class="facts">') and "<th>reason</th><td>rmse &lt;b&gt;58.75&lt;/b&gt; is worse" in table
    assert "checks" not in table  # the checks have their own table in the notebook


def test_a_run_that_failed_before_the_gate_says_why_and_claims_no_registration():
    failed = {**REJECTED_RUN, "status": "failed", "error": "stage explore: DataValidationError: 1 data check(s) failed"}
    del failed["gate"], failed["promotion"]
    facts = report.build_verdict(failed, PARAMS)
    assert facts["headline"] == "run failed: stage explore: DataValidationError: 1 data check(s) failed"
    assert facts["outcome"] == "failed" and not facts["judged"]
    section = report._verdict_html(facts)
    assert "registered as" not in section and "promoted" not in section and "<b>Ridge</b>" in section


def test_readers_page_shows_no_empty_section_or_empty_table(tmp_path):
    import nbformat

    copy = tmp_path / "explore.ipynb"
    nb = nbformat.read(ROOT / "notebooks/explore.ipynb", as_version=4)
    nbformat.write(nb, copy)
    full = render_notebook(copy).read_text()
    readers = render.report_page(copy).read_text()
    # the saved explore notebook: "Raw data" shows only the data's shape, the contract check no failure
    assert ">Raw data<" in full and re.search(r"<tbody>\s*</tbody>", full)
    assert ">Raw data<" not in readers, "a heading with nothing under it"
    assert "when run by hand" in full and "when run by hand" not in readers, "the parameters are the notebook's"
    assert "Reads:" in readers and "Materialise the raw data" in readers
    assert not re.search(r"<tbody>\s*</tbody>", readers), "a table without rows"
    for kept in (">Checks<", ">Data contract<", ">Profile<", ">Plots<"):
        assert kept in readers, kept


def test_a_heading_is_dropped_only_when_its_section_shows_nothing():
    import nbformat

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    table = nbformat.v4.new_output("display_data", data={"text/html": "<table><tbody><tr><td>1</td></tr></tbody></table>"})
    nb = nbformat.v4.new_notebook(cells=[
        md("# Stage"), md("## Empty"), code("x.shape"), md("## Kept"), code("t"), md("### Sub"),
        md("## Text\nsome words"), md("## Last")])
    nb.cells[2].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "(3, 2)"})]
    nb.cells[4].outputs = [table]
    sources = [c.source for c in render.readers_notebook(nb, "x.html").cells][1:]
    assert sources == ["# Stage", "## Kept", "t", "## Text\nsome words"]


def test_readers_tables_drop_row_numbers_but_keep_named_rows():
    counted = pd.DataFrame({"check": ["rows", "no infinite values"], "passed": [True, True]})._repr_html_()
    shown = render.drop_row_numbers(counted)
    assert "<th>0</th>" not in shown and "<th>1</th>" not in shown and "<th></th>" not in shown
    assert "<td>rows</td>" in shown and shown.count("<tr") == 3 and shown.count("<th>") == 2
    for kept in (pd.DataFrame({"value": [442, 11]}, index=["rows", "columns"]),  # named rows
                 pd.DataFrame({"v": [1, 2]}, index=[3, 4]),  # numbers that are labels, not a count
                 pd.DataFrame({"v": [1.0]}).rename_axis("metric")):  # a named index: two header rows
        assert render.drop_row_numbers(kept._repr_html_()) == kept._repr_html_()
