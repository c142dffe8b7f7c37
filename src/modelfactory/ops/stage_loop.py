"""The stage loop: one planned run's stages executed in order, ending in a typed outcome.

Each stage: the manifest says it runs, papermill executes its notebook in a warm kernel
(notebook_run.py), the files the pipeline says it ``produces`` are checked, its HTML is rendered in
the background while the next stage runs, and the manifest is rewritten. The loop stops at the first
stage that does not succeed and says how in a RunOutcome; closing the MLflow runs, the manifest's
final status and what is printed are the runner's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import CellTimeoutError, PipelineError, StageFailedError
from modelfactory.ops import notebook_run, runs
from modelfactory.ops.pipeline import PipelineSpec
from modelfactory.ops.render import report_page


@dataclass
class PlannedRun:
    """A run folder, its params and the stages it will execute."""

    request: object  # the runner.RunRequest it was made from
    run_id: str
    run_dir: Path
    params: dict
    stages: list[str]
    manifest: dict


@dataclass
class RunOutcome:
    """How a run's stages ended: all succeeded, or the stage that stopped the run and why."""

    status: str  # runs.SUCCEEDED, runs.FAILED or runs.INTERRUPTED
    stage: str | None = None
    error: StageFailedError | None = None
    duration_s: float = 0.0
    interruption: KeyboardInterrupt | None = None
    htmls: dict[str, Path | None] = field(default_factory=dict)

    @property
    def failure(self) -> str | None:
        """The one line that says why the run failed (kept in the manifest), or None."""
        if self.error is None:
            return None
        return f"stage {self.stage}: {getattr(self.error, 'details', {}).get('summary', str(self.error))}"


def run_stages(run: PlannedRun, pipeline: PipelineSpec, pool, root: Path, say: Callable[[str], None],
               progress: bool) -> RunOutcome:
    """Run one model's stages in order; stop at the first that does not succeed.

    Args:
        run: the planned run (its manifest is updated and rewritten as stages go).
        pipeline: the pipeline definition.
        pool: the kernels.KernelPool handing out a warm kernel per stage.
        root: the project root.
        say: where progress lines go.
        progress: show papermill's progress bar.
    """
    from concurrent.futures import ThreadPoolExecutor

    total = len(run.stages)
    renders = {}
    outcome = RunOutcome(runs.SUCCEEDED)
    # HTML renders in a background thread while the kernel (another process) runs the next stage.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as renderer:
        for number, name in enumerate(run.stages, 1):
            record = run.manifest["stages"][name]
            record.update(status=runs.RUNNING, start=runs.now())
            runs.write(run.run_dir, run.manifest)
            say(f"  [{number}/{total}] {name} ...")
            started = time.monotonic()
            error: StageFailedError | None = None
            interruption: KeyboardInterrupt | None = None
            status = runs.SUCCEEDED
            try:
                kernel = pool.acquire()
                _run_stage_notebook(run, pipeline.stage(name), kernel, root, progress)
                _check_outputs(run, pipeline.stage(name))
            except StageFailedError as exc:
                error, status = exc, runs.FAILED
                if isinstance(exc, CellTimeoutError):
                    # nbclient does not interrupt a timed-out cell: it is still running in that
                    # kernel, and anything sent there next (closing the MLflow runs) would wait for it.
                    pool.release()
            except PipelineError as exc:
                error, status = StageFailedError(str(exc)), runs.FAILED
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
                status, interruption = runs.INTERRUPTED, exc
            duration = time.monotonic() - started
            notebook = runs.stage_notebook(run.run_dir, name)
            if notebook.exists():
                renders[name] = renderer.submit(notebook_run.render, notebook)
            record.update(status=status, end=runs.now(), duration_s=round(duration, 3),
                          notebook=notebook.name if notebook.exists() else None,
                          outputs=list_outputs(runs.stage_dir(run.run_dir, name)))
            if error is not None:
                record["error"] = getattr(error, "details", {"summary": str(error)})
            _record_run_facts(run, pipeline, name)
            runs.write(run.run_dir, run.manifest)
            if status != runs.SUCCEEDED:
                for later in run.stages[number:]:
                    run.manifest["stages"][later]["status"] = runs.SKIPPED
                outcome = RunOutcome(status, name, error, duration, interruption)
                break
            say(f"  [{number}/{total}] {name} ok ({duration:.1f} s)")
        outcome.htmls = {name: future.result() for name, future in renders.items()}
    for name, html in outcome.htmls.items():
        run.manifest["stages"][name]["html"] = html.name if html else None
        page = report_page(html) if html else None
        run.manifest["stages"][name]["report"] = page.name if page and page.is_file() else None
    return outcome


def _run_stage_notebook(run: PlannedRun, stage, kernel, root: Path, progress: bool) -> None:
    parameters = {
        "model": run.params["model"]["name"], "env": run.params["env"]["name"],
        "params": run.params, "run_dir": paths.relative_to_root(run.run_dir, root),
    }
    notebook_run.run_notebook(root / stage.notebook, runs.stage_notebook(run.run_dir, stage.name), parameters,
                              run.params["runner"], kernel, root, progress)


def _record_run_facts(run: PlannedRun, pipeline: PipelineSpec, stage: str) -> None:
    """The data hash once the dataset exists; the headline metrics once the headline stage ran."""
    if pipeline.dataset and pipeline.dataset.startswith(f"{stage}/"):
        run.manifest["data_hash"] = file_hash(run.run_dir / pipeline.dataset)
    from modelfactory.ops.report import read_metrics

    if pipeline.stage(stage).headline:
        run.manifest["headline_metrics"] = read_metrics(runs.stage_dir(run.run_dir, stage) / "metrics.json")
    for name in pipeline.stage(stage).records:  # decisions worth seeing in the manifest (the gate's)
        run.manifest[Path(name).stem] = read_metrics(runs.stage_dir(run.run_dir, stage) / name)


def _check_outputs(run: PlannedRun, stage) -> None:
    missing = [f for f in stage.produces if not (runs.stage_dir(run.run_dir, stage.name) / f).exists()]
    if missing:
        raise PipelineError(
            f"stage {stage.name} finished but did not write {', '.join(missing)} "
            f"(declared under produces: in pipelines/{run.manifest['pipeline']}.yaml)"
        )


def list_outputs(folder: Path) -> list[str]:
    """The files under a stage's folder, relative to it, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def file_hash(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
