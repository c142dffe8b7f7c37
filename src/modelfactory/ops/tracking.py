"""MLflow tracking: one parent run per pipeline run, one nested run per stage.

Locally the store is a SQLite database at an absolute path (mlruns/mlflow.db), so every kernel of
a run writes to the same place whatever its working directory. ``tracking.uri`` in params (or
``MLFLOW_TRACKING_URI``, through params/env/*.yaml) points elsewhere, e.g. an Azure ML workspace.
mlflow is imported inside the functions: the CLI must start without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import ModelfactoryError

RUN_FILE = "tracking.json"
TRUSTED_TYPES_TAG = "model.skops_trusted_types"
DIGEST_CHARS = 36               # the longest digest MLflow's store keeps; the full hash goes in a tag
# MLflow infers a text column's type by looking at every cell in Python (minutes on millions of rows):
# types come from this many present values per column; whether a column may be missing, from all its rows.
SCHEMA_SAMPLE_ROWS = 1000


def tracking_uri(params: Mapping) -> str:
    """The tracking URI from params, else MLFLOW_TRACKING_URI (set by Azure ML inside a job, whose
    params leave it empty), else the embedded SQLite store of this project."""
    uri = params["tracking"]["uri"] or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = paths.tracking_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').as_posix()}"


def connect(params: Mapping) -> str:
    """Point MLflow at the tracking store and return the id of the params' experiment.

    On the local SQLite store this holds a lock file next to the database while it connects: the
    first connection creates the store's tables (MLflow's migrations), and two kernels of a factory
    making them at once each fail half-way (alembic "expected to match one row"), as do two creating
    the same experiment.
    """
    import mlflow

    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    # A new store announces its tables in two timestamped INFO lines: noise in the notebook that
    # makes it, and a diff in every refreshed notebook. Warnings still show.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    with store_lock(uri):
        return _experiment_id(params["tracking"]["experiment"], uri)


def _experiment_id(name: str, uri: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A SQLite store would put artifacts under ./mlruns of whatever the working directory is;
    # pin them next to the database instead.
    location = (paths.tracking_dir() / "artifacts").as_uri() if uri.startswith("sqlite:") else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it first (a remote store has no lock of ours)
        return mlflow.get_experiment_by_name(name).experiment_id


@contextlib.contextmanager
def store_lock(uri: str, name: str = "store.lock") -> Iterator[None]:
    """Hold an exclusive lock file next to a local SQLite store (``fcntl.flock``: across processes,
    released by the kernel if the holder dies); a remote store needs none of ours."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock_path = Path(uri.removeprefix("sqlite:///")).parent / name
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_stage_run(params: Mapping, run_dir: Path, stage: str, tags: Mapping[str, str],
                    interactive: bool = False) -> str:
    """Start (and make active) the MLflow run of one stage, nested under a parent run.

    The parent is created by the first stage and remembered in ``<run_dir>/tracking.json``. Run by
    the runner, it is the pipeline run's, and the runner closes it. By hand in Jupyter, ``run_dir``
    is the scratch folder and the parent stands for every hand run of that model and environment: it
    is closed at once and again as each stage finishes, so nothing is left RUNNING, and a stage run
    that a failed cell or a shut-down kernel leaves open ends as KILLED, not FINISHED.
    """
    import mlflow

    experiment_id = connect(params)
    while mlflow.active_run():  # a stage run left open by a failed cell or an earlier notebook
        mlflow.end_run(status="KILLED")
    parent_id = _parent_run(params, Path(run_dir), experiment_id, tags, interactive)
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=stage, parent_run_id=parent_id, tags={**tags, "stage": stage}
    )
    _write_json(Path(run_dir) / stage / RUN_FILE, {"run_id": run.info.run_id})
    if interactive:
        _end_open_runs_at_exit()
    return run.info.run_id


def _parent_run(params: Mapping, run_dir: Path, experiment_id: str, tags: Mapping[str, str], interactive: bool) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    record = run_dir / RUN_FILE
    if record.is_file():
        parent_id = json.loads(record.read_text())["parent_run_id"]
        if not interactive:
            return parent_id
        try:  # the scratch folder may outlive the store it was made for
            if client.get_run(parent_id).info.experiment_id == experiment_id:
                return parent_id
        except MlflowException:
            pass
    suffix = f"{params['env']['name']}-by-hand" if interactive else run_dir.name
    parent = client.create_run(experiment_id, run_name=f"{params['model']['name']}-{suffix}", tags=dict(tags))
    if interactive:
        client.set_terminated(parent.info.run_id, status="FINISHED")
    _write_json(record, {"parent_run_id": parent.info.run_id, "experiment_id": experiment_id})
    return parent.info.run_id


def log_data_input(frame, record: Mapping, target: str, location: Path | None = None) -> None:
    """Log the data a stage read as the active run's MLflow dataset input.

    Its digest is the start of the content hash; the tags hold the source kind, URI, version and the
    full hash. ``location`` (a local file or folder) becomes the dataset's source; MLflow has no
    resolver for our URIs (``penguins:3``, ``sklearn:diabetes``), so those go in the tags.
    """
    import warnings

    import mlflow

    name = _dataset_name(record)
    with warnings.catch_warnings():
        # A local path matches MLflow's two local-artifact resolvers (either is right); and the schema
        # it infers is a record of the table, not a serving signature, so its integer-column hint is noise.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(frame, source=str(location) if location else None, targets=target,
                                          name=name, digest=record["hash"][:DIGEST_CHARS])
        dataset.schema = table_schema(frame)  # a cached property: MLflow's own would scan every cell
        mlflow.log_input(dataset, context="training", tags=_data_tags(record))


def _dataset_name(record: Mapping) -> str:
    return f"{record['name']}:{record['version']}" if record.get("version") else record["name"]


def _data_tags(record: Mapping) -> dict[str, str]:
    tags = {"source": record["source"], "uri": record["uri"], "version": str(record.get("version")),
            "content_hash": record["hash"]}
    if record.get("workspace_version"):  # the Azure ML data asset that holds this version
        tags["workspace_version"] = record["workspace_version"]
    return tags


def finish_interactive_parent(run_dir: Path) -> None:
    """By hand: mark the scratch folder's parent run finished now (its end time follows the last stage)."""
    import mlflow

    record = Path(run_dir) / RUN_FILE
    if record.is_file():
        mlflow.MlflowClient().set_terminated(json.loads(record.read_text())["parent_run_id"], status="FINISHED")


_EXIT_HOOK = []


def _end_open_runs_at_exit() -> None:
    """When a Jupyter kernel shuts down with a stage run still open, end it as KILLED.

    MLflow's own exit hook would end it as FINISHED; this one is registered later, so it runs first.
    """
    import atexit

    if _EXIT_HOOK:
        return

    def end_open_runs() -> None:
        import mlflow

        while mlflow.active_run():
            mlflow.end_run(status="KILLED")

    atexit.register(end_open_runs)
    _EXIT_HOOK.append(end_open_runs)


def log_stage_metrics(metrics: Mapping[str, float], prefix: str = "") -> None:
    """Log numeric metrics to the active stage run."""
    import mlflow

    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items()})


def log_stage_artifact(path: Path, folder: str) -> None:
    """Attach a file (a plot) to the active stage run, under ``folder``, so the MLflow UI shows it."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=folder)


def log_stage_params(values: Mapping) -> None:
    """Log flat params (dotted keys) to the active stage run."""
    import mlflow

    mlflow.log_params({k: str(v)[:500] for k, v in values.items()})


def log_model(model, example, requirements: Sequence[str], contract=None) -> str:
    """Log a fitted scikit-learn model to the active run, with an explicit environment.

    The model is saved in skops' safe format, trusting exactly the types this model needs beyond
    skops' defaults (``skops_trusted_types``). MLflow writes that list into the model's MLmodel file
    and hands it to skops on every load (``mlflow.sklearn`` and ``mlflow.pyfunc``, so the evaluate
    stage, the package's score.py and ``modelfactory score`` alike); the list is also a tag on the
    run. A model file swapped in from elsewhere that holds any other type is refused at load.

    The requirements are pinned to the installed versions: MLflow's own inference costs seconds
    and lists packages the model does not need. The signature (column names and types, cheap to
    infer) marks a column optional where the pipeline imputes it, so the endpoint takes a null there.

    The data contract (``contract``, the explore stage's; inferred from ``example`` when None) travels
    in the model's MLmodel metadata, with what the fitted model adds to it (contract.fit_to_model);
    the example is cast to the contract's dtypes first, so the signature's types are the contract's.
    """
    import warnings

    import mlflow
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature

    from modelfactory.core import contract as contracts

    contract = contracts.fit_to_model(contracts.cover(contract, example), model)
    example = contracts.conform(example, contract)
    sample = example.head(SCHEMA_SAMPLE_ROWS)  # the outputs' type; the inputs' from every row, cheaply
    with warnings.catch_warnings():
        # MLflow's hint that an integer column cannot hold a gap: the endpoint and batch refuse a gap
        # there in one line, so the hint (printed with a machine path into the notebook) is noise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        inferred = infer_signature(sample, model.predict(sample))
        inputs = table_schema(example)  # per column through infer_signature, so the hint comes here too
    signature = optional_where_imputed(ModelSignature(inputs, inferred.outputs), model)
    trusted = skops_trusted_types(model)
    info = mlflow.sklearn.log_model(
        model, name="model", signature=signature, pip_requirements=pin_requirements(requirements),
        skops_trusted_types=trusted, metadata={contracts.METADATA_KEY: contracts.to_json(contract)},
    )
    mlflow.set_tag(TRUSTED_TYPES_TAG, ", ".join(trusted) or "none")
    return info.model_uri


def table_schema(frame, rows: int = SCHEMA_SAMPLE_ROWS):
    """MLflow's schema of a table, as ``infer_signature`` gives it, at a cost that barely grows with the
    table: each column's type from its first ``rows`` present values, and whether it is required (no
    missing value in any row) from the whole column in one vectorised pass."""
    from mlflow.models import infer_signature
    from mlflow.types.schema import ColSpec, Schema

    gaps = frame.isna().any()
    specs = []
    for name in frame.columns:
        column = frame[name]
        present = column.dropna().head(rows) if gaps[name] else column.head(rows)
        spec = infer_signature((present if len(present) else column.head(rows)).to_frame(name)).inputs.inputs[0]
        specs.append(ColSpec(spec.type, spec.name, required=not bool(gaps[name])))
    return Schema(specs)


def optional_where_imputed(signature, model):
    """The signature with every column the model's pipeline imputes marked optional (``required:
    false``), whether or not the training rows happened to miss a value there. Integer columns stay
    as inferred: MLflow refuses a missing value in a ``long`` column (pandas makes it a float)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    from modelfactory.core.modeling import imputed_columns

    imputed = imputed_columns(model)
    if not imputed or signature.inputs is None:
        return signature
    inputs = Schema([ColSpec(spec.type, spec.name, required=spec.required and not (
        spec.name in imputed and spec.type.name not in ("long", "integer"))) for spec in signature.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=signature.outputs, params=signature.params)


def skops_trusted_types(model) -> list[str]:
    """The types a model's skops file holds that skops does not trust by default, sorted.

    For the tree families this is e.g. ``sklearn.tree._tree.Tree`` or HistGradientBoosting's
    ``TreePredictor``; for linear models it is empty. Computed from this model's own serialisation,
    so it is exactly what this training produced, never a blanket allow-list.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def load_model(location: str | Path, flavour: str = "sklearn"):
    """Load a logged model: the scikit-learn object (``sklearn``) or MLflow's wrapper (``pyfunc``).

    MLflow hands skops the types recorded with the model (see ``log_model``); a model file that
    holds any other type is refused with one line naming it, never loaded.
    """
    import mlflow.pyfunc
    import mlflow.sklearn
    from skops.io.exceptions import UntrustedTypesFoundException

    loader = mlflow.pyfunc.load_model if flavour == "pyfunc" else mlflow.sklearn.load_model
    try:
        return loader(str(location))
    except UntrustedTypesFoundException as exc:
        raise ModelfactoryError(
            f"model {paths.relative_to_root(location) if isinstance(location, Path) else location}: refused to "
            f"load it: {str(exc).splitlines()[0].rstrip('.')}, which its MLmodel does not list in "
            "skops_trusted_types (the model file does not come from this model's training)"
        ) from None


def pin_requirements(names: Sequence[str]) -> list[str]:
    """``["pandas"]`` -> ``["pandas==2.3.3"]``, from the versions installed here."""
    return [f"{name}=={metadata.version(name)}" for name in names]


def finish_pipeline_run(params: Mapping, run_dir: str | Path, stages: Sequence[Sequence],
                        parent_status: str, data: Mapping | None = None) -> None:
    """Close a pipeline run in MLflow, however it ended.

    Args:
        params: the run's params (for the tracking URI).
        run_dir: the run folder, holding tracking.json files written by the stages.
        stages: ``[stage, status, [files to attach]]`` for each stage that ran.
        parent_status: the final status of the pipeline's parent run.
        data: the manifest's record of the data the run read (source, URI, version, hash); it becomes
            the parent run's dataset input, so the run that holds the model names its data.
    """
    import mlflow

    while mlflow.active_run():
        mlflow.end_run(status=parent_status)
    mlflow.set_tracking_uri(tracking_uri(params))
    client = mlflow.MlflowClient()
    for stage, status, files in stages:
        record = Path(run_dir) / stage / RUN_FILE
        if not record.is_file():  # the stage died before its MLflow run started
            continue
        run_id = json.loads(record.read_text())["run_id"]
        for path in files:
            if Path(path).is_file():
                client.log_artifact(run_id, str(path), artifact_path="notebook")
        client.set_terminated(run_id, status=status)
    parent_record = Path(run_dir) / RUN_FILE
    if parent_record.is_file():
        parent_id = json.loads(parent_record.read_text())["parent_run_id"]
        if data:
            from mlflow.entities import Dataset, DatasetInput, InputTag

            dataset = Dataset(name=_dataset_name(data), digest=data["hash"][:DIGEST_CHARS], source_type="modelfactory",
                              source=json.dumps({"uri": data["uri"]}))
            tags = [InputTag(k, v) for k, v in {"mlflow.data.context": "training", **_data_tags(data)}.items()]
            client.log_inputs(parent_id, datasets=[DatasetInput(dataset, tags=tags)])
        client.set_terminated(parent_id, status=parent_status)


def _write_json(path: Path, data: Mapping) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
