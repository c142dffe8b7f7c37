"""Recurring retraining as an Azure ML job schedule, and an AutoML job over the same data as a baseline.

Both are written beside the pipeline job of a dry run (runs/<id>/azureml/) and load with
azure-ai-ml's own loaders. The schedule runs that same pipeline.yaml on the cron from params.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from modelfactory.errors import ModelfactoryError

# Our metric names -> AutoML's primary metrics (AutoML optimises one of its own list).
AUTOML_METRICS = {
    "regression": {"rmse": "normalized_root_mean_squared_error", "mae": "normalized_mean_absolute_error",
                   "r2": "r2_score"},
    "classification": {"roc_auc": "AUC_weighted", "roc_auc_ovr": "AUC_weighted", "accuracy": "accuracy"},
}
CRON_FIELDS = ((0, 59, "minute"), (0, 23, "hour"), (1, 31, "day of month"), (1, 12, "month"), (0, 6, "day of week"))


class ScheduleSpecError(ModelfactoryError):
    """A schedule or AutoML spec that Azure ML would refuse."""

    exit_code = 2


def check_cron(expression: str) -> None:
    """Five fields, each *, a number, a range, a list or a step within its bounds."""
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleSpecError(f"azure.schedule.cron '{expression}': expected 5 fields (minute hour day month weekday)")
    for text, (low, high, what) in zip(fields, CRON_FIELDS):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                raise ScheduleSpecError(f"azure.schedule.cron '{expression}': bad step '{step}' in the {what} field")
            if base == "*":
                continue
            ends = base.split("-")
            if len(ends) > 2 or not all(e.isdigit() for e in ends) or not all(low <= int(e) <= high for e in ends):
                raise ScheduleSpecError(f"azure.schedule.cron '{expression}': '{part}' is not a {what} "
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


def write_automl(params: Mapping, dataset, folder: Path) -> Path:
    """automl.yaml and its MLTable data folder: AutoML over the same raw data, as a baseline to beat."""
    from azure.ai.ml import Input, automl

    task, target = params["model"]["task"], params["data"]["target"]
    metric = params["evaluate"]["primary_metric"]
    try:
        primary = AUTOML_METRICS[task][metric]
    except KeyError:
        raise ScheduleSpecError(f"evaluate.primary_metric '{metric}': no AutoML equivalent for {task}; "
                                f"use one of {', '.join(AUTOML_METRICS.get(task, {}))}") from None
    data_dir = folder / "automl-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(data_dir / "dataset.parquet", index=False)
    (data_dir / "MLTable").write_text(yaml.safe_dump(
        {"paths": [{"file": "./dataset.parquet"}], "transformations": ["read_parquet"]}, sort_keys=False))
    spec = params["azure"]["automl"]
    build = automl.regression if task == "regression" else automl.classification
    job = build(compute=params["azure"]["compute"], experiment_name=f"{params['tracking']['experiment']}-automl",
                training_data=Input(type="mltable", path=str(data_dir)), target_column_name=target,
                primary_metric=primary, n_cross_validations=spec["cross_validations"],
                tags={"model": params["model"]["name"], "env": params["env"]["name"], "purpose": "baseline"})
    job.set_limits(timeout_minutes=spec["timeout_minutes"], max_trials=spec["max_trials"],
                   enable_early_termination=True)
    path = folder / "automl.yaml"
    job.dump(path)
    # azure-ai-ml 1.35 dumps a local MLTable path as "azureml:<path>" (an asset reference, which
    # submission would look up and not find); write the folder as the relative path it is.
    data = yaml.safe_load(path.read_text())
    data["training_data"]["path"] = f"./{data_dir.name}"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False))
    return path
