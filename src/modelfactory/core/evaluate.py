"""The evaluate stage: holdout metrics, a baseline to beat, and diagnostic plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from modelfactory.core import modeling
from modelfactory.ops.verdict import metric_label


def models_to_compare(candidate, baseline, champion=None) -> dict:
    """The models the evaluate stage scores on the holdout; the champion only when there is one."""
    models = {"candidate": candidate, "baseline": baseline}
    if champion is not None:
        models["champion"] = champion
    return models


def compare_models(models: Mapping[str, object], holdout: pd.DataFrame, target: str, task: str,
                   metrics: Sequence[str]) -> pd.DataFrame:
    """Holdout metrics of each model, one row per model."""
    rows = {name: modeling.compute_metrics(m, holdout, target, task, metrics) for name, m in models.items()}
    return pd.DataFrame(rows).T[list(metrics)]


def flatten_comparison(comparison: pd.DataFrame) -> dict[str, float]:
    """``holdout_<metric>`` for the candidate, ``<model>_<metric>`` for the others: metric names for MLflow."""
    flat = {}
    for name, row in comparison.iterrows():
        prefix = "holdout" if name == "candidate" else name
        flat.update({f"{prefix}_{metric}": float(value) for metric, value in row.items()})
    return flat


def judge_against_baseline(comparison: pd.DataFrame, primary_metric: str, decimals: int) -> pd.DataFrame:
    """Whether the candidate beats the baseline on the primary metric, as a one-row table."""
    cand, base = comparison.loc["candidate", primary_metric], comparison.loc["baseline", primary_metric]
    better = cand > base if modeling.higher_is_better(primary_metric) else cand < base
    return pd.DataFrame(
        {"metric": [primary_metric], "candidate": [round(cand, decimals)], "baseline": [round(base, decimals)],
         "higher is better": [modeling.higher_is_better(primary_metric)], "beats baseline": [bool(better)]}
    ).set_index("metric")


MODEL_COLOURS = {"candidate": "#4c72b0", "baseline": "#bbbbbb", "champion": "#dd8452"}


def plot_comparison(comparison: pd.DataFrame):
    """One panel per metric, each on its own scale (an RMSE of 50 would flatten an R² of 0.45 on a
    shared axis): a bar per model, labelled with its value."""
    import matplotlib.pyplot as plt

    metrics = list(comparison.columns)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.2 * len(metrics) + 0.4, 3.0), squeeze=False)
    names = list(comparison.index)
    colours = [MODEL_COLOURS.get(name, "#8172b3") for name in names]
    for ax, metric in zip(axes[0], metrics):
        values = comparison[metric].astype(float).to_numpy()
        bars = ax.bar(names, values, color=colours)
        ax.bar_label(bars, labels=[f"{v:#.3g}" for v in values], fontsize=9, padding=2)
        better = "higher" if modeling.higher_is_better(metric) else "lower"
        ax.set_title(f"{metric_label(metric)}\n({better} is better)", fontsize=10)
        low, high = min(0.0, float(np.nanmin(values))), max(0.0, float(np.nanmax(values)))
        room = 0.15 * ((high - low) or 1.0)  # for the value labels, above a bar or below a negative one
        ax.set_ylim(low - room if low < 0 else 0.0, high + room)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Holdout metrics: " + ", ".join(names), fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_diagnostics(model, holdout: pd.DataFrame, target: str, task: str):
    """Classification: confusion matrix and ROC curve (one per class, one vs rest, for more than two
    classes). Regression: residuals and predicted vs actual."""
    import matplotlib.pyplot as plt
    from sklearn import metrics

    pred, proba = modeling.predict_scores(model, holdout, target, task)
    y = holdout[target].to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if task == "classification":
        metrics.ConfusionMatrixDisplay.from_predictions(y, pred, labels=list(proba.columns), ax=left,
                                                        colorbar=False, cmap="Blues")
        left.set_title("Confusion matrix (holdout)")
        if proba.shape[1] == 2:
            metrics.RocCurveDisplay.from_predictions(y, proba.iloc[:, 1], pos_label=proba.columns[1], ax=right,
                                                     name="candidate")
        else:  # one-vs-rest: one curve per class
            for label in proba.columns:
                metrics.RocCurveDisplay.from_predictions(y == label, proba[label], ax=right, name=f"{label} vs rest")
        right.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        right.set_title("ROC curve (holdout)" if proba.shape[1] == 2 else "ROC curves, one vs rest (holdout)")
    else:
        residuals = y - pred
        left.scatter(pred, residuals, s=12, alpha=0.7, color="#4c72b0")
        left.axhline(0, color="black", linewidth=0.8)
        left.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (holdout)")
        right.scatter(y, pred, s=12, alpha=0.7, color="#4c72b0")
        low, high = float(np.min([y, pred])), float(np.max([y, pred]))
        right.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
        right.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (holdout)")
    fig.tight_layout()
    plt.close(fig)
    return fig
