"""``modelfactory notebooks``: re-execute notebooks/ in place, as a data scientist would in Jupyter.

Nothing is injected, so params resolve from params/ exactly as in Jupyter. The runs, the MLflow
store and the scored rows go to a throw-away folder, so saved outputs never depend on what a laptop
had lying around; in that store the notebooks may register and promote (tracking.registry_by_hand).
papermill's timing and path metadata are dropped: they change on every refresh and name machine paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelfactory import paths
from modelfactory.pipeline import notebook_paths


def refresh_notebooks(say=print) -> int:
    """Execute every shipped notebook in pipeline order, in place; return 0."""
    import nbformat
    import papermill as pm

    root = paths.project_root()
    with tempfile.TemporaryDirectory(prefix="modelfactory-refresh-") as scratch:
        scratch_dirs = {"MODELFACTORY_RUNS_DIR": "runs", "MODELFACTORY_TRACKING_DIR": "mlruns",
                        "MODELFACTORY_SCORED_DIR": "scored"}
        saved = {k: os.environ.get(k) for k in scratch_dirs}
        for key, name in scratch_dirs.items():
            os.environ[key] = str(Path(scratch) / name)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # the store is throw-away, and score.ipynb needs the champion that deploy.ipynb promotes
        saved["MODELFACTORY_REGISTRY_BY_HAND"] = os.environ.get("MODELFACTORY_REGISTRY_BY_HAND")
        os.environ["MODELFACTORY_REGISTRY_BY_HAND"] = "true"
        try:
            for path in notebook_paths(root):
                say(f"refreshing {paths.relative_to_root(path, root)} ...")
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
    """Drop what changes on every execution and what names this machine, and live widgets (a
    progress bar saved without its widget state shows only its first frame: "0%")."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
