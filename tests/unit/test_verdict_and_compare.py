"""A run's outcome in words: the verdict line, the gate and pipeline columns of `runs`, and `compare`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import clean_env
from modelfactory.ops import cli, verdict
from modelfactory.ops import runs as manifests
from modelfactory.ops.compare import compare_runs, params_diff

REJECTED = {"passed": False, "version": "5", "champion_version": "1",
            "reason": "rmse 53.82 is worse than champion v1's 53.78"}
PASSED = {"passed": True, "version": "6", "champion_version": "1",
          "reason": "rmse 52.1 beats champion v1's 53.78 and meets all thresholds"}


def run_record(run_id: str, **extra) -> dict:
    """A finished run's manifest, shaped as the runner writes it."""
    record = {"run_id": run_id, "model": "diabetes", "env": "dev", "pipeline": "training", "status": "succeeded",
              "created": manifests.now(), "finished": manifests.now(), "params_hash": "0" * 12,
              "data": {"source": "sklearn", "name": "diabetes", "uri": "sklearn:diabetes", "version": "1.9.1",
                       "hash": "a6ff6bfa3400" + "0" * 52},
              "headline_metrics": {"holdout_rmse": 53.82, "holdout_r2": 0.45, "baseline_rmse": 73.2,
                                   "baseline_r2": -0.01, "champion_rmse": 53.78, "champion_r2": 0.454},
              "stages": {}}
    record.update(extra)
    return record


def test_the_last_line_says_what_became_of_the_candidate():
    assert verdict.verdict_line(run_record("r", gate=REJECTED)) == (
        "candidate v5 rejected: rmse 53.82 is worse than champion v1's 53.78")
    promoted = run_record("r", gate=PASSED, promotion={"promoted": True, "champion": "6", "previous": "1",
                                                       "reason": "version 6 is champion; 1 kept for rollback"})
    assert verdict.verdict_line(promoted) == (
        "candidate v6 promoted: rmse 52.1 beats champion v1's 53.78 and meets all thresholds; v1 kept for rollback")
    raced = run_record("r", gate=PASSED, promotion={"promoted": False, "champion": "7", "previous": "1",
                                                    "reason": "champion changed from 1 to 7 since the candidate was judged"})
    assert verdict.verdict_line(raced) == ("candidate v6 passed the gate but was not promoted: champion changed "
                                           "from 1 to 7 since the candidate was judged")
    no_deploy = verdict.verdict_line(run_record("r", gate=PASSED))
    assert no_deploy.startswith("candidate v6 passed the gate (rmse 52.1 beats")
    assert no_deploy.endswith("not promoted, the deploy stage did not run: "
                              "modelfactory promote --model diabetes --version 6 --env dev")
    assert verdict.verdict_line(run_record("r")) is None  # no evaluate stage: no gate decision to state


def test_gate_cell_names_the_version_and_the_decision():
    assert verdict.gate_cell(run_record("r", gate=REJECTED)) == "v5 rejected"
    assert verdict.gate_cell(run_record("r", gate=PASSED, promotion={"promoted": True})) == "v6 promoted"
    assert verdict.gate_cell(run_record("r", gate=PASSED, promotion={"promoted": False})) == "v6 passed"
    assert verdict.gate_cell(run_record("r")) == "-"


def test_metric_names_read_as_people_write_them():
    assert [verdict.metric_label(m) for m in ("rmse", "r2", "roc_auc", "f1_macro", "log_loss", "new_metric")] == [
        "RMSE", "R²", "ROC AUC", "F1 (macro)", "log loss", "new metric"]
    table = verdict.metrics_by_model({"holdout_rmse": 1.0, "baseline_rmse": 2.0, "champion_rmse": 3.0,
                                      "package_max_abs_difference": 0.0})
    assert table == {"rmse": {"candidate": 1.0, "baseline": 2.0, "champion": 3.0}}


def write_run(root, record: dict, params: dict) -> None:
    folder = root / "runs" / record["run_id"]
    folder.mkdir(parents=True)
    manifests.write(folder, record)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


PARAMS = {"seed": 42, "train": {"estimator": "sklearn.linear_model.Ridge", "alpha": 1.0},
          "evaluate": {"primary_metric": "rmse", "gate": {"thresholds": {}}}, "report": {"decimals": 3}}


@pytest.fixture
def two_runs(proj):
    first = run_record("20261130-100000-diabetes-aaaa", gate={**PASSED, "version": "1", "champion_version": None,
                                                             "reason": "no champion yet"},
                       promotion={"promoted": True, "champion": "1", "previous": None, "reason": "version 1 is champion"})
    second = run_record("20261130-110000-diabetes-bbbb", gate=REJECTED, created="2026-11-30T11:00:00.000+00:00",
                        headline_metrics={"holdout_rmse": 58.751, "holdout_r2": 0.349})
    first["created"] = "2026-11-30T10:00:00.000+00:00"
    scoring = run_record("20261130-120000-diabetes-cccc", pipeline="scoring", headline_metrics={},
                         created="2026-11-30T12:00:00.000+00:00")
    write_run(proj, first, PARAMS)
    write_run(proj, second, {**PARAMS, "train": {**PARAMS["train"], "alpha": 1000}, "extra": {"new": True}})
    write_run(proj, scoring, PARAMS)
    return proj, first, second


def test_runs_lists_pipeline_and_gate_columns(two_runs, capsys):
    assert cli.main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "id", "model", "env", "pipeline", "status", "gate", "headline"]
    assert lines[1].split() == ["20261130-120000-diabetes-cccc", "diabetes", "dev", "scoring", "succeeded", "-", "-"]
    assert lines[2].split() == ["20261130-110000-diabetes-bbbb", "diabetes", "dev", "training", "succeeded",
                                "v5", "rejected", "RMSE", "58.75"]
    assert lines[3].split() == ["20261130-100000-diabetes-aaaa", "diabetes", "dev", "training", "succeeded",
                                "v1", "promoted", "RMSE", "53.82"]


def test_compare_shows_the_params_that_differ_and_the_metrics_side_by_side(two_runs, capsys):
    assert cli.main(["compare", "20261130-100000", "20261130-110000-diabetes-bbbb"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run", "20261130-100000-diabetes-aaaa", "20261130-110000-diabetes-bbbb"]
    assert ["gate", "v1", "promoted", "v5", "rejected"] in [line.split() for line in out]
    assert "params: 2 of 7 differ" in out
    diff = [line.split() for line in out if line.startswith("  ") and "." in line.split()[0]]
    assert ["train.alpha", "1.0", "1000"] in diff and ["extra.new", "(not", "set)", "true"] in diff
    header = next(i for i, line in enumerate(out) if line.startswith("metrics"))
    assert out[header].split() == ["metrics", "A", "B", "B", "-", "A"]
    rows = {line[:18].strip(): line[18:].split() for line in out[header + 1:] if line.startswith("  ")}
    assert rows["RMSE"] == ["53.820", "58.751", "+4.931"] and rows["R²"] == ["0.450", "0.349", "-0.101"]
    assert rows["RMSE (champion)"] == ["53.780", "-"]  # only A was judged against a champion
    assert out[-1] == "B: candidate v5 rejected: rmse 53.82 is worse than champion v1's 53.78"


def test_compare_of_an_unknown_run_is_one_line_and_exit_2(two_runs, capsys):
    assert cli.main(["compare", "20261130-100000", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "error: no run 'nope' in runs (see: modelfactory runs)\n"
    assert cli.main(["compare", "2026", "latest"]) == 2
    assert capsys.readouterr().err == "error: '2026' matches 3 runs; give more of the id\n"


def test_params_diff_flattens_nested_sections():
    assert params_diff({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3]}}) == [("a.c", [1, 2], [1, 3])]
    assert compare_runs(run_record("x"), run_record("y"), PARAMS, PARAMS)[8] == "params: all 6 the same"


def test_runs_and_compare_import_no_heavy_library(two_runs):
    project = two_runs[0]
    code = ("import sys; from modelfactory.ops import cli; cli.main(['runs']); cli.main(['compare', 'latest', '2026113011']);"
            "print([m for m in ('mlflow', 'sklearn', 'pandas', 'numpy', 'nbconvert', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "v5 rejected" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"
