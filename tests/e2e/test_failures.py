"""Failure paths of a run: each ends with the documented exit code and a message that says what to do."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import clean_env, cli, runs_of

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
    assert rerun == (f"modelfactory run --model diabetes --env dev --stages explore "
                     f"--params-file runs/{run['run_id']}/params.yaml --from-run {run['run_id']}")
    assert run["status"] == "failed"
    assert run["error"] == ("stage explore: DataValidationError: 1 data check(s) failed: rows: observed 442, "
                            "expected >= 100000 (data.checks.min_rows)")
    assert [run["stages"][s]["status"] for s in ("explore", "train", "evaluate", "deploy")] == \
        ["failed", "skipped", "skipped", "skipped"]
    saved = (project / "runs" / run["run_id"] / "explore.ipynb").read_text()
    assert "An Exception was encountered at" in saved and "DataValidationError" in saved
    assert not (project / "runs" / run["run_id"] / "train.ipynb").exists()

    again = cli(project, *rerun.split()[1:])  # the printed command, as a user pastes it
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


def test_a_run_kept_from_starting_by_an_earlier_failure_says_so(project):
    done = cli(project, "run", "--model", "diabetes", "--model", "breast_cancer", "--stages", "explore",
               "--set", "data.checks.min_rows=100000")
    assert done.returncode == 1, done.stdout + done.stderr
    by_model = {m["model"]: m for m in runs_of(project)}
    assert by_model["diabetes"]["status"] == "failed" and by_model["diabetes"]["error"].startswith(
        "stage explore: DataValidationError: 1 data check(s) failed")
    assert by_model["breast_cancer"]["status"] == "not started"  # not "running" forever
    assert by_model["breast_cancer"]["stages"]["explore"]["status"] == "pending"


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
