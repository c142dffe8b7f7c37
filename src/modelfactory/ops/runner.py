"""The local runner: plans a pipeline's runs into runs/<run-id>/ and executes them.

Planning checks every request (params, stages, the inputs of stages not run, the data) before any
kernel starts, then makes the run folders. Executing hands each run to the stage loop
(stage_loop.py, which runs the notebooks through notebook_run.py), then closes the MLflow runs with
the notebooks and HTML attached, finishes the manifest and says how the run ended. A failing stage
leaves its notebook (with papermill's banner at the failing cell) and prints one command that reruns
just that stage with the same params.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory import params as params_mod
from modelfactory import paths
from modelfactory.errors import DataNotFoundError, ModelfactoryError, PipelineError, StageFailedError
from modelfactory.ops import kernel_code, memory, runs
from modelfactory.ops.pipeline import PipelineSpec, load_pipeline, select_stages
from modelfactory.ops.stage_loop import PlannedRun, RunOutcome, file_hash, list_outputs, needs_kernel, plan_cache, run_stages
from modelfactory.ops.verdict import verdict_line


@dataclass
class RunRequest:
    """What the user asked to run for one model."""

    model: str
    env: str | None = None
    overrides: list[str] = field(default_factory=list)
    stages: list[str] | None = None
    params_file: str | None = None
    from_run: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # stage -> a run folder holding its outputs
    no_cache: bool = False  # --no-cache: run every selected stage, even when an earlier run has its outputs
    trigger: dict | None = None  # why a monitor started this run (retrain.trigger_reason), kept in the manifest


class CheckedRequests(list):
    """The checked requests (one tuple per run), the partitions skipped as too small, and the models
    left out because their data is not there (yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list = []
        self.missing: list[tuple[str, DataNotFoundError]] = []


def check_requests(requests: Sequence[RunRequest], pipeline: PipelineSpec,
                   say: Callable[[str], None] = print) -> CheckedRequests:
    """Resolve and check every request's params, stages and inputs.

    Everything a user can get wrong in a request is caught here, before any kernel starts. A
    partitioned model (``data.partition_by``) becomes one run per partition (ops/partitions.py);
    the partitions skipped are said here and kept in ``.skipped`` for the run's summary. One
    exception to "every mistake stops the run": when several models are asked for and one's data is
    not there (yet), that model is left out, said here and kept in ``.missing``: one model's missing
    dataset does not stop the others. Alone, it is raised like any other.
    """
    from modelfactory.ops import partitions

    checked = CheckedRequests()
    earlier = runs.list_runs()
    for req in requests:
        try:
            # The estimator and contract checks import scikit-learn (a second or more): made only when a
            # stage will run, so that a run whose every stage is cached stays light. A typo in train
            # changes train's cache key, so it is still caught here, before any kernel starts.
            expansion = partitions.plan(req.model, req.env, req.overrides, req.params_file, training_checks=False)
            planned, fully_checked = [], False
            for resolved in expansion.params:
                stages = select_stages(pipeline, req.stages)
                sources = find_inputs(pipeline, stages, resolved["model"]["name"], resolved["env"]["name"],
                                      req.from_run, req.inputs)
                cached = plan_cache(pipeline, stages, resolved, paths.project_root(), sources, not req.no_cache,
                                    [m for m in earlier if m.get("model") == resolved["model"]["name"]])
                if not fully_checked and any(cached.get(name) is None or cached[name].hit is None for name in stages):
                    partitions.plan(req.model, req.env, req.overrides, req.params_file)  # the full checks, once
                    fully_checked = True
                record = _data_record(pipeline, stages, resolved, sources, cached)
                if record is not None and resolved["data"].get("partition"):
                    record = {**record, "partition": resolved["data"]["partition"]}
                planned.append((req, resolved, stages, sources, record, cached))
        except DataNotFoundError as exc:
            if len(requests) == 1:
                raise
            checked.missing.append((req.model, exc))
            say(f"skipped {req.model}: {exc}")
            continue
        checked.skipped += expansion.skipped
        checked.extend(planned)
    for line in partitions.skipped_lines(checked.skipped):
        say(line)
    if not checked and checked.missing:  # no model has its data: nothing to run
        raise checked.missing[0][1]
    if not checked:
        raise PipelineError("nothing to run: every partition was skipped (see above)")
    return checked


def _data_record(pipeline: PipelineSpec, stages: list[str], resolved: dict, reused: dict[str, Path],
                 cached: dict | None = None) -> dict | None:
    """Which data the run reads: located and checked now when a selected stage reads it (a missing,
    unreadable or empty file, or an absent target, is a user error before any kernel starts), else
    taken from the run whose outputs are reused or cached."""
    from modelfactory.core import sources as data_sources

    reader = pipeline.dataset.split("/", 1)[0] if pipeline.dataset else None
    hit = (cached or {}).get(reader)
    if hit is not None and hit.hit is not None:  # same data identity as the run it is cached from
        return hit.hit.manifest.get("data")
    if reader in stages:
        return data_sources.check_source(resolved["data"]).record()
    if reader in reused:
        record = runs.manifest_file(reused[reader])
        return runs.read(reused[reader]).get("data") if record.is_file() else None
    return None


def create_runs(checked: Sequence[tuple], pipeline: PipelineSpec, argv: Sequence[str]) -> list[PlannedRun]:
    """Create one run folder per checked request, with its params, reused inputs and manifest."""
    root = paths.project_root()
    planned = []
    for req, resolved, stages, sources, data_record, *decided in checked:
        cached = decided[0] if decided else {}  # stage_loop.plan_cache's decisions
        model, env = resolved["model"]["name"], resolved["env"]["name"]
        run_id = runs.new_run_id(model)
        run_dir = runs.run_path(run_id, root)
        run_dir.mkdir(parents=True)
        params_mod.dump(resolved, runs.params_file(run_dir))
        stage_records = {}
        for name in pipeline.names:
            record = runs.new_stage_record(runs.PENDING if name in stages else runs.NOT_SELECTED)
            if name in sources:
                shutil.copytree(runs.stage_dir(sources[name], name), runs.stage_dir(run_dir, name))
                record.update(status=runs.REUSED, reused_from=sources[name].name,
                              outputs=list_outputs(runs.stage_dir(run_dir, name)))
            stage_records[name] = record
        manifest = runs.new_manifest(run_id, model, env, pipeline.name, argv, params_mod.params_hash(resolved),
                                     req.overrides, data_record, runs.git_state(root), stage_records)
        if req.trigger:
            manifest["trigger"] = dict(req.trigger)
        if pipeline.dataset:  # a reused dataset is already here (copied above): its hash is the run's, as when explore runs
            manifest["data_hash"] = file_hash(run_dir / pipeline.dataset)
        runs.write(run_dir, manifest)
        planned.append(PlannedRun(req, run_id, run_dir, resolved, stages, manifest, cached))
    return planned


def find_inputs(pipeline: PipelineSpec, stages: list[str], model: str, env: str,
                from_run: str | None, inputs: dict[str, str] | None = None) -> dict[str, Path]:
    """For each earlier stage the selected stages need but will not run, the run folder to copy it from.

    That is the folder given with ``--input STAGE=FOLDER`` (how an Azure ML step receives the
    steps before it), else ``--from-run``, else the newest run of the same model and environment
    in which that stage succeeded.
    """
    needed = {need for name in stages for need in pipeline.stage(name).needs if need not in stages}
    found: dict[str, Path] = {}
    for need, given in (inputs or {}).items():
        if need not in needed:
            raise PipelineError(f"--input {need}=...: the selected stages ({', '.join(stages)}) do not take "
                                f"the outputs of stage {need}")
        folder = run_folder(Path(given))
        files = sorted({f for name in stages for f in pipeline.stage(name).needs.get(need, [])})
        missing = [f for f in files if not (folder / need / f).exists()]
        if missing:
            raise PipelineError(f"--input {need}={given}: no {need}/{missing[0]} in run folder "
                                f"{paths.relative_to_root(folder)}")
        found[need] = folder
    needed -= set(found)
    candidates = runs.list_runs(model)
    if from_run:
        candidates = [m for m in candidates if m["run_id"] == from_run]
        if not candidates:
            raise PipelineError(f"--from-run {from_run}: no such run of {model} in {paths.relative_to_root(paths.runs_dir())}")
    for need in sorted(needed, key=pipeline.names.index):
        files = sorted({f for name in stages for f in pipeline.stage(name).needs.get(need, [])})
        for m in candidates:
            folder = Path(m["_dir"])
            stage = m.get("stages", {}).get(need, {})
            if (m.get("env") == env and stage.get("status") in runs.DONE_STAGE
                    and all((folder / need / f).exists() for f in files)):
                found[need] = folder
                break
        else:
            wanted = ", ".join(n for n in stages if need in pipeline.stage(n).needs)
            where = f"run {from_run}" if from_run else f"any earlier run of {model} in env {env}"
            raise PipelineError(
                f"{wanted} needs the outputs of stage {need} ({', '.join(files)}), but {where} has no "
                f"successful {need} stage; run it first: {runs.rerun_command(model, env=env, stages=[need])}"
            )
    return found


def run_folder(path: Path) -> Path:
    """A run folder given directly, or the one run folder inside ``path`` (a downloaded job output)."""
    if runs.manifest_file(path).is_file():
        return path
    found = sorted(p.parent for p in path.glob(f"*/{runs.MANIFEST}")) if path.is_dir() else []
    if len(found) != 1:
        what = "no such folder" if not path.is_dir() else f"{len(found)} run folders inside, expected one"
        raise PipelineError(f"--input {path}: not a run folder (no {runs.MANIFEST}; {what})")
    return found[0]


def execute(planned: Sequence[PlannedRun], pipeline: PipelineSpec, pool, say: Callable[[str], None] = print,
            progress: bool = False, jobs: int = 1, make_pool: Callable[[], object] | None = None) -> int:
    """Run every planned run; return the exit code.

    One run: its stages' lines as they go, and its own exit code (docs/running.md). Several: the
    factory (factory.py) runs them ``jobs`` at a time, one line per model as it finishes, a summary
    that lists each failure with its rerun command, and the factory report; the exit code is 1 when
    any model failed. A failing model never stops the others.

    Args:
        planned: the runs made by create_runs.
        pipeline: the pipeline definition.
        pool: the kernels.KernelPool that runs them one at a time (prestarted).
        say: where lines go.
        progress: show papermill's progress bar (one run only).
        jobs: how many runs at once.
        make_pool: a new KernelPool for each extra worker (needed when ``jobs`` > 1).
    """
    root = paths.project_root()
    if any(needs_kernel(run) for run in planned):  # not for a run whose every stage is cached
        import papermill  # noqa: F401  (imported here, while the kernel warms up, not on the first stage)
    from modelfactory.ops import render, report  # noqa: F401

    if len(planned) == 1:
        result, interruption = _execute_run(planned[0], pipeline, pool, root, say, progress)
        if interruption is not None:
            raise interruption
        return result.exit_code
    return _execute_factory(planned, pipeline, pool, root, jobs, make_pool)


def _execute_factory(planned: Sequence[PlannedRun], pipeline: PipelineSpec, pool, root: Path, jobs: int,
                     make_pool: Callable[[], object] | None) -> int:
    """Several runs: the factory's line, one line per model as it finishes, the summary and the report."""
    import threading
    import time

    from modelfactory.ops import factory, factory_report
    from modelfactory.ops.progress import FactoryLine

    line = FactoryLine(len(planned))
    counts = {"done": 0, "failed": 0}
    started = time.monotonic()
    quiet = lambda text: None  # noqa: E731  (the stages' lines: in each run's manifest and notebooks)

    counting = threading.Lock()

    def finished(result: factory.ModelResult) -> None:  # called from the workers' threads
        with counting:
            counts["done"] += 1
            counts["failed"] += result.status == runs.FAILED
            done, failed = counts["done"], counts["failed"]
        line.say(factory.model_line(result))
        line.update(done=done, failed=failed)

    def work(run: PlannedRun, worker_pool, stopping: threading.Event) -> factory.ModelResult:
        result, interruption = _execute_run(run, pipeline, factory.StoppingPool(worker_pool, stopping), root, quiet,
                                            False, stopping)
        if interruption is not None:
            line.say(factory.model_line(result))
            raise interruption
        return result

    line.say(f"factory: {len(planned)} models, {min(jobs, len(planned))} at a time")
    pools = iter([pool])  # the first worker takes the pool that is already warm
    try:
        results = factory.run_models(planned, jobs, lambda: next(pools, None) or make_pool(), work, finished,
                                     tick=lambda running: line.update(running=running))
    finally:
        line.close()
    elapsed = time.monotonic() - started
    index = factory_report.write_factory_report(results, elapsed, jobs)
    for text in factory.summary_lines(results, elapsed, index):
        print(text)
    return 1 if any(r.status != runs.SUCCEEDED for r in results) else 0


def _execute_run(run: PlannedRun, pipeline: PipelineSpec, pool, root: Path, say: Callable[[str], None],
                 progress: bool, stopping=None) -> tuple:
    """Run one model's stages, close its records and say how it ended.

    Args:
        stopping: a threading.Event set when the factory stops (Ctrl-C, SIGTERM): a stage that then
            fails because its kernel was killed was interrupted, not failed.

    Returns:
        ``(factory.ModelResult, the KeyboardInterrupt to raise again or None)``.
    """
    import time

    from modelfactory.ops.factory import ModelResult

    started = time.monotonic()
    say(f"run {run.run_id}: {run.params['model']['name']} in {run.params['env']['name']}, "
        f"stages {', '.join(run.stages)}")
    outcome = run_stages(run, pipeline, pool, root, say, progress)
    if outcome.status == runs.FAILED and (
            (stopping is not None and stopping.is_set())  # its kernel was killed by the stop
            or getattr(outcome.error, "details", {}).get("ename") == "KeyboardInterrupt"):  # the cell got the Ctrl-C
        outcome = _as_interrupted(run, outcome)
    _close_tracking(run, outcome.htmls, outcome.status, pool)
    _finish_manifest(run, outcome.status, outcome.failure)
    memory.trim()  # a factory runs many models in this process: give back what this one freed
    result = ModelResult(run.params["model"]["name"], run.run_id, run.run_dir, outcome.status,
                         duration_s=time.monotonic() - started, manifest=run.manifest,
                         primary_metric=(run.params.get("evaluate") or {}).get("primary_metric"))
    if outcome.status == runs.SUCCEEDED:
        say(f"run {run.run_id} succeeded: {paths.relative_to_root(run.run_dir)}\n"
            f"  report: {paths.relative_to_root(runs.index_file(run.run_dir))}")
        decision = verdict_line(run.manifest)
        if decision:  # last, so that a rejection is the line nobody misses
            say(decision)
        return result, None
    if outcome.status == runs.INTERRUPTED:
        say(f"  [{run.stages.index(outcome.stage) + 1}/{len(run.stages)}] {outcome.stage} interrupted after "
            f"{outcome.duration_s:.1f} s; kept what was written in {paths.relative_to_root(run.run_dir)}")
        return result, outcome.interruption or KeyboardInterrupt()
    result.exit_code = outcome.error.exit_code
    result.rerun = _rerun(run, outcome.stage)
    result.failure = _failure_block(run, outcome.stage, outcome.error, runs.stage_notebook(run.run_dir, outcome.stage),
                                    outcome.htmls.get(outcome.stage))
    say(result.failure)
    return result, None


def _as_interrupted(run: PlannedRun, outcome: RunOutcome) -> RunOutcome:
    """A stage that failed because the factory stopped (its kernel killed, or the cell got the Ctrl-C)
    was interrupted: say so in the manifest, as a Ctrl-C in a single run does."""
    record = run.manifest["stages"][outcome.stage]
    record["status"] = runs.INTERRUPTED
    record.pop("error", None)
    runs.write(run.run_dir, run.manifest)
    return dataclasses.replace(outcome, status=runs.INTERRUPTED, error=None, interruption=KeyboardInterrupt())


def _rerun(run: PlannedRun, stage: str) -> str:
    """The command that reruns the failed stage with the run's exact params (and its earlier outputs)."""
    return runs.rerun_command(run.params["model"]["name"], env=run.params["env"]["name"], stages=[stage],
                              params=runs.params_file(run.run_dir), from_run=run.run_id)


def _close_tracking(run: PlannedRun, htmls: dict[str, Path | None], final_status: str, pool) -> None:
    """Attach each stage's notebook and HTML to its MLflow run; set the final statuses.

    Runs in the warm kernel when it is alive (MLflow is imported there already), else in a
    short-lived Python process.
    """
    to_mlflow = {runs.SUCCEEDED: "FINISHED", runs.INTERRUPTED: "KILLED"}
    stages = []
    for name in run.stages:
        record = run.manifest["stages"][name]
        if record["status"] in (runs.SUCCEEDED, runs.FAILED, runs.INTERRUPTED):
            files = [str(run.run_dir / f) for f in (record.get("notebook"), record.get("html"), record.get("report"))
                     if f]
            stages.append([name, to_mlflow.get(record["status"], "FAILED"), files])
    from modelfactory.ops.tracking import RUN_FILE

    if not stages and not (run.run_dir / RUN_FILE).is_file():  # every stage cached: no MLflow run was opened
        return
    args = [run.params, str(run.run_dir), stages, to_mlflow.get(final_status, "FAILED"), run.manifest.get("data")]
    code = kernel_code.call(kernel_code.finish_tracking, *args)
    kernel = pool.current
    if final_status != runs.INTERRUPTED and kernel is not None and kernel.alive:
        ename, evalue = kernel.run(code)
        if ename is None:
            return
    pool.release()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"  warning: could not close the MLflow runs of {run.run_id}: {tail[0]}", file=sys.stderr)


def _finish_manifest(run: PlannedRun, status: str, error: str | None = None) -> None:
    from modelfactory.ops.report import write_index

    run.manifest.update(status=status, finished=runs.now())
    if error is not None:  # the one line the user saw, so the folder alone says why the run failed
        run.manifest["error"] = " ".join(error.split())[:1000]
    runs.write(run.run_dir, run.manifest)
    write_index(run.run_dir, run.manifest)


def _failure_block(run: PlannedRun, stage: str, error: StageFailedError, notebook: Path, html: Path | None) -> str:
    details = getattr(error, "details", {})
    count = details.get("execution_count")
    where = f"at cell In [{count}]" if count else "at the cell after the red banner in the notebook"
    rerun = _rerun(run, stage)
    lines = [
        f"FAILED stage {stage} of run {run.run_id} {where}",
        f"  error:    {details.get('summary', str(error))}",
        f"  notebook: {paths.relative_to_root(notebook)}" if notebook.exists() else "  notebook: (not written)",
    ]
    if html:
        lines.append(f"  report:   {paths.relative_to_root(html)}")
    lines.append(f"  rerun:    {rerun}")
    return "\n".join(lines)


def run_pipeline(requests: Sequence[RunRequest], pipeline_name: str = "training", argv: Sequence[str] = (),
                 say: Callable[[str], None] = print, progress: bool = False, jobs: int | None = None) -> int:
    """Plan and execute; the exit code follows docs/running.md.

    Args:
        jobs: how many models run at once (default: the number of cores; never more than the models).
    """
    from modelfactory.ops import partitions
    from modelfactory.ops.factory import default_jobs
    from modelfactory.ops.kernels import KernelPool, kernel_env

    pipeline = load_pipeline(pipeline_name)
    checked = check_requests(requests, pipeline, say)
    root = paths.project_root()
    jobs = max(1, min(jobs or default_jobs(), len(checked)))
    env = kernel_env(root, quiet_terminal=len(checked) > 1)  # the factory's line owns the terminal

    def make_pool() -> KernelPool:
        return KernelPool(checked[0][1]["runner"], root / "notebooks", env)

    # The params are valid: start the kernel now, so it warms up while the run folders are made.
    pool = make_pool()
    if any(any(c.get(name) is None or c[name].hit is None for name in stages) for _, _, stages, _, _, c in checked):
        pool.prestart()  # not when every stage of every run is cached: no kernel at all
    planned: list[PlannedRun] = []
    try:
        planned = create_runs(checked, pipeline, argv)
        with runs.Heartbeat([run.run_dir for run in planned]):
            code = execute(planned, pipeline, pool, say, progress and jobs == 1, jobs, make_pool)
        for line in partitions.skipped_lines(checked.skipped):  # again last, where the summary is read
            say(line)
        if checked.missing and not code:  # said again last, where it is not lost above the runs' output
            for model, missing in checked.missing:
                say(f"skipped {model}: {missing}")
            return DataNotFoundError.exit_code
        return code
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside a stage (a stage's own is handled there)
        from modelfactory.ops.tracking import RUN_FILE

        for run in planned:
            if run.manifest["status"] == runs.RUNNING:
                for record in run.manifest["stages"].values():
                    if record["status"] in (runs.PENDING, runs.RUNNING):
                        record["status"] = runs.INTERRUPTED if record["status"] == runs.RUNNING else runs.SKIPPED
                if (run.run_dir / RUN_FILE).is_file():  # its MLflow runs were opened: end them as KILLED
                    _close_tracking(run, {}, runs.INTERRUPTED, pool)
                _finish_manifest(run, runs.INTERRUPTED)
        raise
    except Exception as exc:  # a user error after the folders exist (runner.preload), or a bug
        message = str(exc) if isinstance(exc, ModelfactoryError) else f"{type(exc).__name__}: {exc}"
        for run in planned:
            if run.manifest["status"] == runs.RUNNING:
                started = any(r["status"] == runs.RUNNING for r in run.manifest["stages"].values())
                for record in run.manifest["stages"].values():
                    if record["status"] in (runs.PENDING, runs.RUNNING):
                        record["status"] = runs.FAILED if record["status"] == runs.RUNNING else runs.SKIPPED
                if started:
                    _finish_manifest(run, runs.FAILED, message)
                else:
                    _finish_manifest(run, runs.NOT_STARTED)
        raise
    finally:
        pool.close()
