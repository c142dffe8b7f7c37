"""Shared helpers: a throw-away copy of the project, and the CLI run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PARTS = ("params", "pipelines", "notebooks")
# What an Azure ML job's code snapshot is made from, besides the parts above.
SNAPSHOT_PARTS = ("src", "pyproject.toml", "environment.yml", ".amlignore")


def copy_project(dest: Path, whole: bool = False) -> Path:
    """A copy of what a run reads (params, pipelines, notebooks) in ``dest``; ``whole`` adds what
    an Azure ML snapshot is made from (src, pyproject.toml, environment.yml, .amlignore)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in PROJECT_PARTS + (SNAPSHOT_PARTS if whole else ()):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / part, dest / part)
    return dest


def clean_env(**extra: str) -> dict:
    """Our environment without anything that would point a run elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env.update(extra)
    return env


def cli(project: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``modelfactory <args>`` in ``project`` and return the finished process."""
    return subprocess.run([sys.executable, "-m", "modelfactory", *args], cwd=project, env=clean_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def runs_of(project: Path) -> list[dict]:
    """Manifests of the project's runs, oldest first."""
    found = [json.loads(p.read_text()) for p in (project / "runs").glob("*/manifest.json")]
    return sorted(found, key=lambda m: m["created"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project copy with no runs."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def proj(tmp_path, monkeypatch):
    """A fresh project copy that this process (in-process CLI calls, resolve()) works in, with no
    environment variable pointing elsewhere."""
    root = copy_project(tmp_path / "project")
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(root))
    for var in ("MODELFACTORY_ENV", "MLFLOW_TRACKING_URI", "MODELFACTORY_EXPERIMENT", "MODELFACTORY_CELL_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    return root


# A package's deploy settings for tests that package a run's model by hand (no scored-data logging).
PACKAGE_SETTINGS = {"max_rows": 100, "base_image": "python:3.11-slim",
                    "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                    "scored_data": {"enabled": False, "flush_rows": 10, "flush_seconds": 1.0}}


def package_answers(run_folder: Path, model: str, package_dir: Path, rows: int = 10):
    """Package a run's trained model, send its first holdout rows through the package's score.py;
    return (the answers, the trained model's own predictions)."""
    import pandas as pd

    from modelfactory.ops import deploy, tracking
    from modelfactory.ops.serving import packaging

    holdout = pd.read_parquet(run_folder / "train" / "holdout.parquet").drop(columns="target").head(rows)
    packaging.package_model(run_folder / "train" / "model", package_dir, holdout, PACKAGE_SETTINGS, model, "1")
    scorer = deploy.load_scoring_script(package_dir)
    answers = deploy.score_request(scorer, packaging.build_request(holdout))
    return answers, tracking.load_model(run_folder / "train" / "model").predict(holdout)
