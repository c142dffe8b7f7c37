"""SIGTERM handled like Ctrl-C.

SIGTERM is what ``timeout``, ``docker stop``, systemd and a cancelled CI job send. Python's default
is to die at once, leaving a manifest that says ``running`` and MLflow runs left RUNNING. Here the
first SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread, so the path that Ctrl-C
takes runs: the stage is marked interrupted, the MLflow runs are closed as KILLED, the kernels are
shut down. Further SIGTERMs during that clean-up are ignored; SIGKILL remains the hard stop, and
what SIGKILL leaves behind is shown as ``abandoned`` (see manifest.is_abandoned).

With several models running at once (ops/factory.py), the signal reaches the main thread only: it
kills every worker's kernels, and each worker closes its model's records as interrupted while
``stopping_quietly`` keeps further signals from cutting that short.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

EXIT_TERMINATED = 128 + signal.SIGTERM
"""Exit code after SIGTERM (143), by the shell's convention; Ctrl-C gives 130."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled wherever Ctrl-C is."""


def terminate_like_ctrl_c() -> None:
    """Install the SIGTERM handler (call from the main thread)."""
    def handler(signum, frame):
        # Later SIGTERMs do nothing, rather than break into the clean-up. Not SIG_IGN: that would be
        # inherited by the processes the clean-up starts.
        signal.signal(signal.SIGTERM, lambda *_: None)
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def restore_default_sigterm() -> None:
    """SIGTERM ends the process again, as it does by default."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def stopping_quietly() -> Iterator[None]:
    """While the runner stops its workers after Ctrl-C or SIGTERM: further Ctrl-Cs and SIGTERMs are
    noted but do not break into the clean-up (which kills kernels, closes MLflow runs and writes
    manifests, seconds at most). Call from the main thread; the previous handlers come back after."""
    def noted(signum, frame):
        print("  still stopping: finishing the records of the models that were running", file=sys.stderr)

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, noted)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
