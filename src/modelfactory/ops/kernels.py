"""Jupyter kernels for the runner: started ahead of time, warmed with imports, reused or fresh.

Starting a kernel and importing pandas, scikit-learn, matplotlib and MLflow costs seconds. With
``runner.shared_kernel`` one kernel serves every notebook of a ``modelfactory run``, its namespace
reset between notebooks (modules stay imported). Without it each stage gets a fresh kernel, and
the next one is started and warmed while the current stage runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelfactory.errors import ModelfactoryError
from modelfactory.ops import kernel_code
from modelfactory.ops.progress import QUIET_TERMINAL


class KernelSession:
    """One kernel process, with a client of our own for the code the runner sends it."""

    def __init__(self, kernel_name: str, cwd: Path, env: Mapping[str, str], preload: Sequence[str],
                 start_timeout: int):
        from jupyter_core.utils import run_sync

        # nbclient (under papermill) drives the kernel through this manager on its event loop, so it
        # must be the async kind. IPC sockets in a private folder: no TCP ports, no plain-text warning.
        self._sockets = tempfile.mkdtemp(prefix="modelfactory-kernel-")
        self.km = _manager_class()(kernel_name=kernel_name, transport="ipc", ip=str(Path(self._sockets) / "k"))
        self.km.handed_out = []
        run_sync(self.km.start_kernel)(cwd=str(cwd), env=dict(env))
        self.kc = self._client()
        self.start_timeout = start_timeout
        code = kernel_code.call(kernel_code.preload, list(preload)) if preload else None
        # Queued now, executed as soon as the kernel is up: the imports happen while we do other work.
        self._preload = self.kc.execute(code, silent=True, store_history=False) if code else None

    def _client(self):
        from jupyter_client.blocking import BlockingKernelClient

        client = BlockingKernelClient(connection_file=self.km.connection_file)
        client.load_connection_file()
        client.start_channels()
        return client

    def close_clients(self) -> None:
        """Close the clients nbclient opened on this kernel (one per notebook it ran).

        nbclient stops its client's channels only when it owns the kernel manager; we lend it ours
        (the kernel stays warm), so it leaves them open. Each left-open client keeps its sockets, and
        its iopub socket goes on receiving, and queueing, everything every later notebook prints:
        the runner's memory grew with every model (about 40 MiB a model, issue 12).
        """
        while self.km.handed_out:
            client = self.km.handed_out.pop()
            if client.channels_running:
                client.stop_channels()

    def wait_until_warm(self) -> None:
        """Block until the kernel answered and finished its imports; fail clearly if it cannot."""
        if self._preload is None:
            return
        reply = self._reply(self._preload, self.start_timeout)
        self._preload = None
        self.kc.stop_channels()
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise ModelfactoryError(
                f"the kernel could not import runner.preload: {content.get('ename')}: {content.get('evalue')}"
            )

    def _reply(self, msg_id: str, timeout: float) -> dict:
        import queue

        while True:
            try:
                msg = self.kc.get_shell_msg(timeout=timeout)
            except queue.Empty:
                if not self.alive:
                    raise ModelfactoryError("the kernel died while starting") from None
                raise ModelfactoryError(f"the kernel did not answer within {timeout} s") from None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def run(self, code: str, timeout: float = 120) -> tuple[str | None, str | None]:
        """Run code in the kernel; return (ename, evalue) of its error, or (None, None)."""
        # A client per call, so replies to earlier requests never get in the way.
        client = self._client()
        try:
            reply = client.execute_interactive(code, timeout=timeout, store_history=False,
                                               output_hook=lambda msg: None, allow_stdin=False)
        finally:
            client.stop_channels()
        content = reply["content"]
        if content["status"] == "ok":
            return None, None
        return content.get("ename"), content.get("evalue")

    def kill(self) -> None:
        """Kill the kernel process now, from any thread: the thread running a notebook in it sees a
        dead kernel at once (nbclient checks), and cleans up as after any kernel death."""
        import signal

        pid = getattr(self.km.provisioner, "pid", None) if self.km.has_kernel else None
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def alive(self) -> bool:
        """Whether the kernel process is still running."""
        from jupyter_core.utils import run_sync

        return bool(run_sync(self.km.is_alive)())

    def shutdown(self) -> None:
        """Stop the kernel and close our client; safe to call twice."""
        from jupyter_core.utils import run_sync

        try:
            if self.kc.channels_running:
                self.kc.stop_channels()
        finally:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
            self.close_clients()
            shutil.rmtree(self._sockets, ignore_errors=True)


@functools.cache
def _manager_class():
    """AsyncKernelManager that remembers the clients it hands out, so that KernelSession can close them."""
    from jupyter_client.manager import AsyncKernelManager

    class Manager(AsyncKernelManager):
        def client(self, **kwargs):
            client = super().client(**kwargs)
            self.handed_out.append(client)
            return client

    return Manager


class KernelPool:
    """Hands out a warm kernel per stage: the same one reset, or a fresh one started ahead."""

    def __init__(self, runner_params: Mapping, cwd: Path, env: Mapping[str, str]):
        self.params = runner_params
        self.cwd, self.env = cwd, env
        self.current: KernelSession | None = None
        self.next: KernelSession | None = None

    def _start(self) -> KernelSession:
        return KernelSession(self.params["kernel"], self.cwd, self.env, self.params["preload"],
                             self.params["start_timeout_seconds"])

    def prestart(self) -> None:
        """Start a kernel now, so that it is warm when the first stage needs it."""
        if self.current is None and self.next is None:
            self.next = self._start()

    def acquire(self) -> KernelSession:
        """A warm kernel for the next stage."""
        if self.params["shared_kernel"] and self.current is not None and self.current.alive:
            ename, evalue = self.current.run(kernel_code.call(kernel_code.reset))
            if ename is None:
                return self.current
        self.release()
        self.current, self.next = self.next or self._start(), None
        self.current.wait_until_warm()
        if not self.params["shared_kernel"]:
            self.next = self._start()  # warms up while this stage runs
        return self.current

    def release(self) -> None:
        """Shut down the current kernel (fresh mode calls this after every stage)."""
        if self.current is not None:
            self.current.shutdown()
            self.current = None

    def kill(self) -> None:
        """Kill this pool's kernels at once (another thread's stop; the owner thread still calls close)."""
        for session in (self.current, self.next):
            if session is not None:
                session.kill()

    def close(self) -> None:
        """Shut down every kernel this pool started."""
        self.release()
        if self.next is not None:
            self.next.shutdown()
            self.next = None


def kernel_env(root: Path, quiet_terminal: bool = False) -> dict[str, str]:
    """The kernel's environment: ours, plus where the project is (kernels may start elsewhere).

    ``quiet_terminal`` (several models at once) keeps a stage's progress lines (progress.ProgressLine)
    off the runner's terminal, where they would overwrite the factory's own line.
    """
    env = dict(os.environ)
    env["MODELFACTORY_PROJECT_DIR"] = str(root)
    if quiet_terminal:
        env[QUIET_TERMINAL] = "1"
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env
