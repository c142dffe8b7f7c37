"""Reports read offline: no script or stylesheet from a CDN, plots linked by relative path."""

import re

from conftest import ROOT
from modelfactory.report import render_notebook, write_index


def test_notebook_html_needs_no_network(tmp_path):
    copy = tmp_path / "evaluate.ipynb"
    copy.write_text((ROOT / "notebooks/evaluate.ipynb").read_text())
    html = render_notebook(copy).read_text()
    assert not re.search(r"<script[^>]+src=\"https?://", html)
    assert not re.search(r"<link[^>]+href=\"https?://", html)
    assert "data:image/png;base64," in html and "Holdout metrics" in html


def test_index_links_stages_and_plots(tmp_path):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "diagnostics.png").write_bytes(b"\x89PNG")
    manifest = {
        "run_id": "20261127-000000-diabetes-abcd", "model": "diabetes", "env": "dev", "status": "failed",
        "created": "t0", "finished": "t1", "params_hash": "0123456789ab", "data_hash": None,
        "git": {"commit": "abc", "dirty": True}, "command": "modelfactory run",
        "headline_metrics": {"holdout_rmse": 53.7771},
        "stages": {"explore": {"status": "succeeded", "html": "explore.html", "duration_s": 1.5},
                   "evaluate": {"status": "failed", "html": "evaluate.html", "duration_s": 0.4,
                                "error": {"summary": "ValueError: <bad>"}}},
    }
    page = write_index(tmp_path, manifest).read_text()
    assert '<a href="explore.html">explore</a>' in page and '<a href="evaluate.html">evaluate</a>' in page
    assert "ValueError: &lt;bad&gt;" in page
    assert '<img src="evaluate/diagnostics.png"' in page
    assert "53.78" in page and "abc (uncommitted changes)" in page
