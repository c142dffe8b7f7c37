"""The champion gate and the registry: a worse model never becomes champion; one champion at a time."""

from __future__ import annotations

import multiprocessing
import re

import numpy as np
import pandas as pd
import pytest

from modelfactory.core import gate
from modelfactory.ops import registry

GATE = {"thresholds": {"rmse": {"max": 70.0}, "r2": {"min": 0.3}}, "beat_baseline": True, "margin": 1.0,
        "fail_on_reject": False}


def table(**rows):
    return pd.DataFrame(rows, index=["rmse", "r2"]).T


def test_first_model_passes_on_thresholds_alone():
    checks = gate.judge_candidate(table(candidate=[53.0, 0.5], baseline=[73.0, 0.0]), GATE, "rmse")
    decision = gate.decide(checks, None)
    assert decision["passed"] and decision["reason"] == "no champion yet; beats the baseline and meets all thresholds"
    assert list(checks["check"]) == ["rmse <= threshold", "r2 >= threshold", "beats baseline", "beats champion"]


def test_candidate_must_beat_champion_by_the_margin():
    close = table(candidate=[53.5, 0.5], baseline=[73.0, 0.0], champion=[54.0, 0.5])
    decision = gate.decide(gate.judge_candidate(close, GATE, "rmse"), "3")
    assert not decision["passed"]
    assert decision["reason"] == "rmse 53.5 beats champion v3's 54 by less than the margin 1 (evaluate.gate.margin)"
    better = table(candidate=[52.0, 0.5], baseline=[73.0, 0.0], champion=[54.0, 0.5])
    passed = gate.decide(gate.judge_candidate(better, GATE, "rmse"), "3")
    assert passed["passed"] and passed["reason"] == "rmse 52 beats champion v3's 54 and meets all thresholds"


def test_a_candidate_worse_than_the_champion_is_rejected_in_words_that_read_as_a_failure():
    """The old reason, "beats champion by margin 0.0: rmse=53.82 vs 53.78", read like a pass."""
    worse = table(candidate=[53.82, 0.45], baseline=[73.2, 0.0], champion=[53.78, 0.454])
    checks = gate.judge_candidate(worse, {**GATE, "margin": 0.0}, "rmse")
    assert list(checks["check"])[-1] == "beats champion"  # no "by margin 0.0"
    decision = gate.decide(checks, "1")
    assert decision["reason"] == "rmse 53.82 is worse than champion v1's 53.78"
    # as many digits as it takes to tell the two apart, and a tie is "no better", not "worse"
    close = table(candidate=[53.7781, 0.45], baseline=[73.2, 0.0], champion=[53.7779, 0.454])
    assert gate.decide(gate.judge_candidate(close, {**GATE, "margin": 0.0}, "rmse"), "1")["reason"] == (
        "rmse 53.7781 is worse than champion v1's 53.7779")
    tie = table(candidate=[0.9, 0.45], baseline=[0.5, 0.0], champion=[0.9, 0.454])
    auc = {**GATE, "thresholds": {}, "margin": 0.0}
    assert gate.decide(gate.judge_candidate(tie.rename(columns={"rmse": "roc_auc"}), auc, "roc_auc"), "2")["reason"] == (
        "roc_auc 0.9 is no better than champion v2's 0.9")


def test_threshold_failure_is_named_and_can_fail_the_stage():
    decision = gate.decide(gate.judge_candidate(table(candidate=[75.0, 0.2], baseline=[80.0, 0.0]), GATE, "rmse"), None)
    assert decision["reason"] == ("rmse 75 is above the maximum 70 (evaluate.gate.thresholds); "
                                  "r2 0.2 is below the minimum 0.3 (evaluate.gate.thresholds)")
    assert gate.enforce(decision, fail_on_reject=False) == "rejected"
    with pytest.raises(Exception, match="candidate rejected by the champion gate: rmse 75 is above the maximum 70"):
        gate.enforce(decision, fail_on_reject=True)


def test_higher_is_better_metrics_compare_upwards():
    auc_gate = {"thresholds": {"roc_auc": {"min": 0.9}}, "beat_baseline": True, "margin": 0.0, "fail_on_reject": False}
    comparison = pd.DataFrame({"roc_auc": [0.95, 0.5, 0.97]}, index=["candidate", "baseline", "champion"])
    assert not gate.decide(gate.judge_candidate(comparison, auc_gate, "roc_auc"), "1")["passed"]


def _diabetes_gate(*overrides):
    """The gate and holdout metrics of the real params, with a constant-zero regressor as the candidate."""
    from sklearn.dummy import DummyRegressor

    from modelfactory.core import data, evaluate, modeling
    from modelfactory.params import resolve

    params = resolve("diabetes", "dev", list(overrides))
    train, holdout = data.split_data(data.load_dataset(params["data"]), params["data"], params["seed"])
    zero = modeling.fit_model(DummyRegressor(strategy="constant", constant=0.0), train, "target")
    baseline = modeling.fit_model(modeling.build_estimator(params["evaluate"]["baseline"], key="evaluate.baseline"),
                                  train, "target")
    comparison = evaluate.compare_models(evaluate.models_to_compare(zero, baseline), holdout, "target", "regression",
                                         params["evaluate"]["metrics"])
    # as for a model file that sets no thresholds: base.yaml's gate, {} for thresholds
    return {**params["evaluate"]["gate"], "thresholds": {}}, comparison


def test_first_model_worse_than_the_baseline_is_rejected_with_no_champion():
    """Empty registry, no thresholds (the default): a constant-zero regressor must still not pass."""
    default_gate, comparison = _diabetes_gate()
    assert default_gate["beat_baseline"] is True and default_gate["thresholds"] == {}
    assert comparison.loc["candidate", "rmse"] > 2 * comparison.loc["baseline", "rmse"]
    decision = gate.decide(gate.judge_candidate(comparison, default_gate, "rmse"), None)
    assert not decision["passed"]
    assert re.fullmatch(r"rmse [\d.]+ is worse than the baseline's [\d.]+", decision["reason"]), decision["reason"]
    assert gate.enforce(decision, fail_on_reject=False) == "rejected"


def test_a_model_no_better_than_the_baseline_is_rejected():
    """A constant target: the model and the baseline both predict it exactly; equal is not better."""
    tie = table(candidate=[0.0, 1.0], baseline=[0.0, 1.0])
    decision = gate.decide(gate.judge_candidate(tie, {**GATE, "thresholds": {}}, "rmse"), None)
    assert not decision["passed"] and decision["reason"] == "rmse 0 is no better than the baseline's 0"


def test_only_an_explicit_params_key_relaxes_the_baseline_check():
    relaxed_gate, comparison = _diabetes_gate("evaluate.gate.beat_baseline=false")
    decision = gate.decide(gate.judge_candidate(comparison, relaxed_gate, "rmse"), None)
    assert decision["passed"]
    assert decision["reason"] == "no champion yet; all thresholds met (evaluate.gate.beat_baseline is off)"


@pytest.mark.parametrize("override,message", [
    ("evaluate.gate.thresholds={rsme: {max: 70}}",
     "--set: evaluate.gate.thresholds.rsme: unknown metric 'rsme'; did you mean 'rmse'? (evaluate.metrics: rmse, mae, r2)"),
    ("evaluate.gate.thresholds={roc_auc: {min: 0.9}}",
     "--set: evaluate.gate.thresholds.roc_auc: unknown metric 'roc_auc'; add it to evaluate.metrics, or remove the "
     "threshold (evaluate.metrics: rmse, mae, r2)"),
])
def test_a_threshold_on_an_unknown_metric_is_a_params_error(override, message):
    from modelfactory.errors import ParamsError
    from modelfactory.params import resolve

    with pytest.raises(ParamsError) as info:
        resolve("diabetes", "dev", [override])
    assert str(info.value) == message and info.value.exit_code == 2


def test_a_misspelt_threshold_in_a_model_file_stops_the_run_before_any_kernel(tmp_path):
    from conftest import cli, copy_project

    project = copy_project(tmp_path / "project")
    model_file = project / "params/models/diabetes.yaml"
    model_file.write_text(model_file.read_text().replace("{rmse: {max: 70.0}", "{rsme: {max: 70.0}"))
    done = cli(project, "run", "--model", "diabetes")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: params/models/diabetes.yaml: evaluate.gate.thresholds.rsme: unknown metric "
                                   "'rsme'; did you mean 'rmse'? (evaluate.metrics: rmse, mae, r2)")
    assert not (project / "runs").exists() or not any((project / "runs").glob("*/manifest.json"))


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow
    from sklearn.dummy import DummyRegressor

    monkeypatch.setenv("MODELFACTORY_TRACKING_DIR", str(tmp_path / "mlruns"))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("t", artifact_location=(tmp_path / "mlruns" / "artifacts").as_uri())
    versions = []
    for value in (1.0, 2.0, 3.0):
        with mlflow.start_run(experiment_id=exp):
            model = DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 1)), [0, 0])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        versions.append(registry.register_candidate(info.model_uri, "demo", {"passed": True, "reason": "t"}))
    yield uri, versions
    mlflow.set_tracking_uri(None)


def test_promote_keeps_previous_for_rollback(store):
    _, (v1, v2, v3) = store
    assert registry.champion_version("demo") is None
    assert registry.promote("demo", v1, None)["promoted"]
    assert registry.promote("demo", v2, v1) == {
        "promoted": True, "champion": v2, "previous": v1, "reason": f"version {v2} is champion; {v1} kept for rollback"}
    assert registry.load_version("demo", registry.champion_version("demo")).constant == 2.0
    stale = registry.promote("demo", v3, v1)
    assert not stale["promoted"] and stale["champion"] == v2 and "champion changed from 1 to 2" in stale["reason"]
    back = registry.rollback("demo")
    assert (back["champion"], back["previous"]) == (v1, v2)
    assert registry.version_with_role("demo", registry.PREVIOUS) == v2


def test_rejected_candidate_is_registered_but_never_promoted(store):
    import mlflow

    _, (v1, _, _) = store
    registry.promote("demo", v1, None)
    verdict = {"passed": False, "reason": "worse", "champion_version": v1, "version": "3"}
    result = registry.promote_candidate("demo", verdict)
    assert result == {"promoted": False, "champion": v1, "previous": None,
                      "reason": "not promoted: rejected by the gate (worse)"}
    assert registry.champion_version("demo") == v1
    rejected = mlflow.MlflowClient().get_model_version("demo", "3")
    assert rejected is not None


def _race(uri, tracking_dir, version, expected, queue):
    import os

    import mlflow

    os.environ["MODELFACTORY_TRACKING_DIR"] = tracking_dir
    mlflow.set_tracking_uri(uri)
    queue.put(registry.promote("demo", version, expected)["promoted"])


def test_two_promotions_at_once_leave_exactly_one_champion(store, tmp_path):
    import mlflow

    uri, (v1, v2, v3) = store
    registry.promote("demo", v1, None)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(uri, str(tmp_path / "mlruns"), v, v1, queue)) for v in (v2, v3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = sorted(queue.get(timeout=10) for _ in procs)
    assert results == [False, True], "exactly one of the two promotions wins"
    champion = registry.champion_version("demo")
    assert champion in (v2, v3) and registry.version_with_role("demo", registry.PREVIOUS) == v1
    tagged = mlflow.MlflowClient().search_model_versions("name = 'demo' and tag.role = 'champion'")
    assert [v.version for v in tagged] == [int(champion)] or [str(v.version) for v in tagged] == [champion]


def test_the_gate_plot_draws_only_the_checks_that_ran_and_says_when_there_is_no_champion():
    first = gate.judge_candidate(table(candidate=[53.0, 0.5], baseline=[73.0, 0.0]), GATE, "rmse")
    fig = gate.plot_gate(first)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 3 and not any(t.startswith("beats champion") for t in titles), titles
    assert fig._suptitle.get_text() == "Champion gate: passed (no champion yet)"
    later = gate.judge_candidate(table(candidate=[53.0, 0.5], baseline=[73.0, 0.0], champion=[55.0, 0.4]),
                                 GATE, "rmse")
    fig = gate.plot_gate(later)
    assert [ax.get_title(loc="left").split(" (")[0] for ax in fig.axes][-1] == "beats champion by margin 1.0"
    assert fig._suptitle.get_text() == "Champion gate: passed"
