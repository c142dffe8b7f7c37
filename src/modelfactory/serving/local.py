"""``modelfactory serve``: package a registered version and serve it until Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import ModelfactoryError


def registered_model_dir(params: Mapping, version: str | None, alias: str) -> tuple[Path, str]:
    """Download a registered version (or the one holding ``alias``) to runs/serving/; return (folder, version)."""
    import mlflow

    from modelfactory import registry, tracking

    tracking.connect(params)
    name = registry.registered_name(params)  # this environment's registered model
    chosen = str(version) if version else registry.version_with_role(name, alias)
    if chosen is None:
        raise ModelfactoryError(f"model {name} has no version with role '{alias}'; run the pipeline first, "
                                "or pass --version")
    model_dir = paths.runs_dir() / "serving" / f"{name}-v{chosen}" / "model"
    if not (model_dir / "MLmodel").is_file():
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{chosen}", dst_path=str(model_dir))
        except mlflow.exceptions.MlflowException as exc:
            raise ModelfactoryError(f"model {name} has no version {chosen} ({exc.message.splitlines()[0]})") from None
    return model_dir, chosen


def serve_registered(params: Mapping, version: str | None, alias: str, host: str | None, port: int | None,
                     say=print) -> int:
    """Serve one registered version of the params' model on the local inference server; block until Ctrl-C."""
    from modelfactory import deploy

    name = params["model"]["name"]
    model_dir, chosen = registered_model_dir(params, version, alias)
    folder = model_dir.parent
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
        "Ctrl-C stops it.")
    try:
        while endpoint.process.poll() is None:
            time.sleep(0.5)
        raise ModelfactoryError(f"the inference server stopped by itself (exit {endpoint.process.returncode}); "
                                f"see {paths.relative_to_root(endpoint.log)}")
    except KeyboardInterrupt:
        endpoint.stop()
        say("stopped")
        return 0


def _example_rows(model_dir: Path):
    """One row of the model's input example, or a row of zeros shaped by its signature."""
    import pandas as pd
    from mlflow.models import Model

    schema = Model.load(str(model_dir / "MLmodel")).get_input_schema()
    return pd.DataFrame([[0.0] * len(schema.inputs)], columns=[s.name for s in schema.inputs])
