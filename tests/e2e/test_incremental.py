"""End to end: incremental reruns. One tiny model, one full run, then the reruns the stage cache
decides: nothing changed (all cached, no kernel, nothing registered), a train param changed (train,
evaluate and deploy run), a cached run's output tampered with (that stage runs), and --no-cache."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from conftest import cli, copy_project, runs_of

pytestmark = pytest.mark.e2e
STAGES = ["explore", "train", "evaluate", "deploy"]


def registered_versions(project) -> list[int]:
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as db:
        return sorted(v for (v,) in db.execute("select version from model_versions where name = 'diabetes-dev'"))


def mlflow_run_names(project) -> list[str]:
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as db:
        return [name for (name,) in db.execute("select name from runs")]


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    """The one full run, and each rerun's output, in order; the manifests are read from the project."""
    project = copy_project(tmp_path_factory.mktemp("incremental") / "project")
    steps = {"first": cli(project, "run", "--model", "diabetes")}
    steps["first_mlflow_runs"] = len(mlflow_run_names(project))
    steps["noop"] = cli(project, "run", "--model", "diabetes")
    steps["noop_mlflow_runs"] = len(mlflow_run_names(project))
    steps["noop_versions"] = registered_versions(project)
    steps["changed"] = cli(project, "run", "--model", "diabetes", "--set", "train.alpha=0.3")
    changed = runs_of(project)[-1]
    (project / "runs" / changed["run_id"] / "deploy" / "promotion.json").write_text('{"promoted": true}')
    steps["tampered"] = cli(project, "run", "--model", "diabetes", "--set", "train.alpha=0.3")
    steps["forced"] = cli(project, "run", "--model", "diabetes", "--stages", "explore", "--no-cache")
    return project, steps


def test_all_runs_succeed(reruns):
    project, steps = reruns
    for name in ("first", "noop", "changed", "tampered", "forced"):
        assert steps[name].returncode == 0, (name, steps[name].stdout + steps[name].stderr)
    assert len(runs_of(project)) == 5


def test_a_noop_rerun_takes_every_stage_and_starts_nothing(reruns):
    project, steps = reruns
    first, noop = runs_of(project)[:2]
    assert [noop["stages"][s]["status"] for s in STAGES] == ["cached"] * 4
    assert [noop["stages"][s]["cached_from"] for s in STAGES] == [first["run_id"]] * 4
    lines = steps["noop"].stdout.splitlines()
    assert [line for line in lines if line.startswith("  [")] == [
        f"  [{i}/4] {s} cached from {first['run_id']}" for i, s in enumerate(STAGES, 1)]
    # no stage started (no kernel ran a notebook): no start time, no MLflow run, no new registered version
    assert all(noop["stages"][s]["start"] is None for s in STAGES)
    assert steps["noop_mlflow_runs"] == steps["first_mlflow_runs"]
    assert steps["noop_versions"] == [1]
    assert noop["gate"] == first["gate"] and noop["headline_metrics"] == first["headline_metrics"]
    assert noop["data"] == first["data"] and noop["data_hash"] == first["data_hash"]
    assert lines[-1] == (f"candidate v1 promoted: no champion yet; beats the baseline and meets all thresholds "
                         f"(decided by run {first['run_id']}; cached here, nothing registered again)")
    # the run folder is whole: notebooks, pages and outputs are there, and the report says where they came from
    folder = project / "runs" / noop["run_id"]
    for s in STAGES:
        assert (folder / f"{s}.ipynb").is_file() and (folder / f"{s}.html").is_file()
    assert (folder / "deploy" / "package" / "score.py").is_file()
    assert f"cached from run {first['run_id']}" in (folder / "index.html").read_text()
    listing = cli(project, "runs").stdout
    assert re.search(rf"^{noop['run_id']}\s+diabetes\s+dev\s+training\s+succeeded\s+v1 promoted \(cached\)", listing,
                     re.M), listing


def test_a_train_param_change_reruns_train_evaluate_and_deploy_only(reruns):
    project, steps = reruns
    first, noop, changed = runs_of(project)[:3]
    statuses = [changed["stages"][s]["status"] for s in STAGES]
    assert statuses == ["cached", "succeeded", "succeeded", "succeeded"]
    assert changed["stages"]["explore"]["cached_from"] == first["run_id"]
    # why each one ran: the first key component that differs from the newest run
    assert changed["stages"]["train"]["cache_miss"] == f"params.train differs from run {noop['run_id']}"
    assert changed["stages"]["evaluate"]["cache_miss"] == f"inputs.train differs from run {noop['run_id']}"
    assert changed["stages"]["deploy"]["cache_miss"] == f"inputs.train differs from run {noop['run_id']}"
    assert f"  [2/4] train ... (not cached: params.train differs from run {noop['run_id']})" in steps["changed"].stdout
    assert changed["gate"]["version"] == "2" and changed["gate"]["champion_version"] == "1"


def test_a_tampered_output_of_the_cached_run_is_not_taken(reruns):
    project, steps = reruns
    changed, tampered = runs_of(project)[2:4]
    statuses = [tampered["stages"][s]["status"] for s in STAGES]
    assert statuses == ["cached", "cached", "cached", "succeeded"]
    assert tampered["stages"]["train"]["cached_from"] == changed["run_id"]
    assert tampered["stages"]["deploy"]["cache_miss"] == (
        f"outputs of run {changed['run_id']} changed since it ran (deploy/promotion.json)")
    kept = json.loads((project / "runs" / tampered["run_id"] / "deploy" / "promotion.json").read_text())
    assert kept["promoted"] is False  # the deploy stage ran again; the tampered file was not copied
    assert registered_versions(project) == [1, 2]  # the cached evaluate registered nothing


def test_no_cache_runs_the_selected_stages(reruns):
    project, steps = reruns
    forced = runs_of(project)[-1]
    assert forced["stages"]["explore"]["status"] == "succeeded"
    assert forced["stages"]["explore"]["cache_miss"] == "--no-cache"
    assert "  [1/1] explore ... (not cached: --no-cache)" in steps["forced"].stdout
