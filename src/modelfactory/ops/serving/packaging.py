"""Packaging: a registered or freshly trained model as a folder the Azure ML inference server serves.

The package holds the model, score.py and its settings, the data contract, the server's gunicorn
settings, the environment, a sample request, an OpenAPI document and a Dockerfile. The deploy
stage, ``modelfactory serve`` and ``modelfactory endpoint`` all build it here, and start a local
endpoint on it here; the deploy stage's checks (``ops/deploy.py``) build on this module, never the
other way round.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import pandas as pd

from modelfactory import paths
from modelfactory.core import contract as contracts

SCORE_SCRIPT = Path(__file__).parents[2] / "core" / "score.py"
# The inference server's gunicorn settings (a threaded worker, client timeouts); gunicorn reads
# gunicorn.conf.py from its working directory, both locally and in the Dockerfile's WORKDIR.
SERVER_CONFIG = Path(__file__).parent / "gunicorn_conf.py"
# What score.py needs beyond the model's own requirements, pinned at the versions installed here:
# the server, the JSON parser, and Azure ML's data collector (used only on a managed endpoint).
SERVING_REQUIREMENTS = ("azureml-inference-server-http", "orjson", "azureml-ai-monitoring")
DOCKERFILE = """\
# Serves this package with the Azure ML inference server, the same server as the managed endpoint.
# docker build -t scorer . && docker run -p 127.0.0.1:5001:5001 scorer
FROM {base_image}
WORKDIR /package
COPY requirements.txt .
# Bytecode is compiled here, once: many images set PYTHONDONTWRITEBYTECODE=1, and without it every
# container start compiles mlflow, scikit-learn and pandas again (seconds each, before the first
# health check answers). A file that does not compile (some packages ship Python 2 examples) only
# goes without bytecode, hence the "|| true".
RUN pip install --no-cache-dir -r requirements.txt \\
 && (python -m compileall -q -j 0 "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /dev/null || true)
COPY . .
RUN python -m compileall -q /package > /dev/null
ENV AZUREML_MODEL_DIR=/package/model AZUREML_ENTRY_SCRIPT=/package/score.py
EXPOSE 5001
# Inside a container the server must listen on all interfaces; publish the port to 127.0.0.1 as above.
# It runs from /package, so gunicorn reads /package/gunicorn.conf.py: the same threaded worker and
# client timeouts as the local endpoint (serving.json, "server").
CMD ["azmlinfsrv", "--entry_script", "/package/score.py", "--model_dir", "/package/model", "--port", "5001"]
"""


UNREGISTERED = "unregistered"


def package_model(model_dir: Path, package_dir: Path, sample: pd.DataFrame, deploy_params: Mapping,
                  model_name: str, model_version: str | int | None) -> pd.DataFrame:
    """Write a self-contained, deployable folder; list its files.

    It holds the model, score.py with its settings (serving.json) and the data contract logged with
    the model (contract.json, which score.py checks every request against), the server's gunicorn.conf.py,
    the environment spec, a one-row sample request from the holdout, and a Dockerfile running the
    same Azure ML inference server with the same settings.
    The model sits at model/<name>/<version>/, the layout Azure ML mounts registered models in; the
    inference server reads the model's name and version from it for its logs. A model that was not
    registered (a notebook run by hand) is packaged as version ``unregistered``.
    """
    model_version = UNREGISTERED if model_version is None else model_version
    if package_dir.exists():
        shutil.rmtree(package_dir)
    shutil.copytree(model_dir, package_dir / "model" / model_name / str(model_version))
    shutil.copy2(SCORE_SCRIPT, package_dir / "score.py")
    shutil.copy2(SERVER_CONFIG, package_dir / "gunicorn.conf.py")
    store, server = deploy_params["scored_data"], deploy_params["endpoint"]
    settings = {"max_rows": deploy_params["max_rows"], "model": model_name, "model_version": model_version,
                "scored_data": {"dir": str(paths.scored_data_dir(model_name)) if store["enabled"] else None,
                                "flush_rows": store["flush_rows"], "flush_seconds": store["flush_seconds"]},
                "server": {"threads": server["threads"], "client_timeout_seconds": server["client_timeout_seconds"]}}
    (package_dir / "serving.json").write_text(json.dumps(settings, indent=2))
    logged = contracts.model_contract(model_dir)
    if logged is not None:  # a model logged before contracts is held to its signature by score.py
        (package_dir / contracts.FILE).write_text(json.dumps(contracts.to_json(logged), indent=2))
    (package_dir / "sample-request.json").write_text(json.dumps(build_request(sample.head(1)), indent=2))
    requirements = (model_dir / "requirements.txt").read_text().splitlines()
    requirements += [f"{name}=={metadata.version(name)}" for name in SERVING_REQUIREMENTS]
    (package_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (package_dir / "Dockerfile").write_text(DOCKERFILE.format(base_image=deploy_params["base_image"]))
    (package_dir / "swagger3.json").write_text(json.dumps(openapi_document(model_dir, sample.head(1)), indent=2))
    files = sorted(p for p in package_dir.rglob("*") if p.is_file())
    return pd.DataFrame({"file": [p.relative_to(package_dir).as_posix() for p in files]})


def signature_example(model_dir: Path) -> pd.DataFrame:
    """One row shaped by a logged model's input signature: the sample request of a package built from
    the registry, where no holdout rows are at hand. Its values keep the model's data contract (a
    number within its range, a known category), so the sample request is one the endpoint takes."""
    from mlflow.models import Model

    schema = Model.load(str(model_dir / "MLmodel")).get_input_schema()
    logged = contracts.model_contract(model_dir)
    example = contracts.example_row(logged) if logged is not None else {}
    return pd.DataFrame([[example.get(s.name, 0.0) for s in schema.inputs]], columns=[s.name for s in schema.inputs])


def openapi_document(model_dir: Path, example: pd.DataFrame) -> dict:
    """An OpenAPI 3 description of /score, from the model's input signature; the server serves it."""
    from mlflow.models import Model

    schema = Model.load(str(model_dir / "MLmodel")).get_input_schema()
    kinds = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
             "boolean": "boolean", "string": "string"}
    columns = [{"name": s.name, "type": kinds.get(s.type.name, "string")} for s in schema.inputs]
    request = {
        "type": "object", "required": ["input_data"],
        "properties": {"input_data": {
            "type": "object", "required": ["columns", "data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string", "enum": [c["name"] for c in columns]},
                            "description": "every input column, in any order"},
                "data": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                         "description": "rows of values, in the order of columns; "
                                        + ", ".join(f"{c['name']}: {c['type']}" for c in columns)}}}},
        "example": build_request(example),
    }
    answer = {"type": "object", "properties": {"predictions": {"type": "array", "items": {"type": "number"}}}}
    error = {"type": "object", "properties": {"error": {"type": "string"}}}

    def body(schema):
        return {"content": {"application/json": {"schema": schema}}}

    return {
        "openapi": "3.0.1",
        "info": {"title": "modelfactory scoring endpoint", "version": "1.0"},
        "paths": {
            "/": {"get": {"summary": "health", "responses": {"200": {"description": "healthy"}}}},
            "/score": {"post": {"summary": "score rows", "requestBody": {"required": True, **body(request)},
                                "responses": {"200": {"description": "predictions", **body(answer)},
                                              "400": {"description": "a bad request, named", **body(error)}}}},
        },
    }


def start_local_endpoint(package_dir: Path, endpoint_params: Mapping, progress=None):
    """Start the real inference server on the package, on loopback, and wait until it is healthy.

    Returns the running endpoint, best used as ``with start_local_endpoint(...) as endpoint:`` so
    that it stops however the block ends. ``progress`` (an ``ops.progress.ProgressLine``) is told
    what the start waits for, with the seconds so far, and how it ended.
    """
    endpoint = launch_local_endpoint(package_dir, endpoint_params)
    wait_until_healthy(endpoint, endpoint_params, progress)
    return endpoint


def launch_local_endpoint(package_dir: Path, endpoint_params: Mapping):
    """Start the real inference server on the package, on loopback, without waiting for it.

    The deploy stage checks the package in-process while the server boots (both take seconds), then
    calls ``wait_until_healthy``. Use it as ``with launch_local_endpoint(...) as endpoint:``: the
    server stops however the block ends, a failed in-process check included.
    """
    from modelfactory.ops.serving.endpoint import start_endpoint

    return start_endpoint(package_dir, endpoint_params["host"], endpoint_params["port"], endpoint_params["workers"])


def wait_until_healthy(endpoint, endpoint_params: Mapping, progress=None) -> float:
    """Wait until a launched endpoint answers its health check (``start_timeout_seconds`` from its
    start at most, else EndpointError and the server is stopped); return the seconds since its start.

    ``progress`` (an ``ops.progress.ProgressLine``) is told what the start waits for, with the
    seconds so far, and how it ended.
    """
    try:
        seconds = endpoint.wait_until_healthy(endpoint_params["start_timeout_seconds"], progress)
    except BaseException:
        if progress is not None:
            progress.done("did not start")
        raise
    if progress is not None:
        progress.done("healthy")
    return seconds


def build_request(frame: pd.DataFrame) -> dict:
    """The request body the scoring script takes, for these rows."""
    return {"input_data": {"columns": [str(c) for c in frame.columns], "data": frame.to_numpy().tolist()}}
