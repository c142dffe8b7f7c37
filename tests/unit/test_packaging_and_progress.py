"""Packaging lives in ops/serving/ (serving no longer imports the deploy stage); the endpoint's start
says what it waits for; each stage ends with one verdict line; refreshed notebooks mask what changes
on every execution."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

from conftest import ROOT

SERVING = ROOT / "src" / "modelfactory" / "ops" / "serving"


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_serving_never_imports_the_deploy_stage_which_builds_on_it():
    for path in sorted(SERVING.glob("*.py")):
        assert "modelfactory.ops.deploy" not in _imported_modules(path), f"{path.name} imports ops.deploy"
    assert "modelfactory.ops.serving.packaging" in _imported_modules(SERVING.parent / "deploy.py")


def test_the_start_phase_is_read_from_the_servers_own_log(tmp_path):
    from modelfactory.ops.serving.endpoint import start_phase

    log = tmp_path / "endpoint-1.log"
    assert start_phase(log) == "starting the server"  # no log yet
    lines = ["Initializing logger",
             "2026-11-30 19:42:01,411 I [7565] azmlinfsrv.user_script - Invoking user's init function",
             "2026-11-30 19:42:11,852 I [7565] azmlinfsrv.user_script - Users's init has completed successfully"]
    phases = []
    for count in range(1, len(lines) + 1):
        log.write_text("\n".join(lines[:count]) + "\n")
        phases.append(start_phase(log))
    assert phases == ["starting the server", "loading the model", "waiting for /health"]


PROGRESS = """
from modelfactory.ops.progress import ProgressLine
line = ProgressLine("local endpoint", terminal=True)
for phase, seconds in [("starting the server", 0.2), ("starting the server", 0.4), ("loading the model", 3.0),
                       ("loading the model", 9.0), ("waiting for /health", 12.6)]:
    line(phase, seconds)
line.done("healthy")
"""


def test_off_a_terminal_the_progress_says_each_phase_once_then_how_it_ended():
    done = subprocess.run([sys.executable, "-c", PROGRESS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["      local endpoint: starting the server (0 s)",
                                        "      local endpoint: loading the model (3 s)",
                                        "      local endpoint: waiting for /health (13 s)",
                                        "      local endpoint: healthy after 12.6 s"]


def test_in_a_notebook_the_progress_is_one_output_that_keeps_only_its_final_words(tmp_path):
    """Executed by papermill in a real kernel: while it runs the line carries seconds; the saved
    output holds the outcome without them, so a refresh does not change it."""
    import papermill as pm

    source = tmp_path / "progress.ipynb"
    cell = nbformat.v4.new_code_cell(PROGRESS.replace("terminal=True", "terminal=False"))
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source)
    pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False)
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert [o.get("data", {}).get("text/plain") or o.get("text") for o in outputs] == ["local endpoint: healthy"]


def test_each_stage_says_its_verdict_in_one_line():
    from modelfactory.core import batch, explore, gate, modeling
    from modelfactory.ops import deploy

    raw = pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [0.5, 1.5, 2.5]})
    checks = pd.DataFrame({"check": ["rows", "types"], "passed": [True, True]})
    none_failed = pd.DataFrame(columns=["column", "check", "failures", "example rows", "example values"])
    assert explore.verdict(raw, checks, none_failed) == "3 rows, 2 columns, 2 checks passed, data contract passed"
    spec = {"estimator": "sklearn.linear_model.Ridge", "scale_features": True, "preprocess": None, "alpha": 1.0}
    assert (modeling.verdict(spec, raw, {"rmse": 53.5751, "r2": 0.52763}, 3)
            == "Ridge (alpha=1.0) fitted on 3 rows; on them rmse 53.575, r2 0.528")
    assert (gate.verdict({"passed": False, "version": "5", "reason": "rmse 53.82 is worse than champion v1's 53.78"})
            == "candidate v5 rejected: rmse 53.82 is worse than champion v1's 53.78")
    assert gate.verdict({"passed": True, "version": None, "reason": "x"}) == "candidate (not registered) passed: x"
    served = deploy.compare_answers(np.array([1.0, 2.0]), np.array([1.0, 2.0]), 1e-9)
    assert (deploy.verdict({"promoted": True}, "3", served)
            == "v3 promoted; the endpoint answered 2 rows within 1e-09")
    by_hand = {"promoted": False, "reason": "not promoted: run by hand"}
    assert (deploy.verdict(by_hand, None, served)
            == "the candidate (not registered) not promoted: run by hand; the endpoint answered 2 rows within 1e-09")
    kept = {"model": "diabetes", "version": "1", "rows": 442, "scored": 440, "rejected": 2}
    assert batch.verdict(kept) == "440 of 442 rows scored with diabetes v1, 2 set aside"


def test_a_refresh_masks_memory_addresses_and_keeps_the_rest():
    from modelfactory.ops.refresh import strip_run_metadata

    repr_text = "ColumnTransformer(<make_column_selector object at 0x7f10b2c68150>)"
    html = "<pre>&lt;make_column_selector object at 0x7F10B2BC3650&gt;</pre>"
    cell = nbformat.v4.new_code_cell("estimator", outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": repr_text, "text/html": html}, execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text="train: Ridge at 0x1f fitted; 0x2a stays\n")])
    nb = nbformat.v4.new_notebook(cells=[cell])
    strip_run_metadata(nb)
    result, stream = nb.cells[0].outputs
    assert result["data"]["text/plain"] == "ColumnTransformer(<make_column_selector object at 0x...>)"
    assert result["data"]["text/html"] == "<pre>&lt;make_column_selector object at 0x...&gt;</pre>"
    assert stream["text"] == "train: Ridge at 0x... fitted; 0x2a stays\n"


# A worker's last moments as gunicorn runs them (arbiter.spawn_worker): the worker's SystemExit is in
# flight while the worker_exit hook runs. An atexit handler stands in for score.py's scored-data writer.
WORKER_LEAVING = """
import atexit, importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("conf", Path(sys.argv[1]) / "gunicorn.conf.py")
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)
atexit.register(lambda: (Path(sys.argv[1]) / "flushed").write_text("every queued row"))
try:
    raise ValueError("not an exit")
except ValueError:
    conf.worker_exit(None, None)  # no SystemExit in flight: the hook leaves the process alone
print("still running", flush=True)
try:
    sys.exit(int(sys.argv[2]))
finally:
    conf.worker_exit(None, None)
print("not reached", flush=True)
"""


def test_a_stopping_worker_runs_its_exit_handlers_and_keeps_its_exit_code(tmp_path):
    from modelfactory.ops.serving.packaging import SERVER_CONFIG

    (tmp_path / "gunicorn.conf.py").write_text(SERVER_CONFIG.read_text())
    (tmp_path / "serving.json").write_text('{"server": {}}')
    for code in (0, 3):
        (tmp_path / "flushed").unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", WORKER_LEAVING, str(tmp_path), str(code)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        assert done.stdout == "still running\n"
        assert (tmp_path / "flushed").read_text() == "every queued row"
