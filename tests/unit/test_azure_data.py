"""Azure data, offline: the ``blob`` and ``azureml`` sources, a job step reading its mounted input, the
model's data as the pipeline's job input, and ``data register --azure``.

Nothing here reaches Azure. Storage is fsspec's memory filesystem, put in fsspec's registry where adlfs
sits (``abfs``); the workspace is a fake MLClient, handed to workspace.connect where azure.ai.ml.MLClient
would be, whose operations are autospecs of azure-ai-ml's own and whose answers are azure-ai-ml entities.
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from unittest.mock import create_autospec

import pandas as pd
import pytest
import yaml

from conftest import copy_project
from modelfactory.core import data, sources
from modelfactory.errors import DataValidationError, ParamsError, SecretInParamsError

ACCOUNT, CONTAINER = "mfacct", "landing"
ABFSS = f"abfss://{CONTAINER}@{ACCOUNT}.dfs.core.windows.net"


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = copy_project(tmp_path / "project", whole=True)
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(root))
    for var in ("MODELFACTORY_DATA_DIR", "MODELFACTORY_RUNS_DIR", "MODELFACTORY_DATA_INPUT", "MODELFACTORY_DATA_CACHE_DIR",
                "AZURE_STORAGE_ACCOUNT_NAME", "MODELFACTORY_ENV", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def storage(monkeypatch):
    """An empty in-memory blob store where adlfs would be."""
    import sys

    import fsspec  # noqa: F401  (its registry module, which the package's `registry` name shadows)
    from fsspec.implementations.memory import MemoryFileSystem

    monkeypatch.setitem(sys.modules["fsspec.registry"]._registry, "abfs", MemoryFileSystem)
    monkeypatch.setattr(MemoryFileSystem, "store", {})
    monkeypatch.setattr(MemoryFileSystem, "pseudo_dirs", [""])
    MemoryFileSystem.clear_instance_cache()
    return MemoryFileSystem()


@pytest.fixture(scope="module")
def penguins():
    return pd.DataFrame({"bill_length_mm": [39.1, 39.5, None, 46.5, 50.0, 45.2],
                         "island": ["Torgersen", "Biscoe", "Dream", "Biscoe", "Dream", "Biscoe"],
                         "species": ["Adelie", "Adelie", "Adelie", "Gentoo", "Chinstrap", "Gentoo"]})


def _put(fs, path: str, frame: pd.DataFrame) -> bytes:
    body = frame.to_csv(index=False).encode()
    fs.pipe(path, body)
    return body


def spec(source: str, dataset: str, **extra) -> dict:
    return {"source": source, "dataset": dataset, "target": "species", **extra}


# -- blob ------------------------------------------------------------------------------------------

def test_blob_source_reads_through_fsspec_into_the_cache_and_records_its_hash(project, storage, penguins):
    body = _put(storage, f"/{CONTAINER}/raw/penguins.csv", penguins)
    frame = data.load_dataset(spec("blob", f"{ABFSS}/raw/penguins.csv"))
    assert frame.equals(pd.read_csv(f"memory://{CONTAINER}/raw/penguins.csv"))
    assert frame.attrs["source"] == {"source": "blob", "name": "penguins.csv", "uri": f"{ABFSS}/raw/penguins.csv",
                                     "version": None, "hash": hashlib.sha256(body).hexdigest()}
    cached = project / "data" / "cache" / "blob" / ACCOUNT / CONTAINER / "raw" / "penguins.csv" / "penguins.csv"
    assert cached.read_bytes() == body

    # unchanged in storage: the copy is reused, not fetched again
    before = cached.stat().st_mtime_ns
    assert sources.locate(spec("blob", f"{ABFSS}/raw/penguins.csv")).files == (cached,)
    assert cached.stat().st_mtime_ns == before
    # changed in storage: fetched again, and the hash says so
    changed = _put(storage, f"/{CONTAINER}/raw/penguins.csv", penguins.head(4))
    ref = sources.locate(spec("blob", f"{ABFSS}/raw/penguins.csv"))
    assert ref.hash == hashlib.sha256(changed).hexdigest() and cached.read_bytes() == changed


def test_an_az_glob_reads_the_matching_files_of_the_account_in_the_environment(project, storage, penguins, monkeypatch):
    _put(storage, f"/{CONTAINER}/drops/2026-01.csv", penguins.head(3))
    _put(storage, f"/{CONTAINER}/drops/2026-02.csv", penguins.tail(3))
    _put(storage, f"/{CONTAINER}/drops/2025-12.csv", penguins)  # not matched
    with pytest.raises(ParamsError, match="an az:// URI does not name its storage account; export "
                                          "AZURE_STORAGE_ACCOUNT_NAME"):
        sources.locate(spec("blob", f"az://{CONTAINER}/drops/2026-*.csv"))
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    frame = data.load_dataset(spec("blob", f"az://{CONTAINER}/drops/2026-*.csv"))
    assert len(frame) == 6 and list(frame["species"]) == list(penguins["species"])


def test_a_missing_blob_is_one_line(project, storage):
    with pytest.raises(DataValidationError) as info:
        sources.locate(spec("blob", f"{ABFSS}/raw/nope.csv"))
    assert str(info.value) == f"{ABFSS}/raw/nope.csv: no such file or folder (or the identity may not read it)"


def test_the_blob_filesystem_is_adlfs_signed_in_with_default_azure_credential():
    from adlfs import AzureBlobFileSystem
    from azure.identity.aio import DefaultAzureCredential

    from modelfactory.core import remote_data

    fs = remote_data.filesystem(ACCOUNT)  # builds clients only; nothing is sent
    assert isinstance(fs, AzureBlobFileSystem) and fs.account_name == ACCOUNT
    assert isinstance(fs.credential, DefaultAzureCredential)
    assert fs.account_key is None and fs.sas_token is None and fs.connection_string is None


SAS = "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2027-01-01T00:00:00Z&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo%3D"
ACCOUNT_KEY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3A="


@pytest.mark.parametrize("dataset,secret", [
    (f"{ABFSS}/raw/penguins.csv?{SAS}", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"),
    (f"https://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/penguins.csv?{SAS}", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"),
    (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
     ACCOUNT_KEY[:20]),
    (f"abfss://{CONTAINER}:{ACCOUNT_KEY}@{ACCOUNT}.dfs.core.windows.net/penguins.csv", ACCOUNT_KEY[:20]),
])
def test_the_secret_guard_refuses_keys_in_a_data_uri_without_showing_them(project, dataset, secret):
    from modelfactory.params import resolve

    (project / "params" / "models" / "penguins.yaml").write_text(yaml.safe_dump(
        {**PENGUINS, "data": {**PENGUINS["data"], "source": "blob", "dataset": dataset}}))
    with pytest.raises(SecretInParamsError) as info:
        resolve("penguins", "dev")
    message = str(info.value)
    assert message.startswith("params/models/penguins.yaml: data.dataset: looks like") and secret not in message
    with pytest.raises(SecretInParamsError) as info:
        resolve("diabetes", "dev", [f"data.dataset={dataset}"])
    assert str(info.value).startswith("--set: ") and secret not in str(info.value)


def test_a_blob_uri_with_any_query_string_is_refused_without_echoing_it():
    from modelfactory.core import remote_data

    with pytest.raises(ParamsError) as info:
        remote_data.parse_blob_uri(f"{ABFSS}/p.csv?se=2027&sp=r&sv=x&sr=b&st=short")
    assert "takes no query string" in str(info.value) and "se=2027" not in str(info.value)


# -- azureml ---------------------------------------------------------------------------------------

class GoodCredential:
    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken("token", 4102444800)


@pytest.fixture
def workspace(project, monkeypatch):
    """A fake workspace behind azure.ai.ml.MLClient: assets and datastores are azure-ai-ml entities."""
    import azure.ai.ml
    import azure.identity
    from azure.ai.ml.entities import AzureBlobDatastore, Data
    from azure.ai.ml.operations import DataOperations, DatastoreOperations, JobOperations

    (project / "config.json").write_text(json.dumps({"subscription_id": "sub", "resource_group": "rg",
                                                     "workspace_name": "ws-test"}))
    assets = {("penguins", "3"): Data(name="penguins", version="3", type="uri_file",
                                      path="azureml://datastores/landing/paths/penguins/v3/penguins.csv"),
              ("penguins", "4"): Data(name="penguins", version="4", type="uri_folder",
                                      path=f"azureml://subscriptions/sub/resourcegroups/rg/workspaces/ws-test/datastores/"
                                           f"landing/paths/penguins/v4/"),
              ("tables", "1"): Data(name="tables", version="1", type="mltable", path="azureml://datastores/landing/paths/t/")}
    latest = {"penguins": "4", "tables": "1"}
    operations = create_autospec(DataOperations, instance=True)
    operations.get.side_effect = lambda name, version=None, label=None: assets[(name, version or latest[name])]
    operations.create_or_update.side_effect = lambda asset: Data(
        name=asset.name, version=asset.version, type=asset.type,
        path=f"azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/{asset.name}.csv")
    stores = create_autospec(DatastoreOperations, instance=True)
    stores.get.side_effect = lambda name: {"landing": AzureBlobDatastore(name="landing", account_name=ACCOUNT,
                                                                         container_name=CONTAINER)}[name]
    jobs = create_autospec(JobOperations, instance=True)
    jobs.create_or_update.side_effect = lambda job, experiment_name: SimpleNamespace(
        name="job-1", display_name=job.display_name, studio_url=None)
    client = SimpleNamespace(data=operations, datastores=stores, jobs=jobs, workspace_name="ws-test", made=[])

    def factory(**coordinates):
        client.made.append(coordinates)
        return client

    monkeypatch.setattr(azure.ai.ml, "MLClient", factory)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", GoodCredential)
    return client


def test_an_azureml_asset_resolves_through_the_client_and_downloads_once(project, storage, workspace, penguins):
    body = _put(storage, f"/{CONTAINER}/penguins/v3/penguins.csv", penguins)
    frame = data.load_dataset(spec("azureml", "azureml:penguins:3"))
    assert frame.equals(penguins)
    assert frame.attrs["source"] == {"source": "azureml", "name": "penguins", "uri": "azureml:penguins:3",
                                     "version": "3", "hash": hashlib.sha256(body).hexdigest()}
    assert (project / "data/cache/azureml/penguins/3/penguins.csv").read_bytes() == body
    workspace.data.get.assert_called_once_with(name="penguins", version="3")
    workspace.datastores.get.assert_called_once_with("landing")
    assert workspace.made == [{"credential": workspace.made[0]["credential"], "subscription_id": "sub",
                               "resource_group_name": "rg", "workspace_name": "ws-test"}]

    # a version is immutable: once cached, neither the workspace nor storage is asked again
    storage.rm(f"/{CONTAINER}/penguins/v3/penguins.csv")
    assert sources.locate(spec("azureml", "azureml:penguins:3")).hash == hashlib.sha256(body).hexdigest()
    assert workspace.data.get.call_count == 1 and len(workspace.made) == 1


def test_latest_is_resolved_to_the_version_it_names_and_that_version_is_recorded(project, storage, workspace, penguins):
    _put(storage, f"/{CONTAINER}/penguins/v4/a.csv", penguins.head(2))
    _put(storage, f"/{CONTAINER}/penguins/v4/b.csv", penguins.tail(4))
    ref = sources.locate(spec("azureml", "azureml:penguins@latest"))
    workspace.data.get.assert_called_once_with(name="penguins", label="latest")
    assert (ref.uri, ref.version) == ("azureml:penguins:4", "4")
    assert [p.name for p in ref.files] == ["a.csv", "b.csv"] and len(sources.read(ref)) == 6


def test_a_datastore_uri_is_read_from_the_datastore_it_names(project, storage, workspace, penguins):
    body = _put(storage, f"/{CONTAINER}/adhoc/penguins.csv", penguins)
    ref = sources.locate(spec("azureml", "azureml://datastores/landing/paths/adhoc/penguins.csv"))
    assert ref.version is None and ref.hash == hashlib.sha256(body).hexdigest()
    workspace.data.get.assert_not_called()


# -- a job step reads its mount -------------------------------------------------------------------

def test_in_a_job_step_every_source_but_sklearn_reads_the_mount_and_calls_no_sdk(project, penguins, monkeypatch, tmp_path):
    import azure.ai.ml

    def no_client(**kwargs):
        raise AssertionError("a job step must not call the SDK")

    monkeypatch.setattr(azure.ai.ml, "MLClient", no_client)
    mount = tmp_path / "mnt" / "INPUT_data"
    mount.mkdir(parents=True)
    penguins.to_csv(mount / "penguins.csv", index=False)
    body = (mount / "penguins.csv").read_bytes()
    monkeypatch.setenv("MODELFACTORY_DATA_INPUT", str(mount / "penguins.csv"))  # a uri_file input
    for kind, dataset, version in (("azureml", "azureml:penguins:3", "3"), ("registered", "penguins:2", "2"),
                                   ("blob", f"{ABFSS}/raw/penguins.csv", None), ("file", "landing/penguins.csv", None)):
        frame = data.load_dataset(spec(kind, dataset))
        assert frame.equals(penguins)
        assert frame.attrs["source"]["version"] == version and frame.attrs["source"]["uri"] == dataset
        assert frame.attrs["source"]["hash"] == hashlib.sha256(body).hexdigest()
    # an mltable input is a folder with an MLTable file naming the data beside it
    (mount / "MLTable").write_text(yaml.safe_dump({"paths": [{"file": "./penguins.csv"}],
                                                   "transformations": ["read_delimited"]}))
    (mount / "ignored.csv").write_text("x\n1\n")
    monkeypatch.setenv("MODELFACTORY_DATA_INPUT", str(mount))
    assert data.load_dataset(spec("azureml", "azureml:tables:1")).equals(penguins)
    # scikit-learn's datasets are not job inputs: the mount is not consulted
    assert len(data.load_dataset({"source": "sklearn", "dataset": "diabetes", "target": "target"})) == 442


# -- job inputs ------------------------------------------------------------------------------------

def test_each_source_becomes_the_job_input_that_fits_it(project, workspace, penguins, monkeypatch):
    from modelfactory.ops import data_registry
    from modelfactory.ops.azureml.data_assets import job_input

    (project / "landing").mkdir()
    penguins.to_csv(project / "landing" / "2026-01.csv", index=False)
    penguins.to_csv(project / "landing" / "2026-02.csv", index=False)
    data_registry.register_file("penguins", project / "landing" / "2026-01.csv")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)

    def given(kind, dataset, client=None, **extra):
        made, pinned = job_input(spec(kind, dataset, **extra), client)
        return made.type, str(made.path), pinned

    landing = str(project / "landing")
    assert given("file", "landing/2026-01.csv") == ("uri_file", f"{landing}/2026-01.csv", "landing/2026-01.csv")
    assert given("file", "landing") == ("uri_folder", landing, "landing")
    assert given("file", "landing/2026-*.csv") == ("uri_folder", landing, "landing/2026-*.csv")
    registry = project / "data" / "registry" / "penguins" / "v1" / "2026-01.csv"
    assert given("registered", "penguins:latest") == ("uri_file", str(registry), "penguins:1")
    assert given("azureml", "azureml:penguins:3", asset_type="uri_file") == ("uri_file", "azureml:penguins:3",
                                                                             "azureml:penguins:3")
    assert given("azureml", "azureml:penguins@latest", client=workspace) == ("uri_folder", "azureml:penguins@latest",
                                                                              "azureml:penguins@latest")
    assert given("azureml", "azureml://datastores/landing/paths/adhoc/") == (
        "uri_folder", "azureml://datastores/landing/paths/adhoc/", "azureml://datastores/landing/paths/adhoc/")
    assert given("blob", f"{ABFSS}/raw/penguins.csv")[:2] == ("uri_file", f"{ABFSS}/raw/penguins.csv")
    assert given("blob", f"az://{CONTAINER}/drops/2026-*.csv")[:2] == (
        "uri_folder", f"https://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/drops")
    assert job_input({"source": "sklearn", "dataset": "diabetes"})[0] is None
    with pytest.raises(DataValidationError, match="^landing/nope.csv: no such file$"):
        job_input(spec("file", "landing/nope.csv"))
    with pytest.raises(ParamsError, match=r"data.asset_type: set it to azureml:penguins:3's type \(uri_file, "
                                          "uri_folder, mltable\); a dry run does not ask the workspace"):
        job_input(spec("azureml", "azureml:penguins:3"))
    with pytest.raises(ParamsError, match="data.asset_type: uri_file, but azureml:penguins:4 is a uri_folder asset"):
        job_input(spec("azureml", "azureml:penguins@latest", asset_type="uri_file"), workspace)


def _prepare(project, model_file: dict, run_id: str, client=None):
    from modelfactory.ops.azureml import build
    from modelfactory.params import resolve
    from modelfactory.ops.pipeline import load_pipeline

    (project / "params" / "models" / "penguins.yaml").write_text(yaml.safe_dump(model_file))
    return build.prepare(load_pipeline("training"), resolve("penguins", "stage"), run_id, client=client)


PENGUINS = {"model": {"task": "classification", "description": "penguins"},
            "data": {"source": "registered", "dataset": "penguins:latest", "target": "species", "stratify": True,
                     "checks": {"min_rows": 5, "required_columns": []}},
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluate": {"primary_metric": "accuracy", "metrics": ["accuracy"],
                         "baseline": {"estimator": "sklearn.dummy.DummyClassifier"}}}


def test_the_dry_run_passes_local_data_as_the_explore_steps_input_and_copies_none(project, penguins, tmp_path):
    from azure.ai.ml import load_job

    from modelfactory.ops import data_registry

    pd.concat([penguins] * 50, ignore_index=True).to_csv(tmp_path / "penguins.csv", index=False)
    record, _ = data_registry.register_file("penguins", tmp_path / "penguins.csv")
    submission = _prepare(project, PENGUINS, "dry-penguins")
    folder = submission.folder

    job = load_job(folder / "pipeline.yaml")
    registry_file = str(data_registry.version_file(record))
    given = job.inputs["data"]._data  # the Input a loaded pipeline input wraps
    assert (given.type, given.path) == ("uri_file", registry_file)
    explore = job.jobs["explore"]
    assert str(explore.inputs["data"].path) == "${{parent.inputs.data}}"
    assert explore.component.inputs["data"].type == "uri_file"
    assert explore.component.command.startswith("MODELFACTORY_DATA_INPUT=${{inputs.data}} MODELFACTORY_RUNS_DIR=")
    assert "data" not in job.jobs["train"].inputs and "MODELFACTORY_DATA_INPUT" not in job.jobs["train"].component.command
    shipped = yaml.safe_load((folder / "snapshot" / "params.yaml").read_text())
    assert shipped["data"]["dataset"] == "penguins:1"  # latest, pinned to what the steps will record

    # AutoML reads the same file, through an MLTable that links to it
    automl = load_job(folder / "automl.yaml")
    assert automl.training_data.type == "mltable" and str(automl.training_data.path) == "./automl-data"
    table = yaml.safe_load((folder / "automl-data" / "MLTable").read_text())
    assert table["paths"] == [{"file": "./penguins.csv"}]
    assert (folder / "automl-data" / "penguins.csv").resolve() == data_registry.version_file(record).resolve()
    # ... and no byte of the data was written under runs/<id>/azureml/
    row = (tmp_path / "penguins.csv").read_text().splitlines()[1].encode()
    assert not [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and row in p.read_bytes()]
    assert not [p for p in folder.rglob("*") if p.suffix in (".csv", ".parquet") and not p.is_symlink()]


def test_a_file_source_inside_the_project_is_the_job_input_and_not_part_of_the_code_snapshot(project, penguins):
    (project / "landing").mkdir()
    penguins.to_csv(project / "landing" / "penguins.csv", index=False)
    (project / "landing" / "notes.txt").write_text("kept: not the data")
    files = {**PENGUINS, "data": {**PENGUINS["data"], "source": "file", "dataset": "landing/penguins.csv"}}
    submission = _prepare(project, files, "dry-file")
    snapshot = submission.folder / "snapshot"
    assert not (snapshot / "landing").exists()  # not a part the jobs run from: none of it goes up
    left_out = (submission.folder / "snapshot-left-out.txt").read_text()
    reasons = dict(line.split(None, 1) for line in left_out.splitlines() if not line.startswith("#"))
    assert reasons["landing/penguins.csv"] == "the model's data: it travels as the job's data input"
    assert reasons["landing/"] == "not a part the jobs run from"
    assert any(n.startswith("code snapshot: ") and "landing/" in n for n in submission.notes)
    assert submission.data_input.path == str(project / "landing" / "penguins.csv")


def test_an_mltable_asset_is_autmls_input_as_it_is_and_a_uri_asset_is_named_why_not(project, workspace):
    from azure.ai.ml import load_job

    tables = {**PENGUINS, "data": {**PENGUINS["data"], "source": "azureml", "dataset": "azureml:tables@latest"}}
    submission = _prepare(project, tables, "dry-tables", client=workspace)
    job = load_job(submission.folder / "pipeline.yaml")
    written = yaml.safe_load((submission.folder / "pipeline.yaml").read_text())["inputs"]["data"]
    assert written == {"type": "mltable", "path": "azureml:tables@latest"}
    assert job.inputs["data"]._data.type == "mltable"
    assert load_job(submission.folder / "automl.yaml").training_data.type == "mltable"
    written = yaml.safe_load((submission.folder / "automl.yaml").read_text())["training_data"]
    assert written == {"type": "mltable", "path": "azureml:tables@latest"}
    assert not (submission.folder / "automl-data").exists()

    files = {**PENGUINS, "data": {**PENGUINS["data"], "source": "azureml", "dataset": "azureml:penguins:3",
                                  "asset_type": "uri_file"}}
    submission = _prepare(project, files, "dry-files")
    assert not (submission.folder / "automl.yaml").exists()
    assert submission.notes[1:] == ["automl.yaml not written: AutoML takes MLTable data, and azureml:penguins:3 "
                                    "is a uri_file asset whose storage path only the workspace knows; register an "
                                    "mltable asset for the baseline"]


def test_our_check_catches_a_local_path_dumped_as_an_asset_reference():
    from modelfactory.ops.azureml.checks import check_pipeline

    spec_ = {"inputs": {"data": {"type": "uri_file", "path": "azureml:/home/me/data/registry/p/v1/p.csv"}}, "jobs": {}}
    assert check_pipeline(spec_) == ["pipeline input 'data': path azureml:/home/me/data/registry/p/v1/p.csv is neither "
                                     "azureml:<name>:<version>, azureml:<name>@<label> nor an azureml:// URI (a local "
                                     "path written as an asset?)"]
    for fine in ("azureml:penguins:3", "azureml:penguins@latest", "azureml://datastores/x/paths/y.csv", "/home/me/p.csv"):
        assert check_pipeline({"inputs": {"data": {"type": "uri_file", "path": fine}}, "jobs": {}}) == []


# -- data register --azure -------------------------------------------------------------------------

def test_data_register_azure_writes_a_spec_azure_ai_ml_loads_then_creates_the_same_version(project, workspace,
                                                                                        penguins, capsys):
    from azure.ai.ml import load_data

    from modelfactory.ops import cli, data_registry

    penguins.to_csv(project / "penguins.csv", index=False)
    assert cli.main(["data", "register", "penguins", str(project / "penguins.csv"), "--azure", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "data asset azureml:penguins:1 (uri_file): spec valid in runs/azureml-data/penguins-v1/data.yaml" in said
    assert said.endswith("dry run: nothing was sent to Azure ML\n")
    record = data_registry.find_version("penguins")
    asset = load_data(project / "runs/azureml-data/penguins-v1/data.yaml")
    assert (asset.name, asset.version, asset.type) == ("penguins", "1", "uri_file")
    assert asset.tags["content_hash"] == record["hash"] and record["hash"] in asset.description
    assert str(asset.path) == str(data_registry.version_file(record))
    workspace.data.create_or_update.assert_not_called()
    assert len(workspace.made) == 0

    # for real: the same version is created, and the registry notes which asset holds it
    assert cli.main(["data", "register", "penguins", str(project / "penguins.csv"), "--azure"]) == 0
    assert "created azureml:penguins:1 in workspace ws-test" in capsys.readouterr().out
    sent = workspace.data.create_or_update.call_args.args[0]
    assert (sent.name, sent.version, sent.tags["content_hash"]) == ("penguins", "1", record["hash"])
    ref = sources.locate(spec("registered", "penguins:1"))
    assert ref.record()["workspace_version"] == "azureml:penguins:1"
    assert cli.main(["data", "show", "penguins"]) == 0
    assert "  azure ml    azureml:penguins:1 in workspace ws-test" in capsys.readouterr().out
    # a submit now references that asset rather than uploading the file again
    from modelfactory.ops.azureml.data_assets import job_input

    made, pinned = job_input(spec("registered", "penguins:latest"))
    assert (made.type, made.path, pinned) == ("uri_file", "azureml:penguins:1", "penguins:1")


def test_data_register_dry_run_needs_azure(project, penguins, capsys):
    from modelfactory.ops import cli

    penguins.to_csv(project / "penguins.csv", index=False)
    assert cli.main(["data", "register", "penguins", str(project / "penguins.csv"), "--dry-run"]) == 2
    assert capsys.readouterr().err == ("error: data register --dry-run: only with --azure (a local register changes "
                                       "nothing twice)\n")


def test_submit_dry_run_writes_no_copy_of_the_data(project, penguins, capsys):
    """Before: every dry run wrote the whole dataset to automl-data/ (and a file source inside the project
    went into the code snapshot too)."""
    from modelfactory.ops import cli

    (project / "landing").mkdir()
    penguins.to_csv(project / "landing" / "penguins.csv", index=False)
    files = {**PENGUINS, "data": {**PENGUINS["data"], "source": "file", "dataset": "landing/penguins.csv"}}
    (project / "params" / "models" / "penguins.yaml").write_text(yaml.safe_dump(files))
    assert cli.main(["submit", "--model", "penguins", "--env", "stage", "--dry-run"]) == 0, capsys.readouterr().err
    folder = next((project / "runs").glob("*/azureml"))
    row = (project / "landing" / "penguins.csv").read_text().splitlines()[1].encode()
    copies = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
              if p.is_file() and not p.is_symlink() and (p.suffix in (".csv", ".parquet") or row in p.read_bytes())]
    assert copies == []


def test_submit_asks_the_workspace_for_the_assets_type_and_leaves_latest_to_each_job(project, workspace, capsys):
    from modelfactory.ops import cli

    latest = {**PENGUINS, "data": {**PENGUINS["data"], "source": "azureml", "dataset": "azureml:penguins@latest"}}
    (project / "params" / "models" / "penguins.yaml").write_text(yaml.safe_dump(latest))
    assert cli.main(["submit", "--model", "penguins", "--env", "stage"]) == 0, capsys.readouterr().err
    assert "submitted job-1" in capsys.readouterr().out
    workspace.data.get.assert_called_once_with(name="penguins", label="latest")
    job = workspace.jobs.create_or_update.call_args.args[0]
    sent = job.inputs["data"]._data  # the Input the pipeline input wraps
    # the type is the workspace's; @latest stays, so the schedule that reruns this job takes new versions
    assert (sent.type, sent.path) == ("uri_folder", "azureml:penguins@latest")
    shipped = yaml.safe_load(next((project / "runs").glob("*/azureml/snapshot/params.yaml")).read_text())
    assert shipped["data"]["dataset"] == "azureml:penguins@latest"


def test_mlflow_records_the_resolved_asset_version_and_a_registered_versions_workspace_asset(
        project, storage, workspace, penguins, tmp_path):
    import mlflow

    from modelfactory.ops import data_registry
    from modelfactory.ops.azureml import data_assets

    _put(storage, f"/{CONTAINER}/penguins/v4/a.csv", penguins)
    penguins.to_csv(tmp_path / "penguins.csv", index=False)
    record, _ = data_registry.register_file("penguins", tmp_path / "penguins.csv")
    data_assets.create_asset(workspace, data_assets.asset_spec(record), record)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            data.load_dataset(spec("azureml", "azureml:penguins@latest"))
            data.load_dataset(spec("registered", "penguins:latest"))
        inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    finally:
        mlflow.set_tracking_uri(None)
    found = {i.dataset.name: {t.key: t.value for t in i.tags} for i in inputs}
    assert found["penguins:4"]["uri"] == "azureml:penguins:4" and found["penguins:4"]["source"] == "azureml"
    assert found["penguins:1"]["workspace_version"] == "azureml:penguins:1"
