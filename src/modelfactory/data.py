"""Raw data: load it, check it, split it. Pure functions on DataFrames; no paths here."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import pandas as pd

from modelfactory.errors import DataValidationError, ParamsError


def _sklearn_dataset(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}", None)
    if loader is None:
        known = sorted(n.removeprefix("load_") for n in dir(datasets) if n.startswith("load_"))
        raise ParamsError(f"data.dataset: scikit-learn bundles no dataset '{name}'; it has {', '.join(known)}")
    bunch = loader(as_frame=True)
    return bunch.frame


# Where raw data can come from: a new source is one function plus one entry here.
SOURCES: dict[str, Callable[[str], pd.DataFrame]] = {"sklearn": _sklearn_dataset}


def load_dataset(data_params: Mapping) -> pd.DataFrame:
    """Materialise the raw dataset named in ``params['data']``, target column last."""
    frame = SOURCES[data_params["source"]](data_params["dataset"])
    target = data_params["target"]
    if target not in frame.columns:
        raise DataValidationError(
            f"data.target: column '{target}' is not in dataset '{data_params['dataset']}' "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    return frame[[c for c in frame.columns if c != target] + [target]]


def check_data(frame: pd.DataFrame, data_params: Mapping) -> pd.DataFrame:
    """Run the checks of ``params['data']['checks']``; one row per check, with ``passed``."""
    checks = data_params["checks"]
    target = data_params["target"]
    missing_share = float(frame.isna().mean().max()) if len(frame.columns) else 0.0
    absent = [c for c in [*checks["required_columns"], target] if c not in frame.columns]
    numeric = frame.drop(columns=[target], errors="ignore").select_dtypes("number").shape[1]
    rows = [
        ("rows", "min_rows", len(frame), f">= {checks['min_rows']}", len(frame) >= checks["min_rows"]),
        ("required columns present", "required_columns", len(absent) and ", ".join(absent) or "all",
         "all", not absent),
        ("largest missing share", "max_missing_fraction", round(missing_share, 4),
         f"<= {checks['max_missing_fraction']}", missing_share <= checks["max_missing_fraction"]),
        ("target has no missing values", "target", int(frame[target].isna().sum()) if target in frame else "absent",
         "0", target in frame and not frame[target].isna().any()),
        ("all features numeric", "-", f"{numeric} of {frame.shape[1] - 1}", "all",
         numeric == frame.shape[1] - (target in frame)),
    ]
    return pd.DataFrame(rows, columns=["check", "param", "observed", "expected", "passed"])


def require_checks_passed(checks: pd.DataFrame) -> None:
    """Raise DataValidationError listing every failed check, so the notebook stops there."""
    failed = checks[~checks["passed"].astype(bool)]
    if len(failed):
        detail = "; ".join(
            f"{r.check}: observed {r.observed}, expected {r.expected} (data.checks.{r.param})"
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
    """Rows and target mean per split: a quick look that the split is balanced."""
    return pd.DataFrame(
        {"rows": [len(train), len(holdout)], "target mean": [train[target].mean(), holdout[target].mean()]},
        index=["train", "holdout"],
    ).round(decimals)


def dataset_hash(frame: pd.DataFrame) -> str:
    """A short content hash of a DataFrame (values, index and column names)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:12]
