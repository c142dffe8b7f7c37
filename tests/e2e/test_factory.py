"""The model factory end to end: 20 tiny models two at a time (registry safety, the report, the
listing), and Ctrl-C while two models run (workers stop, finished models keep their results)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import clean_env, cli, copy_project, runs_of, write_tiny_models

COUNT = 20


@pytest.fixture(scope="module")
def factory_run(tmp_path_factory):
    """``modelfactory run --models 'tiny-*' --jobs 2`` over 20 tiny models (deploy without its local
    endpoint), in a fresh project: every model registers and promotes into one new SQLite store."""
    project = copy_project(tmp_path_factory.mktemp("factory") / "project")
    names = write_tiny_models(project, COUNT)
    done = cli(project, "run", "--models", "tiny-*", "--jobs", "2", timeout=1800)
    return project, names, done


def test_twenty_models_two_at_a_time_all_succeed_with_a_line_each(factory_run):
    project, names, done = factory_run
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"factory: {COUNT} models, 2 at a time"
    finished = [line.split() for line in lines if line.startswith("  ok ")]
    assert sorted(words[1] for words in finished) == names
    assert all(words[2] == "RMSE" and words[-3] == "promoted" for words in finished)  # the first of each: no champion
    assert f"factory: {COUNT} models in " in done.stdout and f": {COUNT} succeeded" in done.stdout
    manifests = runs_of(project)
    assert sorted(m["model"] for m in manifests) == names and {m["status"] for m in manifests} == {"succeeded"}


def test_each_model_has_exactly_one_champion_in_an_intact_store(factory_run):
    project, names, done = factory_run
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        aliases = db.execute("select name, alias, version from registered_model_aliases").fetchall()
        roles = db.execute("select name, version, value from model_version_tags where key = 'role'").fetchall()
        statuses = {status for (status,) in db.execute("select status from runs")}
        verdicts = [v for (v,) in db.execute("select t.value from tags t join runs r on r.run_uuid = t.run_uuid "
                                             "where t.key = 'verdict' and r.name = 'deploy'")]
    champions = {}
    for name, alias, version in aliases:
        if alias == "champion":
            champions.setdefault(name, []).append(version)
    assert champions == {f"{n}-dev": [1] for n in names}
    assert sorted(name for name, version, role in roles if role == "champion") == sorted(f"{n}-dev" for n in names)
    assert statuses == {"FINISHED"}
    assert len(verdicts) == COUNT and all(v.endswith("local endpoint smoke test skipped (deploy.local_endpoint: "
                                                     "false)") for v in verdicts), verdicts[:2]


def test_runs_lists_every_run_and_the_factory_report_every_model(factory_run):
    project, names, done = factory_run
    listing = cli(project, "runs", "--limit", "100").stdout.splitlines()[1:]
    assert sorted(line.split()[1] for line in listing) == names
    assert all(line.split()[4] == "succeeded" and line.split()[5] == "v1" for line in listing)
    report = next((project / "runs").glob("factory-*/index.html"))
    assert f"report: runs/{report.parent.name}/index.html" in done.stdout
    data = json.loads((report.parent / "factory.json").read_text())
    assert [m["model"] for m in data["models"]] == names and data["jobs"] == 2
    page = report.read_text()
    for m in data["models"]:
        assert f'<a href="../{m["run_id"]}/index.html">{m["model"]}</a>' in page
        assert (project / "runs" / m["run_id"] / "index.html").is_file()
    assert (report.parent / "primary_metric.png").stat().st_size > 10_000
    deploy = json.loads((project / "runs" / data["models"][0]["run_id"] / "deploy" / "promotion.json").read_text())
    assert deploy["promoted"] is True


SLEEP_IN_TRAIN = 'import time\nif model in ("stop-01", "stop-03"):\n    time.sleep(600)'


def _processes_of(project: Path) -> list[int]:
    """Live processes started for this project (kernels, their children)."""
    marker = f"MODELFACTORY_PROJECT_DIR={project}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (marker in (entry / "environ").read_bytes().split(b"\0")
                        and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _state(project: Path) -> dict[str, dict]:
    return {m["model"]: m for m in runs_of(project)} if (project / "runs").exists() else {}


def test_ctrl_c_stops_every_worker_keeps_finished_models_and_marks_the_rest_interrupted(tmp_path):
    project = copy_project(tmp_path / "project")
    write_tiny_models(project, 4, prefix="stop")
    path = project / "notebooks" / "train.ipynb"
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 2, nbformat.v4.new_code_cell(SLEEP_IN_TRAIN))
    nbformat.write(nb, path)
    # Its own session, as a terminal's foreground job: Ctrl-C reaches the runner and its kernels alike.
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "run", "--models", "stop-*", "--jobs", "2",
                             "--stages", "explore,train"], cwd=project, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # bounded: stop-01 and stop-03 asleep in train
            state = _state(project)
            if (all(state.get(m, {}).get("stages", {}).get("train", {}).get("status") == "running"
                    for m in ("stop-01", "stop-03")) and state.get("stop-02", {}).get("status") == "succeeded"):
                break
            time.sleep(0.5)
        else:
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the two sleeping models never ran at once:\n{out}\n{err}")
        time.sleep(2)  # inside the sleeping cells
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert "interrupted: stopped cleanly; what was written is kept" in err
    state = _state(project)
    assert state["stop-02"]["status"] == "succeeded"
    assert (project / "runs" / state["stop-02"]["run_id"] / "train" / "model").is_dir()
    for model in ("stop-01", "stop-03"):
        assert state[model]["status"] == "interrupted", state[model]
        assert [state[model]["stages"][s]["status"] for s in ("explore", "train")] == ["succeeded", "interrupted"]
        assert "error" not in state[model]["stages"]["train"]
    assert state["stop-04"]["status"] == "interrupted"  # never started: not "running" forever
    assert state["stop-04"]["stages"]["explore"]["status"] == "skipped"
    deadline = time.monotonic() + 60
    while _processes_of(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(project), "a kernel outlived the factory"
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as db:
        statuses = [status for (status,) in db.execute("select status from runs")]
    assert statuses and "RUNNING" not in statuses, statuses
