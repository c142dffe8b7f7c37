"""The local endpoint under faults: slow clients, and the death of whatever started it.

Each test starts the real Azure ML inference server on a small package built here (no pipeline
run). Every socket is on 127.0.0.1; every wait is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelfactory.ops.serving import packaging

pytestmark = pytest.mark.e2e

SETTINGS = {"host": "127.0.0.1", "port": 0, "workers": 1, "start_timeout_seconds": 120}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = Ridge().fit(x, y)
    base = tmp_path_factory.mktemp("endpoint")
    mlflow.sklearn.save_model(model, base / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"])
    settings = {"max_rows": 5, "base_image": "python:3.11-slim",
                "endpoint": {**SETTINGS, "threads": 4, "client_timeout_seconds": 3},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(base / "model", base / "package", x, settings, "demo", "1")
    return base / "package"


def _sample(package: Path) -> dict:
    return json.loads((package / "sample-request.json").read_text())


def _stalled(port: int, payload: bytes) -> socket.socket:
    """A client that connects, sends ``payload`` (maybe nothing), and then says nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if payload:
        sock.sendall(payload)
    return sock


def test_idle_and_half_sent_connections_do_not_block_score(package):
    body = json.dumps(_sample(package)).encode()
    half_headers = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    half_body = (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    with packaging.start_local_endpoint(package, SETTINGS) as endpoint:
        # More stalled clients than the worker has threads: the read timeout has to free them.
        stalled = [_stalled(endpoint.port, payload) for payload in [b"", half_headers, half_body] * 2]
        try:
            for _ in range(3):  # a few rounds, each bounded by the client's own timeout
                status, answer = endpoint.score(_sample(package), timeout=30)
                assert status == 200 and len(answer["predictions"]) == 1
        finally:
            for sock in stalled:
                sock.close()
        assert endpoint.process.poll() is None


STARTER = """
import sys, threading, time
from pathlib import Path
from modelfactory.ops.serving.endpoint import start_endpoint

def start():
    endpoint = start_endpoint(Path(sys.argv[1]))
    endpoint.wait_until_healthy(120)
    print(endpoint.process.pid, endpoint.port, flush=True)

# Started from a thread that ends at once: the server must outlive the thread, not the process.
thread = threading.Thread(target=start)
thread.start()
thread.join()
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _group(pgid: int) -> list[int]:
    """Live processes in a process group (the server and its gunicorn workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_until_gone(pids, seconds: float = 60) -> list[int]:
    """Poll (bounded) until none of ``pids`` is alive; return those still alive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def test_server_dies_with_the_process_that_started_it_even_on_sigkill(package):
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(package)], stdout=subprocess.PIPE, text=True)
    try:
        line = starter.stdout.readline().split()
        assert line, "the starter did not report a server"
        pid, port = int(line[0]), int(line[1])
        workers = _group(pid)
        assert pid in workers and len(workers) >= 2, "the server and at least one worker run in its group"
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it is up and answering after the starting thread ended
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=30)
        assert wait_until_gone(workers) == [], "the server and its workers outlived the process that started them"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if starter.poll() is None:
            starter.kill()
        for leftover in _group(pid) if "pid" in locals() else []:
            os.kill(leftover, signal.SIGKILL)


def _post(url: str, body: bytes, content_type: str | None) -> tuple[int, dict]:
    """POST ``body`` to /score with exactly the Content-Type given (None: no such header at all)."""
    import http.client

    conn = http.client.HTTPConnection(url.split("//", 1)[1], timeout=30)
    try:
        conn.putrequest("POST", "/score", skip_accept_encoding=True)
        if content_type is not None:
            conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_body_sent_as_a_form_is_told_to_send_json(package, content_type):
    """curl -d sends x-www-form-urlencoded unless told otherwise; the server then parses the body as
    a form and hands score.py nothing, which used to read "empty request body"."""
    body = json.dumps(_sample(package)).encode()
    with packaging.start_local_endpoint(package, SETTINGS) as endpoint:
        status, answer = _post(endpoint.url, body, content_type)
        assert status == 400
        assert answer["error"].startswith(f"the request's Content-Type is {content_type.split(';')[0]}")
        assert "send Content-Type: application/json" in answer["error"]
        assert "empty request body" not in answer["error"]
        # the same body with no Content-Type at all reaches score.py whole, and is scored
        status, answer = _post(endpoint.url, body, None)
        assert status == 200 and len(answer["predictions"]) == 1
        status, answer = _post(endpoint.url, body, "application/json")
        assert status == 200 and len(answer["predictions"]) == 1


def test_a_graceful_stop_writes_every_queued_row_and_leaves_no_process(package, tmp_path):
    """The worker ends right after its exit handlers (gunicorn.conf.py's worker_exit): the scored-data
    writer's flush is one of them, so no answered row may be missing, and nothing may outlive stop()."""
    import shutil

    import pandas as pd

    copy = tmp_path / "package"
    shutil.copytree(package, copy)
    settings = json.loads((copy / "serving.json").read_text())
    # never flushed by size or time while serving: only the exit can write these rows
    settings["scored_data"] = {"dir": str(tmp_path / "scored"), "flush_rows": 100_000, "flush_seconds": 3600}
    (copy / "serving.json").write_text(json.dumps(settings))
    with packaging.start_local_endpoint(copy, SETTINGS) as endpoint:
        for i in range(6):
            status, _ = endpoint.score(_sample(copy), request_id=f"stop-{i}")
            assert status == 200
        code = endpoint.stop()
    assert code == 0
    with pytest.raises(ProcessLookupError):  # the process group is gone: master and worker
        os.killpg(endpoint.process.pid, 0)
    scored = pd.read_parquet(tmp_path / "scored")
    assert sorted(scored["request_id"]) == [f"stop-{i}" for i in range(6)]
