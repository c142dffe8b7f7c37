"""The stage cache: reuse an earlier run's outputs of a stage when running it again would give the same.

A stage's cache key is a list of named components (``cache_key``): its notebook's hash; each params
section it reads (``model``, ``env``, ``seed`` and ``tracking`` always, plus those declared under
``reads:`` in pipelines/*.yaml); the outputs of every stage it needs (all their files' hashes); the
data's identity for the stage that reads the data; this package's code and requirements/lock.txt;
the installed versions of the packages results depend on. A stage that declares ``champion`` under
``reads:`` is also cached only while the registry's champion is the one it saw, or the one its own
run left (its candidate, promoted: a no-op rerun after a promotion stays cached). docs/running.md
gives the rule.

An earlier run's stage is reused when it succeeded (or was itself cached), has the same key, and
its files still have the hashes recorded when it ran. The files are hard-linked into the new run
(copied across file systems), so each run folder stays whole: deleting the old run leaves the new
one intact. Nothing here imports MLflow or scikit-learn: a run whose stages are all cached starts no
kernel and stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.ops.tracking import RUN_FILE

ALWAYS_READS = ("model", "env", "seed", "tracking")
"""Params sections in every stage's key: open_stage and the stage helpers read them in every notebook."""
CHAMPION = "champion"
"""A ``reads:`` entry that is no params section: the stage reads the registry's current champion."""
HASH_CHARS = 16
NO_EARLIER = "no earlier run of this stage"
"""Why a stage of a model's first run is not cached: recorded, not printed."""


@dataclass
class Hit:
    """An earlier run's stage whose outputs this run can take."""

    run_dir: Path
    manifest: dict
    record: dict  # that run's manifest entry for the stage

    @property
    def run_id(self) -> str:
        """The earlier run's id (what ``cached_from`` records)."""
        return self.manifest["run_id"]


# -- the key ---------------------------------------------------------------------------------------

def digest(data: bytes) -> str:
    """A short content hash."""
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def value_hash(value) -> str:
    """The hash of a JSON-able value, independent of key order."""
    return digest(json.dumps(value, sort_keys=True, default=str).encode())


def file_digest(path: Path) -> str:
    """One file's content hash, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()[:HASH_CHARS]


def output_hashes(folder: Path) -> dict[str, str]:
    """Every file under a stage's folder, relative path -> content hash."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash over this package's source files and the project's requirements/lock.txt: change the
    code, or the pinned set, and every stage runs again."""
    package = Path(__file__).resolve().parents[1]
    sha = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            sha.update(f"{path.relative_to(package).as_posix()}\0{file_digest(path)}\n".encode())
    lock = paths.project_root() / "requirements" / "lock.txt"
    if lock.is_file():
        sha.update(b"lock\0" + file_digest(lock).encode())
    return sha.hexdigest()[:HASH_CHARS]


def data_identity(data_params: Mapping) -> str:
    """What identifies the data the reading stage reads, without loading it: a file's (or a registered
    version's) content hash; for a dataset bundled with scikit-learn, its name and scikit-learn's
    version (the bundled data changes only with the package; no import of scikit-learn here)."""
    if data_params["source"] == "sklearn":
        return f"sklearn:{data_params['dataset']}@{_version('scikit-learn')}"
    from modelfactory.core import sources

    return sources.locate(data_params).hash


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stage_reads(stage) -> list[str]:
    """The params sections a stage's key holds: the ones every stage reads, then its declared ones."""
    declared = [r for r in stage.reads if r != CHAMPION]
    return list(ALWAYS_READS) + [r for r in declared if r not in ALWAYS_READS]


def cache_key(stage, params: Mapping, root: Path, inputs: Mapping[str, Mapping[str, str]],
              data: str | None, packages: Mapping[str, str | None]) -> dict[str, str]:
    """A stage's key, component by component, in the order a difference is reported.

    Args:
        stage: the pipeline's StageSpec.
        params: the run's resolved params.
        root: the project root (the notebook path is relative to it).
        inputs: for each stage it needs, that stage's output hashes in this run.
        data: the data's identity when this stage reads the data (``data_identity``), else None.
        packages: the installed versions recorded in the run's manifest.
    """
    key = {"notebook": file_digest(root / stage.notebook)}
    for section in stage_reads(stage):
        key[f"params.{section}"] = value_hash(params.get(section))
    contract = (params.get("data") or {}).get("contract")
    if "data" in stage.reads and isinstance(contract, str):  # a contract file: its content, not just its name
        path = root / contract
        key["params.data.contract file"] = file_digest(path) if path.is_file() else "missing"
    for need in stage.needs:  # not the file naming a stage's MLflow run: new with every run, read by no stage
        key[f"inputs.{need}"] = value_hash({f: h for f, h in inputs.get(need, {}).items() if f != RUN_FILE})
    if data is not None:
        key["data"] = data
    key["code"] = code_version()
    key["packages"] = value_hash(dict(packages))
    return key


def first_difference(recorded: Mapping[str, str], wanted: Mapping[str, str]) -> str | None:
    """The first component (in ``wanted``'s order) whose value differs, or None when the keys match."""
    for name, value in wanted.items():
        if recorded.get(name) != value:
            return name
    extra = [name for name in recorded if name not in wanted]
    return extra[0] if extra else None


# -- the champion ----------------------------------------------------------------------------------

def current_champion(params: Mapping) -> str | None:
    """The champion version of this model and environment, read without importing MLflow from the
    local SQLite store (its ``champion`` alias); through the registry API for any other store."""
    from modelfactory.ops import tracking

    uri = tracking.tracking_uri(params)
    name = f"{params['model']['name']}-{params['env']['name']}"  # registry.registered_name
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return None
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
                row = db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                 (name, "champion")).fetchone()
        except sqlite3.OperationalError:  # a store without a registry yet
            return None
        return str(row[0]) if row else None
    from modelfactory.ops import registry

    import mlflow

    mlflow.set_tracking_uri(uri)
    return registry.champion_version(name)


def champion_accepted(manifest: Mapping, record: Mapping) -> list[str | None]:
    """The champions under which an earlier run's stage still holds: the one it saw, and the one its
    run left when it finished (its own candidate, when its deploy stage promoted it)."""
    accepted = [record.get("champion_seen")]
    if "champion_after" in manifest:
        accepted.append(manifest["champion_after"])
    return accepted


# -- looking up and taking an earlier stage ----------------------------------------------------------

def find_hit(stage, key: Mapping[str, str], candidates: Sequence[Mapping], env: str,
             champion: str | None = None) -> tuple[Hit | None, str]:
    """The newest earlier run whose ``stage`` can be taken, or None and why not (for the stage line).

    Args:
        stage: the StageSpec.
        key: this run's key for the stage (``cache_key``).
        candidates: earlier runs' manifests of the same model, newest first (runs.list_runs).
        env: the environment; only runs in it count.
        champion: the current champion, for a stage that reads it.
    """
    reason = NO_EARLIER
    newest = None
    for manifest in candidates:
        record = manifest.get("stages", {}).get(stage.name, {})
        if manifest.get("env") != env or record.get("status") not in runs.DONE_STAGE or "cache_key" not in record:
            continue
        run_id = manifest["run_id"]
        different = first_difference(record["cache_key"], key)
        if different is not None:
            if newest is None:  # the newest run is the one a user compares with
                newest = f"{different} differs from run {run_id}"
            continue
        if CHAMPION in stage.reads and champion not in champion_accepted(manifest, record):
            if newest is None:
                newest = (f"champion is v{champion} now; run {run_id} judged against "
                          f"{_shown(record.get('champion_seen'))}")
            continue
        folder = Path(manifest["_dir"])
        changed = _first_changed(runs.stage_dir(folder, stage.name), record.get("hashes") or {})
        if changed is not None:
            if newest is None:
                newest = f"outputs of run {run_id} changed since it ran ({stage.name}/{changed})"
            continue
        return Hit(folder, dict(manifest), dict(record)), ""
    return None, newest or reason


def _shown(version: str | None) -> str:
    return f"v{version}" if version is not None else "no champion"


def _first_changed(folder: Path, recorded: Mapping[str, str]) -> str | None:
    if not recorded:
        return "(no hashes recorded)"
    found = output_hashes(folder)
    for name in sorted(set(recorded) | set(found)):
        if recorded.get(name) != found.get(name):
            return name
    return None


def take(hit: Hit, run_dir: Path, stage: str) -> dict:
    """Put an earlier run's stage into this run: its folder, its notebook and pages, hard-linked
    where the file system allows, copied otherwise. Returns the fields of the stage's new record."""
    target = runs.stage_dir(run_dir, stage)
    run_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():  # left by a plan that changed its mind; never another run's data
        shutil.rmtree(target)
    shutil.copytree(runs.stage_dir(hit.run_dir, stage), target, copy_function=_link_or_copy)
    # cached_from names the run where the stage ran, also when it is taken from a run that cached it
    origin = hit.record.get("cached_from") or hit.run_id
    fields = {"status": runs.CACHED, "cached_from": origin, "outputs": hit.record.get("outputs", []),
              "hashes": hit.record.get("hashes", {}), "cache_key": hit.record["cache_key"],
              "duration_s": 0.0}
    for kind in ("notebook", "html", "report"):
        name = hit.record.get(kind)
        if name and (hit.run_dir / name).is_file():
            _link_or_copy(hit.run_dir / name, run_dir / name)
            fields[kind] = name
        else:
            fields[kind] = None
    if "champion_seen" in hit.record:
        fields["champion_seen"] = hit.record["champion_seen"]
    return fields


def _link_or_copy(src, dst) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links refused
        shutil.copy2(src, dst)
    return str(dst)
