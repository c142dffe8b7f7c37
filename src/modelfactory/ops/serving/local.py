"""``modelfactory serve``: package a registered version and serve it until Ctrl-C (or SIGTERM).

A registered version is downloaded once to runs/serving/<model>-<env>-v<N>/model/ and shared; every
``serve`` packages it into a folder of its own under runs/serving/<model>-<env>-v<N>/, so a second
``serve`` of the same version never touches the first one's package or log.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.errors import ModelfactoryError

VERSION = re.compile(r"[1-9][0-9]*")  # what MLflow's registry numbers versions with


class ModelVersionError(ModelfactoryError):
    """--version is not a version number, or names a version the registry does not have."""

    exit_code = 2


def registered_model_dir(params: Mapping, version: str | None, alias: str) -> tuple[Path, str]:
    """Download a registered version (or the one holding ``alias``) to runs/serving/; return (folder, version)."""
    import mlflow

    from modelfactory.ops import registry, tracking

    name = registry.registered_name(params)  # this environment's registered model
    if version is not None and not VERSION.fullmatch(str(version)):
        raise ModelVersionError(f"--version {version}: not a model version; give a registered version number, "
                                f"e.g. --version 3 (see: modelfactory champion --model {params['model']['name']} "
                                f"--env {params['env']['name']})")
    tracking.connect(params)
    chosen = str(version) if version else registry.version_with_role(name, alias)
    if chosen is None:
        raise ModelVersionError(f"model {name} has no version with role '{alias}'; run the pipeline first "
                                f"(modelfactory run --model {params['model']['name']} --env {params['env']['name']}), "
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


def serve_registered(params: Mapping, version: str | None, alias: str, host: str | None, port: int | None,
                     say=print) -> int:
    """Serve one registered version of the params' model on the local inference server; block until Ctrl-C."""
    from modelfactory.ops import deploy

    name = params["model"]["name"]
    model_dir, chosen = registered_model_dir(params, version, alias)
    folder = Path(tempfile.mkdtemp(prefix=datetime.now().strftime("%Y%m%d-%H%M%S-"), dir=model_dir.parent))
    example = _example_rows(model_dir)
    deploy.package_model(model_dir, folder / "package", example, params["deploy"], name, chosen)
    settings = {**params["deploy"]["endpoint"], **({"host": host} if host else {}),
                **({"port": port} if port is not None else {})}
    say(f"starting the Azure ML inference server for {name} version {chosen} ...")
    endpoint = deploy.start_local_endpoint(folder / "package", settings)
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
    from modelfactory.ops.deploy import signature_example

    return signature_example(model_dir)
