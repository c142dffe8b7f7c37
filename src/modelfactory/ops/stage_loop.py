"""The stage loop: one planned run's stages executed in order, ending in a typed outcome.

Each stage: its cache key is computed and an earlier run with the same key is looked for (cache.py);
if one is found its outputs are taken and the stage line says "cached from <run>". Otherwise the
manifest says it runs (and why it was not cached), papermill executes its notebook in a warm kernel
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
from modelfactory.ops import cache, notebook_run, runs
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
    cached: dict[str, "CacheDecision"] = field(default_factory=dict)  # decided while planning


@dataclass
class CacheDecision:
    """What the cache said about one stage: the earlier run to take it from, or why it runs."""

    key: dict[str, str] | None
    hit: cache.Hit | None = None
    why: str = ""  # why it was not cached (the first differing key component, or --no-cache)


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
    use_cache = not getattr(run.request, "no_cache", False)
    # HTML renders in a background thread while the kernel (another process) runs the next stage.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as renderer:
        for number, name in enumerate(run.stages, 1):
            record = run.manifest["stages"][name]
            decision = run.cached.get(name) or decide_stage(
                pipeline, name, run.params, root, stage_inputs(run, pipeline, name), run.manifest["packages"],
                use_cache, runs.list_runs(run.params["model"]["name"]))
            if decision.hit is not None:
                record.update(cache.take(decision.hit, run.run_dir, name))
                _record_run_facts(run, pipeline, name)  # written with the next stage's start, or the run's end
                say(f"  [{number}/{total}] {name} cached from {record['cached_from']}")
                continue
            record.update(status=runs.RUNNING, start=runs.now(), cache_key=decision.key, cache_miss=decision.why)
            if cache.CHAMPION in pipeline.stage(name).reads:
                record["champion_seen"] = cache.current_champion(run.params)
            runs.write(run.run_dir, run.manifest)
            shown = decision.why if decision.why != cache.NO_EARLIER else ""
            say(f"  [{number}/{total}] {name} ..." + (f" (not cached: {shown})" if shown else ""))
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
            if status == runs.SUCCEEDED:  # what a later run checks before it takes these outputs
                record["hashes"] = cache.output_hashes(runs.stage_dir(run.run_dir, name))
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
    if outcome.status != runs.INTERRUPTED and any(cache.CHAMPION in pipeline.stage(n).reads for n in run.stages):
        # the champion this run left: a later run may take its champion-reading stages while it holds
        run.manifest["champion_after"] = cache.current_champion(run.params)
    return outcome


def decide_stage(pipeline: PipelineSpec, name: str, params: dict, root: Path,
                 inputs: dict[str, dict[str, str]] | None, packages: dict, use_cache: bool,
                 candidates: list[dict]) -> CacheDecision:
    """Whether a stage's outputs can be taken from an earlier run, and its key either way.

    Args:
        pipeline: the pipeline definition.
        name: the stage.
        params: the run's resolved params.
        root: the project root.
        inputs: for each stage it needs, the output hashes it will read (``stage_inputs``).
        packages: the installed versions (the manifest's ``packages``).
        use_cache: False with ``--no-cache``: the key is still recorded, for later runs.
        candidates: earlier runs' manifests of the model, newest first.
    """
    spec = pipeline.stage(name)
    if not spec.cache:
        return CacheDecision(None, why=f"cache: false in pipelines/{pipeline.name}.yaml")
    reader = pipeline.dataset.split("/", 1)[0] if pipeline.dataset else None
    data = cache.data_identity(params["data"]) if name == reader else None
    key = cache.cache_key(spec, params, root, inputs or {}, data, packages)
    if not use_cache:
        return CacheDecision(key, why="--no-cache")
    champion = cache.current_champion(params) if cache.CHAMPION in spec.reads else None
    hit, why = cache.find_hit(spec, key, candidates, params["env"]["name"], champion)
    return CacheDecision(key, hit, why)


def plan_cache(pipeline: PipelineSpec, stages: list[str], params: dict, root: Path,
               reused: dict[str, Path], use_cache: bool, candidates: list[dict]) -> dict[str, CacheDecision]:
    """The cache decisions that can be made before any stage runs: the leading stages whose inputs
    are all known (cached, or reused from an earlier run), up to and including the first that must
    run. The runner starts a kernel only when some stage must run."""
    decided: dict[str, CacheDecision] = {}
    packages = runs.package_versions()
    for name in stages:
        inputs = {}
        for need in pipeline.stage(name).needs:
            if need in decided and decided[need].hit is not None:
                inputs[need] = decided[need].hit.record.get("hashes") or {}
            elif need in reused:
                inputs[need] = cache.output_hashes(runs.stage_dir(reused[need], need))
            else:
                return decided  # it reads what a stage of this run will write: decided when that ran
        decided[name] = decide_stage(pipeline, name, params, root, inputs, packages, use_cache, candidates)
        if decided[name].hit is None:
            return decided
    return decided


def stage_inputs(run: PlannedRun, pipeline: PipelineSpec, name: str) -> dict[str, dict[str, str]]:
    """For each stage ``name`` needs, the hashes of its outputs in this run folder."""
    found = {}
    for need in pipeline.stage(name).needs:
        record = run.manifest["stages"].get(need, {})
        found[need] = record.get("hashes") or cache.output_hashes(runs.stage_dir(run.run_dir, need))
    return found


def needs_kernel(run: PlannedRun) -> bool:
    """Whether any of the run's stages may execute (not all were found cached while planning)."""
    return any(run.cached.get(name) is None or run.cached[name].hit is None for name in run.stages)


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
