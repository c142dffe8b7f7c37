"""The model factory's parts that need no pipeline run: choosing models, the worker loop, the lines it
prints, the factory report, the lock around a new SQLite store, and deploy.local_endpoint: false."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import clean_env, cli, copy_project
from modelfactory.errors import ParamsError
from modelfactory.ops import factory, factory_report
from modelfactory.ops.progress import FactoryLine, duration_text, factory_status

MODELS = ["breast_cancer", "diabetes", "sales-a", "sales-b", "sales-c"]


def test_models_are_chosen_by_glob_in_their_own_order_each_once():
    assert factory.select_models(["sales-*"], MODELS) == ["sales-a", "sales-b", "sales-c"]
    assert factory.select_models(["sales-[ab]", "d*", "sales-a"], MODELS) == ["diabetes", "sales-a", "sales-b"]


def test_a_glob_that_matches_nothing_is_a_one_line_user_error():
    with pytest.raises(ParamsError, match=r"^--models salse-\*: no model under params/models/ matches "
                                          r"\(there are: breast_cancer, diabetes, sales-a, sales-b, sales-c\)$"):
        factory.select_models(["sales-*", "salse-*"], MODELS)


def test_the_cli_refuses_a_glob_that_matches_nothing_before_any_kernel_starts(tmp_path):
    project = copy_project(tmp_path / "project")
    done = cli(project, "run", "--models", "nothing-*", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().startswith("error: --models nothing-*: no model under params/models/ matches")
    assert "Traceback" not in done.stderr and not (project / "runs").exists()
    both = cli(project, "run", "--all", "--model", "diabetes", timeout=120)
    assert both.returncode == 2 and "--all: runs every model" in both.stderr


def test_durations_and_the_factory_line_read_as_people_write_them():
    assert [duration_text(s) for s in (4.26, 72, 3725)] == ["4.3s", "1m12s", "1h02m"]
    assert factory_status(7, 20, 1, 2, 72) == "factory: 7/20 done, 1 failed, 2 running, elapsed 1m12s"


def test_off_a_terminal_the_factory_line_is_quiet_and_only_said_lines_appear():
    progress, out = io.StringIO(), io.StringIO()
    line = FactoryLine(3, stream=progress)
    line.update(done=1, running=2)
    line.say("  ok  diabetes", stream=out)
    line.tick()
    line.close()
    assert progress.getvalue() == "" and out.getvalue() == "  ok  diabetes\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_said_lines_go_above_the_factory_line_which_is_redrawn():
    progress = _Tty()
    line = FactoryLine(2, stream=progress)
    line.update(done=0, running=2)
    line.say("  ok  diabetes", stream=progress)
    line.update(done=1, running=1)
    line.close()
    text = progress.getvalue()
    assert "\r\x1b[K  ok  diabetes\n\rfactory: 0/2 done, 0 failed, 2 running" in text
    assert "factory: 1/2 done, 0 failed, 1 running" in text and text.endswith("\r\x1b[K")


class _Pool:
    """Stands in for a KernelPool: the worker loop under test only prestarts, kills and closes it."""

    made = 0

    def __init__(self):
        _Pool.made += 1
        self.closed = False

    def prestart(self):
        pass

    def kill(self):
        pass

    def close(self):
        self.closed = True


def _result(name: str, status: str) -> factory.ModelResult:
    return factory.ModelResult(name, f"run-{name}", Path("/nowhere") / name, status)


def test_workers_run_models_at_once_each_with_its_own_pool_and_a_failure_stops_nothing():
    both_running = threading.Barrier(2, timeout=60)  # broken (an error) unless two models run at once
    pools, seen = [], []

    def work(name, pool, stopping):
        pools.append(pool)
        if name in ("a", "b"):
            both_running.wait()
        return _result(name, "failed" if name == "b" else "succeeded")

    made = []

    def make_pool():
        made.append(_Pool())
        return made[-1]

    results = factory.run_models(["a", "b", "c", "d"], 2, make_pool, work, seen.append)
    assert sorted(r.model for r in results) == ["a", "b", "c", "d"] == sorted(r.model for r in seen)
    assert len(made) == 2 and all(p.closed for p in made)
    assert {id(p) for p in pools} == {id(p) for p in made}  # each worker kept its own pool for its models
    assert [r.status for r in sorted(results, key=lambda r: r.model)] == ["succeeded", "failed", "succeeded",
                                                                          "succeeded"]


def test_a_bug_in_a_worker_reaches_the_caller():
    def work(name, pool, stopping):
        raise RuntimeError(f"bug on {name}")

    with pytest.raises(RuntimeError, match="bug on"):
        factory.run_models(["a"], 1, _Pool, work, lambda result: None)


def test_a_stopping_pool_hands_out_no_kernel_once_the_factory_stops():
    class Pool:
        def acquire(self):
            return "kernel"

        current = None

    stopping = threading.Event()
    pool = factory.StoppingPool(Pool(), stopping)
    assert pool.acquire() == "kernel" and pool.current is None
    stopping.set()
    with pytest.raises(KeyboardInterrupt):
        pool.acquire()


def _manifest(candidate: float | None, champion: float | None, passed=True, promoted=True) -> dict:
    metrics = {} if candidate is None else {"holdout_rmse": candidate, "baseline_rmse": 70.0}
    if champion is not None:
        metrics["champion_rmse"] = champion
    gate = {} if candidate is None else {"passed": passed, "version": 2, "champion_version": 1 if champion else None,
                                         "reason": "rmse beats the champion" if passed else "rmse is worse"}
    return {"headline_metrics": metrics, "gate": gate, "promotion": {"promoted": promoted} if passed else {},
            "stages": {"explore": {"status": "succeeded"}}}


def test_a_models_line_has_its_metric_beside_the_champions_its_decision_and_time(tmp_path):
    result = factory.ModelResult("diabetes", "r1", tmp_path / "runs" / "r1", "succeeded", duration_s=41.2,
                                 manifest=_manifest(53.82, 54.1), primary_metric="rmse")
    line = factory.model_line(result)
    assert line.split()[:8] == ["ok", "diabetes", "RMSE", "53.820", "(champion", "54.100)", "v2", "promoted"]
    assert "41.2s" in line and line.endswith("index.html")
    failed = factory.ModelResult("sales-a", "r2", tmp_path / "r2", "failed", duration_s=5,
                                 manifest={"stages": {"explore": {"status": "failed"}}, "error": "stage explore: bad"},
                                 primary_metric="rmse", rerun="modelfactory run --model sales-a --stages explore")
    assert "failed at explore" in factory.model_line(failed)
    summary = factory.summary_lines([result, failed], 75, None)
    assert summary[0] == "factory: 2 models in 1m15s: 1 succeeded, 1 failed"
    assert summary[-3:] == ["  sales-a (run r2)", "    stage explore: bad",
                            "    rerun: modelfactory run --model sales-a --stages explore"]


def test_the_factory_report_has_a_row_per_model_and_a_panel_per_metric(tmp_path):
    results = [
        factory.ModelResult("diabetes", "r1", tmp_path / "r1", "succeeded", duration_s=40, manifest=_manifest(53.8, 54.1),
                            primary_metric="rmse"),
        factory.ModelResult("cancer", "r2", tmp_path / "r2", "succeeded", duration_s=30, manifest={
            "headline_metrics": {"holdout_roc_auc": 0.99}, "gate": {"passed": True, "version": 1, "reason": "first"},
            "promotion": {"promoted": True}}, primary_metric="roc_auc"),
        factory.ModelResult("broken", "r3", tmp_path / "r3", "failed", duration_s=5,
                            manifest={"error": "stage explore: bad"}, primary_metric="rmse", rerun="modelfactory run x"),
    ]
    index = factory_report.write_factory_report(results, 75.0, 2, root=tmp_path)
    folder = index.parent
    assert folder.parent == tmp_path / "runs" and folder.name.startswith("factory-")
    data = json.loads((folder / "factory.json").read_text())
    assert [m["model"] for m in data["models"]] == ["broken", "cancer", "diabetes"]
    assert data["counts"] == {"failed": 1, "succeeded": 2} and data["jobs"] == 2
    diabetes = data["models"][2]
    assert (diabetes["value"], diabetes["champion_value"], diabetes["gate"]) == (53.8, 54.1, "v2 promoted")
    page = index.read_text()
    assert '<a href="../r1/index.html">diabetes</a>' in page and "primary_metric.png" in page
    assert "<code>modelfactory run x</code>" in page  # the failure's rerun command
    from PIL import Image

    with Image.open(folder / factory_report.PLOT) as image:  # two metrics: two panels, so a taller picture
        assert image.size[1] > 300
    assert factory_report.write_factory_report(results[:1], 1.0, 1, root=tmp_path) is None


def test_local_endpoint_false_skips_the_http_check_and_the_verdict_says_so():
    from modelfactory.ops import deploy

    sample = pd.DataFrame({"x": [1.0, 2.0]})
    settings = {"local_endpoint": False, "tolerance": 1e-9, "endpoint": {}}
    with deploy.local_endpoint(Path("/no/package"), settings) as endpoint:
        assert endpoint is None  # no server started
        served = deploy.smoke_test_local_endpoint(endpoint, settings, sample, [1.0, 2.0])
    assert deploy.require_match(served) == 0.0 and deploy.latency_metrics(served) == {}
    line = deploy.verdict({"promoted": True}, 3, served)
    assert line == "v3 promoted; the package answered in-process; local endpoint smoke test skipped " \
                   "(deploy.local_endpoint: false)"


STORE_USER = r'''
import sys, time
from modelfactory.ops import tracking
params = {"tracking": {"uri": None, "experiment": "factory"}}
start = float(sys.argv[1])
while time.time() < start:  # every process connects at the same moment
    time.sleep(0.001)
tracking.connect(params)
'''


def test_kernels_connecting_at_once_to_a_new_store_all_succeed(tmp_path):
    """Two kernels of a factory are the first to touch a new SQLite store: without the lock, MLflow's
    migrations ran twice at once and failed (alembic: "expected to match one row")."""
    project = copy_project(tmp_path / "project")
    start = str(time.time() + 5)
    procs = [subprocess.Popen([sys.executable, "-c", STORE_USER, start], cwd=project,
                              env=clean_env(MODELFACTORY_PROJECT_DIR=str(project)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode:
            errors.append(err.strip().splitlines()[-1])
    assert not errors, errors
    assert (project / "mlruns" / "mlflow.db").is_file()
