"""The specs of a managed online endpoint with blue/green deployments, and a batch endpoint, from a
deploy package (the rollout that sends them is rollout.py).

The package (model, score.py, serving.json, requirements.txt) is what ``release.py`` prepared in a
new ``runs/endpoint/<model>-<env>-v<N>-<time>/`` folder: the environment's champion by default. Traffic comes from params (``azure.online.traffic``, e.g. blue 90 / green 10)
and mirrored traffic from ``azure.online.mirror``. Everything is built as azure-ai-ml objects and
can be written as YAML (a dry run) or sent through an MLClient.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelfactory.errors import AzureSpecError

COLOURS = ("blue", "green")
# Azure ML endpoint names: 3-32 characters, a letter first, then letters, digits and hyphens.
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
ENDPOINT_MAX = 32               # azure.ai.ml's EndpointConfigurations.MAX_NAME_LENGTH


@dataclass
class EndpointSpecs:
    """The online endpoint, its two deployments, and the batch endpoint with its deployment."""

    online_endpoint: object
    deployments: dict
    batch_endpoint: object
    batch_deployment: object


def endpoint_name(template: str, model: str, env: str, partition: bool = False) -> str:
    """Fill ``{model}`` and ``{env}`` and make the name Azure-valid (underscores become hyphens).

    A partition's name over Azure's 32 characters (its model name is long: sales--store-3--product-b)
    keeps its start and ends in a hash of the whole, so each partition keeps its own endpoint. Any
    other name too long is left as it is, for the check below to refuse: the template is the user's.
    """
    from modelfactory.ops.partitions import fit_name

    name = template.format(model=model, env=env).replace("_", "-").lower()
    return fit_name(name, ENDPOINT_MAX) if partition else name


def serving_environment(package: Path, base_image: str):
    """An environment from the package's own requirements.txt on an inference base image."""
    from azure.ai.ml.entities import Environment

    requirements = [line for line in (package / "requirements.txt").read_text().splitlines() if line.strip()]
    conda = {"name": "modelfactory-serving", "channels": ["conda-forge"],
             "dependencies": ["python=3.11", "pip", {"pip": requirements}]}
    return Environment(image=base_image, conda_file=conda, description="modelfactory serving: the package's requirements")


def build_specs(package: Path, params: Mapping, colour_versions: Mapping[str, str] | None = None,
                tags: Mapping[str, str] | None = None) -> EndpointSpecs:
    """Endpoint + blue/green deployments + batch endpoint for ``package``; checked before returning.

    Both colours serve the package's model unless ``colour_versions`` says otherwise (each colour's
    model version, e.g. the old champion on blue and the candidate on green). ``tags`` go on every
    deployment (e.g. the gate's word and whether a person forced a rejected version out).
    """
    from azure.ai.ml.constants import AssetTypes, BatchDeploymentOutputAction
    from azure.ai.ml.entities import (
        BatchEndpoint,
        BatchRetrySettings,
        CodeConfiguration,
        DataCollector,
        DeploymentCollection,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        Model,
        ModelBatchDeployment,
        ModelBatchDeploymentSettings,
        ResourceConfiguration,
    )

    from modelfactory.ops.registry import registered_name

    check_package(package)
    azure, model_name, env = params["azure"], params["model"]["name"], params["env"]["name"]
    online, batch = azure["online"], azure["batch"]
    partition = bool(params["data"]["partition_by"])  # one endpoint per partition, its name shortened to fit
    name = endpoint_name(online["name"], model_name, env, partition)
    check_traffic(online["traffic"], online.get("mirror") or {})
    settings = json.loads((package / "serving.json").read_text())
    model_dir = next((package / "model").rglob("MLmodel")).parent
    # the same name as in the MLflow registry: one registered model per environment
    model = Model(path=str(model_dir), type=AssetTypes.MLFLOW_MODEL, name=registered_name(params),
                  description=f"{model_name} version {settings.get('model_version')} from the modelfactory registry")
    environment = serving_environment(package, azure["serving_image"])
    code = CodeConfiguration(code=str(package), scoring_script="score.py")
    collector = DataCollector(collections={"model_inputs": DeploymentCollection(enabled="true"),
                                           "model_outputs": DeploymentCollection(enabled="true")})
    common = {"model": model_name, "env": env}
    shipped = {**common, **(tags or {})}  # what the deployments carry: the model, and its gate record
    endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key", tags=common, traffic=dict(online["traffic"]),
                                     mirror_traffic=dict(online.get("mirror") or {}),
                                     description=f"{model_name} ({env}): blue/green, traffic from params")
    deployments = {}
    for colour in COLOURS:
        version = (colour_versions or {}).get(colour, settings.get("model_version"))
        deployments[colour] = ManagedOnlineDeployment(
            name=colour, endpoint_name=name, model=model, environment=environment, code_configuration=code,
            instance_type=online["instance_type"], instance_count=online["instance_count"],
            data_collector=collector if params["deploy"]["scored_data"]["enabled"] else None,
            tags={**shipped, "model_version": str(version)})
    batch_name = endpoint_name(batch["name"], model_name, env, partition)
    batch_endpoint = BatchEndpoint(name=batch_name, tags=common, description=f"{model_name} ({env}) batch scoring")
    # An MLflow model needs no scoring script in a batch deployment.
    batch_deployment = ModelBatchDeployment(
        name="main", endpoint_name=batch_name, model=model, environment=environment, compute=batch["compute"],
        tags=shipped, resources=ResourceConfiguration(instance_count=batch["instance_count"]),
        # the instance count goes in resources only: given in both, the dump does not load back
        settings=ModelBatchDeploymentSettings(
            mini_batch_size=batch["mini_batch_size"],
            output_action=BatchDeploymentOutputAction.APPEND_ROW, output_file_name="predictions.csv",
            retry_settings=BatchRetrySettings(max_retries=batch["max_retries"], timeout=batch["timeout_seconds"]),
            logging_level="info"))
    for value, kind in ((name, "online endpoint"), (batch_name, "batch endpoint")):
        if not ENDPOINT_NAME.match(value):
            raise AzureSpecError(f"{kind} name '{value}' is not valid in Azure ML: 3-32 letters, digits or "
                                 "hyphens, starting with a letter (azure.online.name / azure.batch.name)")
    return EndpointSpecs(endpoint, deployments, batch_endpoint, batch_deployment)


def check_traffic(traffic: Mapping[str, int], mirror: Mapping[str, int]) -> None:
    """Live traffic sums to 100 over known colours; mirrored traffic goes to a colour with no live share."""
    unknown = [c for c in {**traffic, **mirror} if c not in COLOURS]
    if unknown:
        raise AzureSpecError(f"azure.online: unknown deployment '{unknown[0]}'; the deployments are blue and green")
    if any(not 0 <= share <= 100 for share in [*traffic.values(), *mirror.values()]):
        raise AzureSpecError("azure.online: every traffic share is a percentage, 0 to 100")
    if sum(traffic.values()) != 100:
        shown = ", ".join(f"{c}={p}" for c, p in traffic.items())
        raise AzureSpecError(f"azure.online.traffic: {shown} sums to {sum(traffic.values())}, not 100")
    for colour, share in mirror.items():
        if share and traffic.get(colour):
            raise AzureSpecError(f"azure.online.mirror: {colour} already takes live traffic; mirror to the "
                                 "deployment that takes none")
        if share > 50:
            raise AzureSpecError(f"azure.online.mirror: {colour}={share}; Azure ML mirrors at most 50%")


def check_package(package: Path) -> None:
    """The package a deployment uploads: score.py present and parsing, with init() and run()."""
    script = package / "score.py"
    if not script.is_file():
        raise AzureSpecError(f"{package}: no score.py; run the deploy stage first")
    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except SyntaxError as exc:
        raise AzureSpecError(f"{script}:{exc.lineno}: does not parse: {exc.msg}") from None
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f for f in ("init", "run") if f not in defined]
    if missing:
        raise AzureSpecError(f"{script}: no {' or '.join(missing)}() (the Azure ML scoring contract)")
    if not list((package / "model").rglob("MLmodel")):
        raise AzureSpecError(f"{package}/model: no MLmodel; run the deploy stage first")


def write_specs(specs: EndpointSpecs, folder: Path) -> list[Path]:
    """endpoint.yaml, blue.yaml, green.yaml, batch-endpoint.yaml, batch-deployment.yaml in ``folder``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    entities = {"endpoint.yaml": specs.online_endpoint, **{f"{c}.yaml": d for c, d in specs.deployments.items()},
                "batch-endpoint.yaml": specs.batch_endpoint, "batch-deployment.yaml": specs.batch_deployment}
    written = []
    for name, entity in entities.items():
        # _to_dict() is what azure-ai-ml's own dump() writes; it holds OrderedDicts, so go via JSON.
        (folder / name).write_text(yaml.safe_dump(json.loads(json.dumps(entity._to_dict())), sort_keys=False))
        written.append(folder / name)
    return written


def validate_specs(folder: Path) -> list[str]:
    """Load each written spec with azure-ai-ml's loaders, and re-check what they do not."""
    from azure.ai.ml import load_batch_endpoint, load_online_deployment, load_online_endpoint
    from azure.ai.ml.entities._load_functions import load_model_batch_deployment

    problems = []
    # A model batch deployment keeps its knobs under "settings", which load_batch_deployment
    # refuses (azure-sdk-for-python#33044); load_model_batch_deployment reads that shape.
    loaders = {"endpoint.yaml": load_online_endpoint, "blue.yaml": load_online_deployment,
               "green.yaml": load_online_deployment, "batch-endpoint.yaml": load_batch_endpoint,
               "batch-deployment.yaml": load_model_batch_deployment}
    loaded = {}
    for name, loader in loaders.items():
        try:
            loaded[name] = loader(str(folder / name))
        except Exception as exc:  # marshmallow and azure-ai-ml validation errors
            from modelfactory.ops.azureml.workspace import load_error

            problems.append(f"{name}: does not load: {load_error(exc)}")
    endpoint = loaded.get("endpoint.yaml")
    if endpoint is not None:
        try:
            check_traffic(endpoint.traffic or {}, endpoint.mirror_traffic or {})
        except AzureSpecError as exc:
            problems.append(f"endpoint.yaml: {exc}")
        if not ENDPOINT_NAME.match(endpoint.name):
            problems.append(f"endpoint.yaml: name '{endpoint.name}' is not a valid endpoint name")
        for colour in COLOURS:
            deployment = loaded.get(f"{colour}.yaml")
            if deployment is None:
                continue
            if deployment.endpoint_name != endpoint.name:
                problems.append(f"{colour}.yaml: belongs to endpoint '{deployment.endpoint_name}', not '{endpoint.name}'")
            code = Path(deployment.code_configuration.code)
            try:
                check_package(code if code.is_absolute() else folder / code)
            except AzureSpecError as exc:
                problems.append(f"{colour}.yaml: {exc}")
    return problems
