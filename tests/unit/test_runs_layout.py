"""The run store's layout and its one rerun-command builder (ops/runs.py)."""

from __future__ import annotations

import shlex
import sys

from modelfactory.ops import runs


def test_every_run_path_lies_under_the_runs_folder(proj):
    run = runs.run_path("20260101-000000-diabetes-abcd")
    assert run == proj / "runs" / "20260101-000000-diabetes-abcd"
    assert [p.relative_to(run).as_posix() for p in (runs.params_file(run), runs.manifest_file(run), runs.index_file(run),
                                                    runs.stage_dir(run, "train"), runs.stage_notebook(run, "train"),
                                                    runs.stage_html(run, "train"))] == \
        ["params.yaml", "manifest.json", "index.html", "train", "train.ipynb", "train.html"]
    assert runs.azureml_dir("r1") == proj / "runs" / "r1" / "azureml"
    assert runs.job_home("job-7") == proj / "runs" / "azureml-job-7"
    assert runs.served_model_dir("diabetes-dev", 3) == proj / "runs" / "serving" / "diabetes-dev-v3" / "model"
    assert runs.data_asset_dir("penguins", 2) == proj / "runs" / "azureml-data" / "penguins-v2"
    assert runs.interactive_run_dir("diabetes", "dev") == proj / "runs" / "interactive" / "diabetes-dev"


def test_the_rerun_command_splits_back_into_the_arguments_it_was_built_from(proj):
    run = proj / "runs" / "a run with spaces"
    command = runs.rerun_command("diabetes", env="dev", stages=["train", "evaluate"], params=runs.params_file(run),
                                 from_run="r1", pipeline="training", inputs={"explore": run},
                                 environ={"MLFLOW_TRACKING_URI": "sqlite:///a b/mlflow.db"})
    words = shlex.split(command)
    assert words[0] == "MLFLOW_TRACKING_URI=sqlite:///a b/mlflow.db"
    assert words[1:3] == [sys.executable, "-m"] or words[1].endswith("modelfactory")
    assert words[words.index("run"):] == [
        "run", "--model", "diabetes", "--env", "dev", "--params-file", "runs/a run with spaces/params.yaml",
        "--pipeline", "training", "--stages", "train,evaluate", "--from-run", "r1",
        "--input", "explore=runs/a run with spaces"]


def test_a_new_manifest_starts_running_with_every_stage_recorded():
    stages = {"explore": runs.new_stage_record(runs.PENDING), "train": runs.new_stage_record(runs.NOT_SELECTED)}
    manifest = runs.new_manifest("r1", "diabetes", "dev", "training", ["run", "--set", "a=b c"], "0" * 12, ["a=b c"],
                                 None, {"commit": None, "dirty": None}, stages)
    assert manifest["status"] == runs.RUNNING and manifest["finished"] is None
    assert manifest["command"] == "modelfactory run --set 'a=b c'"
    assert manifest["stages"]["train"]["status"] == "not selected" and manifest["heartbeat"] == runs.HEARTBEAT
