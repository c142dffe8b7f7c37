"""The explore stage: profile the raw data and draw it. Pure functions; figures are returned."""

from __future__ import annotations

import pandas as pd


def profile_data(frame: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """One row per column: dtype, missing values, and basic statistics."""
    numeric = frame.select_dtypes("number")
    profile = pd.DataFrame(
        {
            "dtype": frame.dtypes.astype(str),
            "missing": frame.isna().sum(),
            "mean": numeric.mean(),
            "std": numeric.std(),
            "min": numeric.min(),
            "max": numeric.max(),
        }
    )
    stats = ["mean", "std", "min", "max"]
    # + 0.0 turns the -0.0 that rounding leaves of a tiny negative mean into 0.0 (shown "-0.000" otherwise)
    profile[stats] = profile[stats].round(decimals) + 0.0
    return profile


def summarize_data(frame: pd.DataFrame, target: str, task: str, decimals: int) -> pd.DataFrame:
    """Headline facts: shape, missing cells, and the target's distribution.

    Counts stay integers (``442``, not ``442.000``): the one column holds Python objects, so a
    count and a mean keep their own kinds instead of becoming one float column."""
    facts = {"rows": len(frame), "columns": frame.shape[1], "missing cells": int(frame.isna().sum().sum())}
    if task == "classification":
        for label, share in frame[target].value_counts(normalize=True).sort_index().items():
            facts[f"share of class {label}"] = round(float(share), decimals)
    else:
        described = frame[target].describe()
        facts.update({f"target {k}": round(float(described[k]), decimals) for k in ("mean", "std", "min", "max")})
    return pd.DataFrame({"value": pd.Series(facts, dtype=object)})


def plot_target(frame: pd.DataFrame, target: str, task: str):
    """A histogram of a numeric target, or a bar chart of class counts."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if task == "classification":
        frame[target].value_counts().sort_index().plot.bar(ax=ax, color="#4c72b0")
        ax.set_ylabel("rows")
    else:
        ax.hist(frame[target], bins=30, color="#4c72b0")
        ax.set_ylabel("rows")
    ax.set_xlabel(target)
    ax.set_title("Target distribution")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_correlations(frame: pd.DataFrame, target: str, top: int = 12):
    """Horizontal bars: each numeric feature's correlation with the target, strongest first."""
    import matplotlib.pyplot as plt

    numbers = frame.select_dtypes("number")
    if target not in numbers:  # a text target: its classes' codes, in sorted order
        numbers = numbers.assign(**{target: frame[target].astype("category").cat.codes.replace(-1, float("nan"))})
    corr = numbers.corr()[target].drop(target)
    corr = corr.reindex(corr.abs().sort_values(ascending=True).index)[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(corr) + 1.2))
    ax.barh(corr.index.astype(str), corr.values, color=["#c44e52" if v < 0 else "#55a868" for v in corr.values])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"correlation with {target}")
    ax.set_title("Features most correlated with the target")
    fig.tight_layout()
    plt.close(fig)
    return fig


def verdict(frame: pd.DataFrame, checks: pd.DataFrame, failures: pd.DataFrame) -> str:
    """The stage in one line: "442 rows, 11 columns, 7 checks passed, data contract passed"."""
    failed = int((~checks["passed"].astype(bool)).sum())
    checked = f"{len(checks)} checks passed" if not failed else f"{failed} of {len(checks)} checks failed"
    held = "data contract passed" if failures.empty else f"data contract broken ({len(failures)} failed checks)"
    return f"{len(frame)} rows, {len(frame.columns)} columns, {checked}, {held}"
