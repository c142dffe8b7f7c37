"""The data registry: raw data, centralised and versioned, under ``data/registry/`` (git-ignored).

``data/registry/<name>/v<N>/`` holds one immutable version: a read-only copy of the file and a
``version.json`` with its content hash, schema, row count and when it was registered. Registering
content that a version already holds returns that version and copies nothing. Which runs used a
version is read from the run manifests, so the registry itself is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

from modelfactory import paths
from modelfactory.core import sources
from modelfactory.errors import DataNotFoundError, DataValidationError, ParamsError

RECORD = "version.json"
NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
# Datasets the project's own demo registers (the Makefile's demo-data target, which `make run` runs
# first): for these, the one command to paste is that target, not a register line naming a file.
DEMO_DATA = {"penguins": "make demo-data"}


def register_file(name: str, path: Path) -> tuple[dict, bool]:
    """Register one CSV or Parquet file as the next version of ``name``.

    Returns ``(version record, created)``; ``created`` is False when a version already holds
    exactly this content (nothing is copied then). The file is checked (readable, has rows) first.
    """
    _check_name(name)
    path = Path(path)
    columns, rows = sources.file_schema(path)
    content = sources.hash_file(path)
    for record in list_versions(name):
        if record["hash"] == content:
            return record, False
    folder = _name_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".incoming-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    copied = _copy_hashing(path, staging / path.name)
    if copied != content:
        shutil.rmtree(staging)
        raise DataValidationError(f"{sources.shown(path)}: changed while it was being registered; try again")
    record = {"name": name, "version": None, "file": path.name, "hash": content,
              "size_bytes": (staging / path.name).stat().st_size, "rows": rows, "columns": columns,
              "registered": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "registered_from": sources.shown(path.resolve())}
    version = _next_version(name)
    while True:  # another `data register` may take a number first: the rename is the lock
        record["version"] = version
        (staging / RECORD).write_text(json.dumps(record, indent=2))
        try:
            staging.rename(folder / f"v{version}")
            break
        except OSError:
            version += 1
    final = folder / f"v{version}"
    for item in final.iterdir():
        item.chmod(READ_ONLY)
    return record, True


def register_newest(name: str, landing: Path) -> tuple[dict, bool]:
    """Register the newest CSV or Parquet file in ``landing`` (by modification time); unchanged
    content returns the existing version. What scheduled retraining calls."""
    landing = Path(landing)
    if not landing.is_dir():
        raise DataValidationError(f"--from-folder {sources.shown(landing)}: no such folder")
    files = [p for p in landing.iterdir() if p.is_file() and p.suffix.lower() in sources.FORMATS]
    if not files:
        raise DataValidationError(f"--from-folder {sources.shown(landing)}: no CSV or Parquet file in it")
    return register_file(name, max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)))


def list_versions(name: str | None = None) -> list[dict]:
    """Every version's record (of one name, or of all), by name then version."""
    base = paths.data_registry_dir()
    pattern = f"{name}/v*/{RECORD}" if name else f"*/v*/{RECORD}"
    found = []
    for record_file in base.glob(pattern):
        try:
            found.append(json.loads(record_file.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(found, key=lambda r: (r["name"], int(r["version"])))


def register_hint(name: str) -> str:
    """The command that registers dataset ``name``, as pasted from the project root: the demo's own
    target for a demo dataset (when the project has its Makefile), else ``<modelfactory> data register
    NAME FILE``, called the way this process was started (paths.command_prefix), like the rerun lines."""
    makefile = paths.project_root() / "Makefile"
    target = DEMO_DATA.get(name)
    if target and makefile.is_file() and f"\n{target.split()[-1]}:" in "\n" + makefile.read_text():
        return target
    return f"{paths.command_prefix()} data register {name} FILE"


def find_version(name: str, version: str = "latest") -> dict:
    """One version's record: a number, or ``latest``."""
    _check_name(name)
    versions = list_versions(name)
    if not versions:
        known = sorted({r["name"] for r in list_versions()})
        raise DataNotFoundError(f"data.dataset {name}: no such registered dataset (registered: "
                                f"{', '.join(known) or 'none'}); register it first: {register_hint(name)}")
    if version in ("latest", "", None):
        return versions[-1]
    chosen = [r for r in versions if str(r["version"]) == str(version).removeprefix("v")]
    if not chosen:
        raise DataNotFoundError(f"data.dataset {name}:{version}: no such version; {name} has "
                          f"{', '.join(str(r['version']) for r in versions)}")
    return chosen[0]


def version_file(record: dict) -> Path:
    """The stored file of one version."""
    return _name_dir(record["name"]) / f"v{record['version']}" / record["file"]


def runs_using(name: str, version) -> list[dict]:
    """The runs whose manifest says they read this version: run id, model, env, status."""
    from modelfactory.ops.runs import list_runs

    used = []
    for manifest in list_runs():
        data = manifest.get("data") or {}
        if data.get("source") == "registered" and data.get("name") == name and str(data.get("version")) == str(version):
            used.append({k: manifest.get(k) for k in ("run_id", "model", "env", "status")})
    return used


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy a file in chunks, hashing what was copied (the file may change while it is read)."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while block := src.read(sources.CHUNK_BYTES):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def _next_version(name: str) -> int:
    numbers = [int(p.name[1:]) for p in _name_dir(name).glob("v*") if p.name[1:].isdigit()]
    return max(numbers, default=0) + 1


def _name_dir(name: str) -> Path:
    return paths.data_registry_dir() / name


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise ParamsError(f"dataset name '{name}': use lowercase letters, digits, '_' and '-', starting with a letter")
