"""The evaluate and deploy notebooks run by hand, as in Jupyter (nothing injected, papermill as the
kernel driver): they log to MLflow under one parent run, leave nothing RUNNING, and neither
register nor promote a model version, since nobody asked them to (tracking.registry_by_hand)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _train_by_hand(params) -> None:
    """What train.ipynb does by hand, in-process: the scratch folder gets the split and the model."""
    from modelfactory.core import data, modeling
    from modelfactory.ops.stage import finish_stage, open_stage

    stage = open_stage("train", params)
    train, holdout = data.split_data(data.load_dataset(params["data"]), params["data"], params["seed"])
    stage.save_table(train, "train.parquet")
    stage.save_table(holdout, "holdout.parquet")
    model = modeling.fit_model(modeling.build_estimator(params["train"], seed=params["seed"]), train, "target")
    stage.log_model(model, modeling.features(train, "target"))
    finish_stage(stage, "trained by hand")


def test_evaluate_and_deploy_by_hand_change_nothing_in_the_registry(tmp_path, monkeypatch):
    import mlflow
    import papermill as pm

    from modelfactory.params import resolve

    for key, name in (("MODELFACTORY_TRACKING_DIR", "mlruns"), ("MODELFACTORY_RUNS_DIR", "runs"),
                      ("MODELFACTORY_SCORED_DIR", "scored")):
        monkeypatch.setenv(key, str(tmp_path / name))
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(ROOT))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key in ("MLFLOW_TRACKING_URI", "MODELFACTORY_ENV", "MODELFACTORY_REGISTRY_BY_HAND"):
        monkeypatch.delenv(key, raising=False)
    try:
        _train_by_hand(resolve("diabetes", "dev"))
        for stage in ("evaluate", "deploy"):
            pm.execute_notebook(str(ROOT / "notebooks" / f"{stage}.ipynb"), str(tmp_path / f"{stage}.ipynb"),
                                cwd=str(ROOT / "notebooks"), progress_bar=False)
    finally:
        mlflow.set_tracking_uri(None)

    scratch = tmp_path / "runs" / "interactive" / "diabetes-dev"
    gate = json.loads((scratch / "evaluate" / "gate.json").read_text())
    assert gate["passed"] and gate["version"] is None
    promotion = json.loads((scratch / "deploy" / "promotion.json").read_text())
    assert not promotion["promoted"] and promotion["reason"].startswith("not promoted: run by hand")
    assert (scratch / "deploy" / "package" / "model" / "diabetes" / "unregistered" / "MLmodel").is_file()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert client.search_registered_models() == []
    runs = client.search_runs([client.get_experiment_by_name("modelfactory-dev").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"diabetes-dev-by-hand", "train", "evaluate", "deploy"}
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = by_name["diabetes-dev-by-hand"].info.run_id
    assert {by_name[s].data.tags["mlflow.parentRunId"] for s in ("train", "evaluate", "deploy")} == {parent}
