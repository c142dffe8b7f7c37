"""A run's outcome in words: readable metric names, the gate's decision as one line, and the
short gate cell of ``modelfactory runs``.

Pure functions of a run's manifest (its ``gate`` and ``promotion`` records, its headline metrics);
no heavy import, so the CLI can use them.
"""

from __future__ import annotations

from collections.abc import Mapping

# Metric keys (modeling.METRICS) as people write them.
METRIC_LABELS = {
    "rmse": "RMSE", "mae": "MAE", "r2": "R²", "roc_auc": "ROC AUC", "roc_auc_ovr": "ROC AUC (one vs rest)",
    "accuracy": "accuracy", "f1": "F1", "f1_macro": "F1 (macro)", "log_loss": "log loss",
}
# How the evaluate stage prefixes each model's metrics (evaluate.flatten_comparison).
ROLES = {"holdout": "candidate", "baseline": "baseline", "champion": "champion"}


def metric_label(name: str) -> str:
    """``rmse`` -> ``RMSE``, ``roc_auc`` -> ``ROC AUC``; an unknown name with its underscores as spaces."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def metrics_by_model(headline: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The evaluate stage's flat metrics (``holdout_rmse``, ``champion_rmse``, ...) as
    ``{metric: {"candidate": .., "baseline": .., "champion": ..}}``, in the order first seen."""
    table: dict[str, dict[str, float]] = {}
    for key, value in headline.items():
        prefix, _, metric = key.partition("_")
        if prefix in ROLES and metric and isinstance(value, (int, float)):
            table.setdefault(metric, {})[ROLES[prefix]] = float(value)
    return table


def format_value(value: float | None, decimals: int) -> str:
    """A metric with a fixed number of decimals (one precision for a whole table); ``-`` for none."""
    return "-" if value is None else f"{value:.{decimals}f}"


def gate_cell(manifest: Mapping) -> str:
    """The gate column of ``modelfactory runs``: ``v2 rejected``, ``v1 promoted``, ``v3 passed``
    (judged but not promoted), or ``-`` for a run whose evaluate stage did not decide."""
    gate = manifest.get("gate") or {}
    if "passed" not in gate:
        return monitor_cell(manifest.get("monitor") or {})
    version = f"v{gate['version']} " if gate.get("version") is not None else ""
    cached = " (cached)" if decision_cached_from(manifest) else ""
    if not gate["passed"]:
        return f"{version}rejected{cached}"
    promoted = (manifest.get("promotion") or {}).get("promoted")
    return f"{version}{'promoted' if promoted else 'passed'}{cached}"


def decision_cached_from(manifest: Mapping) -> str | None:
    """The earlier run whose gate decision this run took with its cached evaluate stage, or None:
    such a run registered and promoted nothing itself."""
    return ((manifest.get("stages") or {}).get("evaluate") or {}).get("cached_from")


def monitor_cell(monitor: Mapping) -> str:
    """The gate column for a monitoring run: ``drift 1 of 7``, ``no drift``, ``too few rows``; ``-``
    for a run that is not a monitor's (or whose monitor stage did not finish)."""
    if "verdict" not in monitor:
        return "-"
    if not monitor.get("enough_rows", True):
        return "too few rows"
    drifted, features = len(monitor.get("drifted") or []), len(monitor.get("features") or [])
    return f"drift {drifted} of {features}" if drifted else "no drift"


def verdict_line(manifest: Mapping) -> str | None:
    """What became of the candidate, in one line, e.g. "candidate v5 rejected: rmse 53.82 is worse
    than champion v1's 53.78"; for a monitoring run its verdict ("drift in 1 of 7 features:
    bill_length_mm"); None when the run made neither (no evaluate or monitor stage ran)."""
    line = _decision_line(manifest)
    cached = decision_cached_from(manifest)
    if line and cached:
        return f"{line} (decided by run {cached}; cached here, nothing registered again)"
    return line


def _decision_line(manifest: Mapping) -> str | None:
    gate = manifest.get("gate") or {}
    if "passed" not in gate:
        return (manifest.get("monitor") or {}).get("verdict")
    name = f"candidate v{gate['version']}" if gate.get("version") is not None else "candidate (not registered)"
    if not gate["passed"]:
        return f"{name} rejected: {gate['reason']}"
    promotion = manifest.get("promotion") or {}
    if promotion.get("promoted"):
        previous = promotion.get("previous")
        kept = f"; v{previous} kept for rollback" if previous else ""
        return f"{name} promoted: {gate['reason']}{kept}"
    if promotion:
        reason = promotion.get("reason", "").removeprefix("not promoted: ")
        return f"{name} passed the gate but was not promoted: {reason}"
    how = f"modelfactory promote --model {manifest.get('model')} --version {gate['version']}"
    if manifest.get("env"):
        how += f" --env {manifest['env']}"
    return f"{name} passed the gate ({gate['reason']}); not promoted, the deploy stage did not run: {how}"
