"""The Azure ML monitor schedule: the same checks as the local monitor, run by Azure ML on the
endpoint's collected data.

``submit --pipeline monitoring`` writes ``monitor.yaml`` under runs/<id>/azureml/: a
``MonitorSchedule`` whose ``MonitorDefinition`` targets the environment's online endpoint (its
deployment with the most live traffic) with three signals: data drift on ``model_inputs``,
prediction drift on ``model_outputs`` (the data collector's two collections, which score.py fills),
and data quality on ``model_inputs``. The reference is the model's training data asset. The metric
names and thresholds are the params' ``monitor`` section, which uses Azure's own names, so the
local monitor and Azure's judge with the same numbers. The file is dumped by azure-ai-ml and loaded
back with its ``load_schedule``; what comes back must hold the same signals, metrics and thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from modelfactory.errors import AzureSpecError

FILE = "monitor.yaml"
# Azure ML runs monitors on serverless Spark; this is the size its docs use for model monitoring,
# and a runtime azure-ai-ml accepts (ServerlessSparkCompute: "3.4" or "3.5").
SPARK_INSTANCE_TYPE = "standard_e4s_v3"
SPARK_RUNTIME = "3.4"
# What each signal reads of the data collector's collections (score.py's AzureDataCollector).
INPUTS, OUTPUTS = "model_inputs", "model_outputs"
SIGNALS = ("data_drift", "prediction_drift", "data_quality")


def monitor_name(params: Mapping) -> str:
    """``monitor-<model>-<env>``: Azure ML schedule names take letters, digits, ``-`` and ``_``."""
    return f"monitor-{params['model']['name']}-{params['env']['name']}".replace("_", "-")


def target_deployment(params: Mapping) -> tuple[str, str]:
    """The endpoint and the deployment that takes the most live traffic (azure.online.traffic)."""
    from modelfactory.ops.azureml.deployment import endpoint_name

    online = params["azure"]["online"]
    name = endpoint_name(online["name"], params["model"]["name"], params["env"]["name"])
    deployment = max(online["traffic"], key=lambda colour: online["traffic"][colour])
    return name, deployment


def reference_asset(params: Mapping) -> tuple[str, str]:
    """The training data as an Azure ML data asset reference, and its type.

    A registered version is the asset ``data register --azure`` made of it (same name, same
    version); an ``azureml`` source is used as it is. Other sources exist only on this machine or
    in a bundled package, and a monitor cannot read them: one line says what to do.
    """
    data = params["data"]
    if data["source"] == "registered":
        from modelfactory.ops import data_registry

        name, _, version = data["dataset"].partition(":")
        version = data_registry.find_version(name, version or "latest")["version"] if version in ("", "latest") else version
        return f"azureml:{name}:{str(version).lstrip('v')}", "uri_file"
    if data["source"] == "azureml":
        return data["dataset"], data.get("asset_type") or "uri_file"
    raise AzureSpecError(f"data.source {data['source']}: an Azure ML monitor compares with a data asset; register "
                         f"the training data (modelfactory data register NAME FILE --azure) and set data.source: "
                         "registered")


def _drift_metrics(spec: Mapping, kind: str):
    from azure.ai.ml.entities import CategoricalDriftMetrics, NumericalDriftMetrics

    build = NumericalDriftMetrics if kind == "numerical" else CategoricalDriftMetrics
    try:
        return build(**{spec["metric"]: spec["threshold"]})
    except TypeError:
        raise AzureSpecError(f"monitor.{kind}.metric {spec['metric']}: not one of Azure ML's {kind} drift "
                             "metrics") from None


def build_monitor(params: Mapping):
    """The MonitorSchedule for one model and environment (azure-ai-ml entities, not yet written)."""
    from azure.ai.ml import Input
    from azure.ai.ml.entities import (
        AlertNotification, DataDriftMetricThreshold, DataDriftSignal, DataQualityMetricsCategorical,
        DataQualityMetricsNumerical, DataQualityMetricThreshold, DataQualitySignal, MonitorDefinition,
        MonitoringTarget, MonitorSchedule, PredictionDriftMetricThreshold, PredictionDriftSignal, ProductionData,
        RecurrenceTrigger, ReferenceData, ServerlessSparkCompute)

    monitor, task = params["monitor"], params["model"]["task"]
    endpoint, deployment = target_deployment(params)
    path, kind = reference_asset(params)
    target = params["data"]["target"]

    def collected(collection: str) -> ProductionData:
        return ProductionData(input_data=Input(path=f"azureml:{endpoint}-{deployment}-{collection}:1",
                                               type="uri_folder"), data_context=collection)

    def reference() -> ReferenceData:
        return ReferenceData(input_data=Input(path=path, type=kind), data_context="training",
                             data_column_names={"target_column": target})

    drift = DataDriftMetricThreshold(numerical=_drift_metrics(monitor["numerical"], "numerical"),
                                     categorical=_drift_metrics(monitor["categorical"], "categorical"))
    prediction_kind = "numerical" if task == "regression" else "categorical"
    predicted = PredictionDriftMetricThreshold(
        **{prediction_kind: _drift_metrics(monitor["prediction"][prediction_kind], prediction_kind)})
    rates = {k: monitor["quality"][k] for k in ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")}
    quality = DataQualityMetricThreshold(numerical=DataQualityMetricsNumerical(**rates),
                                         categorical=DataQualityMetricsCategorical(**rates))
    signals = {
        "data_drift": DataDriftSignal(production_data=collected(INPUTS), reference_data=reference(),
                                      features="all_features", metric_thresholds=drift, alert_enabled=True),
        "prediction_drift": PredictionDriftSignal(production_data=collected(OUTPUTS), reference_data=reference(),
                                                  metric_thresholds=predicted, alert_enabled=True),
        "data_quality": DataQualitySignal(production_data=collected(INPUTS), reference_data=reference(),
                                          features="all_features", metric_thresholds=quality, alert_enabled=True),
    }
    definition = MonitorDefinition(
        compute=ServerlessSparkCompute(instance_type=SPARK_INSTANCE_TYPE, runtime_version=SPARK_RUNTIME),
        monitoring_target=MonitoringTarget(ml_task=task, endpoint_deployment_id=f"azureml:{endpoint}:{deployment}"),
        monitoring_signals=signals, alert_notification=AlertNotification(emails=[]))
    # Every window_days days, the window the local monitor also judges by default.
    trigger = RecurrenceTrigger(frequency="day", interval=monitor["window_days"],
                                time_zone=params["azure"]["schedule"]["time_zone"])
    return MonitorSchedule(name=monitor_name(params), trigger=trigger, create_monitor=definition,
                           display_name=f"monitor {params['model']['name']} ({params['env']['name']})",
                           description="modelfactory: data drift, prediction drift and data quality of the "
                                       "endpoint's collected data against the training data",
                           tags={"model": params["model"]["name"], "env": params["env"]["name"]})


def expected_signals(params: Mapping) -> dict[str, dict]:
    """What every signal must say after the round trip: its metrics and thresholds, from params."""
    monitor = params["monitor"]
    prediction_kind = "numerical" if params["model"]["task"] == "regression" else "categorical"
    return {
        "data_drift": {"numerical": {monitor["numerical"]["metric"]: monitor["numerical"]["threshold"]},
                       "categorical": {monitor["categorical"]["metric"]: monitor["categorical"]["threshold"]}},
        "prediction_drift": {prediction_kind: {monitor["prediction"][prediction_kind]["metric"]:
                                               monitor["prediction"][prediction_kind]["threshold"]}},
        "data_quality": {kind: dict(monitor["quality"]) for kind in ("numerical", "categorical")},
    }


def loaded_signals(schedule) -> dict[str, dict]:
    """The metrics and thresholds a loaded schedule's signals hold, in expected_signals' shape."""
    found = {}
    for name, signal in (schedule.create_monitor.monitoring_signals or {}).items():
        thresholds = signal.metric_thresholds
        found[name] = {kind: {k: v for k, v in vars(getattr(thresholds, kind)).items()
                              if v is not None and k not in ("metric", "metric_threshold")}
                       for kind in ("numerical", "categorical") if getattr(thresholds, kind, None) is not None}
    return found


def check_monitor(path: Path, params: Mapping) -> list[str]:
    """Load ``monitor.yaml`` with azure-ai-ml's ``load_schedule``; the problems (none when it is sound)."""
    from azure.ai.ml.entities._load_functions import load_schedule  # not re-exported by azure.ai.ml

    from modelfactory.ops.azureml import workspace
    from modelfactory.ops.azureml.checks import ASSET_REFERENCE

    try:
        loaded = load_schedule(str(path))
    except Exception as exc:  # azure-ai-ml raises marshmallow, its own and OS errors for a bad file
        return [f"{path.name}: does not load: {workspace.load_error(exc)}"]
    problems = []
    if type(loaded).__name__ != "MonitorSchedule":
        problems.append(f"{path.name}: loads as a {type(loaded).__name__}, not a MonitorSchedule")
        return problems
    signals = loaded.create_monitor.monitoring_signals or {}
    if sorted(signals) != sorted(SIGNALS):
        problems.append(f"{path.name}: signals {sorted(signals)}, expected {sorted(SIGNALS)}")
    for name, wanted in expected_signals(params).items():
        got = loaded_signals(loaded).get(name)
        if got != wanted:
            problems.append(f"{path.name}: {name} holds {got} after loading, params say {wanted}")
    problems += _rest_problems(loaded, params, path.name)
    written = yaml.safe_load(path.read_text())["create_monitor"]["monitoring_signals"]
    for name, signal in written.items():
        for role in ("production_data", "reference_data"):
            where = str(((signal.get(role) or {}).get("input_data") or {}).get("path") or "")
            if not ASSET_REFERENCE.match(where):
                problems.append(f"{path.name}: {name}.{role} {where or '(none)'} is not an azureml: asset reference")
    return problems


def _rest_problems(loaded, params: Mapping, shown: str) -> list[str]:
    """What the service would receive: azure-ai-ml drops a metric whose threshold is 0 (it tests the
    number for truth), so each signal's REST form must still carry every metric params set."""
    from azure.ai.ml._utils.utils import snake_to_camel

    try:
        rest = loaded._to_rest_object().properties.action.monitor_definition.signals
    except Exception as exc:  # noqa: BLE001 - any refusal of the conversion is a problem to report
        return [f"{shown}: azure-ai-ml cannot convert it for the service: {exc}"]
    problems = []
    for name, kinds in expected_signals(params).items():
        sent = {(t.metric, t.threshold.value if t.threshold else None) for t in rest[name].metric_thresholds}
        for metrics in kinds.values():
            for metric, threshold in metrics.items():
                if (snake_to_camel(metric), threshold) not in sent:
                    problems.append(f"{shown}: {name} would reach Azure ML without {metric} {threshold} (azure-ai-ml "
                                    "drops a drift threshold of 0; use a small positive number)")
    return problems


def write_monitor(params: Mapping, folder: Path) -> Path:
    """Build, dump and load back ``monitor.yaml`` in ``folder``; AzureSpecError on any problem."""
    from modelfactory.ops.azureml import workspace

    workspace.quiet_azure_logs()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    build_monitor(params).dump(path)
    problems = check_monitor(path, params)
    if problems:
        raise AzureSpecError(f"{len(problems)} problem(s) in {path.name}: " + "; ".join(problems))
    return path
