"""The run's index page, ``index.html``: it opens with the verdict, then the plots, the stages, the run.

The verdict says what was trained (estimator and hyperparameters), on which data (the manifest's
``data`` record), the registered version, whether it was promoted and why, and the headline metrics
against the champion and the baseline. Each stage links to its readers' page and its whole notebook
(render.py). The page needs no network: plots are linked by relative path, so a run folder can be
zipped and mailed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

from modelfactory.core.train_keys import hyperparameters
from modelfactory.ops import runs, verdict
from modelfactory.ops.render import png_caption

STATUS_COLOURS = {"succeeded": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700",
                  "running": "#0969da", "skipped": "#6e7781", "pending": "#6e7781", "reused": "#6e7781",
                  "cached": "#6e7781"}


def read_params(run_dir: Path) -> dict:
    """The run's resolved params (params.yaml), or nothing."""
    import yaml

    try:
        # libyaml's parser when the wheel has it: the pure-Python one costs ~0.1 s per params.yaml
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(runs.params_file(run_dir).read_text(), Loader=loader) or {}
    except (OSError, yaml.YAMLError):
        return {}


def describe_model(params: Mapping) -> dict:
    """What was trained: ``{"estimator": "Ridge", "class": "sklearn.linear_model.Ridge",
    "hyperparameters": {"alpha": 1.0}, "task": "regression"}`` (empty when params say nothing)."""
    train = params.get("train") or {}
    estimator = str(train.get("estimator") or "")
    return {"estimator": estimator.rsplit(".", 1)[-1], "class": estimator,
            "hyperparameters": hyperparameters(train),
            "task": (params.get("model") or {}).get("task", "")}


def describe_data(record: Mapping | None) -> str:
    """The manifest's data record in one line: ``sklearn:diabetes (hash 75a1d74a59df)``."""
    if not record:
        return "unknown (no stage of this run read the data)"
    name = record.get("name") or record.get("uri") or "?"
    version = record.get("version")
    where = f"{record.get('source', '?')}:{name}" + (f" version {version}" if version not in (None, "") else "")
    digest = str(record.get("hash") or "")[:12]
    return where + (f" (hash {digest})" if digest else "")


def build_verdict(manifest: Mapping, params: Mapping) -> dict:
    """The facts the index page opens with, as plain values (tested apart from the HTML).

    Returns:
        ``headline`` (the verdict line; else the run's status and error), ``judged`` (whether the
        gate decided), ``outcome``
        (``promoted``, ``passed``, ``rejected``, or the run's status), ``model`` (describe_model),
        ``data``, ``registered`` (``<model>-<env> version N`` or None), ``reason``, ``promotion``,
        ``primary_metric`` and ``metrics``: ``[(label, candidate, champion, baseline), ...]``
        as text, with ``report.decimals`` decimals, the primary metric first.
    """
    gate = manifest.get("gate") or {}
    promotion = manifest.get("promotion") or {}
    decimals = int((params.get("report") or {}).get("decimals", 3))
    primary = (params.get("evaluate") or {}).get("primary_metric")
    by_model = verdict.metrics_by_model(manifest.get("headline_metrics") or {})
    order = sorted(by_model, key=lambda m: m != primary)
    metrics = [(verdict.metric_label(m), *(verdict.format_value(by_model[m].get(role), decimals)
                                           for role in ("candidate", "champion", "baseline"))) for m in order]
    line = verdict.verdict_line(manifest)
    if "passed" in gate:
        outcome = "rejected" if not gate["passed"] else ("promoted" if promotion.get("promoted") else "passed")
    else:
        outcome = manifest.get("status", "")
    version = gate.get("version")
    return {
        "headline": line or f"run {manifest.get('status', '')}" + (f": {manifest['error']}" if manifest.get("error") else ""),
        "judged": "passed" in gate,
        "outcome": outcome, "model": describe_model(params), "data": describe_data(manifest.get("data")),
        "registered": f"{manifest['model']}-{manifest['env']} version {version}" if version is not None else None,
        "reason": gate.get("reason"), "promotion": promotion.get("reason"),
        "champion": gate.get("champion_version"), "primary_metric": verdict.metric_label(primary) if primary else None,
        "metrics": metrics,
    }


OUTCOME_COLOURS = {"promoted": "#1a7f37", "passed": "#0969da", "rejected": "#cf222e", "failed": "#cf222e",
                   "interrupted": "#9a6700"}


def _verdict_html(facts: Mapping) -> str:
    esc = html.escape
    model = facts["model"]
    hyper = ", ".join(f"{k}={v}" for k, v in model["hyperparameters"].items()) or "defaults"
    estimator = (f'<b>{esc(model["estimator"])}</b> ({esc(hyper)}) <span class="muted">{esc(model["class"])}'
                 f'{", " + esc(model["task"]) if model["task"] else ""}</span>') if model["class"] else "unknown"
    promoted = {"promoted": "yes", "passed": "no", "rejected": "no"}.get(facts["outcome"], "no")
    # a rejection's reason is the headline already
    why = "the gate rejected it" if facts["outcome"] == "rejected" else facts["promotion"]
    rows = [("model", estimator), ("data", esc(facts["data"]))]
    if facts["judged"]:  # a run that made no gate decision (a failure before it, scoring) registered nothing
        rows += [("registered as", esc(facts["registered"] or "not registered")),
                 ("promoted", f"<b>{promoted}</b>" + (f": {esc(why)}" if why else ""))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    metrics = ""
    if facts["metrics"]:
        champion = f"champion v{facts['champion']}" if facts["champion"] is not None else "champion (none yet)"
        body = "".join(
            f"<tr{' class=primary' if i == 0 and facts['primary_metric'] == label else ''}><th>{esc(label)}</th>"
            + "".join(f'<td class="num">{esc(v)}</td>' for v in values) + "</tr>"
            for i, (label, *values) in enumerate(facts["metrics"]))
        metrics = (f'<table class="metrics"><tr><th>holdout metric</th><th>candidate</th><th>{esc(champion)}</th>'
                   f"<th>baseline</th></tr>{body}</table>")
        if facts["primary_metric"]:
            metrics += f'<p class="muted">The gate compares {esc(facts["primary_metric"])} (first row).</p>'
    colour = OUTCOME_COLOURS.get(facts["outcome"], "#6e7781")
    return (f'<section class="verdict" style="border-color:{colour}">'
            f'<p class="headline" style="color:{colour}">{esc(facts["headline"])}</p>'
            f"<table>{table}</table>{metrics}</section>")


def write_index(run_dir: Path, manifest: Mapping) -> Path:
    """Write ``index.html``: the verdict, the plots with captions, the stages with links, the run's identity."""
    esc = html.escape
    facts = build_verdict(manifest, read_params(run_dir))
    rows = []
    for name, stage in manifest["stages"].items():
        status = stage["status"]
        page = stage.get("report") or stage.get("html")
        link = f'<a href="{esc(page)}">{esc(name)}</a>' if page else esc(name)
        notebook = f'<a href="{esc(stage["html"])}">notebook</a>' if stage.get("html") else ""
        note = ""
        if stage.get("reused_from"):
            note = f"outputs reused from run {esc(stage['reused_from'])}"
        if stage.get("cached_from"):
            note = f"cached from run {esc(stage['cached_from'])}: same cache key, not run again"
        elif stage.get("cache_miss") and stage["cache_miss"] != "no earlier run of this stage":
            note = f"ran: not cached ({esc(stage['cache_miss'])})"
        if stage.get("error"):
            note = esc(stage["error"].get("summary", ""))
        duration = f'{stage["duration_s"]:.1f} s' if stage.get("duration_s") is not None else ""
        rows.append(
            f'<tr><td>{link}</td><td style="color:{STATUS_COLOURS.get(status, "#000")}"><b>{esc(status)}</b></td>'
            f"<td>{duration}</td><td>{notebook}</td><td>{note}</td></tr>"
        )
    images = []
    for name in reversed(list(manifest["stages"])):  # the latest stage's plots (the evaluation) first
        for png in sorted(runs.stage_dir(run_dir, name).glob("*.png")):
            rel = png.relative_to(run_dir).as_posix()
            caption = png_caption(png)
            images.append(f'<figure><a href="{esc(rel)}"><img src="{esc(rel)}" alt="{esc(caption)}"></a>'
                          f'<figcaption>{esc(caption)} <span class="muted">({esc(name)})</span></figcaption></figure>')
    git = manifest.get("git") or {}
    identity = {
        "run": manifest["run_id"], "pipeline": manifest.get("pipeline", ""), "status": manifest["status"],
        "started": manifest["created"], "finished": manifest.get("finished") or "",
        "params hash": manifest["params_hash"], "data hash": manifest.get("data_hash") or "",
        "git commit": f'{git.get("commit") or "unknown"}{" (uncommitted changes)" if git.get("dirty") else ""}',
        "command": manifest.get("command", ""),
    }
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>" for k, v in identity.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(manifest['model'])} ({esc(manifest['env'])}): {esc(facts['outcome'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1f2328; }}
h1 {{ margin-bottom: .2rem; }} .muted {{ color: #57606a; font-size: .85rem; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ text-align: left; padding: .3rem .8rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }}
td code, .headline {{ overflow-wrap: anywhere; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.verdict {{ border-left: .4rem solid; padding: .2rem 1.2rem; background: #f6f8fa; margin: 1rem 0 2rem; }}
.headline {{ font-size: 1.3rem; font-weight: 600; }}
.metrics tr.primary {{ font-weight: 600; }}
figure {{ display: inline-block; margin: .5rem; vertical-align: top; max-width: 33rem; }}
img {{ max-width: 100%; border: 1px solid #d0d7de; }}
figcaption {{ font-size: .9rem; }}
</style></head><body>
<h1>{esc(manifest['model'])} in {esc(manifest['env'])}</h1>
<p class="muted">run {esc(manifest['run_id'])}</p>
{_verdict_html(facts)}
<h2>Plots</h2>
{''.join(images) or '<p>None.</p>'}
<h2>Stages</h2>
<p class="muted">Each stage's page shows its tables and plots; "notebook" is the whole executed notebook, with code and logs.</p>
<table><tr><th>stage</th><th>status</th><th>time</th><th></th><th>notes</th></tr>{''.join(rows)}</table>
<h2>Run</h2>
<table>{fact_rows}</table>
<p>Parameters: <a href="params.yaml">params.yaml</a> · Manifest: <a href="manifest.json">manifest.json</a></p>
</body></html>
"""
    target = runs.index_file(run_dir)
    target.write_text(page, encoding="utf-8")
    return target


def read_metrics(path: Path) -> dict:
    """A stage's metrics.json, or nothing."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
