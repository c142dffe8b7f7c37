"""The run manifest (runs/<id>/manifest.json): what ran, on what, how it ended.

Written atomically after every change, so an interrupted run still leaves a readable record.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from modelfactory import paths

MANIFEST = "manifest.json"
PACKAGES = ("modelfactory", "papermill", "nbclient", "ipykernel", "mlflow", "scikit-learn", "pandas", "numpy")


def now() -> str:
    """The current UTC time, ISO 8601, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_state(root: Path) -> dict:
    """The commit checked out in ``root`` and whether the tree has uncommitted changes."""
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
    """Manifests of all runs, newest first, optionally of one model only."""
    base = paths.runs_dir(root)
    found = []
    for path in base.glob(f"*/{MANIFEST}"):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if model is None or data.get("model") == model:
            data["_dir"] = str(path.parent)
            found.append(data)
    return sorted(found, key=lambda m: (m.get("created", ""), m.get("run_id", "")), reverse=True)
