"""SIGTERM handled like Ctrl-C.

SIGTERM is what ``timeout``, ``docker stop``, systemd and a cancelled CI job send. Python's default
is to die at once, leaving a manifest that says ``running`` and MLflow runs left RUNNING. Here the
first SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread, so the path that Ctrl-C
takes runs: the stage is marked interrupted, the MLflow runs are closed as KILLED, the kernels are
shut down. Further SIGTERMs during that clean-up are ignored; SIGKILL remains the hard stop, and
what SIGKILL leaves behind is shown as ``abandoned`` (see manifest.is_abandoned).
"""

from __future__ import annotations

import signal

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
