"""Reaching the Azure ML workspace: one module, one documented order, one error naming every attempt.

Where the workspace's coordinates (subscription, resource group, workspace name) come from, first
found wins:

1. ``config.json`` (or ``.azureml/config.json``) in the project, downloaded from the portal. It
   holds coordinates only, never a key.
2. Inside an Azure ML job: the ``AZUREML_ARM_SUBSCRIPTION``, ``AZUREML_ARM_RESOURCEGROUP`` and
   ``AZUREML_ARM_WORKSPACE_NAME`` variables the job runs with.
3. ``params.azure.workspace``, filled from ``AZURE_SUBSCRIPTION_ID``, ``AZURE_RESOURCE_GROUP`` and
   ``AZUREML_WORKSPACE_NAME`` (params/base.yaml), which is how CI names it.

The credential is azure-identity's: a service principal or workload identity from
``AZURE_CLIENT_ID`` / ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_SECRET`` (or ``AZURE_FEDERATED_TOKEN_FILE``)
when those are set; the compute's managed identity inside a job; otherwise DefaultAzureCredential
(``az login``, VS Code, ...). Nothing here writes or logs a secret: only the *names* of variables.
azure-ai-ml and azure-identity are imported inside the functions, never when the CLI starts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import AzureCallError, WorkspaceError

JOB_VARIABLES = ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")
SERVICE_PRINCIPAL = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID")
MANAGEMENT_SCOPE = "https://management.azure.com/.default"


def quiet_azure_logs() -> None:
    """azure-ai-ml prints 'experimental class' and 'anonymous registration' notes on every build.

    Its package sets up its own logger level when imported, so import it first, then quieten.
    """
    import azure.ai.ml  # noqa: F401

    for name in ("azure.ai.ml", "azure.identity", "azure.core"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_error(exc: Exception) -> str:
    """An azure-ai-ml load error in one line: the schema's complaint, without its links and advice."""
    text = str(exc).split("Visit this link")[0]
    return " ".join(text.split()) or type(exc).__name__


@contextmanager
def azure_call_errors() -> Iterator[None]:
    """Turn an azure-core error into one line naming what Azure said; exit 2 when it is the caller's
    mistake (HTTP 4xx: an unknown job, endpoint or compute), else 1."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        said = " ".join(str(getattr(exc, "message", None) or exc).split()) or type(exc).__name__
        error = AzureCallError(f"Azure ML: {type(exc).__name__}{f' (HTTP {status})' if status else ''}: {said}")
        if status is not None and 400 <= status < 500:
            error.exit_code = 2
        raise error from None


@dataclass(frozen=True)
class Coordinates:
    """Where the workspace is, and which source said so."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str


def find_coordinates(azure_params: Mapping, root: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> tuple[Coordinates | None, list[str]]:
    """The first complete set of coordinates in the documented order, and a line per source tried."""
    environ = os.environ if environ is None else environ
    root = root or paths.project_root()
    tried = []
    for candidate in (root / "config.json", root / ".azureml" / "config.json"):
        if candidate.is_file():
            try:
                config = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                tried.append(f"{paths.relative_to_root(candidate, root)}: not valid JSON ({exc.msg}); download it "
                             "again from the portal (workspace overview, 'Download config.json')")
                continue
            keys = ("subscription_id", "resource_group", "workspace_name")
            missing = [k for k in keys if not config.get(k)]
            if not missing:
                return Coordinates(*(str(config[k]) for k in keys),
                                   source=paths.relative_to_root(candidate, root)), tried
            tried.append(f"{paths.relative_to_root(candidate, root)}: lacks {', '.join(missing)}")
    if not any(t.startswith(("config.json", ".azureml")) for t in tried):
        tried.append("config.json: none in the project root or .azureml/; download it from the portal "
                     "(workspace overview, 'Download config.json') for local work")
    job = [environ.get(k, "") for k in JOB_VARIABLES]
    if all(job):
        return Coordinates(*job, source="the Azure ML job's AZUREML_ARM_* variables"), tried
    tried.append("AZUREML_ARM_*: not set (they are set inside an Azure ML job)")
    workspace = azure_params["workspace"]
    given = [workspace.get("subscription_id"), workspace.get("resource_group"), workspace.get("name")]
    if all(given):
        return Coordinates(*given, source="params azure.workspace"), tried
    tried.append("params azure.workspace: incomplete; set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and "
                 "AZUREML_WORKSPACE_NAME (as CI does)")
    return None, tried


def credential_plan(environ: Mapping[str, str] | None = None) -> str:
    """Which azure-identity credential will be tried first, in words (names of variables only)."""
    environ = os.environ if environ is None else environ
    if all(environ.get(k) for k in SERVICE_PRINCIPAL):
        if environ.get("AZURE_FEDERATED_TOKEN_FILE"):
            return "workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)"
        if environ.get("AZURE_CLIENT_SECRET"):
            return "service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)"
    if environ.get("DEFAULT_IDENTITY_CLIENT_ID") or environ.get("MSI_ENDPOINT"):
        return "the compute's managed identity (inside an Azure ML job)"
    return "DefaultAzureCredential (az login, VS Code, Azure PowerShell, ...)"


def default_credential(environ: Mapping[str, str] | None = None):
    """azure-identity's DefaultAzureCredential, told the job identity's client id when there is one."""
    from azure.identity import DefaultAzureCredential

    environ = os.environ if environ is None else environ
    client_id = environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


def connect(azure_params: Mapping, credential=None, client_factory: Callable | None = None,
            check: bool = True, root: Path | None = None):
    """An MLClient for the workspace; WorkspaceError listing every attempt when it cannot be reached.

    ``credential`` and ``client_factory`` exist for tests and for callers that already hold them;
    by default the credential is azure-identity's and the factory is azure.ai.ml.MLClient.
    With ``check``, a token is requested once, so a bad login fails here and not mid-submit.
    """
    coordinates, tried = find_coordinates(azure_params, root)
    if coordinates is None:
        raise WorkspaceError("no Azure ML workspace coordinates found; tried, in order: " + "; ".join(tried)
                             + " (docs/TestInitialSetup.md)")
    plan = credential_plan()
    credential = credential or default_credential()
    if check:
        try:
            credential.get_token(MANAGEMENT_SCOPE)
        except Exception as exc:  # azure-identity raises several types; all mean "not signed in"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkspaceError(
                f"workspace {coordinates.workspace_name} (from {coordinates.source}) found, but signing in "
                f"failed with {plan}: {first}. Fix one of: `az login` on a laptop; AZURE_CLIENT_ID, "
                "AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE) in CI; a managed "
                "identity on the compute inside a job (docs/TestInitialSetup.md)") from None
    if client_factory is None:
        from azure.ai.ml import MLClient

        client_factory = MLClient
    return client_factory(credential=credential, subscription_id=coordinates.subscription_id,
                          resource_group_name=coordinates.resource_group,
                          workspace_name=coordinates.workspace_name)
