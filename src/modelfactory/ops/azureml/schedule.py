"""Recurring retraining as an Azure ML job schedule, and an AutoML job over the same data as a baseline.

Both are written beside the pipeline job of a dry run (runs/<id>/azureml/) and load with
azure-ai-ml's own loaders. The schedule runs that same pipeline.yaml on the cron from params.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import yaml

from modelfactory.errors import AzureSpecError

# Our metric names -> AutoML's primary metrics (AutoML optimises one of its own list).
AUTOML_METRICS = {
    "regression": {"rmse": "normalized_root_mean_squared_error", "mae": "normalized_mean_absolute_error",
                   "r2": "r2_score"},
    "classification": {"roc_auc": "AUC_weighted", "roc_auc_ovr": "AUC_weighted", "accuracy": "accuracy"},
}
CRON_FIELDS = ((0, 59, "minute"), (0, 23, "hour"), (1, 31, "day of month"), (1, 12, "month"), (0, 6, "day of week"))


def check_cron(expression: str) -> None:
    """Five fields, each *, a number, a range, a list or a step within its bounds."""
    fields = expression.split()
    if len(fields) != 5:
        raise AzureSpecError(f"azure.schedule.cron '{expression}': expected 5 fields (minute hour day month weekday)")
    for text, (low, high, what) in zip(fields, CRON_FIELDS):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                raise AzureSpecError(f"azure.schedule.cron '{expression}': bad step '{step}' in the {what} field")
            if base == "*":
                continue
            ends = base.split("-")
            if len(ends) > 2 or not all(e.isdigit() for e in ends) or not all(low <= int(e) <= high for e in ends):
                raise AzureSpecError(f"azure.schedule.cron '{expression}': '{part}' is not a {what} "
                                     f"({low}-{high})")


def schedule_name(params: Mapping) -> str:
    return f"retrain-{params['model']['name']}-{params['env']['name']}".replace("_", "-")


def write_schedule(params: Mapping, pipeline_file: Path) -> Path:
    """schedule.yaml next to ``pipeline_file``: that pipeline job, on the cron from params.

    Written for every submit so it can be reviewed; ``submit`` creates it in the workspace only
    where ``azure.schedule.enabled`` is true. (The YAML has no on/off switch: azure-ai-ml's loader
    drops ``is_enabled``, a field the service reports but does not take.)"""
    spec = params["azure"]["schedule"]
    check_cron(spec["cron"])
    data = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/schedule.schema.json",
        "name": schedule_name(params),
        "display_name": f"retrain {params['model']['name']} ({params['env']['name']})",
        "description": "Recurring retraining: the modelfactory training pipeline on a cron from params",
        "trigger": {"type": "cron", "expression": spec["cron"], "time_zone": spec["time_zone"]},
        "create_job": f"./{pipeline_file.name}",
    }
    path = pipeline_file.with_name("schedule.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_automl(params: Mapping, folder: Path, data_input=None) -> Path | None:
    """automl.yaml: AutoML over the model's raw data, as a baseline to beat.

    AutoML takes MLTable data. It reads the same data as the pipeline's ``data`` input: an mltable
    asset as it is; any other input through an ``automl-data/MLTable`` file that names the same place
    (a cloud URI), or that links to the same local file (a symlink, which azure-ai-ml uploads as the
    file it points to; no copy is written). Only a scikit-learn demo dataset, which exists nowhere
    else, is written out. Returns None when AutoML cannot take the input (a uri_file or uri_folder
    asset whose storage path only the workspace knows): the reason is in ``automl_skipped(...)``.
    """
    from azure.ai.ml import Input, automl

    task, target = params["model"]["task"], params["data"]["target"]
    metric = params["evaluate"]["primary_metric"]
    try:
        primary = AUTOML_METRICS[task][metric]
    except KeyError:
        raise AzureSpecError(f"evaluate.primary_metric '{metric}': no AutoML equivalent for {task}; "
                             f"use one of {', '.join(AUTOML_METRICS.get(task, {}))}") from None
    if automl_skipped(data_input):
        return None
    data_dir = folder / "automl-data"
    if data_input is not None and data_input.type == "mltable":
        training = Input(type="mltable", path=str(data_input.path))
    else:
        _write_mltable(params, data_input, data_dir)
        training = Input(type="mltable", path=str(data_dir))
    spec = params["azure"]["automl"]
    build = automl.regression if task == "regression" else automl.classification
    job = build(compute=params["azure"]["compute"], experiment_name=f"{params['tracking']['experiment']}-automl",
                training_data=training, target_column_name=target,
                primary_metric=primary, n_cross_validations=spec["cross_validations"],
                tags={"model": params["model"]["name"], "env": params["env"]["name"], "purpose": "baseline"})
    job.set_limits(timeout_minutes=spec["timeout_minutes"], max_trials=spec["max_trials"],
                   enable_early_termination=True)
    path = folder / "automl.yaml"
    job.dump(path)
    if training.path == str(data_dir):
        # azure-ai-ml 1.35 dumps a local MLTable path as "azureml:<path>" (an asset reference, which
        # submission would look up and not find); write the folder as the relative path it is.
        data = yaml.safe_load(path.read_text())
        data["training_data"]["path"] = f"./{data_dir.name}"
        path.write_text(yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False))
    return path


def automl_skipped(data_input) -> str | None:
    """Why AutoML cannot take this data input, or None when it can."""
    if data_input is None or data_input.type == "mltable":
        return None
    where = str(data_input.path)
    if where.startswith("azureml:") and not where.startswith("azureml://"):
        return (f"automl.yaml not written: AutoML takes MLTable data, and {where} is a {data_input.type} asset "
                "whose storage path only the workspace knows; register an mltable asset for the baseline")
    return None


def _write_mltable(params: Mapping, data_input, data_dir: Path) -> None:
    """``data_dir/MLTable`` naming the data input's files (links to local ones; cloud URIs as they are)."""
    from modelfactory.core import data, remote_data

    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    if data_input is None:  # a scikit-learn demo dataset: it exists nowhere but in the package
        data.load_dataset(params["data"]).to_parquet(data_dir / "dataset.parquet", index=False)
        entries, suffixes = [{"file": "./dataset.parquet"}], {".parquet"}
    elif "://" in str(data_input.path):
        where = str(data_input.path)
        entries = [{"file" if data_input.type == "uri_file" else "folder": where}]
        suffixes = {PurePosixPath(where).suffix.lower()} if data_input.type == "uri_file" else {_suffix(params)}
    else:
        local = Path(data_input.path)
        files = [local] if local.is_file() else remote_data.mounted_files(local, _glob_part(params))
        entries, suffixes = [], set()
        for file in files:
            link = data_dir / file.name
            link.symlink_to(file.resolve())
            entries.append({"file": f"./{file.name}"})
            suffixes.add(file.suffix.lower())
    formats = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
    kinds = {formats.get(s, "csv") for s in suffixes}
    if len(kinds) != 1:
        raise AzureSpecError(f"data.dataset {params['data']['dataset']}: AutoML reads one format, and the data "
                             "mixes CSV and Parquet files")
    transformation = ("read_parquet" if kinds == {"parquet"} else
                      {"read_delimited": {"delimiter": ",", "encoding": "utf8", "header": "all_files_same_headers"}})
    (data_dir / "MLTable").write_text(yaml.safe_dump({"paths": entries, "transformations": [transformation]},
                                                     sort_keys=False))


def _glob_part(params: Mapping) -> str | None:
    name = Path(params["data"]["dataset"]).name
    return name if any(ch in name for ch in "*?[") else None


def _suffix(params: Mapping) -> str:
    """A folder's format, as far as the params say (a glob's suffix); CSV unless they say Parquet."""
    return PurePosixPath(params["data"]["dataset"]).suffix.lower() or ".csv"
