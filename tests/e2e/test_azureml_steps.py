"""The Azure ML steps, run here: each generated command runs as the job would run it (from the code
snapshot, with its inputs and output folders), then a fake MLClient hands those real outputs to
``submit --wait``'s follow-and-bring-home path, and the printed rerun command reproduces the failure.

Nothing here reaches Azure: the client is create_autospec(JobOperations), and its download copies
the step folders these commands wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import create_autospec

import pytest
import yaml

from conftest import cli, clean_env, copy_project

pytestmark = pytest.mark.e2e
# A gate nobody passes, and a gate that fails the pipeline: evaluate fails, as a real step can.
FAILING = ["--set", "evaluate.gate.thresholds={rmse: {max: 1.0}}", "--set", "evaluate.gate.fail_on_reject=true"]


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """Dry-run submit, then run explore, train and evaluate exactly as their components say."""
    base = tmp_path_factory.mktemp("azsteps")
    project = copy_project(base / "project", whole=True)
    done = cli(project, "submit", "--model", "diabetes", "--env", "stage", "--dry-run", *FAILING)
    assert done.returncode == 0, done.stderr
    folder = next((project / "runs").glob("*/azureml"))
    pipeline = yaml.safe_load((folder / "pipeline.yaml").read_text())
    outputs, results = {}, {}
    for stage in ("explore", "train", "evaluate"):
        command = pipeline["jobs"][stage]["component"]["command"]
        outputs[stage] = base / "outputs" / stage
        outputs[stage].mkdir(parents=True)
        command = command.replace("${{outputs.run}}", str(outputs[stage]))
        for need in re.findall(r"\$\{\{inputs\.(\w+)\}\}", command):
            command = command.replace(f"${{{{inputs.{need}}}}}", str(outputs[need]))
        # `python` is the job environment's; here, this virtualenv's
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        results[stage] = subprocess.run(["bash", "-c", command], cwd=folder / "snapshot", capture_output=True,
                                        text=True, timeout=600,
                                        env=clean_env(MODELFACTORY_TRACKING_DIR=str(base / "mlruns"), PATH=path))
    return SimpleNamespace(project=project, folder=folder, outputs=outputs, results=results, tracking=base / "mlruns")


def test_generated_commands_run_the_stages_from_the_snapshot(steps):
    for stage in ("explore", "train"):
        assert steps.results[stage].returncode == 0, steps.results[stage].stdout + steps.results[stage].stderr
        manifest = next(steps.outputs[stage].glob("*/manifest.json"))
        assert f'"{stage}": {{' in manifest.read_text()
    failed = steps.results["evaluate"]
    assert failed.returncode == 1
    assert "ModelfactoryError: candidate rejected by the champion gate" in failed.stdout
    run_dir = next(steps.outputs["evaluate"].glob("*/manifest.json")).parent
    assert (run_dir / "evaluate.ipynb").is_file() and (run_dir / "params.yaml").is_file()


def _fake_client(steps):
    from azure.ai.ml.operations import JobOperations, WorkspaceOperations

    names = {"explore": "job-explore-1", "train": "job-train-2", "evaluate": "job-evaluate-3", "deploy": "job-deploy-4"}
    final = {"explore": "Completed", "train": "Completed", "evaluate": "Failed", "deploy": "Canceled"}
    polls = {"count": 0}

    def children(parent_job_name):
        # first poll: evaluate still running; after that, the final states
        running = polls["count"] < 2
        return [SimpleNamespace(name=names[s], display_name=s, properties={"azureml.nodeid": s},
                                status=("Running" if running and s == "evaluate" else
                                        "NotStarted" if running and s == "deploy" else final[s]))
                for s in names]

    def get(name):
        polls["count"] += 1
        return SimpleNamespace(name=name, status="Running" if polls["count"] < 2 else "Failed",
                               display_name="training diabetes stage", studio_url="https://ml.azure.com/runs/x")

    def download(name, download_path, output_name):
        stage = next(s for s, n in names.items() if n == name)
        shutil.copytree(steps.outputs[stage], f"{download_path}/named-outputs/{output_name}")

    jobs = create_autospec(JobOperations, instance=True)
    jobs.list.side_effect = children
    jobs.get.side_effect = get
    jobs.download.side_effect = download
    # the workspace's MLflow store; here, the SQLite store the steps above tracked to
    workspaces = create_autospec(WorkspaceOperations, instance=True)
    workspaces.get.return_value = SimpleNamespace(mlflow_tracking_uri=f"sqlite:///{steps.tracking / 'mlflow.db'}")
    return SimpleNamespace(jobs=jobs, workspaces=workspaces, workspace_name="ws-stage")


def test_wait_then_bring_home_prints_the_error_and_a_rerun_that_reproduces_it(steps, monkeypatch):
    from modelfactory.ops.azureml import submit
    from modelfactory.ops.pipeline import load_pipeline

    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(steps.project))
    monkeypatch.chdir(steps.project)
    client = _fake_client(steps)
    said = []
    status = submit.wait(client, "pipeline-job-1", poll_seconds=0, timeout_seconds=60, say=said.append,
                         sleep=lambda s: None)
    assert status == "Failed"
    assert said[:4] == ["  explore: Completed", "  train: Completed", "  evaluate: Running", "  deploy: NotStarted"]
    assert "  evaluate: Failed" in said and said[-1] == "pipeline-job-1: Failed"

    said.clear()
    command = submit.bring_home(client, "pipeline-job-1", load_pipeline("training"), say=said.append)
    message = said[0]
    assert re.match(r"step evaluate failed at In \[\d+\]: ModelfactoryError: candidate rejected by the champion "
                    r"gate", message)
    assert "notebook: runs/azureml-pipeline-job-1/evaluate/" in message
    assert [c.kwargs["output_name"] for c in client.jobs.download.call_args_list] == ["run", "run"]
    assert command.startswith(f"MLFLOW_TRACKING_URI=sqlite:///{steps.tracking}/mlflow.db {sys.executable} -m "
                              "modelfactory run "
                              "--model diabetes --params-file runs/azureml-pipeline-job-1/evaluate/")
    assert "--stages evaluate --input train=runs/azureml-pipeline-job-1/train/" in command
    client.workspaces.get.assert_called_once_with("ws-stage")

    # Pasted into a shell in the project (no venv on PATH), it fails the same way, at the same cell.
    rerun = subprocess.run(["bash", "-c", command], cwd=steps.project, capture_output=True, text=True, timeout=600,
                           env=clean_env())
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    assert "ModelfactoryError: candidate rejected by the champion gate" in rerun.stdout
    assert len(list((steps.project / "runs").glob("*/manifest.json"))) == 1, "one rerun, of the params' model"


def test_submit_sends_the_built_pipeline_job_through_the_client(steps, monkeypatch):
    from azure.ai.ml import load_job
    from azure.ai.ml.operations import JobOperations

    from modelfactory.ops.azureml import submit

    job = load_job(steps.folder / "pipeline.yaml")
    jobs = create_autospec(JobOperations, instance=True)
    jobs.create_or_update.return_value = SimpleNamespace(name="pipeline-job-2", display_name=job.display_name,
                                                         studio_url="https://ml.azure.com/runs/y")
    said = []
    created = submit.submit(SimpleNamespace(jobs=jobs), job, say=said.append)
    sent = jobs.create_or_update.call_args
    assert sent.args[0] is job and sent.kwargs == {"experiment_name": "modelfactory-stage"}
    assert sorted(sent.args[0].jobs) == ["deploy", "evaluate", "explore", "train"]
    assert created.name == "pipeline-job-2" and said == [f"submitted pipeline-job-2: {job.display_name}",
                                                          "  studio: https://ml.azure.com/runs/y"]


def test_jobs_show_and_download_every_step(steps, monkeypatch):
    from modelfactory.ops.azureml import submit

    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(steps.project))
    monkeypatch.setenv("MODELFACTORY_RUNS_DIR", str(steps.project / "runs-jobs"))
    client = _fake_client(steps)
    said = []
    submit.show(client, "pipeline-job-3", say=said.append)
    assert said[0].startswith("pipeline-job-3: Running") and said[1] == "  studio: https://ml.azure.com/runs/x"
    assert said[2:] == ["  explore: Completed  (job-explore-1)", "  train: Completed  (job-train-2)",
                        "  evaluate: Running  (job-evaluate-3)", "  deploy: NotStarted  (job-deploy-4)"]
    said.clear()
    client.jobs.download.side_effect = lambda name, download_path, output_name: None if name == "job-deploy-4" else \
        shutil.copytree(steps.outputs[name.split("-")[1]], f"{download_path}/named-outputs/{output_name}")
    from modelfactory.errors import ModelfactoryError

    with pytest.raises(ModelfactoryError, match="step job-deploy-4: its 'run' output holds no run folder"):
        submit.download_all(client, "pipeline-job-3", say=said.append)
    assert [line.split(":")[0] for line in said] == ["  explore", "  train", "  evaluate"]
