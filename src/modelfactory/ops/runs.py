"""The run store: the run-folder layout, the manifest's shape and statuses, and the rerun command.

Every path inside ``runs/`` is built here: a run's folder and what it holds (params.yaml,
manifest.json, index.html, one notebook, HTML page and sub-folder per stage), the scratch folder
of notebooks run by hand, the folders that `serve`, `submit`, `jobs` and `endpoint` write. Where
``runs/`` itself lies is paths.runs_dir's to say.

The manifest (runs/<id>/manifest.json) records what ran, on what, how it ended. It is written
atomically after every change, so an interrupted run still leaves a readable record. A running run
also records which process runs it, and that process touches a heartbeat file while it lives; a
run whose process is gone (killed, crashed, machine rebooted) is then shown, and rewritten, as
``abandoned`` instead of ``running`` for ever.
"""

from __future__ import annotations

import functools
import json
import os
import secrets as pyrandom
import shlex
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from modelfactory import paths

MANIFEST = "manifest.json"
HEARTBEAT = "heartbeat"
PARAMS = "params.yaml"
INDEX = "index.html"
PACKAGES = ("modelfactory", "papermill", "nbclient", "ipykernel", "mlflow", "scikit-learn", "pandas", "numpy")
HEARTBEAT_SECONDS = 5
# A run recorded on another machine (or container) cannot be checked by process id; it is judged
# abandoned once its heartbeat is this old. Generous: a busy machine may beat late.
STALE_AFTER_SECONDS = 300

# Statuses of a run, and of a stage within it. A run is RUNNING, then SUCCEEDED, FAILED, INTERRUPTED
# or ABANDONED (its process vanished); NOT_STARTED when an earlier run of the same command failed.
# A stage is PENDING or NOT_SELECTED at first, REUSED when copied from an earlier run, RUNNING, then
# SUCCEEDED, FAILED, INTERRUPTED or ABANDONED; SKIPPED when an earlier stage stopped the run; CACHED
# when a selected stage's outputs were taken from an earlier run with the same cache key (cache.py).
RUNNING, SUCCEEDED, FAILED, INTERRUPTED, ABANDONED = "running", "succeeded", "failed", "interrupted", "abandoned"
NOT_STARTED = "not started"
PENDING, NOT_SELECTED, REUSED, SKIPPED, CACHED = "pending", "not selected", "reused", "skipped", "cached"
DONE_STAGE = (SUCCEEDED, REUSED, CACHED)
"""Stage statuses whose outputs a later run may reuse."""


# -- the layout ------------------------------------------------------------------------------------

def new_run_id(model: str) -> str:
    """``20261127-120301-diabetes-3fa2``: sortable by time, unique, readable."""
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{model}-{pyrandom.token_hex(2)}"


def run_path(run_id: str, root: Path | None = None) -> Path:
    """The folder of one run: ``runs/<id>/``."""
    return paths.runs_dir(root) / run_id


def params_file(folder: Path) -> Path:
    """The run's resolved params, exactly as its stages saw them."""
    return folder / PARAMS


def manifest_file(folder: Path) -> Path:
    """The run's manifest."""
    return folder / MANIFEST


def index_file(folder: Path) -> Path:
    """The run's report page."""
    return folder / INDEX


def stage_dir(folder: Path, stage: str) -> Path:
    """Where a stage writes its outputs: ``runs/<id>/<stage>/``."""
    return folder / stage


def stage_notebook(folder: Path, stage: str) -> Path:
    """The executed notebook of a stage: ``runs/<id>/<stage>.ipynb``."""
    return folder / f"{stage}.ipynb"


def stage_html(folder: Path, stage: str) -> Path:
    """The whole executed notebook as HTML: ``runs/<id>/<stage>.html``."""
    return folder / f"{stage}.html"


def azureml_dir(run_id: str, root: Path | None = None) -> Path:
    """What ``modelfactory submit`` writes for one model: ``runs/<id>/azureml/``."""
    return run_path(run_id, root) / "azureml"


def job_home(job_name: str, root: Path | None = None) -> Path:
    """Where an Azure ML job's step folders are downloaded: ``runs/azureml-<job>/``."""
    return paths.runs_dir(root) / f"azureml-{job_name}"


def data_asset_dir(name: str, version, root: Path | None = None) -> Path:
    """Where a registered data version's Azure ML asset spec is written: ``runs/azureml-data/<name>-v<N>/``."""
    return paths.runs_dir(root) / "azureml-data" / f"{name}-v{version}"


def served_model_dir(registered: str, version, root: Path | None = None) -> Path:
    """Where `serve` and `score` keep a registered version's download: ``runs/serving/<name>-v<N>/model/``."""
    return paths.runs_dir(root) / "serving" / f"{registered}-v{version}" / "model"


def interactive_run_dir(model: str, env: str, root: Path | None = None) -> Path:
    """The scratch run folder that notebooks use when run by hand in Jupyter."""
    return paths.runs_dir(root) / "interactive" / f"{model}-{env}"


def endpoint_releases_dir(root: Path | None = None) -> Path:
    """Where `modelfactory endpoint` writes each package and its specs, a new folder every time."""
    return paths.runs_dir(root) / "endpoint"


# -- the rerun command -----------------------------------------------------------------------------

def rerun_command(model: str, *, env: str | None = None, stages: Sequence[str] = (), params: Path | None = None,
                  from_run: str | None = None, pipeline: str | None = None, inputs: Mapping[str, Path] | None = None,
                  environ: Mapping[str, str] | None = None, prefix: str | None = None) -> str:
    """The ``modelfactory run`` command that reruns (or first runs) stages, as pasted from the project root.

    Args:
        model: the model to run.
        env: its environment (left out when the params file says it).
        stages: the stages to run; all when empty.
        params: a run's params.yaml, to rerun with exactly those params.
        from_run: the run whose earlier stages' outputs to reuse.
        pipeline: the pipeline definition, when the command must name it.
        inputs: stage -> run folder, for ``--input STAGE=FOLDER``.
        environ: variables to set in front of the command (e.g. the tracking URI a job used).
        prefix: how to call modelfactory; by default the way this process was started (paths.command_prefix).
    """
    words = [f"{key}={shlex.quote(value)}" for key, value in (environ or {}).items()]
    words += [prefix or paths.command_prefix(), "run", "--model", model]
    if env:
        words += ["--env", env]
    if params is not None:
        words += ["--params-file", shlex.quote(paths.relative_to_root(params))]
    if pipeline:
        words += ["--pipeline", pipeline]
    if stages:
        words += ["--stages", ",".join(stages)]
    if from_run:
        words += ["--from-run", from_run]
    words += [f"--input {need}={shlex.quote(paths.relative_to_root(folder))}" for need, folder in (inputs or {}).items()]
    return " ".join(words)


# -- the manifest ----------------------------------------------------------------------------------

def new_stage_record(status: str) -> dict:
    """A stage's entry in the manifest before it runs."""
    return {"status": status, "notebook": None, "html": None, "start": None, "end": None, "duration_s": None,
            "outputs": []}


def new_manifest(run_id: str, model: str, env: str, pipeline: str, argv: Sequence[str], params_hash: str,
                 overrides: Sequence[str], data: Mapping | None, git: Mapping, stages: Mapping[str, dict]) -> dict:
    """The manifest of a run that is starting: its identity, inputs, environment and stage records."""
    return {
        "run_id": run_id, "model": model, "env": env, "pipeline": pipeline,
        "status": RUNNING, "created": now(), "finished": None,
        "command": "modelfactory " + " ".join(shlex.quote(a) for a in argv),
        "params_file": PARAMS, "params_hash": params_hash,
        "overrides": list(overrides), "data": data, "data_hash": None, "git": dict(git),
        "packages": package_versions(), "headline_metrics": {}, "stages": dict(stages),
        "process": process_identity(), "heartbeat": HEARTBEAT,
    }


def read(folder: Path) -> dict:
    """A run folder's manifest."""
    return json.loads(manifest_file(folder).read_text())


def now() -> str:
    """The current UTC time, ISO 8601, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_state(root: Path) -> dict:
    """The commit checked out in ``root`` and whether the tree has uncommitted changes."""
    return dict(_git_state(root))


@functools.lru_cache(maxsize=8)
def _git_state(root: Path) -> dict:
    # Asked once per command (two git processes): every run a factory command makes shares it.
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run's results depend on."""
    return dict(_installed_versions())


@functools.lru_cache(maxsize=1)
def _installed_versions() -> dict[str, str | None]:
    # Looked up once per process: each lookup scans the installed distributions (milliseconds, times
    # every run of a factory), and what is installed does not change under a running command.
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write(run_dir: Path, manifest: Mapping) -> None:
    """Replace the manifest atomically: readers never see half a file."""
    tmp = run_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, run_dir / MANIFEST)


def list_runs(model: str | None = None, root: Path | None = None) -> list[dict]:
    """Manifests of all runs, newest first, optionally of one model only; a run whose process is
    gone is marked ``abandoned`` on the way (see is_abandoned)."""
    base = paths.runs_dir(root)
    found = []
    for path in base.glob(f"*/{MANIFEST}"):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if model is None or data.get("model") == model:
            if is_abandoned(data, path.parent):
                data = mark_abandoned(path.parent)
            data["_dir"] = str(path.parent)
            found.append(data)
    return sorted(found, key=lambda m: (m.get("created", ""), m.get("run_id", "")), reverse=True)


def find_run(run_id: str, root: Path | None = None) -> dict:
    """The manifest of one run: ``latest``, a whole run id, or the start of one that only one run has.

    Raises:
        RunNotFoundError: no such run, or the start of more than one id (one line, exit code 2).
    """
    from modelfactory.errors import RunNotFoundError

    runs = list_runs(root=root)
    if run_id == "latest":
        chosen = runs[:1]
    else:
        exact = [m for m in runs if m["run_id"] == run_id]
        chosen = exact or [m for m in runs if m["run_id"].startswith(run_id)]
    if not chosen:
        raise RunNotFoundError(f"no run '{run_id}' in {paths.relative_to_root(paths.runs_dir(root))} "
                               "(see: modelfactory runs)")
    if len(chosen) > 1:
        raise RunNotFoundError(f"'{run_id}' matches {len(chosen)} runs; give more of the id")
    return chosen[0]


def process_identity(pid: int | None = None) -> dict:
    """Who runs a run: process id and start time, and the machine, boot and PID namespace they mean
    something in (a process id alone is reused; its start time tells the processes apart)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "started": _start_ticks(pid), "host": socket.gethostname(),
            "boot": _read("/proc/sys/kernel/random/boot_id"), "pid_namespace": _pid_namespace()}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22), if known."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name before ")" may hold spaces
    return None if fields[0] in ("Z", "X") else int(fields[19])  # a zombie has ended already


def process_alive(identity: Mapping) -> bool | None:
    """Whether the recorded process still runs; None when this machine cannot tell."""
    here = process_identity()
    if identity.get("host") != here["host"] or identity.get("pid_namespace") != here["pid_namespace"]:
        return None
    if identity.get("boot") and here["boot"] and identity["boot"] != here["boot"]:
        return False  # rebooted since: every process of that boot has ended
    if identity.get("started") is not None and here["started"] is not None:
        return _start_ticks(identity["pid"]) == identity["started"]
    try:
        os.kill(identity["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Touches runs/<id>/heartbeat every HEARTBEAT_SECONDS from a thread, while a run executes."""

    def __init__(self, run_dirs: list[Path]):
        self.run_dirs = run_dirs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._touch()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._touch()

    def _touch(self) -> None:
        for run_dir in self.run_dirs:
            try:
                (run_dir / HEARTBEAT).write_text(now() + "\n")
            except OSError:  # a missing heartbeat only makes the run look older; never stop a run for it
                pass


def last_heartbeat(run_dir: Path) -> datetime | None:
    """When the run's process last showed it was alive."""
    try:
        return datetime.fromtimestamp((run_dir / HEARTBEAT).stat().st_mtime, timezone.utc)
    except OSError:
        return None


def is_abandoned(manifest: Mapping, run_dir: Path) -> bool:
    """A run still marked running whose process is gone (or, from elsewhere, silent too long)."""
    if manifest.get("status") != RUNNING or not manifest.get("process"):
        return False
    alive = process_alive(manifest["process"])
    if alive is not None:
        return not alive
    beat = last_heartbeat(run_dir)
    return beat is not None and (datetime.now(timezone.utc) - beat).total_seconds() > STALE_AFTER_SECONDS


def mark_abandoned(run_dir: Path) -> dict:
    """Record that the run's process is gone: the run and its running stage become ``abandoned``,
    stages that never started ``skipped``; finished is the last heartbeat. Best effort on disk.

    The manifest is read again first: the process may have written its final status between our
    first read and its exit, and that record wins.
    """
    manifest = read(run_dir)
    if manifest.get("status") != RUNNING:
        return manifest
    for record in manifest.get("stages", {}).values():
        if record.get("status") == RUNNING:
            record["status"] = ABANDONED
        elif record.get("status") == PENDING:
            record["status"] = SKIPPED
    beat = last_heartbeat(run_dir)
    manifest.update(status=ABANDONED, finished=beat.isoformat(timespec="milliseconds") if beat else None)
    try:
        write(run_dir, manifest)
    except OSError:  # a read-only copy of a run folder: still shown as abandoned
        pass
    return manifest
