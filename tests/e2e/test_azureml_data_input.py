"""The explore step of a submitted pipeline reads its mounted data input, as it would in Azure ML.

A dry run is submitted for a model on registered data; then the explore step's command, exactly as
its component says, runs from the code snapshot with ``${{inputs.data}}`` pointing at a copy of the
file in a folder of its own (the mount) and with no data registry in reach. Nothing here reaches Azure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import cli, clean_env, copy_project

pytestmark = pytest.mark.e2e


def test_the_explore_step_reads_the_mount_and_records_the_pinned_version(tmp_path):
    from sklearn.datasets import load_breast_cancer

    project = copy_project(tmp_path / "project", whole=True)
    landing = tmp_path / "landing" / "tumours.csv"
    landing.parent.mkdir()
    load_breast_cancer(as_frame=True).frame.to_csv(landing, index=False)
    assert cli(project, "data", "register", "tumours", str(landing)).returncode == 0
    overrides = ["--set", "data.source=registered", "--set", "data.dataset=tumours:latest"]
    done = cli(project, "submit", "--model", "breast_cancer", "--env", "stage", "--dry-run", *overrides)
    assert done.returncode == 0, done.stderr
    folder = next((project / "runs").glob("*/azureml"))
    command = yaml.safe_load((folder / "pipeline.yaml").read_text())["jobs"]["explore"]["component"]["command"]

    mount = tmp_path / "mnt" / "azureml" / "INPUT_data" / "tumours.csv"  # where Azure ML would mount it
    mount.parent.mkdir(parents=True)
    shutil.copy(landing, mount)
    shutil.rmtree(project / "data")  # the step must not need the registry
    output = tmp_path / "outputs" / "explore"
    output.mkdir(parents=True)
    command = command.replace("${{inputs.data}}", str(mount)).replace("${{outputs.run}}", str(output))
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    step = subprocess.run(["bash", "-c", command], cwd=folder / "snapshot", capture_output=True, text=True,
                          timeout=600, env=clean_env(MODELFACTORY_TRACKING_DIR=str(tmp_path / "mlruns"), PATH=path))
    assert step.returncode == 0, step.stdout + step.stderr
    manifest = json.loads(next(output.glob("*/manifest.json")).read_text())
    assert manifest["stages"]["explore"]["status"] == "succeeded"
    assert manifest["data"]["source"] == "registered" and manifest["data"]["uri"] == "tumours:1"
    assert manifest["data"]["version"] == "1"
    assert manifest["data"]["hash"] == hashlib.sha256(landing.read_bytes()).hexdigest()
