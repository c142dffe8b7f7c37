"""``modelfactory compare RUN_A RUN_B``: what changed between two runs, and what it did to the metrics.

Pure functions of two manifests and their resolved params (no heavy import: the CLI uses them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from modelfactory.ops import verdict


def flatten(params: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested params as dotted keys: ``{"train": {"alpha": 1.0}}`` -> ``{"train.alpha": 1.0}``.
    An empty mapping stays a value (``{}``), so a key that only one run sets still shows."""
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def params_diff(a: Mapping, b: Mapping) -> list[tuple[str, object, object]]:
    """``(key, value in a, value in b)`` for every dotted key whose values differ; a key missing on
    one side has the value ``MISSING`` there."""
    left, right = flatten(a), flatten(b)
    keys = list(left) + [k for k in right if k not in left]
    return [(k, left.get(k, MISSING), right.get(k, MISSING)) for k in keys if left.get(k, MISSING) != right.get(k, MISSING)]


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING = _Missing()


def metric_rows(a: Mapping[str, float], b: Mapping[str, float], decimals: int) -> list[tuple[str, str, str, str]]:
    """The headline metrics of both runs side by side: ``(name, a, b, b - a)`` as text."""
    keys = list(a) + [k for k in b if k not in a]
    rows = []
    for key in keys:
        left, right = a.get(key), b.get(key)
        left = float(left) if isinstance(left, (int, float)) else None
        right = float(right) if isinstance(right, (int, float)) else None
        change = f"{right - left:+.{decimals}f}" if left is not None and right is not None else ""
        rows.append((readable_metric(key), verdict.format_value(left, decimals),
                     verdict.format_value(right, decimals), change))
    return rows


def readable_metric(key: str) -> str:
    """``holdout_rmse`` -> ``RMSE``; ``champion_r2`` -> ``R² (champion)``; others with spaces."""
    prefix, _, metric = key.partition("_")
    if prefix in verdict.ROLES and metric:
        role = verdict.ROLES[prefix]
        return verdict.metric_label(metric) + ("" if role == "candidate" else f" ({role})")
    return verdict.metric_label(key)


def _text(value: object) -> str:
    if value is MISSING or isinstance(value, str):
        return str(value)
    return json.dumps(value)


def compare_runs(a: Mapping, b: Mapping, params_a: Mapping, params_b: Mapping) -> list[str]:
    """The lines ``modelfactory compare`` prints: identity and gate, the params that differ, the metrics.

    Args:
        a, b: the two runs' manifests.
        params_a, params_b: their resolved params (each run's params.yaml).
    """
    decimals = int((params_a.get("report") or {}).get("decimals", 3))

    def data(m: Mapping) -> str:
        record = m.get("data") or {}
        return f"{record.get('source', '?')}:{record.get('name', '?')} {str(record.get('hash') or '')[:12]}".strip() \
            if record else "-"

    facts = [("run", a["run_id"], b["run_id"])]
    for label, get in (("model", lambda m: m.get("model")), ("env", lambda m: m.get("env")),
                       ("pipeline", lambda m: m.get("pipeline")), ("status", lambda m: m.get("status")),
                       ("gate", verdict.gate_cell), ("data", data)):
        facts.append((label, str(get(a) or "-"), str(get(b) or "-")))
    diff = [(k, _text(x), _text(y)) for k, x, y in params_diff(params_a, params_b)]
    total = len(set(flatten(params_a)) | set(flatten(params_b)))
    metrics = metric_rows(a.get("headline_metrics") or {}, b.get("headline_metrics") or {}, decimals)

    width = max(len(r[0]) for r in facts + diff + [(m[0],) for m in metrics]) + 2
    col = max(len(r[1]) for r in facts + diff) + 2
    lines = [f"{k:{width}}{x:{col}}{y}" for k, x, y in facts]
    lines.append("")
    lines.append(f"params: {len(diff)} of {total} differ" if diff else f"params: all {total} the same")
    lines += [f"  {k:{width - 2}}{x:{col}}{y}" for k, x, y in diff]
    lines.append("")
    if metrics:
        num = max(len(v) for row in metrics for v in row[1:]) + 2
        lines.append(f"{'metrics':{width}}{'A':>{num}}{'B':>{num}}{'B - A':>{num}}")
        lines += [f"  {name:{width - 2}}{x:>{num}}{y:>{num}}{change:>{num}}" for name, x, y, change in metrics]
    else:
        lines.append("metrics: neither run has headline metrics")
    for run, name in ((a, "A"), (b, "B")):
        line = verdict.verdict_line(run)
        if line:
            lines.append(f"{name}: {line}")
    return [line.rstrip() for line in lines]
