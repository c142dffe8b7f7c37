"""``modelfactory notebooks``: re-execute notebooks/ in place, as a data scientist would in Jupyter.

Nothing is injected, so params resolve from params/ exactly as in Jupyter. The runs, the MLflow
store and the scored rows go to a throw-away folder, so saved outputs never depend on what a laptop
had lying around; in that store the notebooks may register and promote (tracking.registry_by_hand).
papermill's timing and path metadata are dropped: they change on every refresh and name machine paths.
So are memory addresses in the outputs (``<... object at 0x7f10b2c68150>`` in an estimator's repr):
a refresh changes a saved notebook only where a result changed. The notebooks themselves show no
other volatile values (latencies, ports, model URIs go to MLflow, not into an output).

``modelfactory notebooks --model M`` leaves notebooks/ alone: it executes the same notebooks with
``model`` (and ``env``) injected and writes the executed copies to docs/examples/<M>/, so any model's
outputs can be committed and read beside the notebooks' own. Its data is read where the model's params
say (a registered version comes from the project's registry), and checked before any kernel starts.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from modelfactory import paths
from modelfactory.ops.pipeline import notebook_paths

# A Python object's default repr names its memory address, different in every kernel.
MEMORY_ADDRESS = re.compile(r"(?<= at )0x[0-9a-fA-F]+")
MASKED_ADDRESS = "0x..."


def refresh_notebooks(say=print, model: str | None = None) -> int:
    """Execute every shipped notebook in pipeline order; return 0.

    Args:
        say: where progress lines go.
        model: None refreshes notebooks/ in place, nothing injected. A model's name writes executed
            copies, with that model and its environment injected, to docs/examples/<model>/.
    """
    import nbformat
    import papermill as pm

    root = paths.project_root()
    inject, target = None, None
    if model is not None:
        from modelfactory.params import resolve
        from modelfactory.core.sources import check_source

        params = resolve(model)  # a misspelt model or bad params: one line, before any kernel
        check_source(params["data"])  # so is data that is missing, or not registered yet
        inject = {"model": model, "env": params["env"]["name"]}
        target = paths.examples_dir(model, root)
        target.mkdir(parents=True, exist_ok=True)
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
                written = path if target is None else target / path.name
                say(f"refreshing {paths.relative_to_root(path, root)}"
                    + (f" -> {paths.relative_to_root(written, root)}" if target is not None else "") + " ...")
                pm.execute_notebook(str(path), str(written), parameters=inject, cwd=str(path.parent),
                                    progress_bar=False)
                nb = nbformat.read(written, as_version=4)
                strip_run_metadata(nb)
                nbformat.write(nb, written)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    where = "notebooks/" if target is None else paths.relative_to_root(target, root) + "/"
    say(f"{where} refreshed; review with git diff before committing")
    return 0


def strip_run_metadata(nb) -> None:
    """Drop what changes on every execution and what names this machine, and live widgets (a
    progress bar saved without its widget state shows only its first frame: "0%"); mask memory
    addresses."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill draws a new random id on every injection
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
            for output in cell.outputs:
                mask_memory_addresses(output)


def mask_memory_addresses(output) -> None:
    """Replace memory addresses in one output's text (a stream, text/plain, text/html) with 0x..."""
    if isinstance(output.get("text"), str):
        output["text"] = MEMORY_ADDRESS.sub(MASKED_ADDRESS, output["text"])
    for kind, value in output.get("data", {}).items():
        if kind.startswith("text/") and isinstance(value, str):
            output["data"][kind] = MEMORY_ADDRESS.sub(MASKED_ADDRESS, value)
