"""``modelfactory notebooks``: re-execute notebooks/ in place, as a data scientist would in Jupyter.

Nothing is injected, so params resolve from params/ exactly as in Jupyter. The runs, the MLflow
store and the scored rows go to a throw-away folder, so saved outputs never depend on what a laptop
had lying around.
papermill's timing and path metadata are dropped: they change on every refresh and name machine paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelfactory import paths
from modelfactory.pipeline import load_pipeline


def refresh_notebooks(pipeline_name: str = "training", say=print) -> int:
    """Execute every stage's notebook in pipeline order, in place; return 0."""
    import nbformat
    import papermill as pm

    root = paths.project_root()
    pipeline = load_pipeline(pipeline_name, root)
    with tempfile.TemporaryDirectory(prefix="modelfactory-refresh-") as scratch:
        scratch_dirs = {"MODELFACTORY_RUNS_DIR": "runs", "MODELFACTORY_TRACKING_DIR": "mlruns",
                        "MODELFACTORY_SCORED_DIR": "scored"}
        saved = {k: os.environ.get(k) for k in scratch_dirs}
        for key, name in scratch_dirs.items():
            os.environ[key] = str(Path(scratch) / name)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            for stage in pipeline.stages:
                path = root / stage.notebook
                say(f"refreshing {stage.notebook} ...")
                pm.execute_notebook(str(path), str(path), cwd=str(path.parent), progress_bar=False)
                nb = nbformat.read(path, as_version=4)
                strip_run_metadata(nb)
                nbformat.write(nb, path)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    say("notebooks/ refreshed; review with git diff before committing")
    return 0


def strip_run_metadata(nb) -> None:
    """Drop what changes on every execution and what names this machine."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
