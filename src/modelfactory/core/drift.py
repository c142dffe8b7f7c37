"""Drift, data quality and live performance of scored data against the model's training data.

The reference (``build_reference``) is a JSON-safe profile of the training rows, written at train time
as ``model/drift_reference.json`` inside the logged model, so it goes wherever the model goes
(the MLflow registry, a serving package). A window of scored rows (``data/scored/<model>/date=.../``,
written by score.py's ScoredDataWriter) is tallied into histograms on the reference's own bins and
compared with it, per feature and for the prediction, with the metrics of core/drift_metrics.py.

Two ways in, one judgement: ``check_window`` takes a DataFrame; ``check_folder`` streams the window's
record batches from Parquet (only its date partitions and row groups) into the same tallies, so its
memory does not grow with the window; both end in ``_judge``.

The reference, per feature (``features``) and for ``prediction``:
- numerical: ``edges``, ``bins`` + 1 equal-width edges over the training values' 0.1% to 99.9%
  quantiles, and ``counts``, bins + 2 counts: values below the first edge, each bin, values above the
  last. Under them a fine histogram (``fine_counts``, ``FINE`` sub-bins per bin, same two tails) and
  the tails' sums: the KS test and the Wasserstein distance are computed from it, with each fine bin's
  mass at its midpoint and each tail's at its mean (error at most half a fine bin). Also ``mean``,
  ``std`` (the Wasserstein distance is divided by it), ``min``, ``max``, ``nulls``, ``non_finite``.
- categorical: ``categories`` (as in the data: text, whole numbers, booleans) and their ``counts``.
  A window's values that are not among them are counted in one extra bin, against a reference count
  of 0: unseen categories are drift mass, never dropped.
Drift is measured on the present, finite values: nulls, infinities and values of the wrong type are
data quality (null, type-error and out-of-range rates, against the data contract, or the reference's
range and categories when there is none), never silently binned. A column with no present values
(all null, in the reference or the window) has no drift value (``value`` None, not drifted); its null
rate says what happened.

Decisions this module makes on the shared API (docs/configuration.md, ``monitor:``):
- Metric names and defaults are Azure ML's: numerical ``normalized_wasserstein_distance`` 0.1 and
  categorical ``jensen_shannon_distance`` 0.1 (azure/ai/ml/entities/_monitoring/thresholds.py,
  NumericalDriftMetrics / CategoricalDriftMetrics ``_get_default_thresholds``), the same for the
  prediction (PredictionDriftMetricThreshold has a numerical and a categorical metric, so
  ``monitor.prediction`` has both: a regression's predictions are numerical, a classifier's
  categorical), and data quality rates of 0.0 (DataQualityMetricsNumerical/Categorical).
- Normalized Wasserstein distance: the Wasserstein-1 distance divided by the reference's standard
  deviation (population, ddof 0); Azure ML does not publish its normalisation.
- ``monitor.min_rows`` defaults to 1000, not 100: at Azure's 0.1 thresholds, windows of 100 rows drawn
  from the training distribution itself raised an alert 98 times in 100 (the Wasserstein distance of
  100 normal draws from their own distribution is about 0.11 standard deviations); with 1000 rows, 2.
- The verdict names drifted features; a drifted prediction is added ("..., and in the prediction").
  ``drifted`` lists features only.
- Labels are joined on ``request_id``, and on ``row`` too when the labels have it (a request may carry
  several rows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.core import drift_metrics
from modelfactory.errors import DataValidationError, ParamsError

REFERENCE_FILE = "drift_reference.json"  # inside the logged model's folder
FORMAT = 1
FINE = 100  # fine sub-bins per numerical bin: the KS test and Wasserstein distance read these
RANGE_QUANTILES = (0.001, 0.999)  # the numerical bins span these quantiles of the training values
SHOWN_UNSEEN = 5  # unseen categories listed by name in a result
NUMERICAL = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
             "two_sample_kolmogorov_smirnov_test")
CATEGORICAL = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test")
# Metrics of modeling.METRICS that need class probabilities, which scored data does not keep.
PROBABILITY_METRICS = {"roc_auc", "roc_auc_ovr", "log_loss"}
SCANNER = {"batch_size": 65_536, "batch_readahead": 2, "fragment_readahead": 2}  # bounded memory per scan


# -- the reference ------------------------------------------------------------------------------------

def build_reference(frame: pd.DataFrame, predictions, contract: Mapping | None, settings: Mapping) -> dict:
    """The JSON-safe profile of the training rows that windows are compared with.

    Args:
        frame: the model's input columns, as trained on (no target).
        predictions: the model's predictions on those rows, or None.
        contract: the data contract (contract.to_json's shape, or a Contract): which columns are
            numerical; None: read off the dtypes.
        settings: ``params.monitor`` (``bins``), plus ``task`` (a classifier's predictions are
            categorical) and ``data`` (the training data's source/name/version/hash record), if known.
    """
    specs = _specs(contract)
    bins = int(settings["bins"])
    features = {str(name): _profile(values, _kind(values, specs.get(str(name))), bins)
                for name, values in frame.items()}
    prediction = None
    if predictions is not None:
        values = pd.Series(np.asarray(predictions))
        task = settings.get("task")
        kind = {"classification": "categorical", "regression": "numerical"}.get(task) or _kind(values, None)
        prediction = _profile(values, kind, bins)
    return {"format": FORMAT, "rows": int(len(frame)), "bins": bins, "features": features,
            "prediction": prediction, "data": dict(settings["data"]) if settings.get("data") else None}


def _specs(contract) -> dict[str, dict]:
    if contract is None:
        return {}
    if hasattr(contract, "model_dump"):
        contract = contract.model_dump(mode="json", exclude_none=True)
    return {str(k): dict(v) for k, v in contract["columns"].items()}


def _kind(values: pd.Series, spec: Mapping | None) -> str:
    if spec is not None:
        return "numerical" if spec["dtype"] in ("number", "integer") else "categorical"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return "numerical" if numeric else "categorical"


def _profile(values: pd.Series, kind: str, bins: int) -> dict:
    tally = Tally(kind, None, bins=bins)
    tally.add(values)
    return tally.reference_profile()


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write_reference(model_dir: Path, model_uri: str | None, model, rows: pd.DataFrame, target: str, task: str,
                    monitor: Mapping, manifest: Path | None = None) -> dict:
    """The train stage's one call: build the reference from the training rows and the model's
    predictions on them, write ``model_dir/drift_reference.json``, and add it to the logged MLflow
    model (``model_uri``, models:/m-...) so the registry and every package built from it carry it.

    Args:
        model_dir: the train stage's copy of the logged model.
        model_uri: what ``log_model`` returned; None: write the local copy only.
        model: the fitted model.
        rows: the training rows, target included.
        target: the target column (params ``data.target``).
        task: ``regression`` or ``classification`` (params ``model.task``).
        monitor: the params' ``monitor`` section (bins and metrics), which the train stage's cache key holds.
        manifest: the run's manifest.json, for the data record (source, version, hash); absent by hand.
    """
    from modelfactory.core import contract as contracts
    from modelfactory.core.modeling import features

    x = features(rows, target)
    logged = contracts.model_contract(model_dir)
    data = json.loads(Path(manifest).read_text()).get("data") if manifest and Path(manifest).is_file() else None
    settings = {**monitor, "task": task, "data": data}
    reference = build_reference(x, model.predict(x), contracts.to_json(logged) if logged else None, settings)
    path = Path(model_dir) / REFERENCE_FILE
    path.write_text(json.dumps(reference))
    if model_uri and model_uri.startswith("models:/m-"):
        from mlflow import MlflowClient

        MlflowClient().log_model_artifact(model_uri.removeprefix("models:/"), str(path))
    return reference


def read_reference(model_dir: Path) -> dict:
    """The reference stored with a model (its folder, as downloaded from the registry or packaged)."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        raise DataValidationError(f"{path}: no drift reference; the model was trained before monitoring "
                                  "existed: retrain it (modelfactory run) to monitor it")
    return json.loads(path.read_text())


# -- tallies: one column's histogram and quality counts, fed batch by batch -------------------------------

class Tally:
    """One column's counts over a window (or the training rows), fed a batch at a time: a pandas
    Series or an Arrow array. Memory is the bins', whatever the number of rows."""

    def __init__(self, kind: str, profile: Mapping | None, spec: Mapping | None = None, bins: int = 10):
        self.kind, self.profile, self.spec = kind, profile, spec
        self.rows = self.nulls = self.type_errors = self.out_of_bounds = 0
        self.values: list[np.ndarray] = []  # a reference's finite values, kept only while profiling
        self.counts: dict = {}
        self.bins = bins
        if kind == "numerical" and profile is not None and profile.get("edges"):
            self.lo, self.hi = profile["edges"][0], profile["edges"][-1]
            self.fine = np.zeros(len(profile["fine_counts"]), dtype="int64")
            self.tail_sums = np.zeros(2)

    def add(self, column) -> None:
        """Count one batch of the column's values."""
        self.rows += len(column)
        if self.kind == "numerical":
            self._add_numbers(*_as_numbers(column))
        else:
            nulls, counts = _value_counts(column)
            self.nulls += nulls
            for value, count in counts:
                self.counts[value] = self.counts.get(value, 0) + count

    def add_missing(self, rows: int) -> None:
        """A batch without this column: all its rows are null here."""
        self.rows += rows
        self.nulls += rows

    def _add_numbers(self, x: np.ndarray, not_numbers: int) -> None:
        # Each step skips its copy or count when the batch has nothing for it (the common case):
        # no gaps, no infinities, nothing out of range. Time here is per value, so it adds up.
        finite_mask = np.isfinite(x)
        finite_count = int(np.count_nonzero(finite_mask))
        finite = x if finite_count == len(x) else x[finite_mask]
        missing = int(np.count_nonzero(np.isnan(x))) if finite_count < len(x) else 0
        self.nulls += missing - not_numbers
        self.type_errors += not_numbers + (len(x) - missing - finite_count)  # + infinities
        if self.profile is None:  # profiling the reference: keep the values, bins come from all of them
            self.values.append(finite)
            return
        if self.spec is not None and finite_count:
            if self.spec.get("dtype") == "integer":
                self.type_errors += int(np.count_nonzero(finite != np.floor(finite)))
            low, high = self.spec.get("min"), self.spec.get("max")
            if low is not None and finite.min() < low:
                self.out_of_bounds += int(np.count_nonzero(finite < low))
            if high is not None and finite.max() > high:
                self.out_of_bounds += int(np.count_nonzero(finite > high))
        if hasattr(self, "fine") and finite_count:
            index = _fine_index(finite, self.lo, self.hi, len(self.fine) - 2)
            counts = np.bincount(index, minlength=len(self.fine))
            self.fine += counts
            if counts[0]:
                self.tail_sums[0] += finite[index == 0].sum()
            if counts[-1]:
                self.tail_sums[1] += finite[index == len(self.fine) - 1].sum()

    # -- what the tally gives

    def reference_profile(self) -> dict:
        """This tally (of training rows) as a reference profile."""
        if self.kind == "categorical":
            pairs = sorted(self.counts.items(), key=lambda kv: (str(type(kv[0])), str(kv[0])))
            return {"kind": "categorical", "categories": [_plain(k) for k, _ in pairs],
                    "counts": [int(c) for _, c in pairs], "nulls": int(self.nulls)}
        finite = np.concatenate(self.values) if self.values else np.zeros(0)
        profile = {"kind": "numerical", "nulls": int(self.nulls), "non_finite": int(self.type_errors),
                   "edges": None, "counts": None}
        if not len(finite):
            return profile
        lo, hi = (float(q) for q in np.quantile(finite, RANGE_QUANTILES))
        if hi <= lo:
            lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:  # a constant column: one unit-wide range around it
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, self.bins + 1)
        window = Tally("numerical", {"edges": edges.tolist(), "fine_counts": [0] * (self.bins * FINE + 2)})
        window.add(finite)
        profile.update(edges=edges.tolist(), counts=coarse_counts(window.fine, self.bins).tolist(),
                       fine_counts=window.fine.tolist(), tail_sums=window.tail_sums.tolist(),
                       mean=float(finite.mean()), std=float(finite.std()), min=float(finite.min()),
                       max=float(finite.max()))
        return profile

    def present(self) -> int:
        """How many values were counted into the histogram."""
        if self.kind == "categorical":
            return int(sum(self.counts.values()))
        return int(self.fine.sum()) if hasattr(self, "fine") else 0


def _fine_index(x: np.ndarray, lo: float, hi: float, fine: int) -> np.ndarray:
    """Each value's fine bin: 0 below ``lo``, 1..fine inside (equal width), fine + 1 at or above ``hi``.
    Arithmetic rather than a search: one pass, whatever the number of bins."""
    position = x - lo
    position *= fine / (hi - lo)
    np.floor(position, out=position)
    position += 1
    np.clip(position, 0, fine + 1, out=position)
    return position.astype(np.intp)


def coarse_counts(fine_counts, bins: int) -> np.ndarray:
    """The ``bins`` + 2 counts (below, each bin, above) from the fine histogram."""
    fine_counts = np.asarray(fine_counts)
    inside = fine_counts[1:-1].reshape(bins, -1).sum(axis=1)
    return np.concatenate([[fine_counts[0]], inside, [fine_counts[-1]]])


def _as_numbers(column) -> tuple[np.ndarray, int]:
    """float64 values (NaN where null or not a number) and how many present values were not numbers."""
    import pyarrow as pa

    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            numbers = [c.to_numpy(zero_copy_only=False) for c in chunks]  # a null becomes NaN
            return np.concatenate(numbers).astype("float64", copy=False) if numbers else np.zeros(0), 0
        column = column.to_pandas()
    if isinstance(column, np.ndarray):
        column = pd.Series(column)
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan), 0
    values = column.to_numpy(dtype=object)
    numbers = np.fromiter((isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                           for v in values), dtype=bool, count=len(values))
    x = np.full(len(values), np.nan)
    if numbers.any():
        x[numbers] = values[numbers].astype("float64")
    return x, int(np.count_nonzero(~numbers & ~pd.isna(column).to_numpy()))


def _value_counts(column) -> tuple[int, list[tuple]]:
    """(nulls, [(value, count), ...]) of one batch; Arrow counts in C, pandas for mixed objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        nulls = column.null_count
        if pa.types.is_floating(column.type):
            nulls += int(pc.sum(pc.is_nan(column)).as_py() or 0)
            column = pc.drop_null(pc.if_else(pc.is_nan(column), None, column))
        counted = pc.value_counts(pc.drop_null(column))
        return nulls, [(_key(v), int(c)) for v, c in zip(counted.field("values").to_pylist(),
                                                         counted.field("counts").to_pylist())]
    column = pd.Series(column) if not isinstance(column, pd.Series) else column
    present = column.dropna()
    return int(len(column) - len(present)), [(_key(v), int(c)) for v, c in present.value_counts(sort=False).items()]


def _key(value):
    """A category as a dict key: numpy scalars as Python ones, 2.0 as 2 (as the contract lists it)."""
    value = _plain(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


# -- windows of scored Parquet --------------------------------------------------------------------------

def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def window_files(folder: Path, since: datetime, until: datetime) -> list[Path]:
    """The Parquet files of the date partitions that can hold rows scored in [since, until). A file
    is dated by the first row it holds and may run a few seconds past midnight, so the day before
    ``since`` is read too (its rows are then filtered on scored_at)."""
    since, until = _utc(since), _utc(until)
    first, last = since.date() - timedelta(days=1), (until - timedelta(microseconds=1)).date()
    files = []
    for part in sorted(Path(folder).glob("date=*")):
        try:
            day = date.fromisoformat(part.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            files += sorted(part.glob("part-*.parquet"))
    return files


def window_batches(folder: Path, since: datetime, until: datetime,
                   columns: Sequence[str] | None = None) -> Iterator:
    """The record batches of rows scored in [since, until): only the window's date partitions, and in
    them only the row groups whose scored_at statistics overlap it (pyarrow.dataset's filter). Batches
    come as they are read, a few at a time, so memory stays flat however long the window."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = window_files(folder, since, until)
    if not files:
        return
    try:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataValidationError(f"{folder}: the scored files disagree on a column's type: {exc}") from None
    stamp = pa.timestamp("us", tz="UTC")
    scored_at = ds.field("scored_at")
    window = (scored_at >= pa.scalar(_utc(since), stamp)) & (scored_at < pa.scalar(_utc(until), stamp))
    dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    wanted = None if columns is None else [c for c in columns if c in schema.names]
    yield from dataset.to_batches(columns=wanted, filter=window, **SCANNER)


def read_window(folder: Path, since: datetime, until: datetime, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows scored in [since, until) as a DataFrame (scored_at, request_id, row, model,
    model_version, the features, prediction; or ``columns``), reading only the window's partitions and
    row groups. For large windows, ``check_folder`` streams instead."""
    import pyarrow as pa

    batches = list(window_batches(folder, since, until, columns))
    if not batches:
        return pd.DataFrame(columns=list(columns or []))
    return pa.Table.from_batches(batches).to_pandas()


# -- judging a window -------------------------------------------------------------------------------------

def _tallies(reference: Mapping, contract) -> dict[str, Tally]:
    specs = _specs(contract)
    tallies = {name: Tally(p["kind"], p, specs.get(name) or _reference_spec(p))
               for name, p in reference["features"].items()}
    if reference.get("prediction"):
        tallies["prediction"] = Tally(reference["prediction"]["kind"], reference["prediction"], None)
    return tallies


def _reference_spec(profile: Mapping) -> dict:
    """Without a contract, quality is judged against the training data: its range and categories."""
    if profile["kind"] == "numerical":
        return {"dtype": "number", "nullable": profile["nulls"] > 0, "min": profile.get("min"),
                "max": profile.get("max")}
    if profile["categories"] and all(isinstance(c, bool) for c in profile["categories"]):
        return {"dtype": "boolean", "nullable": profile["nulls"] > 0}
    return {"dtype": "category", "nullable": profile["nulls"] > 0, "categories": profile["categories"]}


def check_window(reference: Mapping, window: pd.DataFrame, settings: Mapping, contract: Mapping | None = None) -> dict:
    """Drift, prediction drift and data quality of a window of scored rows.

    Args:
        reference: ``build_reference``'s profile (drift_reference.json).
        window: the scored rows (``read_window``): the reference's features and ``prediction``.
        settings: ``params.monitor``.
        contract: the model's data contract (contract.to_json's shape), for data quality; None: the
            reference's ranges and categories.

    Returns:
        ``{"rows", "min_rows", "enough_rows", "features": [{"feature", "kind", "metric", "value",
        "threshold", "drifted"}], "prediction": {same} or None, "quality": [{"feature", "null_rate",
        "type_error_rate", "out_of_range_rate", "breached"}], "drifted": [names], "verdict"}``.
    """
    tallies = _tallies(reference, contract)
    for name, tally in tallies.items():
        if name in window:
            tally.add(window[name])
        else:
            tally.add_missing(len(window))
    return _judge(reference, tallies, len(window), settings)


def check_folder(reference: Mapping, folder: Path, since: datetime, until: datetime, settings: Mapping,
                 contract: Mapping | None = None) -> dict:
    """``check_window`` over the rows scored in [since, until) under ``folder``, streamed batch by
    batch into the same tallies: the window is never whole in memory."""
    tallies = _tallies(reference, contract)
    rows = 0
    for batch in window_batches(folder, since, until, list(tallies)):
        rows += batch.num_rows
        names = set(batch.schema.names)
        for name, tally in tallies.items():
            if name in names:
                tally.add(batch.column(name))
            else:
                tally.add_missing(batch.num_rows)
    return _judge(reference, tallies, rows, settings)


def metric_for(name: str, kind: str, settings: Mapping, prediction: bool = False) -> tuple[str, float]:
    """The metric and threshold a column is judged by: its own (``monitor.features``), else its kind's."""
    if prediction:
        chosen, key = settings["prediction"][kind], f"monitor.prediction.{kind}"
    elif name in (settings.get("features") or {}):
        chosen, key = settings["features"][name], f"monitor.features.{name}"
    else:
        chosen, key = settings[kind], f"monitor.{kind}"
    allowed = NUMERICAL if kind == "numerical" else CATEGORICAL
    if chosen["metric"] not in allowed:
        raise ParamsError(f"{key}.metric: '{chosen['metric']}' does not apply to {kind} column '{name}'; "
                          f"use one of {', '.join(allowed)}")
    return chosen["metric"], float(chosen["threshold"])


def measure(metric: str, profile: Mapping, tally: Tally) -> float | None:
    """One metric of a window's tally against the reference profile; None when either side has no values."""
    if tally.present() == 0 or (profile["kind"] == "numerical" and not profile.get("edges")):
        return None
    if profile["kind"] == "categorical":
        known = {_key(c): i for i, c in enumerate(profile["categories"])}
        window = np.zeros(len(known) + 1)
        for value, count in tally.counts.items():
            window[known.get(value, len(known))] += count
        ref = np.append(np.asarray(profile["counts"], dtype="float64"), 0.0)
        if not ref.sum():
            return None
        return float(getattr(drift_metrics, metric)(ref, window))
    bins = len(profile["edges"]) - 1
    if metric in ("jensen_shannon_distance", "population_stability_index"):
        return float(getattr(drift_metrics, metric)(profile["counts"], coarse_counts(tally.fine, bins)))
    if metric == "two_sample_kolmogorov_smirnov_test":
        return drift_metrics.two_sample_kolmogorov_smirnov_test(profile["fine_counts"], tally.fine)
    ref_points = _points(profile["edges"], profile["fine_counts"], profile["tail_sums"])
    win_points = _points(profile["edges"], tally.fine, tally.tail_sums)
    return drift_metrics.normalized_wasserstein_distance(ref_points, profile["fine_counts"], win_points, tally.fine,
                                                         profile["std"] or 1.0)


def _points(edges, fine_counts, tail_sums) -> np.ndarray:
    """Where each fine bin's mass sits: the midpoints inside, each tail's mean outside."""
    lo, hi, fine = edges[0], edges[-1], len(fine_counts) - 2
    width = (hi - lo) / fine
    inside = lo + width * (np.arange(fine) + 0.5)
    below = tail_sums[0] / fine_counts[0] if fine_counts[0] else lo
    above = tail_sums[1] / fine_counts[-1] if fine_counts[-1] else hi
    return np.concatenate([[below], inside, [above]])


def _judge(reference: Mapping, tallies: Mapping[str, Tally], rows: int, settings: Mapping) -> dict:
    min_rows = int(settings["min_rows"])
    enough = rows >= min_rows
    features, quality = [], []
    for name, profile in reference["features"].items():
        features.append(_drift_row(name, profile, tallies[name], settings, enough, prediction=False))
        quality.append(_quality_row(name, tallies[name], rows, settings["quality"]))
    prediction = None
    if reference.get("prediction"):
        prediction = _drift_row("prediction", reference["prediction"], tallies["prediction"], settings, enough,
                                prediction=True)
    drifted = [row["feature"] for row in features if row["drifted"]]
    if not enough:
        verdict = f"too few rows to judge: {rows} < {min_rows}"
    elif drifted:
        verdict = f"drift in {len(drifted)} of {len(features)} features: {', '.join(drifted)}"
        verdict += ", and in the prediction" if prediction and prediction["drifted"] else ""
    elif prediction and prediction["drifted"]:
        verdict = f"drift in the prediction only (0 of {len(features)} features)"
    else:
        verdict = "no drift"
    return {"rows": int(rows), "min_rows": min_rows, "enough_rows": enough, "features": features,
            "prediction": prediction, "quality": quality, "drifted": drifted, "verdict": verdict}


def _drift_row(name: str, profile: Mapping, tally: Tally, settings: Mapping, enough: bool, prediction: bool) -> dict:
    metric, threshold = metric_for(name, profile["kind"], settings, prediction)
    value = measure(metric, profile, tally)
    row = {"feature": name, "kind": profile["kind"], "metric": metric,
           "value": None if value is None else round(value, 6), "threshold": threshold,
           "drifted": bool(enough and value is not None and drift_metrics.is_drift(metric, value, threshold))}
    if profile["kind"] == "categorical":
        known = {_key(c) for c in profile["categories"]}
        unseen = sorted(((v, c) for v, c in tally.counts.items() if v not in known), key=lambda vc: -vc[1])
        row["unseen_rows"] = int(sum(c for _, c in unseen))
        row["unseen"] = [str(v) for v, _ in unseen[:SHOWN_UNSEEN]]
    return row


def _quality_row(name: str, tally: Tally, rows: int, thresholds: Mapping) -> dict:
    spec = tally.spec or {}
    if tally.kind == "categorical":
        _categorical_quality(tally, spec)
    share = (lambda n: round(n / rows, 6)) if rows else (lambda n: 0.0)
    nulls, types, bounds = share(tally.nulls), share(tally.type_errors), share(tally.out_of_bounds)
    nullable = bool(spec.get("nullable", True))
    breached = ((not nullable and nulls > thresholds["null_value_rate"])
                or types > thresholds["data_type_error_rate"] or bounds > thresholds["out_of_bounds_rate"])
    return {"feature": name, "null_rate": nulls, "type_error_rate": types, "out_of_range_rate": bounds,
            "nullable": nullable, "breached": bool(breached)}


def _categorical_quality(tally: Tally, spec: Mapping) -> None:
    """Type errors and out-of-range values of a categorical column, from its distinct values' counts
    (so each distinct value is looked at once, not each row)."""
    tally.type_errors = tally.out_of_bounds = 0
    dtype = spec.get("dtype")
    allowed = {_key(c) for c in spec.get("categories") or []}
    base = {type(c) for c in allowed}
    for value, count in tally.counts.items():
        if dtype == "boolean":
            wrong = not isinstance(value, (bool, np.bool_))
        elif dtype == "string":
            wrong = not isinstance(value, str)
        elif dtype == "category":
            if value in allowed and not isinstance(value, bool):
                continue
            wrong = type(value) not in base
            tally.out_of_bounds += 0 if wrong else count
        else:
            wrong = False
        tally.type_errors += count if wrong else 0


# -- labels and live performance ---------------------------------------------------------------------------

def join_labels(window: pd.DataFrame, labels: pd.DataFrame, id_column: str = "request_id") -> tuple[pd.DataFrame, int]:
    """The scored rows that have a true value, and how many labels matched no scored row (reported,
    never dropped silently). Joined on ``id_column``, and on ``row`` too when the labels have it; a
    label given twice for one row counts once, the later one."""
    if id_column not in labels:
        raise DataValidationError(f"labels: no column '{id_column}' to join the scored rows on")
    keys = [id_column] + (["row"] if "row" in labels and "row" in window else [])
    labels = labels.drop_duplicates(keys, keep="last")  # a label sent twice: the later one counts, once
    label_keys = labels[keys].astype({id_column: str})
    scored_keys = window[keys].astype({id_column: str}).drop_duplicates()
    matched = label_keys.merge(scored_keys, on=keys, how="left", indicator=True)["_merge"] == "both"
    values = labels.drop(columns=[c for c in labels if c in window and c not in keys]).astype({id_column: str})
    joined = window.astype({id_column: str}).merge(values, on=keys, how="inner")
    return joined, int((~matched.to_numpy()).sum())


def live_performance(joined: pd.DataFrame, task: str, metrics: Sequence[str], label_column: str) -> dict:
    """Each metric of the predictions against the joined true values, with the functions training uses
    (modeling.METRICS). Metrics that need class probabilities, which scored data does not keep, and
    any metric of zero labelled rows, are None."""
    from modelfactory.core.modeling import METRICS, check_metric_names

    check_metric_names(metrics, task, key="evaluate.metrics")
    rows = joined.dropna(subset=[label_column, "prediction"]) if len(joined) else joined
    result = {}
    for name in metrics:
        if name in PROBABILITY_METRICS or not len(rows):
            result[name] = None
            continue
        value = METRICS[name][1](rows[label_column], rows["prediction"].to_numpy(), None)
        result[name] = None if value is None or math.isnan(value) else round(float(value), 6)
    return result
