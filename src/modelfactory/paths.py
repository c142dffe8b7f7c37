"""Every folder modelfactory uses is derived here; what lies inside ``runs/`` is ops/runs.py's to lay out.

The project root is the nearest folder, from the working directory upwards, that holds
``params/base.yaml``. That works from the repo root, from ``notebooks/`` in Jupyter, and from a
papermill kernel, whatever its working directory. ``MODELFACTORY_PROJECT_DIR`` overrides the search.
Runs, the tracking database, the data registry and the download cache may be moved with
``MODELFACTORY_RUNS_DIR``, ``MODELFACTORY_TRACKING_DIR``, ``MODELFACTORY_DATA_DIR`` and
``MODELFACTORY_DATA_CACHE_DIR`` (the tests use these). Inside an Azure ML job,
``MODELFACTORY_DATA_INPUT`` is where the step's data input is mounted.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelfactory.errors import ParamsError, ProjectNotFoundError

MARKER = Path("params") / "base.yaml"


def project_root(start: Path | None = None) -> Path:
    """Return the absolute project root (the folder holding params/base.yaml)."""
    override = os.environ.get("MODELFACTORY_PROJECT_DIR")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / MARKER).is_file():
            raise ProjectNotFoundError(f"MODELFACTORY_PROJECT_DIR={override}: no {MARKER.as_posix()} there")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file():
            return folder
        if (folder / "params" / "models").is_dir() or (folder / "params" / "env").is_dir():
            # A project whose base.yaml is gone: say so, rather than search on above it.
            raise ParamsError(f"{MARKER.as_posix()}: missing; every project has one (the defaults that "
                              "every model and environment share); restore it, e.g. from git")
    raise ProjectNotFoundError(
        f"no {MARKER.as_posix()} in this folder or any folder above it; run from inside a modelfactory "
        "project or set MODELFACTORY_PROJECT_DIR"
    )


def params_dir(root: Path | None = None) -> Path:
    """The folder of layered params YAML."""
    return (root or project_root()) / "params"


def pipelines_dir(root: Path | None = None) -> Path:
    """The folder of pipeline definitions."""
    return (root or project_root()) / "pipelines"


def runs_dir(root: Path | None = None) -> Path:
    """The folder holding one immutable sub-folder per run (ops/runs.py lays out what is inside it)."""
    override = os.environ.get("MODELFACTORY_RUNS_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return (root or project_root()) / "runs"


def scored_data_dir(model: str, root: Path | None = None) -> Path:
    """Where the scoring script keeps scored rows of one model (partitioned Parquet)."""
    override = os.environ.get("MODELFACTORY_SCORED_DIR")
    base = Path(override).expanduser().resolve() if override else (root or project_root()) / "data" / "scored"
    return base / model


def data_registry_dir(root: Path | None = None) -> Path:
    """The data registry: one folder per dataset name, one immutable sub-folder per version."""
    override = os.environ.get("MODELFACTORY_DATA_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return (root or project_root()) / "data" / "registry"


def data_cache_dir(root: Path | None = None) -> Path:
    """Where remote data (Azure ML data assets, blob files) is downloaded once: ``data/cache/``."""
    override = os.environ.get("MODELFACTORY_DATA_CACHE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return (root or project_root()) / "data" / "cache"


def data_input() -> Path | None:
    """The mounted data of an Azure ML job's step (its ``data`` input), or None outside a job.

    The step's command sets ``MODELFACTORY_DATA_INPUT=${{inputs.data}}``, as it sets
    ``MODELFACTORY_RUNS_DIR=${{outputs.run}}``: the step then reads the mount and never calls the SDK.
    """
    mount = os.environ.get("MODELFACTORY_DATA_INPUT")
    return Path(mount).expanduser() if mount else None


def examples_dir(model: str, root: Path | None = None) -> Path:
    """Where ``modelfactory notebooks --model M`` writes M's executed notebooks (committed, read on GitHub)."""
    return (root or project_root()) / "docs" / "examples" / model


def tracking_dir(root: Path | None = None) -> Path:
    """The folder of the embedded MLflow store (SQLite database plus artifacts)."""
    override = os.environ.get("MODELFACTORY_TRACKING_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return (root or project_root()) / "mlruns"


def relative_to_root(path: Path, root: Path | None = None) -> str:
    """Show a path relative to the project root when it lies inside it (no machine paths in output)."""
    root = root or project_root()
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def command_prefix(root: Path | None = None) -> str:
    """How to call ``modelfactory`` again, as pasted from the project root: the command this process
    was started as (``.venv/bin/modelfactory``, or ``<python> -m modelfactory``), relative to the
    project when it lives inside it, bare only when that same file is what the shell finds on PATH."""
    import shlex
    import shutil
    import sys

    root = root or project_root()
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("modelfactory")
    if started.name in ("__main__.py", "-m", "-c") or not started.is_file():
        program, tail = Path(sys.executable), " -m modelfactory"
    else:
        program, tail = started, ""
    program = program.absolute()
    on_path = shutil.which(program.name)
    if on_path and Path(on_path).absolute() == program and not tail:
        return program.name
    try:
        shown = program.relative_to(root.absolute()).as_posix()
    except ValueError:
        shown = str(program)
    return shlex.quote(shown) + tail
