"""The code the runner sends into a notebook's kernel, as named functions rather than code strings.

A kernel runs what it is sent as text; ``call`` writes that text, one import and one call of a
function defined here, with its arguments passed as JSON. The same text runs in a plain
``python -c`` when no kernel is left (closing the MLflow runs after a kernel died). Imports stay
inside the functions: this module is imported into every kernel and must cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def call(function: Callable, *args) -> str:
    """The source that calls ``function`` (defined in this module) with ``args`` (JSON-serialisable)."""
    if function.__module__ != __name__ or globals().get(function.__name__) is not function:
        raise ValueError(f"{function.__qualname__}: only this module's functions are sent into kernels")
    if not args:
        return f"from {__name__} import {function.__name__} as _mf_call\n_mf_call()"
    return (f"from {__name__} import {function.__name__} as _mf_call\n"
            f"_mf_call(*__import__('json').loads({json.dumps(json.dumps(list(args)))}))")


def preload(modules: Sequence[str]) -> None:
    """Import ``runner.preload``'s modules while the kernel waits for its first notebook."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def reset() -> None:
    """Between two notebooks in one kernel: end MLflow runs, close figures, empty the namespace."""
    import sys

    if "mlflow" in sys.modules:
        while sys.modules["mlflow"].active_run():
            sys.modules["mlflow"].end_run(status="KILLED")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    from IPython import get_ipython

    get_ipython().reset(new_session=False)
    from modelfactory.ops.memory import trim

    trim()  # what the notebook freed goes back to the OS, not kept by malloc for the next one


def finish_tracking(params: Mapping, run_dir: str | Path, stages: Sequence[Sequence], parent_status: str,
                    data: Mapping | None = None) -> None:
    """Close a pipeline run's MLflow runs with each stage's files attached (tracking.finish_pipeline_run)."""
    from modelfactory.ops.tracking import finish_pipeline_run

    finish_pipeline_run(params, run_dir, stages, parent_status, data)
