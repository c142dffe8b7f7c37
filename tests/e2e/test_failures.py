"""Failure paths of a run: each ends with the documented exit code and a message that says what to do."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, clean_env, cli, runs_of

pytestmark = pytest.mark.e2e


def insert_cell(project: Path, stage: str, source: str, after_tag: str = "parameters", offset: int = 2) -> None:
    """Put a code cell into a stage's notebook, just after its setup cell."""
    path = project / "notebooks" / f"{stage}.ipynb"
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if after_tag in c.metadata.get("tags", []))
    nb.cells.insert(index + offset, nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)


def test_failing_cell_leaves_the_notebook_and_a_rerun_command(project):
    done = cli(project, "run", "--model", "diabetes", "--set", "data.checks.min_rows=100000")
    assert done.returncode == 1, done.stdout + done.stderr
    run = runs_of(project)[-1]
    block = done.stdout[done.stdout.index("FAILED"):].splitlines()
    saved_nb = nbformat.read(project / "runs" / run["run_id"] / "explore.ipynb", as_version=4)
    failed = next(c for c in saved_nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert "data.require_checks_passed(checks)" in failed.source
    assert block[0] == f"FAILED stage explore of run {run['run_id']} at cell In [{failed.execution_count}]"
    assert block[1] == ("  error:    DataValidationError: 1 data check(s) failed: rows: observed 442, "
                        "expected >= 100000 (data.checks.min_rows)")
    assert block[2] == f"  notebook: runs/{run['run_id']}/explore.ipynb"
    assert block[3] == f"  report:   runs/{run['run_id']}/explore.html"
    rerun = block[4].removeprefix("  rerun:    ")
    # The command this test started (`<venv python> -m modelfactory`), so that it works when pasted.
    assert rerun == (f"{sys.executable} -m modelfactory run --model diabetes --env dev "
                     f"--params-file runs/{run['run_id']}/params.yaml --stages explore --from-run {run['run_id']}")
    assert run["status"] == "failed"
    assert run["error"] == ("stage explore: DataValidationError: 1 data check(s) failed: rows: observed 442, "
                            "expected >= 100000 (data.checks.min_rows)")
    assert [run["stages"][s]["status"] for s in ("explore", "train", "evaluate", "deploy")] == \
        ["failed", "skipped", "skipped", "skipped"]
    saved = (project / "runs" / run["run_id"] / "explore.ipynb").read_text()
    assert "An Exception was encountered at" in saved and "DataValidationError" in saved
    assert not (project / "runs" / run["run_id"] / "train.ipynb").exists()

    # the printed command, pasted into a shell in the project folder
    again = subprocess.run(["bash", "-c", rerun], cwd=project, env=clean_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 1
    assert "DataValidationError: 1 data check(s) failed: rows: observed 442" in again.stdout
    assert runs_of(project)[-1]["stages"]["explore"]["status"] == "failed"


def test_killed_kernel_is_reported_as_such(project):
    insert_cell(project, "explore", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    done = cli(project, "run", "--model", "diabetes", "--stages", "explore")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "  error:    the kernel died (killed, or out of memory)" in done.stdout
    run = runs_of(project)[-1]
    assert run["stages"]["explore"]["status"] == "failed"
    assert run["stages"]["explore"]["error"]["ename"] == "KernelDiedError"
    assert run["status"] == "failed" and run["error"] == "stage explore: the kernel died (killed, or out of memory)"
    saved = (project / "runs" / run["run_id"] / "explore.ipynb").read_text()
    assert "Execution stopped in the next cell: the kernel died" in saved


def test_cell_timeout_is_reported_with_the_limit(project):
    # The cell would run for 10 minutes. The runner must not wait for it after the timeout (the
    # timed-out cell keeps running in its kernel, so that kernel is discarded): the command has
    # 100 s, under the 120 s that a wait on that kernel would take before giving up.
    insert_cell(project, "explore", "import time\ntime.sleep(600)")
    done = cli(project, "run", "--model", "diabetes", "--stages", "explore",
               "--set", "runner.cell_timeout_seconds=3", timeout=100)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "  error:    cell ran longer than runner.cell_timeout_seconds=3" in done.stdout
    run = runs_of(project)[-1]
    assert run["stages"]["explore"]["error"]["ename"] == "CellTimeoutError"
    assert run["status"] == "failed" and run["error"] == "stage explore: cell ran longer than runner.cell_timeout_seconds=3"


def test_bad_hyperparameter_stops_before_any_kernel_or_run_folder(project):
    done = cli(project, "run", "--model", "diabetes", "--set", "train.alpah=1")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --set: train.alpah: Ridge has no hyperparameter 'alpah'; did you mean 'alpha'?"
    assert not (project / "runs").exists()


def test_a_user_error_after_the_run_folder_exists_is_recorded_in_the_manifest(project):
    # runner.preload is only tried by the kernel, after the run folder is made.
    done = cli(project, "run", "--model", "diabetes", "--stages", "explore",
               "--set", "runner.preload=[no_such_module_for_the_test]")
    assert done.returncode == 1, done.stdout + done.stderr
    message = ("the kernel could not import runner.preload: ModuleNotFoundError: "
               "No module named 'no_such_module_for_the_test'")
    assert done.stderr.strip() == f"error: {message}"
    run = runs_of(project)[-1]
    assert run["status"] == "failed" and run["error"] == message
    assert run["stages"]["explore"]["status"] == "failed"


def test_a_failing_model_does_not_stop_the_others_and_the_summary_says_how_to_rerun_it(project):
    # 500 rows: diabetes (442) fails its data checks, breast_cancer (569) passes them.
    done = cli(project, "run", "--model", "diabetes", "--model", "breast_cancer", "--stages", "explore",
               "--set", "data.checks.min_rows=500")
    assert done.returncode == 1, done.stdout + done.stderr
    by_model = {m["model"]: m for m in runs_of(project)}
    assert by_model["diabetes"]["status"] == "failed" and by_model["diabetes"]["error"].startswith(
        "stage explore: DataValidationError: 1 data check(s) failed")
    assert by_model["breast_cancer"]["status"] == "succeeded"  # the failure stopped nothing
    failed = by_model["diabetes"]["run_id"]
    summary = done.stdout[done.stdout.index("1 failed; rerun each with the command under it:"):].splitlines()
    assert summary[1:3] == [f"  diabetes (run {failed})", f"    {by_model['diabetes']['error']}"]
    assert summary[3].endswith(f"run --model diabetes --env dev --params-file runs/{failed}/params.yaml "
                               f"--stages explore --from-run {failed}")
    assert re.search(r"report: runs/factory-[^/]+/index.html", done.stdout)


def test_ctrl_c_stops_cleanly_and_keeps_what_was_written(project):
    insert_cell(project, "train", "import time\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "run", "--model", "diabetes"],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # bounded wait for the train stage
            found = list((project / "runs").glob("*/manifest.json")) if (project / "runs").exists() else []
            if found and json.loads(found[0].read_text())["stages"]["train"]["status"] == "running":
                break
            time.sleep(0.5)
        else:
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the train stage never started:\n{out}\n{err}")
        time.sleep(4)  # inside the sleeping cell
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "interrupted: stopped cleanly; what was written is kept" in err
    run = runs_of(project)[-1]
    assert run["status"] == "interrupted"
    assert run["stages"]["explore"]["status"] == "succeeded"
    assert run["stages"]["train"]["status"] == "interrupted"
    assert run["stages"]["evaluate"]["status"] == "skipped"
    assert (project / "runs" / run["run_id"] / "explore" / "dataset.parquet").is_file()
    assert re.search(r"train interrupted after \d+\.\d s", out)


HOLD_ENDPOINT = ('held = packaging.start_local_endpoint(package_dir, params["deploy"]["endpoint"])\n'
                 'print("held", held.port, flush=True)\n'
                 'import time\ntime.sleep(600)')


def _hold_endpoint_in_deploy(project: Path) -> None:
    """The deploy stage starts its endpoint, then waits in a cell: a command stopped there must not
    leave the endpoint behind."""
    path = project / "notebooks" / "deploy.ipynb"
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "deploy.local_endpoint" in c.source)
    nb.cells.insert(index, nbformat.v4.new_code_cell(HOLD_ENDPOINT))
    nbformat.write(nb, path)


def _processes_of(project: Path) -> list[int]:
    """Live processes started for this project: its kernels and their endpoints (and its workers)."""
    marker = f"MODELFACTORY_PROJECT_DIR={project}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _listening(port: int) -> bool:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                return True
    return False


def _start_and_wait_for_held_endpoint(project: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """Start ``modelfactory run`` (in its own process group, as `timeout` runs it) and wait, bounded,
    until the deploy stage's held endpoint listens; return the process and the port."""
    earlier = set((project / "runs").glob("*/deploy/endpoint-*.log")) if (project / "runs").exists() else set()
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "run", "--model", "diabetes", *args],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        logs = set((project / "runs").glob("*/deploy/endpoint-*.log")) if (project / "runs").exists() else set()
        for log in logs - earlier:  # this run's endpoint, not an earlier run's
            port = int(log.stem.split("-")[1])
            if _listening(port):
                return proc, port
        time.sleep(0.5)
    proc.kill()
    out, err = proc.communicate(timeout=60)
    pytest.fail(f"the deploy stage's endpoint never listened:\n{out}\n{err}")


def _wait_until(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


@pytest.fixture(scope="module")
def terminated(tmp_path_factory):
    """A run sent SIGTERM, as `timeout` sends it (to the process group), while deploy holds its endpoint."""
    from conftest import copy_project

    project = copy_project(tmp_path_factory.mktemp("sigterm") / "project")
    _hold_endpoint_in_deploy(project)
    proc, port = _start_and_wait_for_held_endpoint(project)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return project, proc.returncode, out, err, port


def test_sigterm_is_handled_like_ctrl_c_and_leaves_nothing_running(terminated):
    import sqlite3

    project, code, out, err, port = terminated
    assert code == 143, out + err
    assert "terminated (SIGTERM): stopped cleanly; what was written is kept" in err
    run = runs_of(project)[-1]
    assert run["status"] == "interrupted"
    assert [run["stages"][s]["status"] for s in ("explore", "train", "evaluate", "deploy")] == \
        ["succeeded", "succeeded", "succeeded", "interrupted"]
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as db:
        statuses = dict(db.execute("select name, status from runs").fetchall())
    assert statuses and "RUNNING" not in statuses.values(), statuses
    assert statuses["deploy"] == "KILLED"
    assert _wait_until(lambda: not _processes_of(project)), "a kernel or endpoint outlived the run"
    assert not _listening(port)
    listing = cli(project, "runs").stdout
    assert f"{run['run_id']} " in listing and "interrupted" in listing


def test_sigkill_leaves_no_server_and_the_run_shows_abandoned(terminated):
    project = terminated[0]
    # Only the deploy stage (the others come from the SIGTERM run, where they succeeded), killed hard.
    proc, port = _start_and_wait_for_held_endpoint(project, "--stages", "deploy")
    proc.kill()
    proc.communicate(timeout=60)
    assert _wait_until(lambda: not _processes_of(project)), "a kernel or endpoint outlived the killed run"
    assert not _listening(port)
    run = runs_of(project)[-1]
    assert run["status"] == "running"  # nothing of the killed process ran to say otherwise
    listing = cli(project, "runs")
    line = next(line for line in listing.stdout.splitlines() if line.startswith(run["run_id"]))
    assert line.split()[4] == "abandoned"  # run id, model, env, pipeline, status
    run = runs_of(project)[-1]
    assert run["status"] == "abandoned" and run["stages"]["deploy"]["status"] == "abandoned"


def test_a_model_whose_data_is_missing_is_skipped_and_the_others_run(project):
    """A fresh clone before `make demo-data`: penguins' registered CSV is not there yet. The other
    models still run; penguins gets one line naming the command to paste, first and last, and exit 2."""
    shutil.copy2(ROOT / "Makefile", project / "Makefile")
    done = cli(project, "run", "--model", "penguins", "--model", "diabetes", "--stages", "explore")
    assert done.returncode == 2, done.stdout + done.stderr
    said = ("skipped penguins: data.dataset penguins: no such registered dataset (registered: none); "
            "register it first: make demo-data")
    lines = done.stdout.strip().splitlines()
    assert lines[0] == said and lines[-1] == said, done.stdout
    assert [(m["model"], m["status"]) for m in runs_of(project)] == [("diabetes", "succeeded")]
