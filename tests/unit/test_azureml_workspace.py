"""Reaching the workspace: the documented order, one error naming every attempt, no secret shown."""

from __future__ import annotations

import json

import pytest

from modelfactory.errors import WorkspaceError
from modelfactory.ops.azureml import workspace

PARAMS = {"workspace": {"subscription_id": "sub-params", "resource_group": "rg-params", "name": "ws-params"}}
EMPTY = {"workspace": {"subscription_id": None, "resource_group": None, "name": None}}
JOB = {"AZUREML_ARM_SUBSCRIPTION": "sub-job", "AZUREML_ARM_RESOURCEGROUP": "rg-job",
       "AZUREML_ARM_WORKSPACE_NAME": "ws-job"}


def _config(root, **values):
    (root / "config.json").write_text(json.dumps(values))


def test_config_json_comes_first(tmp_path):
    _config(tmp_path, subscription_id="sub-file", resource_group="rg-file", workspace_name="ws-file")
    found, tried = workspace.find_coordinates(PARAMS, tmp_path, environ=JOB)
    assert (found.subscription_id, found.workspace_name, found.source) == ("sub-file", "ws-file", "config.json")
    assert tried == []


def test_inside_a_job_the_job_variables_come_next(tmp_path):
    found, tried = workspace.find_coordinates(PARAMS, tmp_path, environ=JOB)
    assert (found.resource_group, found.source) == ("rg-job", "the Azure ML job's AZUREML_ARM_* variables")
    assert tried[0].startswith("config.json: none in the project root")


def test_then_params_filled_from_ci_variables(tmp_path):
    _config(tmp_path, subscription_id="sub-file")  # incomplete: said, and skipped
    found, tried = workspace.find_coordinates(PARAMS, tmp_path, environ={})
    assert found.workspace_name == "ws-params"
    assert tried == ["config.json: lacks resource_group, workspace_name",
                     "AZUREML_ARM_*: not set (they are set inside an Azure ML job)"]


def test_nothing_found_is_one_error_listing_each_way_and_its_fix(tmp_path):
    with pytest.raises(WorkspaceError) as info:
        workspace.connect(EMPTY, credential=object(), root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no Azure ML workspace coordinates found; tried, in order: config.json: none")
    assert "AZUREML_ARM_*: not set" in message and "set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and " \
                                                    "AZUREML_WORKSPACE_NAME" in message


class RefusingCredential:
    def get_token(self, *scopes, **kwargs):
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError("EnvironmentCredential: Authentication failed: invalid client secret")


def test_a_failed_sign_in_names_the_workspace_the_credential_and_the_fixes(tmp_path, monkeypatch):
    secret = "s3cr3t-value-never-shown"
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222")
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret)
    with pytest.raises(WorkspaceError) as info:
        workspace.connect(PARAMS, credential=RefusingCredential(), root=tmp_path)
    message = str(info.value)
    assert message.startswith("workspace ws-params (from params azure.workspace) found, but signing in failed "
                              "with service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)")
    assert "invalid client secret" in message and "az login" in message
    assert secret not in message


class GoodCredential:
    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken("token", 4102444800)


def test_connect_builds_a_real_mlclient_for_the_coordinates(tmp_path):
    from azure.ai.ml import MLClient

    _config(tmp_path, subscription_id="sub-file", resource_group="rg-file", workspace_name="ws-file")
    client = workspace.connect(PARAMS, credential=GoodCredential(), root=tmp_path)
    assert isinstance(client, MLClient)
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == ("sub-file", "rg-file", "ws-file")


@pytest.mark.parametrize("environ,plan", [
    ({"AZURE_CLIENT_ID": "id-value", "AZURE_TENANT_ID": "tenant-value", "AZURE_FEDERATED_TOKEN_FILE": "/token-path"},
     "workload identity"),
    ({"AZURE_CLIENT_ID": "id-value", "AZURE_TENANT_ID": "tenant-value", "AZURE_CLIENT_SECRET": "secret-value"},
     "service principal"),
    ({"DEFAULT_IDENTITY_CLIENT_ID": "identity-value"}, "the compute's managed identity"),
    ({}, "DefaultAzureCredential"),
])
def test_credential_plan_names_only_variables(environ, plan):
    said = workspace.credential_plan(environ)
    assert said.startswith(plan)
    assert not [value for value in environ.values() if value in said]


def test_an_unknown_job_is_one_line_not_a_traceback(monkeypatch, capsys):
    from types import SimpleNamespace
    from unittest.mock import create_autospec

    from azure.ai.ml.operations import JobOperations
    from azure.core.exceptions import ResourceNotFoundError

    from conftest import ROOT
    from modelfactory.ops import cli

    jobs = create_autospec(JobOperations, instance=True)
    missing = ResourceNotFoundError("(UserError) Job nope-123 was not found\nCode: UserError")
    missing.status_code = 404
    jobs.get.side_effect = missing
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(ROOT))
    monkeypatch.setattr(workspace, "connect", lambda *args, **kwargs: SimpleNamespace(jobs=jobs))
    assert cli.main(["jobs", "show", "nope-123"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: Azure ML: ResourceNotFoundError (HTTP 404): (UserError) Job nope-123 was not found "
                   "Code: UserError\n")
