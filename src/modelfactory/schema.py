"""The typed shape of the resolved params. Defaults live in params/base.yaml, not here.

Every section forbids unknown keys, so a typo is caught before any kernel starts. The one
exception is an estimator spec: besides ``estimator`` and ``scale_features`` it takes the
estimator's own hyperparameters, which modeling.build_estimator checks against the class.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
# No hyphen in an environment's name: the registered model is "<model>-<env>", and model "a-b" in env
# "c" must never share it with model "a" in env "b-c".
ENV_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
REGISTERED_PATTERN = r"^[a-z][a-z0-9_-]*(:(latest|v?[0-9]+))?$"


class Section(BaseModel):
    """A params section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class EnvSection(Section):
    """Which environment this is; set by the loader from --env."""

    name: str = Field(pattern=ENV_NAME_PATTERN)


class ModelSection(Section):
    """Which model this is; ``name`` is set by the loader from the file name."""

    name: str = Field(pattern=NAME_PATTERN)
    task: Literal["regression", "classification"]
    description: str


class DataChecks(Section):
    """Checks the raw data must pass before anything trains on it."""

    min_rows: int = Field(ge=1)
    max_missing_fraction: float = Field(ge=0.0, le=1.0)
    required_columns: list[str]


class DataSection(Section):
    """Where the raw data comes from and how it is split.

    ``source`` picks a reader in sources.SOURCES; ``dataset`` is what that reader takes: a bundled
    dataset's name (sklearn), a CSV/Parquet file, folder or glob from the project root (file), or
    ``NAME`` / ``NAME:VERSION`` / ``NAME:latest`` from the data registry (registered), an Azure ML data
    asset or datastore URI (azureml), or an ``abfss://`` / ``az://`` URI (blob). ``asset_type`` is an
    azureml asset's type, which a dry run cannot ask the workspace for.
    """

    source: Literal["sklearn", "file", "registered", "azureml", "blob"]
    dataset: str = Field(min_length=1)
    target: str
    holdout_fraction: float = Field(gt=0.0, lt=1.0)
    stratify: bool
    checks: DataChecks
    asset_type: Literal["uri_file", "uri_folder", "mltable"] | None = None
    # The data contract (contract.py): a mapping, or a YAML file under params/; None: inferred from the data.
    contract: dict | str | None = None
    # One model per distinct value of these columns (ops/partitions.py); []: one model on every row.
    partition_by: list[str] = Field(default_factory=list)
    # The partition this run trains, {column: value}; set by the runner from partition_by, not by hand.
    partition: dict | None = None

    @field_validator("partition_by")
    @classmethod
    def _partition_columns(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value} names a column twice")
        if info.data.get("target") in value:
            raise ValueError(f"'{info.data['target']}' is the target (data.target); a partition's key cannot be "
                             "what the model predicts")
        checks = info.data.get("checks")
        required = set(checks.required_columns) & set(value) if checks is not None else set()
        if required:  # each partition's rows arrive without their key columns (they are constant)
            raise ValueError(f"'{sorted(required)[0]}' is also in data.checks.required_columns; a partition's key "
                             "columns are dropped from its rows, so list only feature columns there")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset_suits_source(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("source") == "registered" and not re.fullmatch(REGISTERED_PATTERN, value):
            raise ValueError(f"'{value}' is not NAME, NAME:VERSION or NAME:latest of a registered dataset "
                             "(data.source: registered)")
        if info.data.get("source") == "azureml" and not value.startswith("azureml:"):
            raise ValueError(f"'{value}' is not azureml:NAME:VERSION, azureml:NAME@latest or an azureml:// URI "
                             "(data.source: azureml)")
        if info.data.get("source") == "blob" and not value.startswith(("abfss://", "abfs://", "az://")):
            raise ValueError(f"'{value}' is not an abfss:// or az:// URI (data.source: blob)")
        return value


class PreprocessSpec(Section):
    """How the pipeline's first step imputes and encodes columns (modeling.build_preprocessor).
    Each column's kind comes from its dtype unless ``columns`` names it."""

    numeric_impute: Literal["mean", "median", "most_frequent"]
    categorical_impute: Literal["most_frequent", "constant"]
    unknown_categories: Literal["ignore", "infrequent_if_exist", "refuse"]
    min_frequency: int | None = Field(default=None, ge=1)
    columns: dict[str, Literal["numeric", "categorical", "boolean", "drop"]]


class EstimatorSpec(BaseModel):
    """A scikit-learn estimator: a dotted class path plus its hyperparameters as extra keys."""

    model_config = ConfigDict(extra="allow", strict=True)

    estimator: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    scale_features: bool
    preprocess: PreprocessSpec | None = None


class Limits(Section):
    """Bounds a metric must stay within; either may be left out."""

    min: float | None = None
    max: float | None = None


class GateSection(Section):
    """The champion gate: thresholds, beating the baseline, the margin over the champion, and what a
    rejection does."""

    thresholds: dict[str, Limits]
    beat_baseline: bool
    margin: float = Field(ge=0.0)
    fail_on_reject: bool


class EvaluateSection(Section):
    """Holdout metrics and the baseline the model is compared with."""

    metrics: list[str] = Field(min_length=1)
    primary_metric: str
    baseline: EstimatorSpec
    gate: GateSection

    @field_validator("primary_metric")
    @classmethod
    def _primary_is_listed(cls, value: str, info: ValidationInfo) -> str:
        metrics = info.data.get("metrics") or []
        if value not in metrics:
            raise ValueError(f"'{value}' is not one of evaluate.metrics {metrics}")
        return value

    @field_validator("gate")
    @classmethod
    def _thresholds_are_measured(cls, value: GateSection, info: ValidationInfo) -> GateSection:
        # A threshold on a metric the stage does not compute would be a KeyError in the evaluate
        # notebook, long after the kernel started; name the key here instead.
        metrics = info.data.get("metrics") or []
        for name in value.thresholds:
            if name in metrics:
                continue
            hint = difflib.get_close_matches(name, metrics, n=1)
            tip = f"did you mean '{hint[0]}'?" if hint else "add it to evaluate.metrics, or remove the threshold"
            message = f"unknown metric '{name}'; {tip} (evaluate.metrics: {', '.join(metrics)})"
            # Raised as a ValidationError so the error's location is the threshold's own key path.
            raise ValidationError.from_exception_data("EvaluateSection", [InitErrorDetails(
                type=PydanticCustomError("value_error", message),
                loc=("thresholds", name), input=name)])
        return value


class EndpointSection(Section):
    """The local scoring endpoint (the Azure ML inference server on this machine)."""

    host: str
    port: int = Field(ge=0, le=65535)
    workers: int = Field(ge=1)
    threads: int = Field(ge=1)
    client_timeout_seconds: float = Field(gt=0)
    start_timeout_seconds: int = Field(ge=1)


class ScoredDataSection(Section):
    """Keeping every scored row for monitoring."""

    enabled: bool
    flush_rows: int = Field(ge=1)
    flush_seconds: float = Field(gt=0)


class DeploySection(Section):
    """How the packaged model is checked before it leaves the run."""

    sample_rows: int = Field(ge=1)
    tolerance: float = Field(ge=0.0)
    max_rows: int = Field(ge=1)
    base_image: str
    local_endpoint: bool = True
    endpoint: EndpointSection
    scored_data: ScoredDataSection


class TrackingSection(Section):
    """MLflow: where runs go, and what a logged model needs to be served."""

    uri: str | None
    experiment: str = Field(min_length=1)
    model_requirements: list[str] = Field(min_length=1)
    registry_by_hand: bool          # notebooks run by hand in Jupyter may register and promote


class ReportSection(Section):
    """How results are shown in notebooks and reports."""

    decimals: int = Field(ge=0, le=12)


class BatchSection(Section):
    """Batch scoring of files."""

    chunk_rows: int = Field(ge=1)
    on_bad_rows: Literal["skip", "fail"]
    input: str | None = None


class RunnerSection(Section):
    """How papermill runs the notebooks."""

    kernel: str
    cell_timeout_seconds: int = Field(ge=1)
    start_timeout_seconds: int = Field(ge=1)
    shared_kernel: bool
    preload: list[str]


class AzureWorkspace(Section):
    """Workspace coordinates (never a key); config.json in the project wins when present."""

    subscription_id: str | None = None
    resource_group: str | None = None
    name: str | None = None


class AzureEnvironmentSpec(Section):
    """The jobs' environment: a registered one, or environment.yml built on a base image."""

    registered: str | None = Field(default=None, pattern=r"^azureml:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+|@latest)$")
    base_image: str


class OnlineEndpointSpec(Section):
    """The managed online endpoint and its blue/green deployments."""

    name: str                       # may hold {model} and {env}
    instance_type: str
    instance_count: int = Field(ge=1)
    traffic: dict[str, int]
    mirror: dict[str, int]


class BatchEndpointSpec(Section):
    """The batch endpoint and its deployment."""

    name: str                       # may hold {model} and {env}
    compute: str
    mini_batch_size: int = Field(ge=1)
    instance_count: int = Field(ge=1)
    max_retries: int = Field(ge=0)
    timeout_seconds: int = Field(ge=1)


class ScheduleSpec(Section):
    """Recurring retraining."""

    cron: str
    time_zone: str
    enabled: bool


class AutoMLSpec(Section):
    """The AutoML baseline job."""

    timeout_minutes: int = Field(ge=15)
    max_trials: int = Field(ge=1)
    cross_validations: int = Field(ge=2)


class WaitSpec(Section):
    """How `submit --wait` follows a job."""

    poll_seconds: float = Field(gt=0)
    timeout_minutes: float = Field(gt=0)


class ParallelRetrySpec(Section):
    """How often a failed mini-batch (one partition) is tried again, and how long one may take."""

    max_retries: int = Field(ge=0)
    timeout_seconds: int = Field(ge=1)


class ParallelSpec(Section):
    """The Azure ML ``parallel`` job that trains a partitioned model: one mini-batch per partition."""

    instance_count: int = Field(ge=1)
    max_concurrency_per_instance: int = Field(ge=1)
    mini_batch_error_threshold: int = Field(ge=-1)
    error_threshold: int = Field(ge=-1)
    retry_settings: ParallelRetrySpec
    logging_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class AzureSection(Section):
    """Azure ML: where jobs run and what they deploy. Values that differ per environment come from
    environment variables through params/env/*.yaml."""

    workspace: AzureWorkspace
    compute: str
    environment: AzureEnvironmentSpec
    serving_image: str
    online: OnlineEndpointSpec
    batch: BatchEndpointSpec
    schedule: ScheduleSpec
    automl: AutoMLSpec
    wait: WaitSpec
    parallel: ParallelSpec


# Azure ML's own metric names (azure.ai.ml.entities NumericalDriftMetrics / CategoricalDriftMetrics), so the
# local monitor and the Azure ML monitor schedule read the same params. core/drift.py computes each.
NUMERICAL_DRIFT_METRICS = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
                           "two_sample_kolmogorov_smirnov_test")
CATEGORICAL_DRIFT_METRICS = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test")


class NumericalDrift(Section):
    """The drift metric of numerical columns and its threshold."""

    metric: Literal[NUMERICAL_DRIFT_METRICS]
    threshold: float = Field(ge=0.0)


class CategoricalDrift(Section):
    """The drift metric of categorical columns and its threshold."""

    metric: Literal[CATEGORICAL_DRIFT_METRICS]
    threshold: float = Field(ge=0.0)


class FeatureDrift(Section):
    """One column's own metric and threshold (drift.check_window refuses a metric that does not fit
    the column's kind, naming the key)."""

    metric: Literal[tuple(dict.fromkeys(NUMERICAL_DRIFT_METRICS + CATEGORICAL_DRIFT_METRICS))]
    threshold: float = Field(ge=0.0)


class PredictionDrift(Section):
    """Prediction drift: a regression's predictions are numerical, a classifier's categorical (as Azure
    ML's PredictionDriftMetricThreshold has one of each)."""

    numerical: NumericalDrift
    categorical: CategoricalDrift


class QualityThresholds(Section):
    """Data quality: the highest share of rows each check may fail (Azure ML's names)."""

    null_value_rate: float = Field(ge=0.0, le=1.0)
    data_type_error_rate: float = Field(ge=0.0, le=1.0)
    out_of_bounds_rate: float = Field(ge=0.0, le=1.0)


class MonitorSection(Section):
    """Monitoring scored data: drift, data quality and live performance (core/drift.py)."""

    window_days: int = Field(ge=1)
    min_rows: int = Field(ge=1)
    bins: int = Field(ge=2, le=100)
    numerical: NumericalDrift
    categorical: CategoricalDrift
    prediction: PredictionDrift
    features: dict[str, FeatureDrift]
    quality: QualityThresholds
    labels: str | None = None
    on_drift: Literal["none", "retrain"]
    # The window [since, until): ISO dates or date-times (UTC unless they say otherwise); None: the last
    # window_days days up to now. `modelfactory monitor --since/--until` set them (ops/monitor.window_bounds).
    since: str | None = None
    until: str | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_text(cls, value):
        # --set monitor.since=2026-11-30 arrives parsed by YAML as a date: keep it as the text it was
        import datetime as dt

        return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


class Params(Section):
    """The whole resolved params object."""

    seed: int
    env: EnvSection
    model: ModelSection
    data: DataSection
    train: EstimatorSpec
    evaluate: EvaluateSection
    deploy: DeploySection
    tracking: TrackingSection
    report: ReportSection
    batch: BatchSection
    runner: RunnerSection
    monitor: MonitorSection
    azure: AzureSection
