"""The baseline for bench/pipeline.py: the notebooks' own code cells, executed in ONE Python process.

No papermill, no kernels, no HTML: each stage's code cells (everything after the parameters cell)
run with ``exec`` in a fresh namespace, with the same injected values the runner would pass. So the
helper calls, the data and the MLflow logging are exactly those of a real run.
"""

import sys
from pathlib import Path

import nbformat

from modelfactory.params import list_models, resolve
from modelfactory.ops.pipeline import load_pipeline


def main(root: Path) -> None:
    pipeline = load_pipeline("training", root)
    cells = {}
    for stage in pipeline.stages:
        nb = nbformat.read(root / stage.notebook, as_version=4)
        start = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
        cells[stage.name] = [compile(c.source, f"{stage.name}.ipynb", "exec")
                             for c in nb.cells[start:] if c.cell_type == "code"]
    for model in list_models(root):
        params = resolve(model, "dev")
        for stage in pipeline.stages:
            namespace = {"model": model, "env": "dev", "params": params, "run_dir": f"runs/plain-{model}"}
            for code in cells[stage.name]:
                exec(code, namespace)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
