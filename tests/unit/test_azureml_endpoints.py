"""Blue/green online endpoint and batch endpoint specs from a deploy package, and the rollout
through a fake MLClient (create_autospec of azure-ai-ml's operations classes)."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import create_autospec

import pytest

from modelfactory.errors import AzureSpecError
from modelfactory.ops.azureml import deployment, rollout


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from modelfactory.ops.serving import packaging

    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    model = Ridge().fit(x, frame["target"])
    base = tmp_path_factory.mktemp("endpoint")
    mlflow.sklearn.save_model(model, base / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"])
    settings = {"max_rows": 5, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(base / "model", base / "package", x, settings, "diabetes", "3")
    return base / "package"


def _params(env="stage", *overrides):
    from modelfactory.params import resolve

    return resolve("diabetes", env, list(overrides))


@pytest.mark.parametrize("env,traffic,mirror", [("dev", {"blue": 100, "green": 0}, {"green": 20}),
                                                ("stage", {"blue": 90, "green": 10}, {})])
def test_specs_load_with_azure_ai_ml_and_carry_the_params_traffic(package, tmp_path, env, traffic, mirror):
    from azure.ai.ml import load_online_deployment, load_online_endpoint
    from azure.ai.ml.entities._load_functions import load_model_batch_deployment

    specs = deployment.build_specs(package, _params(env))
    files = deployment.write_specs(specs, tmp_path)
    assert [f.name for f in files] == ["endpoint.yaml", "blue.yaml", "green.yaml", "batch-endpoint.yaml",
                                       "batch-deployment.yaml"]
    assert deployment.validate_specs(tmp_path) == []
    endpoint = load_online_endpoint(tmp_path / "endpoint.yaml")
    assert endpoint.name == f"diabetes-{env}" and endpoint.traffic == traffic
    assert (endpoint.mirror_traffic or {}) == mirror and sum(endpoint.traffic.values()) == 100
    for colour in ("blue", "green"):
        d = load_online_deployment(tmp_path / f"{colour}.yaml")
        assert d.name == colour and d.endpoint_name == endpoint.name
        assert d.code_configuration.scoring_script == "score.py" and d.tags["model_version"] == "3"
        assert set(d.data_collector.collections) == {"model_inputs", "model_outputs"}
    batch = load_model_batch_deployment(tmp_path / "batch-deployment.yaml")
    assert batch.endpoint_name == f"diabetes-{env}-batch" and batch.settings.mini_batch_size == 10


@pytest.mark.parametrize("override,message", [
    ("azure.online.traffic={blue: 80, green: 10}", "azure.online.traffic: blue=80, green=10 sums to 90, not 100"),
    ("azure.online.traffic={blue: 90, red: 10}", "azure.online: unknown deployment 'red'; the deployments are blue and green"),
    ("azure.online.mirror={blue: 10}", "azure.online.mirror: blue already takes live traffic"),
    ("azure.online.name='{model}_{env}_endpoint_for_the_whole_company'",
     "online endpoint name 'diabetes-stage-endpoint-for-the-whole-company' is not valid in Azure ML"),
])
def test_bad_endpoint_params_are_one_line_naming_the_key(package, override, message):
    with pytest.raises(AzureSpecError) as info:
        deployment.build_specs(package, _params("stage", override))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("breakage,message", [
    (lambda p: (p / "score.py").unlink(), "no score.py; run the deploy stage first"),
    (lambda p: (p / "score.py").write_text("def init(:\n"), "score.py:1: does not parse"),
    (lambda p: (p / "score.py").write_text("def init():\n    pass\n"), "score.py: no run() (the Azure ML scoring contract)"),
])
def test_the_scoring_script_must_exist_parse_and_keep_the_contract(package, tmp_path, breakage, message):
    import shutil

    broken = tmp_path / "package"
    shutil.copytree(package, broken)
    breakage(broken)
    with pytest.raises(AzureSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deployment.build_specs(broken, _params())


def _fake_client():
    from azure.ai.ml.operations import OnlineDeploymentOperations, OnlineEndpointOperations

    return SimpleNamespace(online_endpoints=create_autospec(OnlineEndpointOperations, instance=True),
                           online_deployments=create_autospec(OnlineDeploymentOperations, instance=True))


def _sent(operations):
    return [c.args[0] for c in operations.begin_create_or_update.call_args_list]


def test_first_deploy_creates_the_endpoint_both_colours_then_sets_traffic(package):
    from azure.core.exceptions import ResourceNotFoundError

    client = _fake_client()
    specs = deployment.build_specs(package, _params("stage"))
    existing = []
    client.online_endpoints.get.side_effect = lambda name: existing[-1] if existing else (_ for _ in ()).throw(
        ResourceNotFoundError("not found"))
    client.online_endpoints.begin_create_or_update.side_effect = lambda e: (
        existing.append(e), SimpleNamespace(result=lambda: e))[1]
    said = []
    rollout.EndpointRollout(client, specs, say=said.append).deploy()
    endpoints = _sent(client.online_endpoints)
    assert len(endpoints) == 2 and endpoints[-1].traffic == {"blue": 90, "green": 10}
    assert [d.name for d in _sent(client.online_deployments)] == ["blue", "green"]
    assert said[-1] == "diabetes-stage: traffic blue=90%, green=10%"


def test_shift_promote_and_rollback_move_traffic_on_the_live_endpoint(package):
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    client = _fake_client()
    specs = deployment.build_specs(package, _params("stage"))
    live = ManagedOnlineEndpoint(name="diabetes-stage", traffic={"blue": 90, "green": 10})
    client.online_endpoints.get.return_value = live
    green = ManagedOnlineDeployment(name="green", endpoint_name="diabetes-stage", model="azureml:diabetes:4",
                                    tags={"model_version": "4"})
    client.online_deployments.get.return_value = green
    steps = rollout.EndpointRollout(client, specs, say=lambda line: None)

    steps.shift("green=25")
    assert _sent(client.online_endpoints)[-1].traffic == {"green": 25, "blue": 75}
    steps.promote()
    blue = _sent(client.online_deployments)[-1]
    assert blue.name == "blue" and blue.model == "azureml:diabetes:4" and blue.tags["model_version"] == "4"
    assert _sent(client.online_endpoints)[-1].traffic == {"blue": 100, "green": 0}
    steps.rollback()
    assert _sent(client.online_endpoints)[-1].traffic == {"blue": 100, "green": 0}
    with pytest.raises(AzureSpecError, match="--to green=120: expected blue=N or green=N"):
        steps.shift("green=120")
