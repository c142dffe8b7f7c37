"""Raw data: load it (through sources.py, which owns the reading), check it, split it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pandas as pd

from modelfactory.errors import DataValidationError


def load_dataset(data_params: Mapping) -> pd.DataFrame:
    """Materialise the raw dataset that ``params['data']`` names, target column last.

    ``data.source`` picks the reader (sources.SOURCES); switching source is a params change only. The
    source's URI, version and content hash go with the frame (``frame.attrs['source']``) and, when a
    stage's MLflow run is active, into MLflow as the run's dataset input. With ``data.partition`` set
    (one model per partition), only that partition's rows are read, and its key columns, the same in
    every row, are dropped.
    """
    from modelfactory.core import sources

    partition = data_params.get("partition")
    if partition:  # one partition's rows, filtered as they are read (no whole-file read to overlap)
        ref = sources.locate(data_params)
        frame = sources.read_partition(ref, partition)
    else:
        with sources.reading_while_hashing():  # the file is read while it is hashed, not after
            ref = sources.locate(data_params)
            frame = sources.read(ref)
    where = sources.shown(ref.files[0]) if len(ref.files) == 1 else f"dataset '{data_params['dataset']}'"
    if partition:
        where += f" partition {', '.join(f'{c}={v}' for c, v in partition.items())}"
        if frame.empty:
            raise DataValidationError(f"{where}: no rows (data.partition)")
    target = data_params["target"]
    require_unique_columns(frame, where)
    if target not in frame.columns:
        raise DataValidationError(
            f"{where}: column '{target}' (data.target) is not in the data; "
            f"its columns: {', '.join(map(str, frame.columns))}"
        )
    if frame[target].isna().all():
        raise DataValidationError(f"{where}: column '{target}' (data.target) is empty in all {len(frame)} rows")
    if frame.columns[-1] != target:  # moved alone: selecting every column in a new order copies the table
        frame[target] = frame.pop(target)
    frame.attrs["source"] = {**ref.record(), "partition": dict(partition)} if partition else ref.record()
    location = (ref.files[0] if len(ref.files) == 1 else ref.files[0].parent) if ref.files else None
    _log_input(frame, ref.record(), target, location)
    return frame


def _log_input(frame: pd.DataFrame, record: Mapping, target: str, location) -> None:
    """Record the data as the active MLflow run's dataset input; without an active run (the CLI,
    batch scoring) nothing is logged and mlflow is not imported."""
    import sys

    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        from modelfactory.ops.tracking import log_data_input

        log_data_input(frame, record, target, location)


def require_unique_columns(frame: pd.DataFrame, where: str) -> None:
    """Raise DataValidationError for a column name that appears twice.

    pandas renames a repeated CSV header ``bmi`` to ``bmi.1``; a ``<name>.<n>`` beside ``<name>`` is
    taken as such a copy, since training on it would quietly use one column twice.
    """
    names = [str(c) for c in frame.columns]
    seen = set(names)
    for name in names:
        if names.count(name) > 1:
            raise DataValidationError(f"{where}: column '{name}' appears {names.count(name)} times; "
                                      "rename or drop the copies")
        base, dot, number = name.rpartition(".")
        if dot and number.isdigit() and base in seen:
            raise DataValidationError(f"{where}: column '{base}' appears twice (the copy was renamed '{name}' "
                                      "when it was read); rename or drop the copy")


def target_fit(values: pd.Series, task: str) -> tuple[str, str, bool]:
    """Whether a target column suits the task: ``(observed, expected, fits)``.

    A classification target needs two classes or more (binary or multi-class), each in two rows or
    more, and numbers must be whole (fractions, or values seen once, are a regression target); a regression target needs numbers that vary and are
    more than two values (two values is a classification target).
    """
    distinct = _distinct(values)
    if task == "classification":
        present = values.dropna()
        expected = "2 or more classes"
        if len(distinct) == 1:
            return f"1 class ({distinct[0]}) in every row", expected, False
        if not len(distinct):
            return "no values", expected, False
        fractional = (pd.api.types.is_float_dtype(present)
                      and not (present.astype("float64") % 1 == 0).all())
        # A class seen in one row cannot be both learnt and evaluated: a measured quantity (diabetes'
        # progression scores, whole numbers) looks like this. Two classes keep their old rule.
        single = len(distinct) > 2 and bool((present.value_counts() == 1).any())
        if fractional or single:
            return f"{len(distinct)} distinct values (a regression target? then model.task: regression)", expected, False
        return f"{len(distinct)} classes", expected, True
    expected = "numbers with more than 2 distinct values"
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return f"non-numeric values (dtype {values.dtype})", expected, False
    if not len(distinct):
        return "no values", expected, False
    if len(distinct) == 1:
        return f"the constant {distinct[0]:g} in every row: nothing to learn", expected, False
    if len(distinct) == 2:
        low, high = sorted(distinct)
        return (f"2 distinct values ({low:g}, {high:g}): a classification target? then model.task: "
                "classification"), expected, False
    return f"{len(distinct)} distinct values", expected, True


def _distinct(values: pd.Series):
    """The distinct values of a column, missing values left out (in no particular order). NumPy
    numbers are sorted and compared with their neighbours (twice as fast as a hash table on millions
    of rows), gaps (NaN, sorted last) cut off the end: no copy of the column without them."""
    import numpy as np

    numbers = values.to_numpy() if isinstance(values.dtype, np.dtype) else None
    if numbers is None or numbers.dtype.kind not in "fiu":
        return values.dropna().unique()
    ordered = np.sort(numbers)
    if ordered.dtype.kind == "f":
        ordered = ordered[:len(ordered) - int(np.count_nonzero(np.isnan(ordered)))]
    if not len(ordered):
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def check_data(frame: pd.DataFrame, data_params: Mapping, task: str) -> pd.DataFrame:
    """Run the checks of ``params['data']['checks']`` and that the target suits ``task``.

    One row per check, with the params key it comes from and ``passed``. Safe on any table (empty,
    text columns, a missing target), so it runs before anything summarises the data.
    """
    import numpy as np

    checks = data_params["checks"]
    target = data_params["target"]
    missing_share = max(missing_counts(frame)) / len(frame) if len(frame) and len(frame.columns) else 0.0
    absent = [c for c in [*checks["required_columns"], target] if c not in frame.columns]
    # Column kinds are looked up on no rows: select_dtypes on the whole table would copy it.
    kinds = frame.iloc[:0]
    numbers = kinds.select_dtypes("number").columns
    # The kinds the model pipeline's preprocessing encodes (modeling.KIND_DTYPES); others (dates) it would drop.
    usable = kinds.select_dtypes(["number", "object", "string", "category", "bool"]).drop(columns=[target],
                                                                                          errors="ignore").shape[1]
    infinite = [str(c) for c in numbers if _has_infinity(frame[c])]
    fit = target_fit(frame[target], task) if target in frame else ("absent", "present", False)
    rows = [
        ("rows", "data.checks.min_rows", len(frame), f">= {checks['min_rows']}", len(frame) >= checks["min_rows"]),
        ("required columns present", "data.checks.required_columns", len(absent) and ", ".join(absent) or "all",
         "all", not absent),
        ("largest missing share", "data.checks.max_missing_fraction", round(missing_share, 4),
         f"<= {checks['max_missing_fraction']}", missing_share <= checks["max_missing_fraction"]),
        ("target has no missing values", "data.target", int(frame[target].isna().sum()) if target in frame else "absent",
         "0", target in frame and not frame[target].isna().any()),
        ("no infinite values", "-", ", ".join(infinite) or "none", "none", not infinite),
        (f"target '{target}' suits model.task {task}", "model.task", fit[0], fit[1], fit[2]),
        # number, text, category or boolean: each is encoded inside the model pipeline
        ("feature types usable", "-", f"{usable} of {frame.shape[1] - (target in frame)}", "all",
         usable == frame.shape[1] - (target in frame)),
    ]
    return pd.DataFrame(rows, columns=["check", "param", "observed", "expected", "passed"])


def _has_infinity(values: pd.Series) -> bool:
    """Whether a number column holds an infinity (a float64 column is read in place, not copied)."""
    import numpy as np

    if values.dtype.kind in "iub":  # NumPy integers and booleans have none
        return False
    array = values.to_numpy() if values.dtype == np.float64 else values.to_numpy(dtype="float64", na_value=np.nan)
    return bool(np.isinf(array).any())


def missing_counts(frame: pd.DataFrame) -> list[int]:
    """Missing values per column (``frame.isna().sum()``, without looking at every value of a text
    column: a text column as read_files read it has its gaps counted in its Arrow column's bitmap;
    another without a gap is told by pandas' C-level type scan at once, where isna costs about 0.1 s
    a column on 2 million rows)."""
    import numpy as np

    from modelfactory.core.sources import text_columns

    read = text_columns(frame)
    counts = []
    for name, values in frame.items():
        array = values.to_numpy() if isinstance(values.dtype, np.dtype) else None
        if name in read:
            counts.append(read[name].null_count)
        elif array is not None and array.dtype.kind in "iub":  # NumPy integers and booleans have no gaps
            counts.append(0)
        elif array is not None and array.dtype.kind == "f":
            counts.append(int(np.isnan(array).sum()))
        elif array is not None and array.dtype == object and pd.api.types.infer_dtype(array, skipna=False) == "string":
            counts.append(0)  # every value a str
        else:
            counts.append(int(values.isna().sum()))
    return counts


def require_checks_passed(checks: pd.DataFrame) -> None:
    """Raise DataValidationError listing every failed check, so the notebook stops there."""
    failed = checks[~checks["passed"].astype(bool)]
    if len(failed):
        detail = "; ".join(
            f"{r.check}: observed {r.observed}, expected {r.expected}" + (f" ({r.param})" if r.param != "-" else "")
            for r in failed.itertuples()
        )
        raise DataValidationError(f"{len(failed)} data check(s) failed: {detail}")


def split_data(frame: pd.DataFrame, data_params: Mapping, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, holdout) with a fixed seed, as ``params['data']`` says."""
    from sklearn.model_selection import train_test_split

    target = data_params["target"]
    train, holdout = train_test_split(
        frame,
        test_size=data_params["holdout_fraction"],
        random_state=seed,
        stratify=frame[target] if data_params["stratify"] else None,
    )
    return train.sort_index(), holdout.sort_index()


def split_summary(train: pd.DataFrame, holdout: pd.DataFrame, target: str, decimals: int) -> pd.DataFrame:
    """Rows and target mean per split: a quick look that the split is balanced (for a text target,
    the share of its most common class)."""
    numeric = pd.api.types.is_numeric_dtype(train[target])
    common = None if numeric or not len(train) else train[target].mode().iloc[0]
    centre = [part[target].mean() if numeric else part[target].eq(common).mean() for part in (train, holdout)]
    return pd.DataFrame(
        {"rows": [len(train), len(holdout)], "target mean": centre},
        index=["train", "holdout"],
    ).round(decimals)


def dataset_hash(frame: pd.DataFrame) -> str:
    """A short content hash of a DataFrame (values, index and column names)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:12]
