"""The factory report, ``runs/factory-<id>/index.html`` (and ``factory.json``): every model at a glance.

Written when one ``modelfactory run`` ran more than one model (a single run's own index.html already
says everything). Above the table, a picture of the primary metric across the models: one panel per
metric name (a regression's RMSE and a classifier's ROC AUC do not share an axis), the models sorted
by name, each model's bar with its champion's value marked beside it. The table has a row per
model: status, primary metric with the champion's value, the gate's decision, duration, and a link to
the run's own report. Like a run's page it needs no network and links by relative path.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs, verdict
from modelfactory.ops.report import STATUS_COLOURS

FACTORY_JSON = "factory.json"
PLOT = "primary_metric.png"


def factory_rows(results: Sequence) -> list[dict]:
    """One plain record per model (factory.ModelResult), sorted by model name: what the page and
    factory.json show."""
    from modelfactory.ops.factory import primary_values

    rows = []
    for r in sorted(results, key=lambda r: (r.model, r.run_id)):
        value, champion = primary_values(r.manifest, r.primary_metric)
        gate = r.manifest.get("gate") or {}
        rows.append({
            "model": r.model, "run_id": r.run_id, "status": r.status, "duration_s": round(r.duration_s, 1),
            "metric": r.primary_metric, "value": value, "champion_value": champion,
            "champion_version": gate.get("champion_version"), "gate": verdict.gate_cell(r.manifest),
            "decision": verdict.verdict_line(r.manifest) or r.manifest.get("error") or "",
            "report": f"../{r.run_id}/{runs.INDEX}",
            "rerun": r.rerun,
        })
    return rows


def plot_primary_metric(rows: Sequence[Mapping], target: Path) -> Path | None:
    """One horizontal-bar panel per primary metric: each model's value, its champion's value as a
    black mark. None when no model has a metric (e.g. every model failed before evaluate)."""
    by_metric: dict[str, list[Mapping]] = {}
    for row in rows:
        if row["metric"] and row["value"] is not None:
            by_metric.setdefault(row["metric"], []).append(row)
    if not by_metric:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(1.8, 0.3 * len(group) + 1.1) for group in by_metric.values()]
    fig, axes = plt.subplots(len(by_metric), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (metric, group) in zip(axes[:, 0], by_metric.items()):
        # Dots, not bars: models of one metric differ in its last digits, which bars from zero hide.
        group = sorted(group, key=lambda row: row["model"], reverse=True)  # top to bottom by name
        ys = range(len(group))
        colours = [STATUS_COLOURS["succeeded"] if row["status"] == runs.SUCCEEDED else STATUS_COLOURS["failed"]
                   for row in group]
        ax.hlines(list(ys), 0, 1, transform=ax.get_yaxis_transform(), colors="#d0d7de", linewidth=0.8, zorder=1)
        ax.scatter([row["value"] for row in group], list(ys), color=colours, s=36, zorder=3, label="this run")
        marked = [(i, row["champion_value"]) for i, row in enumerate(group) if row["champion_value"] is not None]
        if marked:
            ax.scatter([v for _, v in marked], [i for i, _ in marked], marker="|", s=220, linewidths=2.5,
                       color="black", zorder=2, label="champion before this run")
        ax.set_yticks(list(ys), [row["model"] for row in group])
        ax.set_ylim(-0.7, len(group) - 0.3)
        ax.margins(x=0.15)
        ax.set_title(f"{verdict.metric_label(metric)} by model (holdout; champion marked)", loc="left", fontsize=11)
        ax.set_xlabel(verdict.metric_label(metric))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _cell_value(value: float | None) -> str:
    from modelfactory.ops.factory import DECIMALS

    return verdict.format_value(value, DECIMALS)


def render_page(rows: Sequence[Mapping], summary: Mapping, plot: str | None) -> str:
    """The page's HTML (pure: rows and summary in, text out)."""
    from modelfactory.ops.progress import duration_text

    esc = html.escape
    body = []
    for row in rows:
        colour = STATUS_COLOURS.get(row["status"], "#000")
        metric = verdict.metric_label(row["metric"]) if row["metric"] else ""
        champion = _cell_value(row["champion_value"])
        if row["value"] is not None and row["champion_value"] is None:  # judged, with no champion to beat
            champion = "none yet"
        if row["champion_version"] is not None and row["champion_value"] is not None:
            champion += f' <span class="muted">v{esc(str(row["champion_version"]))}</span>'
        body.append(
            f'<tr><td class="name"><a href="{esc(row["report"])}">{esc(row["model"])}</a></td>'
            f'<td style="color:{colour}"><b>{esc(row["status"])}</b></td>'
            f"<td>{esc(metric)}</td><td class=num>{_cell_value(row['value'])}</td><td class=num>{champion}</td>"
            f"<td class=num>{esc(row['gate'])}</td><td class=num>{duration_text(row['duration_s'])}</td>"
            f'<td class="why">{esc(row["decision"])}</td></tr>')
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    picture = (f'<figure><img src="{esc(plot)}" alt="primary metric by model"><figcaption>Each model\'s primary '
               "holdout metric in this run (dot; red when the run failed after evaluating) and its champion's before "
               "this run (black mark); models by name. One panel per metric."
               "</figcaption></figure>") if plot else "<p>No model reached its evaluation.</p>"
    failed = [row for row in rows if row["status"] == runs.FAILED and row["rerun"]]
    reruns = ""
    if failed:
        reruns = "<h2>Rerun a failure</h2><ul>" + "".join(
            f"<li>{esc(row['model'])}: <code>{esc(row['rerun'])}</code></li>" for row in failed) + "</ul>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>factory {esc(summary['id'])}: {esc(counts)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 75rem; padding: 0 1rem; color: #1f2328; }}
h1 {{ margin-bottom: .2rem; }} .muted {{ color: #57606a; font-size: .85rem; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ text-align: left; padding: .3rem .8rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }}
td.name {{ white-space: nowrap; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.why {{ font-size: .85rem; color: #57606a; max-width: 28rem; }} code {{ overflow-wrap: anywhere; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; border: 1px solid #d0d7de; }}
figcaption {{ font-size: .9rem; }}
</style></head><body>
<h1>Model factory: {len(rows)} models</h1>
<p class="muted">{esc(summary['id'])} · {esc(counts)} · {summary['jobs']} at a time ·
{duration_text(summary['elapsed_s'])} in all · started {esc(summary['started'])}</p>
{picture}
<h2>Models</h2>
<table><tr><th>model</th><th>status</th><th>primary metric</th><th>this run</th><th>champion</th><th>gate</th>
<th>time</th><th>decision</th></tr>{''.join(body)}</table>
{reruns}
<p>Data: <a href="{FACTORY_JSON}">{FACTORY_JSON}</a></p>
</body></html>
"""


def write_factory_report(results: Sequence, elapsed: float, jobs: int, root: Path | None = None) -> Path | None:
    """Write ``runs/factory-<id>/`` (index.html, factory.json, the plot); None for fewer than two models."""
    if len(results) < 2:
        return None
    started = datetime.now()
    factory_id = f"factory-{started.strftime('%Y%m%d-%H%M%S')}-{len(results)}"
    folder = paths.runs_dir(root) / factory_id
    folder.mkdir(parents=True, exist_ok=True)
    rows = factory_rows(results)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = {"id": factory_id, "jobs": jobs, "elapsed_s": round(elapsed, 1), "counts": counts,
               "started": started.isoformat(timespec="seconds")}
    plot = plot_primary_metric(rows, folder / PLOT)
    (folder / FACTORY_JSON).write_text(json.dumps({**summary, "models": rows}, indent=2), encoding="utf-8")
    index = folder / "index.html"
    index.write_text(render_page(rows, summary, plot.name if plot else None), encoding="utf-8")
    return index
