"""The champion gate: a candidate passes only if it meets the thresholds AND beats the champion.

Both models are scored on the same holdout rows of this run; metrics recorded on another split are
never compared. With no champion yet, the thresholds alone decide.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modelfactory import modeling


def judge_candidate(comparison: pd.DataFrame, gate: Mapping, primary_metric: str) -> pd.DataFrame:
    """One row per check: what was compared, both values, and whether the candidate passed.

    Args:
        comparison: holdout metrics, one row per model; needs ``candidate``, may have ``champion``.
        gate: ``params['evaluate']['gate']``: ``thresholds`` ({metric: {min, max}}) and ``margin``.
        primary_metric: the metric the champion comparison uses.
    """
    candidate = comparison.loc["candidate"]
    rows = []
    for metric, limits in gate["thresholds"].items():
        for side in ("min", "max"):
            limit = limits.get(side)
            if limit is None:
                continue
            value = float(candidate[metric])
            ok = value >= limit if side == "min" else value <= limit
            rows.append((f"{metric} {'>=' if side == 'min' else '<='} threshold", metric, value, float(limit), ok))
    if "champion" in comparison.index:
        champ = float(comparison.loc["champion", primary_metric])
        value = float(candidate[primary_metric])
        higher = modeling.higher_is_better(primary_metric)
        bar = champ + gate["margin"] if higher else champ - gate["margin"]
        ok = value > bar if higher else value < bar
        rows.append((f"beats champion by margin {gate['margin']}", primary_metric, value, bar, ok))
    else:
        rows.append(("beats champion", primary_metric, float(candidate[primary_metric]), float("nan"), True))
    return pd.DataFrame(rows, columns=["check", "metric", "candidate", "limit", "passed"])


def decide(checks: pd.DataFrame, champion_version: str | None) -> dict:
    """The gate's verdict: passed or not, and a reason naming every failed check."""
    failed = checks[~checks["passed"]]
    if len(failed):
        reason = "; ".join(f"{r.check}: {r.metric}={r.candidate:.6g} vs {r.limit:.6g}" for r in failed.itertuples())
    elif champion_version is None:
        reason = "no champion yet; all thresholds met"
    else:
        reason = f"beats champion version {champion_version} and meets all thresholds"
    return {"passed": failed.empty, "reason": reason, "champion_version": champion_version,
            "checks": checks.to_dict(orient="records")}


def plot_gate(checks: pd.DataFrame):
    """Each check as a bar of the candidate's value against its limit, green when passed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.6 * len(checks) + 1.2))
    labels = [f"{c.check}\n({c.metric})" for c in checks.itertuples()]
    colours = ["#55a868" if ok else "#c44e52" for ok in checks["passed"]]
    ax.barh(labels, checks["candidate"], color=colours)
    for i, limit in enumerate(checks["limit"]):
        if pd.notna(limit):
            ax.plot([limit, limit], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.set_xlabel("candidate value (black line: the limit)")
    ax.set_title("Champion gate: " + ("passed" if checks["passed"].all() else "rejected"))
    fig.tight_layout()
    plt.close(fig)
    return fig


def enforce(decision: Mapping, fail_on_reject: bool) -> str:
    """Stop the stage on a rejection when params ask for it; else return the verdict word."""
    from modelfactory.errors import ModelfactoryError

    if not decision["passed"] and fail_on_reject:
        raise ModelfactoryError(f"candidate rejected by the champion gate: {decision['reason']}")
    return "passed" if decision["passed"] else "rejected"
