"""One progress line for a long wait inside a stage: what it is waiting for, and for how long.

The deploy stage waits 15-45 s for the local endpoint to start. Without a word the wait looks like a
hang, so the line says what the wait is on (starting the server, loading the model, waiting for
/health) with the seconds so far:

- in the notebook, one output updated in place. Once the wait is over it keeps only its final
  words, without seconds, so the saved notebook does not change from one execution to the next;
- run by the runner (``modelfactory run``), also on the runner's terminal, where the notebook is
  not seen: a line rewritten in place on a terminal, else (a CI log) one line per new phase.
"""

from __future__ import annotations

import io
import os
import sys
import time

# How often a terminal line is redrawn while the phase stays the same.
REDRAW_SECONDS = 1.0
# Under the runner's "  [4/4] deploy ..." line.
INDENT = "      "
# Set in a kernel's environment when the runner runs several models at once: the factory's own line
# (FactoryLine) owns the terminal then, and the stages' lines stay in their notebooks.
QUIET_TERMINAL = "MODELFACTORY_QUIET_TERMINAL"


class ProgressLine:
    """Say what ``what`` is waiting for; call it with (phase, elapsed seconds), then ``done()``."""

    def __init__(self, what: str, terminal: bool):
        self.what = what
        self._fd = _terminal_fd() if terminal else None
        self._tty = self._fd is not None and os.isatty(self._fd)
        self._display = _notebook_display()
        self._phase: str | None = None
        self._drawn = 0.0
        self._elapsed = 0.0

    def __call__(self, phase: str, elapsed: float) -> None:
        """Report the current phase; redrawn when it changes (and, on a terminal, every second)."""
        self._elapsed = elapsed
        changed, now = phase != self._phase, time.monotonic()
        if not changed and not (self._tty and now - self._drawn >= REDRAW_SECONDS):
            return
        self._phase, self._drawn = phase, now
        line = f"{self.what}: {phase} ({elapsed:.0f} s)"
        if self._display is not None:
            self._display.update({"text/plain": line}, raw=True)
        self._terminal(line, final=False)

    def done(self, outcome: str) -> None:
        """End the line with its outcome: in the notebook without seconds (saved outputs stay
        stable), on the terminal with them."""
        if self._display is not None:
            self._display.update({"text/plain": f"{self.what}: {outcome}"}, raw=True)
        self._terminal(f"{self.what}: {outcome} after {self._elapsed:.1f} s", final=True)

    def _terminal(self, line: str, final: bool) -> None:
        if self._fd is None:
            return
        text = f"\r{INDENT}{line}\x1b[K" + ("\n" if final else "") if self._tty else f"{INDENT}{line}\n"
        try:
            os.write(self._fd, text.encode())
        except OSError:  # the terminal went away: progress is a courtesy, never a failure
            self._fd = None


def _terminal_fd() -> int | None:
    """The runner's terminal as seen from a kernel: ipykernel sends sys.stderr to the notebook and
    keeps the process's own stderr (inherited from the runner) behind ``fileno()``. Outside a
    kernel it is plain stderr. None when the runner asked for a quiet terminal (QUIET_TERMINAL)."""
    if os.environ.get(QUIET_TERMINAL):
        return None
    for stream in (sys.stderr, sys.__stderr__):
        try:
            return stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            continue
    return None


def _notebook_display():
    """A display handle to update in place when running in a notebook kernel, else None."""
    if "ipykernel" not in sys.modules:
        return None
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return display({"text/plain": ""}, raw=True, display_id=True)


class FactoryLine:
    """The factory's one line on a terminal: ``factory: 7/20 done, 1 failed, 2 running, elapsed 1m12s``.

    Lines said through ``say`` (one per finished model) go above it; the line is redrawn under them
    and every second. Off a terminal (a CI log) there is no line: only what ``say`` prints. Safe to
    call from several threads.
    """

    def __init__(self, total: int, stream=None):
        import threading

        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream)
        self.done = self.failed = self.running = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._shown = False

    def text(self) -> str:
        """The line as it reads now."""
        return factory_status(self.done, self.total, self.failed, self.running, time.monotonic() - self._started)

    def update(self, done: int | None = None, failed: int | None = None, running: int | None = None) -> None:
        """Set the counts and redraw."""
        with self._lock:
            self.done = self.done if done is None else done
            self.failed = self.failed if failed is None else failed
            self.running = self.running if running is None else running
            self._draw()

    def say(self, line: str, stream=None) -> None:
        """Print a line above the factory's line (``stream``: default stdout)."""
        out = stream if stream is not None else sys.stdout
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
            print(line, file=out, flush=True)
            self._draw()

    def tick(self) -> None:
        """Redraw (the elapsed time moves on)."""
        with self._lock:
            self._draw()

    def close(self) -> None:
        """Leave the terminal on a fresh line."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False

    def _draw(self) -> None:
        if not self.tty:
            return
        try:
            self.stream.write(f"\r{self.text()}\x1b[K")
            self.stream.flush()
            self._shown = True
        except (OSError, ValueError):  # the terminal went away: progress is a courtesy
            self.tty = False


def factory_status(done: int, total: int, failed: int, running: int, elapsed: float) -> str:
    """``factory: 7/20 done, 1 failed, 2 running, elapsed 1m12s`` (done counts the failed too)."""
    return f"factory: {done}/{total} done, {failed} failed, {running} running, elapsed {duration_text(elapsed)}"


def duration_text(seconds: float) -> str:
    """``42.1s``, ``1m12s``, ``1h03m``: a duration as people read it."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
