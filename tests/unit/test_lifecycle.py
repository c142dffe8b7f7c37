"""The lifecycle across environments, on a real MLflow SQLite store in a temporary folder: each
environment its own registered model and champion; a rejected version is not promoted or shipped
unless forced, and the force is recorded; `endpoint` writes into a new folder; hand runs in
Jupyter nest under one parent run, end what they leave open, and leave the registry alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import create_autospec

import pytest

from modelfactory.ops import registry, release
from modelfactory.errors import ModelfactoryError, RejectedVersionError, RunNotFoundError
from modelfactory.params import resolve


@pytest.fixture
def lifecycle(tmp_path, monkeypatch):
    """A throw-away store, runs folder and scored-data folder; ``add(env, passed)`` registers a
    fitted diabetes model in that environment as the evaluate stage would and returns its version."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from modelfactory.ops import tracking

    for key, name in (("MODELFACTORY_TRACKING_DIR", "mlruns"), ("MODELFACTORY_RUNS_DIR", "runs"),
                      ("MODELFACTORY_SCORED_DIR", "scored")):
        monkeypatch.setenv(key, str(tmp_path / name))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MODELFACTORY_ENV", raising=False)
    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    model = Ridge().fit(x, frame["target"])
    params = {env: resolve("diabetes", env) for env in ("dev", "stage")}

    def add(env: str, passed: bool) -> str:
        tracking.connect(params[env])
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x.head(), model.predict(x.head())),
                                            pip_requirements=["scikit-learn"])
        decision = {"passed": passed, "reason": "fine" if passed else "rmse 163 is worse than the baseline's 73",
                    "champion_version": registry.champion_version(registry.registered_name(params[env]))}
        return registry.register_candidate(info.model_uri, registry.registered_name(params[env]), decision)

    yield SimpleNamespace(params=params, add=add, root=tmp_path)
    mlflow.set_tracking_uri(None)


def test_each_environment_has_its_own_registered_model_and_champion(lifecycle):
    from modelfactory.ops.serving.local import registered_model_dir

    dev, stage = lifecycle.params["dev"], lifecycle.params["stage"]
    assert (registry.registered_name(dev), registry.registered_name(stage)) == ("diabetes-dev", "diabetes-stage")
    version = lifecycle.add("dev", passed=True)
    assert registry.promote(registry.registered_name(dev), version, None)["promoted"]
    folder, served = registered_model_dir(dev, None, "champion")
    assert served == version and (folder / "MLmodel").is_file() and "diabetes-dev-v1" in str(folder)
    # stage has no champion: dev's is neither judged against, served, nor replaced from stage
    assert registry.champion_version(registry.registered_name(stage)) is None
    with pytest.raises(ModelfactoryError, match="diabetes-stage has no version with role 'champion'"):
        registered_model_dir(stage, None, "champion")
    stage_version = lifecycle.add("stage", passed=True)
    assert registry.promote(registry.registered_name(stage), stage_version, None)["promoted"]
    assert registry.champion_version("diabetes-dev") == version and registry.champion_version("diabetes-stage") == "1"


def test_promoting_a_rejected_version_is_refused_unless_forced_and_the_force_is_recorded(lifecycle):
    import mlflow

    good, bad = lifecycle.add("dev", passed=True), lifecycle.add("dev", passed=False)
    registry.promote("diabetes-dev", good, None)
    with pytest.raises(RejectedVersionError) as info:
        registry.promote_by_hand("diabetes-dev", bad)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert str(info.value) == ("diabetes-dev version 2 was rejected by the gate (rmse 163 is worse than the baseline's 73); "
                               "pass --force to promote it anyway (the force is recorded on the version)")
    assert registry.champion_version("diabetes-dev") == good
    forced = registry.promote_by_hand("diabetes-dev", bad, force=True)
    assert forced["promoted"] and "forced past the gate's rejection" in forced["reason"]
    assert registry.champion_version("diabetes-dev") == bad
    assert "forced_promote" in mlflow.MlflowClient().get_model_version("diabetes-dev", bad).tags
    # a version the gate passed needs no force, and gets no force tag
    assert registry.promote_by_hand("diabetes-dev", good)["promoted"]
    assert "forced_promote" not in mlflow.MlflowClient().get_model_version("diabetes-dev", good).tags


def test_promote_command_refuses_a_rejected_version_in_one_line(lifecycle, capsys):
    from modelfactory.ops.cli import main

    lifecycle.add("stage", passed=False)
    capsys.readouterr()  # what registering printed
    assert main(["promote", "--model", "diabetes", "--env", "stage", "--version", "1"]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("error: diabetes-stage version 1 was rejected by the gate")
    assert main(["champion", "--model", "diabetes", "--env", "stage"]) == 0
    assert capsys.readouterr().out == ("diabetes-stage: champion none, previous none\n"
                                       "  newest version 1: rejected by the gate: rmse 163 is worse than the baseline's 73\n")
    assert main(["promote", "--model", "diabetes", "--env", "stage", "--version", "1", "--force"]) == 0
    assert main(["champion", "--model", "diabetes", "--env", "dev"]) == 0
    assert capsys.readouterr().out.endswith("diabetes-dev: champion none, previous none\n")


def test_endpoint_ships_the_environments_champion_from_the_registry_into_a_new_folder(lifecycle):
    from modelfactory.ops.azureml import deployment

    dev = lifecycle.params["dev"]
    with pytest.raises(RunNotFoundError, match="^diabetes-dev has no champion in env dev: run the pipeline there"):
        release.prepare_release(dev, None, force=False)
    first, newest = lifecycle.add("dev", passed=True), lifecycle.add("dev", passed=False)
    registry.promote("diabetes-dev", first, None)
    shipped = release.prepare_release(dev, None, force=False)
    assert shipped.version == first != newest, "the champion, not the newest version"
    assert shipped.folder.parent == lifecycle.root / "runs" / "endpoint"
    assert shipped.folder.name.startswith("diabetes-dev-v1-")
    assert json.loads((shipped.package / "serving.json").read_text())["model_version"] == first
    record = json.loads((shipped.folder / "release.json").read_text())
    assert (record["source"], record["gate"], record["forced"]) == ("champion", "passed", False)
    specs = deployment.build_specs(shipped.package, dev, tags=shipped.tags)
    deployment.write_specs(specs, shipped.specs_folder)
    assert deployment.validate_specs(shipped.specs_folder) == []
    assert specs.deployments["green"].tags["registered_model"] == "diabetes-dev"
    assert "forced" not in specs.deployments["green"].tags
    again = release.prepare_release(dev, None, force=False)
    assert again.folder != shipped.folder and (shipped.folder / "release.json").is_file()


def test_endpoint_refuses_a_rejected_champion_unless_forced_and_records_the_force(lifecycle, monkeypatch, capsys):
    """A person forced a rejected version to champion; shipping it needs --force again, which is
    recorded in release.json, the deployment tags and, once deployed, the registry."""
    import mlflow
    from azure.ai.ml.operations import OnlineDeploymentOperations, OnlineEndpointOperations

    from modelfactory.ops.azureml import workspace
    from modelfactory.ops.cli import main

    rejected = lifecycle.add("stage", passed=False)
    registry.promote_by_hand("diabetes-stage", rejected, force=True)
    with pytest.raises(RejectedVersionError, match="pass --force to deploy it anyway"):
        release.prepare_release(lifecycle.params["stage"], None, force=False)
    assert not (lifecycle.root / "runs" / "endpoint").exists() or not list((lifecycle.root / "runs" / "endpoint").iterdir())
    capsys.readouterr()  # what registering printed

    assert main(["endpoint", "deploy", "--model", "diabetes", "--env", "stage", "--dry-run"]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("error: diabetes-stage version 1 was rejected by the gate")
    client = SimpleNamespace(online_endpoints=create_autospec(OnlineEndpointOperations, instance=True),
                             online_deployments=create_autospec(OnlineDeploymentOperations, instance=True))
    monkeypatch.setattr(workspace, "connect", lambda azure: client)
    assert main(["endpoint", "deploy", "--model", "diabetes", "--env", "stage", "--force"]) == 0
    out = capsys.readouterr().out
    assert "diabetes-stage: diabetes-stage version 1 (champion, gate rejected, FORCED); specs valid in" in out
    folder = next((lifecycle.root / "runs" / "endpoint").iterdir())
    assert json.loads((folder / "release.json").read_text())["forced"] is True
    green = [c.args[0] for c in client.online_deployments.begin_create_or_update.call_args_list][-1]
    assert green.tags["forced"] == "true" and green.tags["gate"] == "rejected"
    assert "endpoint diabetes-stage" in mlflow.MlflowClient().get_model_version("diabetes-stage", rejected).tags["forced_deploy"]


def test_a_hand_run_leaves_the_registry_alone_unless_asked(lifecycle, monkeypatch):
    from modelfactory.ops import stage as stages

    opened = stages.open_stage("evaluate", lifecycle.params["dev"])
    assert opened.interactive and not opened.writes_registry
    assert registry.register_candidate("runs:/x/model", "diabetes-dev", {"passed": True, "reason": "r"},
                                       opened.writes_registry) is None
    verdict = {"passed": True, "reason": "r", "champion_version": None, "version": None}
    promotion = registry.promote_candidate("diabetes-dev", verdict, opened.writes_registry)
    assert not promotion["promoted"] and promotion["reason"].startswith("not promoted: run by hand")
    stages.finish_stage(opened, "judged by hand")
    monkeypatch.setenv("MODELFACTORY_REGISTRY_BY_HAND", "true")
    asked = stages.open_stage("evaluate", resolve("diabetes", "dev"))
    assert asked.writes_registry
    stages.finish_stage(asked, "judged by hand")


def _errors(stderr: str) -> list[str]:
    """The CLI's error lines, without MLflow's own log lines (it creates a new store's tables)."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if not line[:4].isdigit()]


def _runs(root):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("modelfactory-dev")
    return client.search_runs([experiment.experiment_id])


def test_hand_runs_nest_under_one_parent_and_a_stage_left_open_ends_killed(lifecycle):
    from modelfactory.ops import stage as stages

    dev = lifecycle.params["dev"]
    stages.open_stage("train", dev)  # a cell fails: finish_stage is never reached
    stages.finish_stage(stages.open_stage("evaluate", dev), "judged by hand")
    runs = {r.info.run_name: r for r in _runs(lifecycle.root)}
    assert set(runs) == {"train", "evaluate", "diabetes-dev-by-hand"}
    parent = runs["diabetes-dev-by-hand"]
    assert parent.info.status == "FINISHED"
    assert runs["train"].info.status == "KILLED" and runs["evaluate"].info.status == "FINISHED"
    assert {runs[s].data.tags.get("mlflow.parentRunId") for s in ("train", "evaluate")} == {parent.info.run_id}


def test_a_kernel_that_exits_with_a_stage_open_ends_it_killed_not_finished(lifecycle):
    code = ("from modelfactory.params import resolve\nfrom modelfactory.ops.stage import open_stage\n"
            "open_stage('train', resolve('diabetes', 'dev'))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    statuses = {r.info.run_name: r.info.status for r in _runs(lifecycle.root)}
    assert statuses == {"train": "KILLED", "diabetes-dev-by-hand": "FINISHED"}


def test_the_gate_decision_is_settled_in_one_call_and_a_rejection_still_leaves_its_record(lifecycle, tmp_path, capsys):
    """evaluate's decision cell: decide, register, record, enforce. A rejection with fail_on_reject
    stops the stage, after the version and gate.json are written (nothing the gate saw is lost)."""
    import mlflow
    from sklearn.datasets import load_diabetes

    from modelfactory.core import evaluate, gate, modeling
    from modelfactory.ops import stage as stages
    from modelfactory.ops import tracking

    frame = load_diabetes(as_frame=True).frame
    for passed, run in ((True, "good"), (False, "bad")):
        params = resolve("diabetes", "dev", overrides=[f"evaluate.gate.fail_on_reject={str(not passed).lower()}",
                                                        "evaluate.gate.beat_baseline=true"])
        opened = stages.open_stage("evaluate", params, tmp_path / run)
        estimator = modeling.build_estimator(params["train"] if passed else params["evaluate"]["baseline"], seed=0)
        fitted = modeling.fit_model(estimator, frame, "target")
        uri = tracking.log_model(fitted, frame.drop(columns="target").head(), params["tracking"]["model_requirements"])
        (tmp_path / run / "train").mkdir()
        (tmp_path / run / "train" / "model.json").write_text(json.dumps({"model_uri": uri}))
        baseline = modeling.fit_model(modeling.build_estimator(params["evaluate"]["baseline"], seed=0), frame, "target")
        comparison = evaluate.compare_models(evaluate.models_to_compare(fitted, baseline), frame, "target",
                                             "regression", params["evaluate"]["metrics"])
        checks = gate.judge_candidate(comparison, params["evaluate"]["gate"], params["evaluate"]["primary_metric"])
        if passed:
            decision = registry.record_gate_decision(opened, checks, None)
            assert (decision["passed"], decision["version"]) == (True, "1") and "checks" not in decision
            stages.finish_stage(opened, gate.verdict(decision))
            assert capsys.readouterr().out.endswith(
                "evaluate: candidate v1 passed: no champion yet; beats the baseline and meets all thresholds\n")
            assert mlflow.get_run(opened_run_id(tmp_path / run)).data.tags["verdict"].startswith("candidate v1 passed")
        else:
            with pytest.raises(ModelfactoryError, match="candidate rejected by the champion gate: rmse"):
                registry.record_gate_decision(opened, checks, "1")
            mlflow.end_run()
            written = json.loads((tmp_path / run / "evaluate" / "gate.json").read_text())
            assert (written["passed"], written["version"]) == (False, "2")
            assert mlflow.MlflowClient().get_model_version("diabetes-dev", "2").tags["gate"] == "rejected"


def opened_run_id(run_dir) -> str:
    """The evaluate stage's MLflow run id, as tracking.json records it."""
    return json.loads((run_dir / "evaluate" / "tracking.json").read_text())["run_id"]


SECOND_SERVE = """
import json, sys
from modelfactory.params import resolve
from modelfactory.ops.serving import local

params = resolve("diabetes", "dev", training_checks=False)  # as `serve` resolves them
model_dir, version = local.registered_model_dir(params, None, "champion")
folder = local.package_for_serving(params, model_dir, version)
print(json.dumps({"version": version, "package": str(folder / "package"),
                  "imported": sorted(m for m in ("mlflow", "sqlalchemy", "sklearn", "pandas") if m in sys.modules)}))
"""


def test_a_second_serve_finds_the_champion_and_its_package_without_importing_mlflow(lifecycle):
    from modelfactory.ops import tracking
    from modelfactory.ops.serving import local

    dev = lifecycle.params["dev"]
    first, second = lifecycle.add("dev", passed=True), lifecycle.add("dev", passed=True)
    uri = tracking.tracking_uri(dev)
    assert local.version_in_local_store(uri, "diabetes-dev", "champion") is None
    for role_holder in (lambda: registry.promote("diabetes-dev", first, None),
                        lambda: registry.promote("diabetes-dev", second, first),
                        lambda: registry.rollback("diabetes-dev")):
        role_holder()  # the store read without MLflow agrees with MLflow's own answer each time
        assert local.version_in_local_store(uri, "diabetes-dev", "champion") == registry.version_with_role(
            "diabetes-dev", "champion")
    assert local.version_in_local_store(uri, "diabetes-dev", "champion") == first
    assert local.version_in_local_store("azureml://somewhere", "diabetes-dev", "champion") is None
    # the first serve downloads and packages through MLflow, in this process
    model_dir, version = local.registered_model_dir(dev, None, "champion")
    built = local.package_for_serving(dev, model_dir, version) / "package"
    # a second serve, in a fresh process: same version, a package of its own with the same files
    done = subprocess.run([sys.executable, "-c", SECOND_SERVE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    second_serve = json.loads(done.stdout.splitlines()[-1])
    assert second_serve["version"] == first and second_serve["imported"] == []
    copied = Path(second_serve["package"])
    assert copied != built
    files = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*") if p.is_file())
    assert all((built / f).read_bytes() == (copied / f).read_bytes() for f in files)
    # changed deploy params are a new package, built as before
    changed = {**dev, "deploy": {**dev["deploy"], "max_rows": dev["deploy"]["max_rows"] + 1}}
    rebuilt = local.package_for_serving(changed, model_dir, version) / "package"
    assert json.loads((rebuilt / "serving.json").read_text())["max_rows"] == dev["deploy"]["max_rows"] + 1
