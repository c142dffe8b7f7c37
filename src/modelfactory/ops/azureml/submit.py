"""Submit a pipeline job, follow it step by step, and bring a failed step home.

When a step fails, its run folder (the executed notebook with the error at the failing cell, its
HTML, the manifest, the exact params) is downloaded into ``runs/``, together with the run folders
of the steps it needed, and one command is printed that reruns that stage locally with the params
the job used. Everything goes through an MLClient, so tests inject a fake one at that boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.ops.azureml.jobs import OUTPUT
from modelfactory.errors import ModelfactoryError

FAILED = {"Failed", "Canceled", "NotResponding"}
FINISHED = FAILED | {"Completed"}


def submit(client, job, say: Callable[[str], None] = print):
    """Create the pipeline job; return the job Azure ML answered with (its name and studio URL)."""
    created = client.jobs.create_or_update(job, experiment_name=job.experiment_name)
    say(f"submitted {created.name}: {created.display_name}")
    if getattr(created, "studio_url", None):
        say(f"  studio: {created.studio_url}")
    return created


def create_schedule(client, schedule_file: Path, say: Callable[[str], None] = print):
    """Create (or update) the retraining schedule written beside the pipeline job."""
    from azure.ai.ml.entities._load_functions import load_schedule

    schedule = load_schedule(str(schedule_file))
    created = client.schedules.begin_create_or_update(schedule).result()
    say(f"schedule {created.name}: {schedule.trigger.expression} ({schedule.trigger.time_zone})")
    return created


def steps(client, job_name: str) -> dict[str, object]:
    """The pipeline's child jobs by step name (the node name in the pipeline)."""
    found = {}
    for child in client.jobs.list(parent_job_name=job_name):
        step = (getattr(child, "properties", None) or {}).get("azureml.nodeid") or child.display_name
        found[step] = child
    return found


def wait(client, job_name: str, poll_seconds: float, timeout_seconds: float,
         say: Callable[[str], None] = print, sleep=time.sleep, clock=time.monotonic) -> str:
    """Poll until the job finishes, printing each step's status as it changes; the final status."""
    seen: dict[str, str] = {}
    deadline = clock() + timeout_seconds
    while True:
        job = client.jobs.get(job_name)
        for name, child in steps(client, job_name).items():
            if seen.get(name) != child.status:
                seen[name] = child.status
                say(f"  {name}: {child.status}")
        if job.status in FINISHED:
            say(f"{job_name}: {job.status}")
            return job.status
        if clock() >= deadline:
            raise ModelfactoryError(f"{job_name} still {job.status} after {timeout_seconds:.0f} s; it keeps "
                                    f"running in Azure ML: modelfactory jobs show {job_name}")
        sleep(poll_seconds)


def download_step(client, child, target: Path) -> Path:
    """Download one step's run-folder output under ``target`` (once); return the run folder inside it."""
    found = sorted(target.rglob(runs.MANIFEST)) if target.is_dir() else []
    if found:  # already here (e.g. `jobs download` before bringing a failure home)
        return found[0].parent
    target.mkdir(parents=True, exist_ok=True)
    client.jobs.download(name=child.name, download_path=str(target), output_name=OUTPUT)
    found = sorted(target.rglob(runs.MANIFEST))
    if not found:
        raise ModelfactoryError(f"step {child.name}: its '{OUTPUT}' output holds no run folder (no manifest.json); "
                                "the step failed before the runner started: see its std log in the studio")
    return found[0].parent


def bring_home(client, job_name: str, pipeline, say: Callable[[str], None] = print) -> str | None:
    """For the first failed step: download it and what it needed, print its error and the local rerun.

    Returns the rerun command, or None when no step failed.
    """
    children = steps(client, job_name)
    failed = next((s for s in pipeline.names if s in children and children[s].status in FAILED), None)
    if failed is None:
        return None
    home = runs.job_home(job_name)
    run_dir = download_step(client, children[failed], home / failed)
    inputs = {}
    for need in pipeline.stage(failed).needs:
        inputs[need] = download_step(client, children[need], home / need)
    manifest = runs.read(run_dir)
    error = manifest["stages"].get(failed, {}).get("error", {})
    where = f"In [{error['execution_count']}]" if error.get("execution_count") else "a cell"
    # The job tracked to the workspace (its params leave tracking.uri empty); so does the rerun,
    # or the models the earlier steps logged there would not be found.
    tracking = client.workspaces.get(client.workspace_name).mlflow_tracking_uri
    command = runs.rerun_command(manifest["model"], params=runs.params_file(run_dir), pipeline=pipeline.name,
                                 stages=[failed], inputs=inputs, environ={"MLFLOW_TRACKING_URI": tracking})
    say(f"step {failed} failed at {where}: {error.get('summary', 'see the notebook')}\n"
        f"  notebook: {paths.relative_to_root(runs.stage_notebook(run_dir, failed))}\n"
        f"  html:     {paths.relative_to_root(runs.stage_html(run_dir, failed))}\n"
        f"  rerun it here with the job's params:\n    {command}")
    return command


def show(client, job_name: str, say: Callable[[str], None] = print) -> None:
    """One job's status, studio link and steps."""
    job = client.jobs.get(job_name)
    say(f"{job.name}: {job.status}  {job.display_name or ''}")
    if getattr(job, "studio_url", None):
        say(f"  studio: {job.studio_url}")
    for name, child in steps(client, job_name).items():
        say(f"  {name}: {child.status}  ({child.name})")


def download_all(client, job_name: str, say: Callable[[str], None] = print) -> Path:
    """Every step's run folder into runs/azureml-<job>/<step>/."""
    home = runs.job_home(job_name)
    for name, child in steps(client, job_name).items():
        folder = download_step(client, child, home / name)
        say(f"  {name}: {paths.relative_to_root(folder)}")
    return home
