"""Azure ML data: workspace data assets as a source, each model's data as a job input, and
``data register --azure``.

- **Locally**, ``data.source: azureml`` resolves ``azureml:<name>:<version>`` (or ``@latest``) through the
  MLClient (``data.get``), finds the storage behind the asset (its datastore), and downloads it once
  into ``data/cache/azureml/<name>/<version>/``; an ``azureml://`` datastore URI is fetched the same way.
- **In a job**, the same data arrives as the reader step's ``data`` input (jobs.py); the step reads the
  mount and calls no SDK.
- **Registering**: a version of the local registry becomes a data asset of the same name and version,
  with the content hash in its tags.

azure-ai-ml is imported inside the functions. Everything that talks to Azure goes through an MLClient,
so tests hand in a fake one at that boundary.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from modelfactory import paths
from modelfactory.core import remote_data
from modelfactory.errors import AzureSpecError, DataValidationError, ParamsError

ASSET = re.compile(r"^azureml:(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?::(?P<version>[A-Za-z0-9_.-]+)|@(?P<label>latest))$")
DATASTORE_URI = re.compile(r"^azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
                           r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>[^?#]*)$", re.IGNORECASE)
TYPES = ("uri_file", "uri_folder", "mltable")
WORKSPACE_RECORD = "azureml.json"  # beside a registry version: the workspace asset made from it
WORKSPACE_VARIABLES = {"subscription_id": "AZURE_SUBSCRIPTION_ID", "resource_group": "AZURE_RESOURCE_GROUP",
                       "name": "AZUREML_WORKSPACE_NAME"}


@dataclass(frozen=True)
class AssetRef:
    """What ``data.dataset`` names for ``data.source: azureml``: an asset (and version) or a datastore URI."""

    name: str
    version: str | None = None   # None with label "latest", or for a URI
    label: str | None = None
    uri: str | None = None       # an azureml:// datastore URI

    @property
    def reference(self) -> str:
        """How a job input names it: ``azureml:name:version``, ``azureml:name@latest`` or the URI."""
        if self.uri:
            return self.uri
        return f"azureml:{self.name}:{self.version}" if self.version else f"azureml:{self.name}@{self.label}"


@dataclass(frozen=True)
class Fetched:
    """A resolved azureml source: its name, URI, version and the local files it was downloaded to."""

    name: str
    uri: str
    version: str | None
    files: tuple[Path, ...]


def parse_reference(dataset: str) -> AssetRef:
    """``azureml:<name>:<version>``, ``azureml:<name>@latest`` or ``azureml://...``; ParamsError otherwise."""
    found = ASSET.match(dataset)
    if found:
        return AssetRef(found["name"], found["version"], found["label"])
    if DATASTORE_URI.match(dataset):
        path = DATASTORE_URI.match(dataset)["path"].rstrip("/")
        return AssetRef(PurePosixPath(path).name or "data", uri=dataset)
    raise ParamsError(f"data.dataset '{dataset}': not an Azure ML data reference; expected azureml:<name>:<version>, "
                      "azureml:<name>@latest or azureml://datastores/<datastore>/paths/<path>")


def connect():
    """The MLClient for data: the workspace found as for every Azure command (workspace.py): config.json,
    then the job's variables, then the variables params/base.yaml maps to azure.workspace."""
    from modelfactory.ops.azureml import workspace

    workspace.quiet_azure_logs()
    coordinates = {key: os.environ.get(variable) for key, variable in WORKSPACE_VARIABLES.items()}
    return workspace.connect({"workspace": coordinates})


def resolve(client, ref: AssetRef):
    """The workspace's Data entity for an asset reference (one ``data.get``)."""
    from modelfactory.ops.azureml.workspace import azure_call_errors

    with azure_call_errors():
        if ref.version:
            return client.data.get(name=ref.name, version=ref.version)
        return client.data.get(name=ref.name, label=ref.label)


def storage_location(client, uri: str) -> remote_data.BlobLocation:
    """The storage account, container and path behind an asset's path or a datastore URI."""
    from modelfactory.ops.azureml.workspace import azure_call_errors

    found = DATASTORE_URI.match(uri)
    if found:
        with azure_call_errors():
            store = client.datastores.get(found["datastore"])
        container = getattr(store, "container_name", None) or getattr(store, "filesystem", None)
        account = getattr(store, "account_name", None)
        if not (container and account):
            raise DataValidationError(f"{uri}: datastore {found['datastore']} is a {getattr(store, 'type', 'kind')} "
                                      "datastore; only blob and Data Lake Gen2 datastores can be read here")
        return remote_data.BlobLocation(account, container, found["path"].strip("/"))
    https = re.match(r"^https://(?P<account>[a-z0-9]+)\.(?:blob|dfs)\.core\.windows\.net/(?P<container>[^/?#]+)"
                     r"(?P<path>/[^?#]*)?$", uri)
    if https:
        return remote_data.BlobLocation(https["account"], https["container"], (https["path"] or "").strip("/"))
    return remote_data.parse_blob_uri(uri)


def fetch(dataset: str, client=None) -> Fetched:
    """Resolve ``data.dataset`` and download it once into the cache; the local files to read.

    A pinned version already in the cache is read from there without asking the workspace anything.
    """
    ref = parse_reference(dataset)
    if ref.uri:
        found = DATASTORE_URI.match(ref.uri)
        folder = remote_data.cache_dir("azureml", "datastores", found["datastore"], *found["path"].strip("/").split("/"))
        client = client or connect()
        files = remote_data.fetch(storage_location(client, ref.uri), folder)
        return Fetched(ref.name, ref.uri, None, files)
    if ref.version:
        cached = remote_data.cached_files(remote_data.cache_dir("azureml", ref.name, ref.version))
        if cached:
            return Fetched(ref.name, ref.reference, ref.version, cached)
    client = client or connect()
    asset = resolve(client, ref)
    version = str(asset.version)
    folder = remote_data.cache_dir("azureml", ref.name, version)
    files = remote_data.fetch(storage_location(client, str(asset.path)), folder, immutable=True)
    return Fetched(ref.name, f"azureml:{ref.name}:{version}", version, files)


# -- job inputs ------------------------------------------------------------------------------------

def job_input(data_params: Mapping, client=None):
    """The Azure ML job input that carries a model's data, and the ``data.dataset`` the job records.

    Returns ``(Input, dataset)``, or ``(None, dataset)`` for ``sklearn`` (the step loads it itself).
    Local data (``file``, ``registered``) is uploaded from its path at submission; a registered
    version that ``data register --azure`` made a workspace asset is referenced as that asset.
    ``dataset`` pins a registered ``latest`` to the version uploaded now, so the steps record the
    version they read. An asset's ``@latest`` stays as it is: Azure ML resolves it when each job
    starts, so the retraining schedule (which reruns this pipeline) takes each new version.
    """
    from azure.ai.ml import Input

    from modelfactory.ops import data_registry
    from modelfactory.core import sources

    kind, dataset = data_params["source"], data_params["dataset"]
    if kind == "sklearn":
        return None, dataset
    if kind == "file":
        if any(map(_has_magic, Path(dataset).parts[:-1])):
            raise ParamsError(f"data.dataset {dataset}: for Azure ML only the file name may be a glob (the job "
                              "input is its folder)")
        files = sources.find_files(dataset)
        for file in files:  # a missing or unreadable file stops here, in one line (and no hash is read)
            sources.check_file(file)
        if _has_magic(Path(dataset).name) or files[0].parent.samefile(_project_path(dataset)):
            return Input(type="uri_folder", path=str(files[0].parent)), dataset  # a glob's folder, or the folder
        return Input(type="uri_file", path=str(files[0])), dataset
    if kind == "registered":
        name, _, version = dataset.partition(":")
        record = data_registry.find_version(name, version or "latest")
        pinned = f"{name}:{record['version']}"
        asset = workspace_asset(record)
        if asset:
            return Input(type="uri_file", path=asset["asset"]), pinned
        return Input(type="uri_file", path=str(data_registry.version_file(record))), pinned
    if kind == "azureml":
        ref = parse_reference(dataset)
        if ref.uri:
            return Input(type=_uri_type(ref.uri), path=ref.uri), dataset
        declared = data_params.get("asset_type")
        if client is not None:  # the asset must exist, and its type is the workspace's word
            asset = resolve(client, ref)
            if declared and declared != asset.type:
                raise ParamsError(f"data.asset_type: {declared}, but azureml:{ref.name}:{asset.version} is a "
                                  f"{asset.type} asset")
            declared = asset.type
        if declared not in TYPES:
            raise ParamsError(f"data.asset_type: set it to {ref.reference}'s type ({', '.join(TYPES)}); a dry run "
                              "does not ask the workspace")
        return Input(type=declared, path=ref.reference), ref.reference
    if kind == "blob":
        location = remote_data.parse_blob_uri(dataset)
        if _has_magic(location.path):
            folder = PurePosixPath(location.path).parent.as_posix()
            location = remote_data.BlobLocation(location.account, location.container, folder)
            return Input(type="uri_folder", path=_blob_input_uri(dataset, location)), dataset
        return Input(type=_uri_type(location.path), path=_blob_input_uri(dataset, location)), dataset
    raise ParamsError(f"data.source {kind}: no Azure ML job input for this source")


def _project_path(dataset: str) -> Path:
    given = Path(dataset).expanduser()
    return given if given.is_absolute() else paths.project_root() / given


def _blob_input_uri(dataset: str, location: remote_data.BlobLocation) -> str:
    # Azure ML takes abfss:// and https:// paths, not fsspec's az://
    return location.abfss if dataset.startswith("abfs") else location.https


def _uri_type(path: str) -> str:
    return "uri_file" if PurePosixPath(path.rstrip("/")).suffix.lower() in remote_data.SUFFIXES else "uri_folder"


def _has_magic(part: str) -> bool:
    return any(ch in part for ch in "*?[")


# -- data register --azure -------------------------------------------------------------------------

def asset_spec(record: Mapping):
    """The Azure ML data asset for one registry version: same name and version, the hash in its tags."""
    from azure.ai.ml.entities import Data

    from modelfactory.ops import data_registry

    return Data(name=record["name"], version=str(record["version"]), type="uri_file",
                path=str(data_registry.version_file(record)),
                description=f"modelfactory data registry {record['name']}:{record['version']}: {record['rows']} rows, "
                            f"{len(record['columns'])} columns, sha256 {record['hash']}",
                tags={"content_hash": record["hash"], "rows": str(record["rows"]),
                      "columns": str(len(record["columns"])), "registered": record["registered"],
                      "source": "modelfactory data registry"})


def write_asset_spec(record: Mapping, folder: Path) -> tuple[Path, object]:
    """Write ``data.yaml`` for the version and load it back with azure-ai-ml's ``load_data``; the
    loaded asset must be the same version with the same content hash."""
    from azure.ai.ml import load_data

    from modelfactory.ops.azureml import workspace

    workspace.quiet_azure_logs()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.yaml"
    asset_spec(record).dump(path)
    try:
        loaded = load_data(str(path))
    except Exception as exc:  # azure-ai-ml raises marshmallow, its own and OS errors for a bad file
        raise AzureSpecError(f"{paths.relative_to_root(path)}: does not load: {workspace.load_error(exc)}") from None
    expected = (record["name"], str(record["version"]), "uri_file", record["hash"])
    got = (loaded.name, str(loaded.version), loaded.type, (loaded.tags or {}).get("content_hash"))
    if got != expected:
        raise AzureSpecError(f"{paths.relative_to_root(path)}: loads as {got}, expected {expected}")
    return path, loaded


def create_asset(client, asset, record: Mapping) -> dict:
    """Create the asset in the workspace and note it beside the registry version; the note says which
    workspace asset holds this version (``data show`` prints it; runs that read it record it)."""
    from modelfactory.ops import data_registry
    from modelfactory.ops.azureml.workspace import azure_call_errors

    with azure_call_errors():
        created = client.data.create_or_update(asset)
    note = {"asset": f"azureml:{created.name}:{created.version}", "workspace": getattr(client, "workspace_name", None),
            "path": str(getattr(created, "path", "") or ""),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    folder = data_registry.version_file(record).parent
    staging = folder / f".{WORKSPACE_RECORD}.{os.getpid()}"
    staging.write_text(json.dumps(note, indent=2))
    staging.replace(folder / WORKSPACE_RECORD)
    return note


def workspace_asset(record: Mapping) -> dict | None:
    """The workspace asset ``data register --azure`` made of a registry version, if it did."""
    from modelfactory.ops import data_registry

    note = data_registry.version_file(record).parent / WORKSPACE_RECORD
    try:
        return json.loads(note.read_text())
    except (OSError, json.JSONDecodeError):
        return None
