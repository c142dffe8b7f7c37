"""``modelfactory serve``: package a registered version and serve it until Ctrl-C (or SIGTERM).

A registered version is downloaded once to runs/serving/<model>-<env>-v<N>/model/ and shared; every
``serve`` packages it into a folder of its own under runs/serving/<model>-<env>-v<N>/, so a second
``serve`` of the same version never touches the first one's package or log.

Start-up: a second ``serve`` of a version imports neither MLflow nor pandas in this process (the
server imports them again in its own). The version holding a role is read from the project's own
SQLite store with the standard library, and the package is a copy of an earlier serve's package
built from the same model, deploy params, code and installed packages (``package.json`` records
which). Anything else, a remote store, a first download, changed params or code, goes through
MLflow and packaging.package_model as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import closing
from datetime import datetime
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.errors import ModelfactoryError, ModelVersionError

VERSION = re.compile(r"[1-9][0-9]*")  # what MLflow's registry numbers versions with
PACKAGE_RECORD = "package.json"  # beside a serve's package: what it was built from


def registered_model_dir(params: Mapping, version: str | None, alias: str) -> tuple[Path, str]:
    """Download a registered version (or the one holding ``alias``) to runs/serving/; return (folder, version)."""
    from modelfactory.ops import registry, tracking

    name = registry.registered_name(params)  # this environment's registered model
    if version is not None and not VERSION.fullmatch(str(version)):
        raise ModelVersionError(f"--version {version}: not a model version; give a registered version number, "
                                f"e.g. --version 3 (see: modelfactory champion --model {params['model']['name']} "
                                f"--env {params['env']['name']})")
    known = str(version) if version else version_in_local_store(tracking.tracking_uri(params), name, alias)
    if known is not None and (paths.runs_dir() / "serving" / f"{name}-v{known}" / "model" / "MLmodel").is_file():
        return paths.runs_dir() / "serving" / f"{name}-v{known}" / "model", known  # downloaded before: no MLflow
    import mlflow

    tracking.connect(params)
    chosen = str(version) if version else registry.version_with_role(name, alias)
    if chosen is None:
        raise ModelVersionError(f"model {name} has no version with role '{alias}'; run the pipeline first "
                                f"({runs.rerun_command(params['model']['name'], env=params['env']['name'])}), "
                                "or pass --version")
    model_dir = runs.served_model_dir(name, chosen)
    if not (model_dir / "MLmodel").is_file():
        # Download beside it and rename into place: two commands fetching the same version at
        # once never see (or serve) a half-downloaded model.
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".model-", dir=model_dir.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{chosen}", dst_path=str(partial))
            os.rename(partial, model_dir)
        except mlflow.exceptions.MlflowException as exc:
            raise ModelVersionError(f"model {name} has no version {chosen} ({exc.message.splitlines()[0]})") from None
        except OSError:
            if not (model_dir / "MLmodel").is_file():  # not a concurrent download that won the race
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return model_dir, chosen


def version_in_local_store(uri: str, name: str, alias: str) -> str | None:
    """The version holding ``alias`` in a local SQLite tracking store, read without importing MLflow
    (about 4 s here); None when the store is not local SQLite, cannot be read, or has no such alias,
    and the caller then asks MLflow, which also knows roles kept as tags."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5)) as store:
            row = store.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                (name, alias)).fetchone()
    except sqlite3.Error:  # another MLflow schema, or a locked store: MLflow itself answers
        return None
    return str(row[0]) if row else None


def package_fingerprint(params: Mapping, model_dir: Path, version: str) -> str:
    """What a package is made from: the model, the deploy params, modelfactory's code and the installed
    packages (score.py, the Dockerfile and requirements.txt follow them). Equal fingerprints, equal packages."""
    digest = hashlib.sha256(json.dumps([params["model"]["name"], version, str(model_dir), params["deploy"]],
                                       sort_keys=True).encode())
    code = Path(__file__).resolve().parents[2]  # the modelfactory package
    for source in sorted(code.rglob("*.py")):
        digest.update(source.relative_to(code).as_posix().encode() + source.read_bytes())
    # installed packages by their dist-info folder names (name and version): a directory listing,
    # where reading every METADATA file (importlib.metadata) takes most of a second
    installed = sorted(entry.name for folder in map(Path, sys.path) if folder.is_dir()
                       for entry in os.scandir(folder) if entry.name.endswith(".dist-info"))
    digest.update(" ".join(installed).encode())
    return digest.hexdigest()


def _earlier_package(model_dir: Path, fingerprint: str) -> Path | None:
    """The package of an earlier serve of this version with the same fingerprint, or None."""
    for record in sorted(model_dir.parent.glob(f"*/{PACKAGE_RECORD}"), reverse=True):  # newest first
        try:
            if json.loads(record.read_text()).get("fingerprint") == fingerprint:
                return record.parent / "package"
        except (OSError, ValueError):
            continue
    return None


def package_for_serving(params: Mapping, model_dir: Path, version: str) -> Path:
    """A new folder beside the model holding this serve's own ``package/``: a copy of an earlier serve's
    package when one was built from the same things (no MLflow or pandas import), else a new one."""
    folder = Path(tempfile.mkdtemp(prefix=datetime.now().strftime("%Y%m%d-%H%M%S-"), dir=model_dir.parent))
    fingerprint = package_fingerprint(params, model_dir, version)
    earlier = _earlier_package(model_dir, fingerprint)
    if earlier is not None:  # a copy, so that this serve still has a package of its own
        shutil.copytree(earlier, folder / "package")
    else:
        from modelfactory.ops.serving import packaging

        packaging.package_model(model_dir, folder / "package", _example_rows(model_dir), params["deploy"],
                             params["model"]["name"], version)
    (folder / PACKAGE_RECORD).write_text(json.dumps({"fingerprint": fingerprint}))  # last: the package is whole
    return folder


def serve_registered(params: Mapping, version: str | None, alias: str, host: str | None, port: int | None,
                     say=print) -> int:
    """Serve one registered version of the params' model on the local inference server; block until Ctrl-C."""
    from modelfactory.ops.progress import ProgressLine
    from modelfactory.ops.serving.endpoint import start_endpoint

    name = params["model"]["name"]
    model_dir, chosen = registered_model_dir(params, version, alias)
    folder = package_for_serving(params, model_dir, chosen)
    settings = {**params["deploy"]["endpoint"], **({"host": host} if host else {}),
                **({"port": port} if port is not None else {})}
    say(f"starting the Azure ML inference server for {name} version {chosen} ...")
    progress = ProgressLine("local endpoint", terminal=True)  # what the start waits for, as the deploy stage shows
    endpoint = start_endpoint(folder / "package", settings["host"], settings["port"], settings["workers"])
    with endpoint:  # stopped however this ends
        try:
            endpoint.wait_until_healthy(settings["start_timeout_seconds"], progress)
        except BaseException:
            progress.done("did not start")
            raise
        progress.done("healthy")
        say(f"serving {name} version {chosen} at {endpoint.url}\n"
            f"  health:  GET  {endpoint.url}/\n  score:   POST {endpoint.url}/score   "
            f"(example body: {paths.relative_to_root(folder / 'package' / 'sample-request.json')})\n"
            f"  openapi: GET  {endpoint.url}/swagger.json?version=3\n  log:     {paths.relative_to_root(endpoint.log)}\n"
            "Ctrl-C stops it; so does SIGTERM, and the server never outlives this command.")
        try:
            while endpoint.process.poll() is None:
                time.sleep(0.5)
            raise ModelfactoryError(f"the inference server stopped by itself (exit {endpoint.process.returncode}); "
                                    f"see {paths.relative_to_root(endpoint.log)}")
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
            endpoint.stop()
            say("stopped")
            return 0


def _example_rows(model_dir: Path):
    """One row that keeps the model's data contract (or zeros, for a model logged without one)."""
    from modelfactory.ops.serving.packaging import signature_example

    return signature_example(model_dir)
