"""The CI/CD release steps that `modelfactory endpoint` gained for the pipelines: `smoke` (the package's
sample request to green alone) and `batch` (the batch endpoint with its default deployment), through a fake
MLClient (create_autospec of azure-ai-ml's operations classes, as in test_azureml_endpoints.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest.mock import create_autospec

import pytest

from modelfactory.errors import ModelfactoryError
from modelfactory.ops.azureml import deployment, rollout
from test_azureml_endpoints import _params, package  # noqa: F401 (a module-scoped fixture)


def _client():
    from azure.ai.ml.operations import (BatchDeploymentOperations, BatchEndpointOperations,
                                        OnlineDeploymentOperations, OnlineEndpointOperations)

    return SimpleNamespace(online_endpoints=create_autospec(OnlineEndpointOperations, instance=True),
                           online_deployments=create_autospec(OnlineDeploymentOperations, instance=True),
                           batch_endpoints=create_autospec(BatchEndpointOperations, instance=True),
                           batch_deployments=create_autospec(BatchDeploymentOperations, instance=True))


@pytest.mark.parametrize("reply", [json.dumps({"predictions": [151.5]}),
                                   json.dumps(json.dumps({"predictions": [151.5]}))])
def test_smoke_sends_the_sample_request_to_green_and_takes_one_prediction_a_row(package, reply):  # noqa: F811
    client = _client()
    client.online_endpoints.invoke.return_value = reply
    steps = rollout.EndpointRollout(client, deployment.build_specs(package, _params("stage")), say=lambda s: None)
    assert steps.smoke(package / "sample-request.json") == [151.5]
    call = client.online_endpoints.invoke.call_args.kwargs
    assert call == {"endpoint_name": "diabetes-stage", "deployment_name": "green",
                    "request_file": str(package / "sample-request.json")}


@pytest.mark.parametrize("reply,message", [("upstream request timeout", "not {\"predictions\""),
                                           (json.dumps({"predictions": []}), "1 row\\(s\\) sent, green answered \\[\\]"),
                                           (json.dumps({"error": "boom"}), "green answered")])
def test_a_bad_smoke_answer_fails_in_one_line(package, reply, message):  # noqa: F811
    client = _client()
    client.online_endpoints.invoke.return_value = reply
    steps = rollout.EndpointRollout(client, deployment.build_specs(package, _params("stage")), say=lambda s: None)
    with pytest.raises(ModelfactoryError, match=f"diabetes-stage: smoke test failed: .*{message}"):
        steps.smoke(package / "sample-request.json")


def test_batch_creates_the_endpoint_and_deployment_and_makes_it_the_default(package):  # noqa: F811
    from azure.ai.ml.entities import BatchEndpoint

    client = _client()
    specs = deployment.build_specs(package, _params("prod"))
    live = BatchEndpoint(name=specs.batch_endpoint.name)
    client.batch_endpoints.get.return_value = live
    rollout.EndpointRollout(client, specs, say=lambda s: None).batch()
    sent = [c.args[0] for c in client.batch_endpoints.begin_create_or_update.call_args_list]
    assert sent[0] is specs.batch_endpoint and sent[-1] is live
    assert live.defaults == {"deployment_name": specs.batch_deployment.name}
    assert live._to_rest_batch_endpoint("westeurope").properties.defaults.deployment_name == specs.batch_deployment.name
    assert client.batch_deployments.begin_create_or_update.call_args.args[0] is specs.batch_deployment
