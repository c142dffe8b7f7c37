"""Run manifests: a run whose process is gone is `abandoned`, never `running` for ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from modelfactory.ops import runs as manifests


def write_run(root: Path, run_id: str, process: dict | None, status: str = "running") -> Path:
    """A run folder as the runner leaves it mid-run: explore done, train running, the rest pending."""
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    record = {"run_id": run_id, "model": "diabetes", "env": "dev", "status": status, "created": manifests.now(),
              "finished": None, "stages": {"explore": {"status": "succeeded"}, "train": {"status": "running"},
                                           "evaluate": {"status": "pending"}}}
    if process is not None:
        record.update(process=process, heartbeat=manifests.HEARTBEAT)
    manifests.write(run_dir, record)
    (run_dir / manifests.HEARTBEAT).write_text(manifests.now())
    return run_dir


def listed(root: Path) -> dict[str, str]:
    return {m["run_id"]: m["status"] for m in manifests.list_runs(root=root)}


def on_disk(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_a_run_whose_process_died_is_abandoned_in_runs_and_in_its_manifest(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = manifests.process_identity(child.pid)
    child.kill()
    child.wait()
    dead = write_run(tmp_path, "20260101-000000-diabetes-dead", identity)
    alive = write_run(tmp_path, "20260101-000001-diabetes-live", manifests.process_identity())
    assert listed(tmp_path) == {"20260101-000000-diabetes-dead": "abandoned",
                                "20260101-000001-diabetes-live": "running"}
    record = on_disk(dead)
    assert record["status"] == "abandoned" and record["finished"]
    assert {k: v["status"] for k, v in record["stages"].items()} == {
        "explore": "succeeded", "train": "abandoned", "evaluate": "skipped"}
    assert on_disk(alive)["status"] == "running"


def test_a_reused_process_id_does_not_keep_a_dead_run_running(tmp_path):
    # Our own, live, process id, but a start time that is not ours: the id was reused.
    identity = {**manifests.process_identity(), "started": manifests.process_identity()["started"] - 1}
    write_run(tmp_path, "20260101-000000-diabetes-reuse", identity)
    assert listed(tmp_path) == {"20260101-000000-diabetes-reuse": "abandoned"}


def test_a_run_from_another_machine_is_judged_by_its_heartbeat(tmp_path):
    elsewhere = {**manifests.process_identity(), "host": "another-machine"}
    fresh = write_run(tmp_path, "20260101-000000-diabetes-fresh", elsewhere)
    stale = write_run(tmp_path, "20260101-000001-diabetes-stale", elsewhere)
    old = time.time() - manifests.STALE_AFTER_SECONDS - 60
    os.utime(stale / manifests.HEARTBEAT, (old, old))
    assert listed(tmp_path) == {"20260101-000000-diabetes-fresh": "running",
                                "20260101-000001-diabetes-stale": "abandoned"}
    assert on_disk(fresh)["status"] == "running"


def test_finished_runs_are_left_as_they_are(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = manifests.process_identity(child.pid)
    child.wait()
    for status in ("succeeded", "failed", "interrupted"):
        write_run(tmp_path, f"20260101-000000-diabetes-{status}", identity, status=status)
    assert sorted(listed(tmp_path).values()) == ["failed", "interrupted", "succeeded"]


def test_the_heartbeat_is_touched_while_a_run_executes(tmp_path, monkeypatch):
    monkeypatch.setattr(manifests, "HEARTBEAT_SECONDS", 0.05)
    beat = tmp_path / manifests.HEARTBEAT
    with manifests.Heartbeat([tmp_path]):
        first = beat.read_text()
        deadline = time.monotonic() + 10
        while beat.read_text() == first and time.monotonic() < deadline:  # bounded
            time.sleep(0.02)
        assert beat.read_text() != first
    stopped = beat.read_text()
    time.sleep(0.2)
    assert beat.read_text() == stopped, "no beats after the run ends"


def test_a_run_that_reuses_explore_carries_the_reused_runs_data_hash(proj):
    import hashlib

    from modelfactory import params as params_mod
    from modelfactory.ops import runner
    from modelfactory.ops.pipeline import load_pipeline

    pipeline = load_pipeline("training")
    earlier = proj / "runs" / "20261130-100000-diabetes-aaaa"
    (earlier / "explore").mkdir(parents=True)
    (earlier / "explore" / "dataset.parquet").write_bytes(b"the earlier run's dataset bytes")
    data_hash = hashlib.sha256(b"the earlier run's dataset bytes").hexdigest()[:12]
    manifests.write(earlier, {"run_id": earlier.name, "status": "succeeded", "data_hash": data_hash,
                              "data": {"source": "sklearn", "dataset": "diabetes"}})
    req = runner.RunRequest(model="diabetes", env="dev", stages=["train"])
    resolved = params_mod.resolve("diabetes", "dev")
    sources = {"explore": earlier}
    checked = [(req, resolved, ["train"], sources, runner._data_record(pipeline, ["train"], resolved, sources))]

    [planned] = runner.create_runs(checked, pipeline, ["run", "--stages", "train"])

    recorded = on_disk(planned.run_dir)
    assert recorded["stages"]["explore"]["status"] == "reused"
    assert recorded["data"] == {"source": "sklearn", "dataset": "diabetes"}
    assert recorded["data_hash"] == data_hash
