"""The one place where a notebook touches files: its stage folder, its inputs, its outputs.

Each stage writes into ``<run_dir>/<stage>/`` and reads what earlier stages wrote there. Run by the
runner, ``run_dir`` is the run's folder; opened by hand in Jupyter (``run_dir = None``) it is the
scratch folder ``runs/interactive/<model>-<env>/``, so notebooks run by hand, in order, pass their
artifacts to each other the same way. A stage run by hand logs to MLflow under one parent run for
that folder, and leaves the model registry alone unless params ask (``Stage.writes_registry``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelfactory import paths
from modelfactory.ops import render, runs, tracking
from modelfactory.ops.progress import ProgressLine
from modelfactory.errors import PipelineError
from modelfactory.schema import Params

METRICS_FILE = "metrics.json"


@dataclass
class Stage:
    """A running stage: its params, its folder, and its MLflow run."""

    name: str
    params: dict
    run_dir: Path
    interactive: bool

    @property
    def writes_registry(self) -> bool:
        """Whether this stage may register or promote model versions: always when the runner runs
        it; by hand in Jupyter only when params ask (``tracking.registry_by_hand``)."""
        return not self.interactive or bool(self.params["tracking"]["registry_by_hand"])

    @property
    def folder(self) -> Path:
        """This stage's own output folder."""
        return runs.stage_dir(self.run_dir, self.name)

    def output(self, name: str) -> Path:
        """The path of one of this stage's outputs (its parent folder exists)."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def input(self, stage: str, name: str) -> Path:
        """The path of an earlier stage's output; a clear error when it is not there."""
        path = runs.stage_dir(self.run_dir, stage) / name
        if not path.exists():
            how = (f"run notebooks/{stage}.ipynb first" if self.interactive
                   else f"the runner should have put it there; check pipelines/ for what {self.name} needs")
            raise PipelineError(
                f"stage {self.name} needs {stage}/{name}, which is not in "
                f"{paths.relative_to_root(self.run_dir)}: {how}"
            )
        return path

    def save_table(self, frame: pd.DataFrame, name: str) -> Path:
        """Write a DataFrame as Parquet into this stage's folder."""
        path = self.output(name)
        frame.to_parquet(path)
        return path

    def load_table(self, stage: str, name: str) -> pd.DataFrame:
        """Read a Parquet table that an earlier stage wrote."""
        return pd.read_parquet(self.input(stage, name))

    def save_json(self, data: Mapping, name: str) -> Path:
        """Write JSON into this stage's folder."""
        path = self.output(name)
        path.write_text(json.dumps(data, indent=2, default=str))
        return path

    def load_json(self, stage: str, name: str) -> dict:
        """Read JSON that an earlier stage wrote."""
        return json.loads(self.input(stage, name).read_text())

    def save_figure(self, fig, name: str):
        """Save a figure as PNG into this stage's folder and the stage's MLflow run (under ``plots/``),
        with its titles as the PNG's caption (the run's index page shows both), and return it."""
        path = self.output(name)
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Title": render.figure_caption(fig)})
        tracking.log_stage_artifact(path, "plots")
        return fig

    def log_metrics(self, metrics: Mapping[str, float], prefix: str = "") -> dict:
        """Record metrics in MLflow and in ``metrics.json`` (read by the report and `runs`)."""
        tracking.log_stage_metrics(metrics, prefix)
        path = self.folder / METRICS_FILE
        known = json.loads(path.read_text()) if path.is_file() else {}
        known.update({f"{prefix}{k}": v for k, v in metrics.items()})
        self.save_json(known, METRICS_FILE)
        return render.Facts(metrics)

    def log_params(self, values: Mapping) -> None:
        """Record params (e.g. the estimator spec) on the stage's MLflow run."""
        tracking.log_stage_params(values)

    def log_model(self, model, example: pd.DataFrame) -> str:
        """Log the fitted model to MLflow, with the data contract the explore stage held the data to
        (explore/contract.json), and save it in this stage's folder for later stages."""
        import mlflow

        from modelfactory.core import contract

        held = runs.stage_dir(self.run_dir, "explore") / contract.FILE
        uri = tracking.log_model(model, example, self.params["tracking"]["model_requirements"],
                                 contract.read_json(held) if held.is_file() else None)
        target = self.folder / "model"
        if target.exists():  # a rerun by hand in Jupyter replaces its own scratch copy
            import shutil

            shutil.rmtree(target)
        target.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target))
        self.save_json({"model_uri": uri}, "model.json")
        return uri

    def record_decision(self, decision: Mapping, name: str) -> dict:
        """Write a decision (the gate's, a promotion) as JSON and as tags on the stage's MLflow run;
        return it as a dict that a notebook shows as a table rather than one long line."""
        import mlflow

        self.save_json(decision, name)
        prefix = Path(name).stem
        mlflow.set_tags({f"{prefix}.{k}": str(v)[:5000] for k, v in decision.items() if not isinstance(v, (list, dict))})
        return render.Facts(decision)

    def progress(self, what: str) -> ProgressLine:
        """A line that says what a long wait in this stage is on (e.g. the local endpoint's start):
        in the notebook, updated in place; run by the runner, on its terminal too."""
        return ProgressLine(what, terminal=not self.interactive)

    def load_model(self, stage: str = "train"):
        """Load the model an earlier stage saved, as the scikit-learn object (trusting only the
        skops types recorded with it)."""
        return tracking.load_model(self.input(stage, "model"))


def open_stage(name: str, params: Mapping, run_dir: str | Path | None = None) -> Stage:
    """Start a stage: check params, seed the random generators, open its folder and MLflow run.

    Args:
        name: the stage, as named in the pipeline definition.
        params: the resolved params (injected by papermill, or from ``resolve`` in Jupyter).
        run_dir: the run folder, relative to the project root or absolute; None in Jupyter.
    """
    checked = Params.model_validate(dict(params)).model_dump(mode="json")
    model, env = checked["model"]["name"], checked["env"]["name"]
    interactive = run_dir is None
    folder = runs.interactive_run_dir(model, env) if interactive else _absolute(run_dir)
    (folder / name).mkdir(parents=True, exist_ok=True)
    random.seed(checked["seed"])
    import numpy as np

    np.random.seed(checked["seed"])
    tags = {"model": model, "env": env, "mode": "interactive" if interactive else "pipeline"}
    tracking.start_stage_run(checked, folder, name, tags, interactive=interactive)
    return Stage(name=name, params=checked, run_dir=folder, interactive=interactive)


def _absolute(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    return path if path.is_absolute() else paths.project_root() / path


def finish_stage(stage: Stage, verdict: str) -> None:
    """End the stage's MLflow run and print its verdict, the notebook's last line (e.g.
    "explore: 344 rows, 8 columns, 7 checks passed, data contract passed").

    The verdict is also the stage run's ``verdict`` tag in MLflow. It holds no timings, ports or ids,
    so a notebook's saved output changes only when the stage's outcome does.
    """
    import mlflow

    if mlflow.active_run() is not None:  # not when the cell is run twice by hand: set_tag would start a run
        mlflow.set_tag("verdict", verdict[:5000])
    mlflow.end_run()
    if stage.interactive:
        tracking.finish_interactive_parent(stage.run_dir)
    print(f"{stage.name}: {verdict}")
