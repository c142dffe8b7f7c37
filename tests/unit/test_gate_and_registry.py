"""The champion gate and the registry: a worse model never becomes champion; one champion at a time."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest

from modelfactory import gate, registry

GATE = {"thresholds": {"rmse": {"max": 70.0}, "r2": {"min": 0.3}}, "margin": 1.0, "fail_on_reject": False}


def table(**rows):
    return pd.DataFrame(rows, index=["rmse", "r2"]).T


def test_first_model_passes_on_thresholds_alone():
    checks = gate.judge_candidate(table(candidate=[53.0, 0.5], baseline=[73.0, 0.0]), GATE, "rmse")
    decision = gate.decide(checks, None)
    assert decision["passed"] and decision["reason"] == "no champion yet; all thresholds met"
    assert list(checks["check"]) == ["rmse <= threshold", "r2 >= threshold", "beats champion"]


def test_candidate_must_beat_champion_by_the_margin():
    close = table(candidate=[53.5, 0.5], champion=[54.0, 0.5])
    decision = gate.decide(gate.judge_candidate(close, GATE, "rmse"), "3")
    assert not decision["passed"]
    assert decision["reason"] == "beats champion by margin 1.0: rmse=53.5 vs 53"
    better = table(candidate=[52.0, 0.5], champion=[54.0, 0.5])
    assert gate.decide(gate.judge_candidate(better, GATE, "rmse"), "3")["passed"]


def test_threshold_failure_is_named_and_can_fail_the_stage():
    decision = gate.decide(gate.judge_candidate(table(candidate=[75.0, 0.2]), GATE, "rmse"), None)
    assert decision["reason"] == "rmse <= threshold: rmse=75 vs 70; r2 >= threshold: r2=0.2 vs 0.3"
    assert gate.enforce(decision, fail_on_reject=False) == "rejected"
    with pytest.raises(Exception, match="candidate rejected by the champion gate: rmse <= threshold"):
        gate.enforce(decision, fail_on_reject=True)


def test_higher_is_better_metrics_compare_upwards():
    auc_gate = {"thresholds": {"roc_auc": {"min": 0.9}}, "margin": 0.0, "fail_on_reject": False}
    comparison = pd.DataFrame({"roc_auc": [0.95, 0.97]}, index=["candidate", "champion"])
    assert not gate.decide(gate.judge_candidate(comparison, auc_gate, "roc_auc"), "1")["passed"]


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
