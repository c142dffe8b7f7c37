"""Reports: each executed notebook as HTML, and an index page per run that links them.

Pages need no network: the notebook template drops JupyterLab's CDN scripts, and the index links
the stage plots by relative path, so a run folder can be zipped and mailed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


def render_notebook(notebook: Path) -> Path:
    """Write ``<notebook>.html`` beside the executed notebook and return its path."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


STATUS_COLOURS = {"succeeded": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700",
                  "running": "#0969da", "skipped": "#6e7781", "pending": "#6e7781", "reused": "#6e7781"}


def write_index(run_dir: Path, manifest: Mapping) -> Path:
    """Write ``index.html``: the run's identity, its stages with links, headline metrics and plots."""
    esc = html.escape
    rows = []
    for name, stage in manifest["stages"].items():
        status = stage["status"]
        link = f'<a href="{esc(stage["html"])}">{esc(name)}</a>' if stage.get("html") else esc(name)
        note = ""
        if stage.get("reused_from"):
            note = f"outputs reused from run {esc(stage['reused_from'])}"
        if stage.get("error"):
            note = esc(stage["error"].get("summary", ""))
        duration = f'{stage["duration_s"]:.1f} s' if stage.get("duration_s") is not None else ""
        rows.append(
            f'<tr><td>{link}</td><td style="color:{STATUS_COLOURS.get(status, "#000")}"><b>{esc(status)}</b></td>'
            f"<td>{duration}</td><td>{note}</td></tr>"
        )
    metrics = manifest.get("headline_metrics") or {}
    metric_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.4g}</td></tr>" for k, v in metrics.items()
                          if isinstance(v, (int, float)))
    images = []
    for name in manifest["stages"]:
        for png in sorted((run_dir / name).glob("*.png")):
            rel = png.relative_to(run_dir).as_posix()
            images.append(f'<figure><img src="{esc(rel)}" alt="{esc(rel)}"><figcaption>{esc(rel)}</figcaption></figure>')
    git = manifest.get("git") or {}
    facts = {
        "model": manifest["model"], "environment": manifest["env"], "status": manifest["status"],
        "started": manifest["created"], "finished": manifest.get("finished") or "",
        "params hash": manifest["params_hash"], "data hash": manifest.get("data_hash") or "",
        "git commit": f'{git.get("commit") or "unknown"}{" (uncommitted changes)" if git.get("dirty") else ""}',
        "command": manifest.get("command", ""),
    }
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>" for k, v in facts.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Run {esc(manifest['run_id'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1f2328; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; padding: .3rem .8rem; border-bottom: 1px solid #d0d7de; }}
figure {{ display: inline-block; margin: .5rem; vertical-align: top; }} img {{ max-width: 32rem; border: 1px solid #d0d7de; }}
figcaption {{ font-size: .8rem; color: #57606a; }}
</style></head><body>
<h1>Run {esc(manifest['run_id'])}</h1>
<table>{fact_rows}</table>
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>time</th><th>notes</th></tr>{''.join(rows)}</table>
<h2>Headline metrics</h2>
{f'<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table>' if metric_rows else '<p>None yet.</p>'}
<p>Parameters: <a href="params.yaml">params.yaml</a> · Manifest: <a href="manifest.json">manifest.json</a></p>
<h2>Plots</h2>
{''.join(images) or '<p>None.</p>'}
</body></html>
"""
    target = run_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def read_metrics(path: Path) -> dict:
    """A stage's metrics.json, or nothing."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
