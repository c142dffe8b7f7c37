"""The monitor's workflow around the drift engine: the window, monitor.json's breaches and verdict,
the retrain trigger's once-per-window claim, the report's bins, the `runs` cell, the Azure ML
monitor schedule, and the command's user errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import cli
from modelfactory.core import drift
from modelfactory.errors import AzureSpecError, ParamsError
from modelfactory.ops import monitor, monitor_report, retrain, verdict
from modelfactory.ops.cli import main
from modelfactory.params import resolve

UTC = timezone.utc
SINCE, UNTIL = datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)


# -- the window -----------------------------------------------------------------------------------

def test_the_window_defaults_to_the_last_window_days_up_to_now():
    now = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
    assert monitor.window_bounds({"window_days": 2, "since": None, "until": None}, now) == (now - timedelta(days=2), now)


def test_dates_are_midnight_utc_and_a_zone_is_honoured():
    since, until = monitor.window_bounds({"window_days": 1, "since": "2026-11-29", "until": "2026-11-30T02:00+02:00"})
    assert since == SINCE and until == UNTIL
    # only --until: the window_days before it
    assert monitor.window_bounds({"window_days": 1, "since": None, "until": "2026-11-30"}) == (SINCE, UNTIL)


@pytest.mark.parametrize("given, said", [
    ({"since": "yesterday", "until": None}, "monitor.since: 'yesterday' is not an ISO date or date-time"),
    ({"since": "2026-11-30", "until": "2026-11-30"}, "monitor.since 2026-11-30T00:00:00+00:00 is not before "
                                                    "monitor.until 2026-11-30T00:00:00+00:00"),
])
def test_a_bad_window_is_one_line(given, said):
    with pytest.raises(ParamsError) as caught:
        monitor.window_bounds({"window_days": 1, **given})
    assert str(caught.value).startswith(said)


def test_the_window_params_take_a_date_as_yaml_parses_it():
    params = resolve("penguins", "dev", ["monitor.since=2026-11-29"], training_checks=False)
    assert params["monitor"]["since"] == "2026-11-29"


# -- monitor.json: breaches, verdict, trigger -----------------------------------------------------

def _reference_and_window(shift: float, rows: int = 2000):
    """A reference of three features (two numbers, one category) and a window with ``a`` shifted."""
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.normal(5, 2, 5000),
                          "c": rng.choice(["x", "y", "z"], 5000)})
    settings = {**resolve("penguins", "dev", training_checks=False)["monitor"], "min_rows": 1000,
                "task": "classification"}
    reference = drift.build_reference(train, rng.choice(["p", "q"], 5000), None, settings)
    window = pd.DataFrame({"a": rng.normal(shift, 1, rows), "b": rng.normal(5, 2, rows),
                           "c": rng.choice(["x", "y", "z"], rows), "prediction": rng.choice(["p", "q"], rows)})
    return reference, window, settings


def _result(shift: float, performance=None, rows: int = 2000) -> dict:
    reference, window, settings = _reference_and_window(shift, rows)
    checked = drift.check_window(reference, window, settings)
    result = {"model": "penguins", "env": "dev", "champion_version": "1",
              "window": monitor.window_record(SINCE, UNTIL), **checked, "performance": performance}
    result["breaches"] = monitor.breaches(result)
    result["verdict"] = monitor.verdict(result)
    return result


def test_a_shifted_feature_is_the_one_breach_with_its_metric_value_threshold_and_window():
    result = _result(shift=1.5)
    assert result["drifted"] == ["a"] and result["verdict"] == "drift in 1 of 3 features: a"
    [breach] = result["breaches"]
    assert breach["kind"] == "drift" and breach["feature"] == "a"
    assert breach["metric"] == "normalized_wasserstein_distance" and breach["threshold"] == 0.1
    assert breach["value"] > 1.0 and breach["window"] == {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    trigger = retrain.trigger_reason(result, "run-1")
    assert {k: trigger[k] for k in ("monitor_run", "feature", "metric", "threshold", "breaches")} == {
        "monitor_run": "run-1", "feature": "a", "metric": "normalized_wasserstein_distance", "threshold": 0.1,
        "breaches": 1}
    tags = retrain.trigger_tags(trigger)
    assert tags["trigger.feature"] == "a" and tags["trigger.window_since"] == SINCE.isoformat()


def test_no_shift_and_too_few_rows_are_no_breach():
    assert _result(shift=0.0)["breaches"] == []
    few = _result(shift=3.0, rows=50)
    assert few["breaches"] == [] and few["verdict"] == "too few rows to judge: 50 < 1000"
    assert monitor.metrics(few)["drifted_features"] == 0


def test_a_live_metric_beyond_the_gates_limit_is_a_breach_and_in_the_verdict():
    performance = {"labels": 40, "matched": 30, "unmatched": 10, "metrics": [
        {"metric": "f1_macro", "live": 0.72, "training": 0.97, "min": 0.9, "max": None, "breached": True},
        {"metric": "log_loss", "live": None, "training": 0.1, "min": None, "max": 0.4, "breached": False}]}
    result = _result(shift=0.0, performance=performance)
    assert result["breaches"] == [{"kind": "performance", "feature": None, "metric": "f1_macro", "value": 0.72,
                                   "threshold": 0.9, "window": result["window"]}]
    assert result["verdict"] == "no drift; live f1_macro 0.720 beyond the gate's 0.9"
    shown = monitor_report.performance_table(result)
    assert shown.loc["f1_macro", "breached"] and shown.loc["f1_macro", "training"] == 0.97


def test_a_window_is_claimed_for_retraining_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELFACTORY_RUNS_DIR", str(tmp_path / "runs"))
    result = _result(shift=1.5)
    assert retrain.claim_window(result, "monitor-1")["monitor_run"] == "monitor-1"
    assert retrain.claim_window(result, "monitor-2") is None  # the same window again: no second retrain
    later = {**result, "window": monitor.window_record(UNTIL, UNTIL + timedelta(days=1))}
    assert retrain.claim_window(later, "monitor-3")["monitor_run"] == "monitor-3"
    kept = json.loads(retrain.triggers_file().read_text())
    assert [v["monitor_run"] for v in kept.values()] == ["monitor-1", "monitor-3"]


# -- the report ----------------------------------------------------------------------------------

def test_shares_use_the_references_bins_with_a_bin_below_and_above():
    profile = {"kind": "numerical", "edges": [0.0, 1.0, 2.0], "counts": [0, 5, 5, 0]}
    labels, ref, now = monitor_report.shares(profile, pd.Series([-1.0, 0.5, 1.5, 1.7, 9.0, np.nan, np.inf]))
    assert labels == ["< 0", "0-1", "1-2", "> 2"]
    assert ref == [0.0, 0.5, 0.5, 0.0] and now == [0.2, 0.2, 0.4, 0.2]
    categorical = {"kind": "categorical", "categories": ["x", "y"], "counts": [3, 1]}
    labels, ref, now = monitor_report.shares(categorical, pd.Series(["x", "w", "w", None]))
    assert labels == ["x", "y", "other"] and ref == [0.75, 0.25, 0.0] and now == pytest.approx([1 / 3, 0, 2 / 3])


def test_the_plot_of_a_drifted_feature_names_its_metric_and_threshold():
    reference, window, _ = _reference_and_window(1.5)
    row = {"metric": "normalized_wasserstein_distance", "value": 1.234, "threshold": 0.1}
    fig = monitor_report.plot_distribution(reference, window, "a", row)
    assert fig.axes[0].get_title() == "a: normalized_wasserstein_distance 1.234 (threshold 0.1)"
    assert len(fig.axes[0].patches) == 2 * (len(reference["features"]["a"]["edges"]) + 1)


def test_runs_and_the_last_line_say_the_monitors_verdict():
    result = _result(shift=1.5)
    assert verdict.gate_cell({"monitor": result}) == "drift 1 of 3"
    assert verdict.verdict_line({"monitor": result}) == "drift in 1 of 3 features: a"
    assert verdict.gate_cell({"monitor": _result(shift=0.0)}) == "no drift"
    assert verdict.gate_cell({"monitor": _result(shift=0.0, rows=10)}) == "too few rows"
    assert verdict.gate_cell({}) == "-" and verdict.verdict_line({}) is None


# -- Azure ML: the monitor schedule -----------------------------------------------------------------

@pytest.fixture
def registered(proj):
    from importlib.resources import files

    done = cli(proj, "data", "register", "penguins", str(files("palmerpenguins") / "data" / "penguins.csv"))
    assert done.returncode == 0, done.stderr
    return proj


def test_submit_dry_run_writes_a_monitor_schedule_that_loads_back(registered, capsys):
    from azure.ai.ml.entities import MonitorSchedule
    from azure.ai.ml.entities._load_functions import load_schedule

    assert main(["submit", "--pipeline", "monitoring", "--model", "penguins", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "dry run: nothing was sent to Azure ML"
    [path] = registered.glob("runs/*/azureml/monitor.yaml")
    loaded = load_schedule(str(path))
    assert isinstance(loaded, MonitorSchedule) and loaded.name == "monitor-penguins-dev"
    definition = loaded.create_monitor
    assert definition.monitoring_target.endpoint_deployment_id == "azureml:penguins-dev:blue"  # 90% of traffic
    signals = definition.monitoring_signals
    assert sorted(signals) == ["data_drift", "data_quality", "prediction_drift"]
    assert signals["data_drift"].production_data.data_context == "model_inputs"
    assert signals["prediction_drift"].production_data.data_context == "model_outputs"
    written = yaml.safe_load(path.read_text())["create_monitor"]["monitoring_signals"]
    assert written["data_drift"]["reference_data"]["input_data"]["path"] == "azureml:penguins:1"
    assert written["data_drift"]["metric_thresholds"] == {"numerical": {"normalized_wasserstein_distance": 0.1},
                                                          "categorical": {"jensen_shannon_distance": 0.1}}
    assert written["prediction_drift"]["metric_thresholds"] == {"categorical": {"jensen_shannon_distance": 0.1}}


def test_the_schedule_carries_the_params_metrics_and_refuses_what_azure_would_lose(registered):
    from azure.ai.ml.entities._load_functions import load_schedule

    from modelfactory.ops.azureml import monitoring

    params = resolve("penguins", "dev", ["monitor.numerical={metric: two_sample_kolmogorov_smirnov_test, "
                                         "threshold: 0.01}"], training_checks=False)
    path = monitoring.write_monitor(params, registered / "out")
    assert monitoring.loaded_signals(load_schedule(str(path)))["data_drift"]["numerical"] == {
        "two_sample_kolmogorov_smirnov_test": 0.01}
    zero = resolve("penguins", "dev", ["monitor.categorical.threshold=0"], training_checks=False)
    with pytest.raises(AzureSpecError, match="data_drift would reach Azure ML without jensen_shannon_distance 0.0"):
        monitoring.write_monitor(zero, registered / "zero")
    with pytest.raises(AzureSpecError, match="^data.source sklearn: an Azure ML monitor compares with a data asset"):
        monitoring.write_monitor(resolve("diabetes", "dev", training_checks=False), registered / "sk")


# -- the command ----------------------------------------------------------------------------------

def test_monitor_without_a_champion_is_one_line_exit_2_and_no_run(registered, capsys):
    assert main(["monitor", "--model", "penguins", "--since", "2026-11-29"]) == 2
    assert capsys.readouterr().err.strip() == ("error: model penguins-dev has no champion to monitor; train one "
                                               "first: modelfactory run --model penguins --env dev")
    assert not list(registered.glob("runs/*/manifest.json"))
    assert main(["monitor", "--model", "penguins", "--labels", "nope.csv"]) == 2
    assert capsys.readouterr().err.strip() == "error: monitor.labels: no file nope.csv"
    assert main(["monitor", "--model", "penguins", "--since", "soon"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: monitor.since: 'soon' is not an ISO date or date-time (e.g. 2026-11-30 or 2026-11-30T12:00)")


def test_the_retrain_trains_on_the_newest_registered_version(registered):
    assert retrain.newest_data(resolve("penguins", "dev", training_checks=False)) == ["data.dataset=penguins:1"]
    assert retrain.newest_data(resolve("diabetes", "dev", training_checks=False)) == []


def test_labels_join_the_scored_rows_and_unmatched_ones_are_counted(tmp_path, monkeypatch):
    """A scored window in the endpoint's layout; labels for half its requests right, for a quarter wrong,
    and for ids nobody scored: live metrics against training and the gate, the strays counted."""
    monkeypatch.setenv("MODELFACTORY_SCORED_DIR", str(tmp_path / "scored"))
    rng = np.random.default_rng(3)
    rows = 40
    scored = pd.DataFrame({"scored_at": pd.Timestamp(SINCE) + pd.to_timedelta(np.arange(rows), unit="min"),
                           "request_id": [f"r{i}" for i in range(rows)], "row": 0, "model": "penguins",
                           "model_version": "1", "a": rng.normal(0, 1, rows),
                           "prediction": rng.choice(["Adelie", "Gentoo"], rows)})
    folder = tmp_path / "scored" / "penguins" / f"date={SINCE.date()}"
    folder.mkdir(parents=True)
    scored.to_parquet(folder / "part-1.parquet", index=False)
    truth = scored["prediction"].where(np.arange(rows) % 4 != 0, "Chinstrap")  # every 4th answer wrong
    labels = pd.DataFrame({"request_id": [*scored["request_id"][:20], "nobody-1", "nobody-2", "nobody-3"],
                           "species": [*truth[:20], "Adelie", "Adelie", "Adelie"]})
    reference = drift.build_reference(scored[["a"]], scored["prediction"], None,
                                      {"bins": 10, "task": "classification"})
    params = resolve("penguins", "dev", ["monitor.min_rows=10"], training_checks=False)
    champion = {"version": "1", "reference": reference, "contract": None,
                "metrics": {"accuracy": 0.99, "f1_macro": 0.98}}
    labels_file = tmp_path / "labels.csv"
    labels.to_csv(labels_file, index=False)
    result = monitor.check(champion, params, SINCE, UNTIL, monitor.read_labels(labels_file, "request_id", "species"))
    performance = result["performance"]
    assert (performance["labels"], performance["matched"], performance["unmatched"]) == (23, 20, 3)
    by_metric = {row["metric"]: row for row in performance["metrics"]}
    assert by_metric["accuracy"]["live"] == 0.75 and by_metric["accuracy"]["training"] == 0.99
    assert by_metric["f1_macro"]["min"] == 0.9 and by_metric["f1_macro"]["breached"]
    assert by_metric["roc_auc_ovr"]["live"] is None  # needs probabilities, which scored data does not keep
    assert [b["metric"] for b in result["breaches"]] == ["f1_macro"]
    with pytest.raises(ParamsError, match=r"^monitor.labels .*labels.csv: no column island \(expected request_id"):
        monitor.read_labels(labels_file, "request_id", "island")


def test_runs_keeps_its_columns_aligned_for_a_monitoring_run(tmp_path, monkeypatch, capsys):
    """"monitoring" is ten letters: the pipeline column was nine wide and pushed the rest along."""
    monkeypatch.setenv("MODELFACTORY_RUNS_DIR", str(tmp_path / "runs"))
    for run_id, pipeline, extra in (("20261130-120000-penguins-aaaa", "training", {}),
                                    ("20261130-130000-penguins-bbbb", "monitoring", {"monitor": _result(shift=1.5)})):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({
            "run_id": run_id, "model": "penguins", "env": "dev", "pipeline": pipeline, "status": "succeeded",
            "created": run_id[:15], "headline_metrics": {"rows": 1200}, **extra}))
    assert main(["runs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert [line.index("succeeded") for line in lines] == [header.index("status")] * 2
    assert lines[0].index("drift 1 of 3") == header.index("gate")
