"""A local scoring endpoint: the real Azure ML inference server, serving one package on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory.errors import EndpointError


# What a starting server is doing, by the last of these lines its log holds (the inference server's
# own words), newest first; before any of them it is still starting (importing the server).
START_PHASES = (("Users's init has completed", "waiting for /health"),
                ("Invoking user's init function", "loading the model"))
STARTING = "starting the server"
HEALTH_POLL_S = 0.05  # between health checks while the server starts: a ready server waits at most this


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalEndpoint:
    """A running inference server; stop() ends it (also on exit from a ``with`` block).

    The server also stops by itself when the process that started it ends, however it ends: it
    watches a pipe (``lifeline``) whose write end only this process holds.
    """

    process: subprocess.Popen
    host: str
    port: int
    log: Path
    lifeline: int | None = None
    started: float = field(default_factory=time.monotonic)  # when the process was started (monotonic)

    @property
    def url(self) -> str:
        """The base URL: GET / is health, POST /score scores, GET /swagger.json describes."""
        return f"http://{self.host}:{self.port}"

    def wait_until_healthy(self, timeout: float, progress: Callable[[str, float], None] | None = None) -> float:
        """Poll the health route until it answers 200; return the seconds since the server was started.

        If it does not, or the wait is interrupted (Ctrl-C, SIGTERM), the server is stopped. The
        seconds count from the start of the process, not of this wait: a caller may do other work
        (the deploy stage's in-process checks) while the server boots.

        Args:
            timeout: the seconds to wait at most, counted from the start of the process.
            progress: called at every poll with what the server is doing (``start_phase``) and the
                seconds so far, so that a long start is not a silent one.
        """
        start = self.started
        try:
            while time.monotonic() - start < timeout:
                if progress is not None:
                    progress(start_phase(self.log), time.monotonic() - start)
                if self.process.poll() is not None:
                    raise EndpointError(f"the inference server exited with code {self.process.returncode}; "
                                        f"its log: {self.log}\n{tail(self.log)}")
                try:
                    with urllib.request.urlopen(self.url + "/", timeout=2) as reply:
                        if reply.status == 200:
                            return time.monotonic() - start
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(HEALTH_POLL_S)
            raise EndpointError(f"the inference server was not healthy within {timeout} s; its log: {self.log}")
        except BaseException:
            self.stop()
            raise

    def score(self, body: dict | str, timeout: float = 30, request_id: str | None = None) -> tuple[int, dict]:
        """POST a request to /score; return (HTTP status, JSON answer)."""
        data = body if isinstance(body, str) else json.dumps(body)
        headers = {"Content-Type": "application/json", **({"x-request-id": request_id} if request_id else {})}
        req = urllib.request.Request(self.url + "/score", data=data.encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                return err.code, json.loads(text)
            except json.JSONDecodeError:
                return err.code, {"error": text.decode(errors="replace")}

    def stop(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); return its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cut_lifeline()
        return self.process.returncode

    def kill(self) -> None:
        """Kill the server and its workers at once (SIGKILL to the process group), as a crash would."""
        import signal

        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._cut_lifeline()

    def _cut_lifeline(self) -> None:
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None

    def __enter__(self) -> "LocalEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_endpoint(package_dir: Path, host: str = "127.0.0.1", port: int = 0, workers: int = 1) -> LocalEndpoint:
    """Start the inference server on a package folder (score.py + model/); port 0 picks a free one."""
    package_dir = Path(package_dir).resolve()
    for needed in ("score.py", "model"):
        if not (package_dir / needed).exists():
            raise EndpointError(f"{package_dir} is not a package: it has no {needed}")
    port = port or free_port(host)
    env = {**os.environ, "AZUREML_ENTRY_SCRIPT": str(package_dir / "score.py"),
           "AZUREML_MODEL_DIR": str(package_dir / "model"), "AML_APP_ROOT": str(package_dir)}
    log = package_dir.parent / f"endpoint-{port}.log"
    # The server holds the read end; only we hold the write end (os.pipe's ends are not inherited
    # by other children). When we end, however we end, the server reads end-of-file and stops.
    watch, lifeline = os.pipe()
    launched = time.monotonic()
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelfactory.ops.serving.launch", "--host", host, "--port", str(port),
                 "--workers", str(workers), "--lifeline", str(watch)], env=env, stdout=out,
                stderr=subprocess.STDOUT, cwd=package_dir, pass_fds=(watch,),
                start_new_session=True)  # its own process group: stop() and a kill reach the workers too
    except BaseException:
        os.close(lifeline)
        raise
    finally:
        os.close(watch)
    return LocalEndpoint(process, host, port, log, lifeline, started=launched)


def start_phase(log: Path) -> str:
    """What a starting server is doing, read from its log: starting the server, loading the model
    (score.py's init()), or waiting for /health once init() is done."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return STARTING
    return next((phase for line, phase in START_PHASES if line in text), STARTING)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
