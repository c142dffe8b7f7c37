"""What the monitor's report shows: the tables of monitor.json and its plots.

Each plot is drawn in the bins of the champion's own drift reference (core/drift.py), training
against the window; the window's columns are read from its Parquet only for the plots that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from modelfactory.ops.monitor import parse_time, read_scored


def feature_table(result: Mapping) -> pd.DataFrame:
    """One row per feature (and the prediction): metric, value, threshold, drifted."""
    rows = list(result.get("features", []))
    if result.get("prediction"):
        rows.append({**result["prediction"], "feature": "prediction"})
    columns = ["feature", "kind", "metric", "value", "threshold", "drifted"]
    return pd.DataFrame(rows, columns=columns).set_index("feature")


def quality_table(result: Mapping) -> pd.DataFrame:
    """One row per feature: null, type error and out-of-range rates, and whether any breached."""
    columns = ["feature", "null_rate", "type_error_rate", "out_of_range_rate", "breached"]
    return pd.DataFrame(result.get("quality", []), columns=columns).set_index("feature")


def performance_table(result: Mapping) -> pd.DataFrame | None:
    """Live metrics against training and the gate's limits (a sentence, and None, when no labels
    were given)."""
    performance = result.get("performance")
    if not performance:
        print("no labels given (monitor.labels, or modelfactory monitor --labels FILE): live performance not measured")
        return None
    print(f"{performance['matched']} of {performance['labels']} labels matched a scored row; "
          f"{performance['unmatched']} matched none")
    return pd.DataFrame(performance["metrics"]).set_index("metric")


def shares(profile: Mapping, values: pd.Series) -> tuple[list[str], list[float], list[float]]:
    """Bin labels, reference shares and window shares of one feature, in the reference's own bins
    (numerical: its edges, with one bin below and one above them; categorical: its categories,
    anything else as "other")."""
    import numpy as np

    reference = np.asarray(profile["counts"], dtype=float)
    if profile["kind"] == "numerical":  # counts: below the first edge, each bin, above the last
        edges = np.asarray(profile["edges"], dtype=float)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        numbers = numbers[np.isfinite(numbers)]
        window = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
        labels = ([f"< {edges[0]:.4g}"] + [f"{low:.4g}-{high:.4g}" for low, high in zip(edges[:-1], edges[1:])]
                  + [f"> {edges[-1]:.4g}"])
    else:
        categories = [str(c) for c in profile["categories"]]
        counted = values.dropna().astype(str).value_counts()
        window = np.array([counted.get(c, 0) for c in categories] + [counted.drop(categories, errors="ignore").sum()])
        labels = categories + ["other"]
        reference = np.append(reference[: len(categories)], 0.0)
    return labels, _normalise(reference), _normalise(window)


def _normalise(counts) -> list[float]:
    import numpy as np

    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return (counts / total if total else counts).tolist()


def _profile(reference: Mapping, feature: str) -> Mapping:
    return reference["prediction"] if feature == "prediction" else reference["features"][feature]


def plot_drifted(champion: Mapping, params: Mapping, result: Mapping, stage) -> list[str]:
    """One plot per drifted feature (``drift-<feature>.png``, shown below the cell), read from the
    window's Parquet for those columns alone; their names."""
    drifted = [row for row in result["features"] if row["drifted"]]
    window = read_scored(params, *_bounds(result), [row["feature"] for row in drifted]) if drifted else None
    for row in drifted:
        stage.save_figure(plot_distribution(champion["reference"], window, row["feature"], row),
                          f"drift-{row['feature']}.png")
    return [row["feature"] for row in drifted]


def _bounds(result: Mapping) -> tuple[datetime, datetime]:
    return parse_time(result["window"]["since"], "since"), parse_time(result["window"]["until"], "until")


def plot_distribution(reference: Mapping, window: pd.DataFrame, feature: str, row: Mapping | None = None):
    """Reference against production shares of one feature (or ``prediction``), in the stored bins."""
    import matplotlib.pyplot as plt
    import numpy as np

    labels, ref, now = shares(_profile(reference, feature), window[feature] if feature in window else pd.Series([]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, ref, width=0.4, label="reference (training)", color="#8c8c8c")
    ax.bar(x + 0.2, now, width=0.4, label="production (window)", color="#d62728")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    said = f": {row['metric']} {row['value']:.3f} (threshold {row['threshold']:g})" if row and row.get("value") is not None else ""
    ax.set_title(f"{feature}{said}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_quality(result: Mapping):
    """Null, type error and out-of-range rates per feature."""
    import matplotlib.pyplot as plt

    table = quality_table(result)[["null_rate", "type_error_rate", "out_of_range_rate"]].astype(float)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if table.empty or not table.to_numpy().any():
        said = ("no scored rows in the window" if not result.get("rows") else
                f"all {result['rows']} rows clean: no nulls, type errors or out-of-range values")
        ax.text(0.5, 0.5, said, ha="center", va="center")
        ax.set_axis_off()
    else:
        table.plot.bar(ax=ax, rot=45)
        ax.set_ylabel("share of rows")
    ax.set_title("data quality in the window")
    fig.tight_layout()
    return fig


def plot_prediction(champion: Mapping, params: Mapping, result: Mapping):
    """The prediction's distribution, reference against production (a note when it was not judged)."""
    import matplotlib.pyplot as plt

    reference = champion["reference"]
    if reference.get("prediction") and result["rows"]:
        window = read_scored(params, *_bounds(result), ["prediction"])
        return plot_distribution(reference, window, "prediction", result.get("prediction"))
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.text(0.5, 0.5, "prediction drift not judged: no scored rows in the window", ha="center", va="center")
    ax.set_axis_off()
    ax.set_title("prediction")
    return fig
