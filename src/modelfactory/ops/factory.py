"""The model factory: many models' runs at once, a worker per job, each with its own warm kernels.

Planning stays in the runner, up front and sequential (every user error before any kernel starts).
Here the planned runs are shared out: each worker is a thread of this process that drives its own
kernels.KernelPool (kernel processes), takes the next run from a queue and runs it with the runner's
per-run function, so caching and partitions work the same with one job or many. The threads share
no MLflow state (MLflow runs only inside the kernels; the parent never imports it), and the lines
they print go through one lock (progress.FactoryLine).

A failing model does not stop the others. Ctrl-C or SIGTERM (interrupts.py) reaches the main thread:
it kills every worker's kernels; each worker then closes its model's records as interrupted, and the
runs that had not started are marked interrupted by the runner.
"""

from __future__ import annotations

import fnmatch
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import ParamsError
from modelfactory.ops import runs, verdict

# A metric's decimals in the lines and the report: one precision, so values line up and compare.
DECIMALS = 3
# How often the main thread wakes while workers run: to redraw the line and to take a signal.
POLL_SECONDS = 0.5


def default_jobs() -> int:
    """``--jobs`` by default: the number of cores."""
    return os.cpu_count() or 1


def select_models(patterns: Sequence[str], available: Sequence[str]) -> list[str]:
    """The models whose names match any of the glob patterns (``sales-*``), in the order of ``available``.

    Raises:
        ParamsError: a pattern matches no model (a typo must not quietly run nothing).
    """
    chosen = set()
    for pattern in patterns:
        matched = fnmatch.filter(available, pattern)
        if not matched:
            raise ParamsError(f"--models {pattern}: no model under params/models/ matches "
                              f"(there are: {', '.join(available) or 'none'})")
        chosen.update(matched)
    return [name for name in available if name in chosen]


@dataclass
class ModelResult:
    """How one model's run ended, for its line, the summary and the factory report."""

    model: str
    run_id: str
    run_dir: Path
    status: str                      # the manifest's final status
    exit_code: int = 0
    duration_s: float = 0.0
    failure: str | None = None       # the failure block (the error, where, the rerun command)
    rerun: str | None = None         # the pasteable command that reruns what failed
    manifest: dict = field(default_factory=dict)
    primary_metric: str | None = None


def primary_values(manifest: dict, metric: str | None) -> tuple[float | None, float | None]:
    """The candidate's and the champion's value of the primary metric (None where there is none)."""
    if not metric:
        return None, None
    values = verdict.metrics_by_model(manifest.get("headline_metrics") or {}).get(metric, {})
    return values.get("candidate"), values.get("champion")


def model_line(result: ModelResult) -> str:
    """One model as it finishes: status, primary metric (champion beside it), gate decision, time, report.

    ``  ok      diabetes         RMSE 53.820 (champion 54.100)  v3 promoted  41.2s  runs/<id>/index.html``
    """
    from modelfactory.ops.progress import duration_text

    label = {runs.SUCCEEDED: "ok"}.get(result.status, result.status)
    value, champion = primary_values(result.manifest, result.primary_metric)
    stopped = [name for name, stage in (result.manifest.get("stages") or {}).items()
               if stage.get("status") in (runs.FAILED, runs.INTERRUPTED)]
    if stopped:
        metric = f"{result.status} at {stopped[0]}"
    elif value is None:
        metric = "-"
    else:
        metric = f"{verdict.metric_label(result.primary_metric)} {verdict.format_value(value, DECIMALS)}"
        metric += (f" (champion {verdict.format_value(champion, DECIMALS)})" if champion is not None
                   else " (no champion yet)")
    where = paths.relative_to_root(runs.index_file(result.run_dir))
    # Two spaces after the metric however long it is ("ROC AUC (one vs rest) 0.998 (no champion yet)").
    return (f"  {label:11} {result.model:20} {metric:32}  {verdict.gate_cell(result.manifest):13} "
            f"{duration_text(result.duration_s):>7}  {where}")


def summary_lines(results: Sequence[ModelResult], elapsed: float, report: Path | None) -> list[str]:
    """The factory's last words: counts, the report, and each failure with its rerun command."""
    from modelfactory.ops.progress import duration_text

    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines = [f"factory: {len(results)} models in {duration_text(elapsed)}: {said}"]
    if report is not None:
        lines.append(f"  report: {paths.relative_to_root(report)}")
    failed = [r for r in results if r.status == runs.FAILED]
    if failed:
        lines.append(f"{len(failed)} failed; rerun each with the command under it:")
        for result in failed:
            lines.append(f"  {result.model} (run {result.run_id})")
            lines.append(f"    {result.manifest.get('error') or 'failed'}")
            lines.append(f"    rerun: {result.rerun}")
    return lines


def run_models(items: Sequence, jobs: int, make_pool: Callable[[], object],
               work: Callable[[object, object, threading.Event], ModelResult],
               finished: Callable[[ModelResult], None], tick: Callable[[int], None] = lambda running: None,
               ) -> list[ModelResult]:
    """Run ``work(item, pool, stopping)`` for every item on ``jobs`` worker threads, each with its own pool.

    Args:
        items: the planned runs, in order.
        jobs: how many at once (at least 1; no more workers than items).
        make_pool: a new kernels.KernelPool (one per worker: its kernels stay warm across its models).
        work: runs one item in a pool; returns its result. ``stopping`` is set when the factory stops.
        finished: called (from the worker's thread) with each result as it comes.
        tick: called from the main thread about every POLL_SECONDS with how many are running.

    Returns:
        The results of the items that ran, in the order they finished.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM (interrupts.Terminated) arrived; every worker was stopped
            first, and each item that was running closed its records as interrupted.
    """
    from modelfactory.ops.interrupts import stopping_quietly

    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    stopping = threading.Event()
    pools: list = []
    results: list[ModelResult] = []
    running = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        pool = make_pool()
        with lock:
            pools.append(pool)
        try:
            if stopping.is_set():
                return
            pool.prestart()
            while not stopping.is_set():
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                with lock:
                    running[0] += 1
                try:
                    result = work(item, pool, stopping)
                except KeyboardInterrupt:  # the model closed its records as interrupted; stop here
                    return
                finally:
                    with lock:
                        running[0] -= 1
                with lock:
                    results.append(result)
                finished(result)
        except BaseException as exc:  # a bug in a worker must reach the user, not die with the thread
            errors.append(exc)
            stopping.set()
        finally:
            pool.close()

    threads = [threading.Thread(target=worker, name=f"factory-worker-{n + 1}", daemon=True)
               for n in range(max(1, min(jobs, len(items))))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:  # short joins: the main thread must stay free to take a signal
            while thread.is_alive():
                thread.join(POLL_SECONDS)
                tick(running[0])
    except KeyboardInterrupt:
        with stopping_quietly():
            stopping.set()
            with lock:
                for pool in pools:
                    pool.kill()
            for thread in threads:
                thread.join()
        raise
    if errors:
        raise errors[0]
    return results


class StoppingPool:
    """A worker's KernelPool that hands out no kernel once the factory is stopping: the stage that
    asks is then interrupted, as a Ctrl-C would interrupt it."""

    def __init__(self, pool, stopping: threading.Event):
        self.pool, self.stopping = pool, stopping

    def acquire(self):
        """A warm kernel, unless the factory is stopping (KeyboardInterrupt then)."""
        if self.stopping.is_set():
            raise KeyboardInterrupt()
        kernel = self.pool.acquire()
        if self.stopping.is_set():  # stopped while this kernel started: it may have missed the kill
            self.pool.kill()
            raise KeyboardInterrupt()
        return kernel

    def __getattr__(self, name):
        return getattr(self.pool, name)
