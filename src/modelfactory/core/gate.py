"""The champion gate: a candidate passes only if it meets the thresholds, beats the baseline AND
beats the champion.

Every model is scored on the same holdout rows of this run; metrics recorded on another split are
never compared. With no champion yet, the thresholds and the baseline decide: the first run, on an
empty registry, is where a gate most often passes quietly, so beating the baseline is on unless
``evaluate.gate.beat_baseline`` is set to false.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modelfactory.core import modeling

BEATS_BASELINE = "beats baseline"
BEATS_CHAMPION = "beats champion"


def judge_candidate(comparison: pd.DataFrame, gate: Mapping, primary_metric: str) -> pd.DataFrame:
    """One row per check: what was compared, both values, and whether the candidate passed.

    Args:
        comparison: holdout metrics, one row per model; needs ``candidate`` and ``baseline``, may
            have ``champion``.
        gate: ``params['evaluate']['gate']``: ``thresholds`` ({metric: {min, max}}), ``beat_baseline``
            and ``margin``.
        primary_metric: the metric the baseline and champion comparisons use.
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
    value = float(candidate[primary_metric])
    higher = modeling.higher_is_better(primary_metric)
    if gate["beat_baseline"]:
        base = float(comparison.loc["baseline", primary_metric])
        # strictly better: a model no better than the baseline (a constant, a mean) has learnt nothing
        rows.append((BEATS_BASELINE, primary_metric, value, base, value > base if higher else value < base))
    if "champion" in comparison.index:
        champ = float(comparison.loc["champion", primary_metric])
        bar = champ + gate["margin"] if higher else champ - gate["margin"]
        ok = value > bar if higher else value < bar
        label = BEATS_CHAMPION + (f" by margin {gate['margin']}" if gate["margin"] else "")
        rows.append((label, primary_metric, value, bar, ok))
    else:
        champ = float("nan")
        rows.append((BEATS_CHAMPION, primary_metric, value, champ, True))
    checks = pd.DataFrame(rows, columns=["check", "metric", "candidate", "limit", "passed"])
    # What decide() needs to word a failure, kept off the table the notebook shows.
    checks.attrs.update(higher_is_better=higher, champion=champ, margin=float(gate["margin"]))
    return checks


def decide(checks: pd.DataFrame, champion_version: str | None) -> dict:
    """The gate's verdict: passed or not, and a reason that says in plain words what failed (every
    failed check, e.g. "rmse 53.82 is worse than champion v1's 53.78") or why it passed."""
    failed = checks[~checks["passed"]]
    champion = f"champion v{champion_version}" if champion_version is not None else "the champion"
    if len(failed):
        reason = "; ".join(describe_check(row, champion, checks.attrs) for row in failed.itertuples())
    elif champion_version is None:
        reason = ("no champion yet; beats the baseline and meets all thresholds" if BEATS_BASELINE in set(checks["check"])
                  else "no champion yet; all thresholds met (evaluate.gate.beat_baseline is off)")
    else:
        row = next(checks[checks["check"].str.startswith(BEATS_CHAMPION)].itertuples(), None)
        if row is None:
            reason = f"beats {champion} and meets all thresholds"
        else:
            value, champ = pair(row.candidate, _champion_value(row, checks.attrs))
            reason = f"{row.metric} {value} beats {champion}'s {champ} and meets all thresholds"
    return {"passed": failed.empty, "reason": reason, "champion_version": champion_version,
            "checks": checks.to_dict(orient="records")}


def describe_check(row, champion: str, facts: Mapping) -> str:
    """One failed check in plain words: the metric, the candidate's value, and what it had to beat.

    Args:
        row: a row of judge_candidate's table (``check``, ``metric``, ``candidate``, ``limit``).
        champion: how to name the champion, e.g. ``champion v1``.
        facts: judge_candidate's ``attrs``: ``higher_is_better``, ``champion`` (its value), ``margin``.
    """
    if row.check.endswith("threshold"):
        value, limit = pair(row.candidate, row.limit)
        side = "below the minimum" if ">=" in row.check else "above the maximum"
        return f"{row.metric} {value} is {side} {limit} (evaluate.gate.thresholds)"
    if row.check == BEATS_BASELINE:
        value, base = pair(row.candidate, row.limit)
        return f"{row.metric} {value} is {'no better than' if row.candidate == row.limit else 'worse than'} the baseline's {base}"
    champ_value = _champion_value(row, facts)
    value, champ = pair(row.candidate, champ_value)
    higher = facts.get("higher_is_better", True)
    better = row.candidate > champ_value if higher else row.candidate < champ_value
    if better:  # better, but not by the margin params ask for
        return (f"{row.metric} {value} beats {champion}'s {champ} by less than the margin "
                f"{facts.get('margin', 0.0):g} (evaluate.gate.margin)")
    return f"{row.metric} {value} is {'no better than' if row.candidate == champ_value else 'worse than'} {champion}'s {champ}"


def _champion_value(row, facts: Mapping) -> float:
    """The champion's own value: the limit undone by the margin (tables made before attrs held it)."""
    champ = facts.get("champion")
    if champ is not None and pd.notna(champ):
        return float(champ)
    margin = facts.get("margin", 0.0)
    return row.limit - margin if facts.get("higher_is_better", True) else row.limit + margin


def pair(a: float, b: float, digits: int = 4) -> tuple[str, str]:
    """Two numbers to 4 significant digits, or as many more as it takes to tell them apart."""
    for places in range(digits, 16):
        left, right = f"{a:.{places}g}", f"{b:.{places}g}"
        if left != right or a == b:
            return left, right
    return left, right


def plot_gate(checks: pd.DataFrame):
    """One panel per check that ran, each on its own scale: the candidate's value (green passed, red
    failed) and the limit it had to meet (black line). With no champion yet there is no champion to
    beat: no bar is drawn for it, and the title says "no champion yet" in words."""
    import matplotlib.pyplot as plt

    no_champion = checks["check"].str.startswith(BEATS_CHAMPION) & checks["limit"].isna()
    ran = checks[~no_champion]
    fig, axes = plt.subplots(max(len(ran), 1), 1, figsize=(6, 0.9 * max(len(ran), 1) + 1.0), squeeze=False)
    for ax, check in zip(axes[:, 0], ran.itertuples()):
        ax.barh([0], [check.candidate], color="#55a868" if check.passed else "#c44e52", height=0.6)
        values = [check.candidate]
        if pd.notna(check.limit):
            ax.axvline(check.limit, color="black", linewidth=2)
            values.append(check.limit)
        low, high = min(0.0, *values), max(values)
        ax.set_xlim(low, high * 1.15 if high > 0 else 1.0)
        ax.set_yticks([])
        ax.set_title(f"{check.check} ({check.metric}): {check.candidate:.4g}"
                     + (f" vs {check.limit:.4g}" if pd.notna(check.limit) else ""), fontsize=9, loc="left")
    if ran.empty:  # no threshold, no baseline check and no champion: nothing was compared
        axes[0, 0].set_axis_off()
    title = "Champion gate: " + ("passed" if checks["passed"].all() else "rejected")
    if no_champion.any():
        title += " (no champion yet)"
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def enforce(decision: Mapping, fail_on_reject: bool) -> str:
    """Stop the stage on a rejection when params ask for it; else return the verdict word."""
    from modelfactory.errors import ModelfactoryError

    if not decision["passed"] and fail_on_reject:
        raise ModelfactoryError(f"candidate rejected by the champion gate: {decision['reason']}")
    return "passed" if decision["passed"] else "rejected"


def verdict(decision: Mapping) -> str:
    """The gate's decision in one line: "candidate v2 rejected: rmse 53.82 is worse than champion
    v1's 53.78", or "candidate (not registered) passed: ..." for a notebook run by hand."""
    version = decision.get("version")
    name = f"candidate v{version}" if version is not None else "candidate (not registered)"
    return f"{name} {'passed' if decision['passed'] else 'rejected'}: {decision['reason']}"
