"""The notebooks keep the house rules: thin, one parameters cell, no logic, no machine paths."""

import ast
import json
import re

import nbformat
import pytest

from conftest import ROOT
from modelfactory.ops.pipeline import notebook_paths

NOTEBOOKS = notebook_paths(ROOT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "| parameter |" in first.source, "opens with a parameter table"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assigned = {}
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), ast.unparse(node)
        assigned[node.targets[0].id] = node.value.value
    assert assigned == {"model": "diabetes", "env": "dev", "params": None, "run_dir": None}
    setup = nb.cells[nb.cells.index(tagged[0]) + 1].source
    assert "params = params or resolve(model, env)" in setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_are_short_calls_without_definitions_or_literals(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda)) for n in ast.walk(tree)), cell.source
        assert len(cell.source.splitlines()) <= 8, cell.source
        numbers = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                   and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
        assert numbers == [], f"hard-coded numbers {numbers} in: {cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_outputs_carry_no_machine_paths_or_run_metadata(path):
    text = path.read_text()
    assert not re.search(r'"/(work|tmp|root|home|Users)/', text)
    nb = json.loads(text)
    assert "papermill" not in nb["metadata"]
    assert all("papermill" not in c["metadata"] for c in nb["cells"])
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "outputs are kept"
    assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert "application/vnd.jupyter.widget-view+json" not in text, "a saved widget shows only its first frame"


def test_every_notebook_belongs_to_a_pipeline_so_it_is_checked():
    assert sorted(ROOT.glob("notebooks/*.ipynb")) == sorted(NOTEBOOKS)


# What differs between two executions of the same notebook, and so must not be in a saved output:
# `make notebooks` then changes a committed notebook only where a result changed.
VOLATILE = {"a memory address": r"at 0x[0-9a-fA-F]+", "an MLflow model id": r"\bm-[0-9a-f]{32}\b",
            "a latency": r"(?i)latency", "an endpoint's port": r"endpoint-\d+\.log",
            "a log line's time": r"\d{4}[-/]\d{2}[-/]\d{2} \d{2}:\d{2}:\d{2}", "elapsed seconds": r"\(\d+ s\)"}
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*/*.ipynb"))


def _output_texts(nb) -> list[str]:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(v for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return texts


@pytest.mark.parametrize("path", NOTEBOOKS + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_outputs_hold_nothing_that_changes_on_every_execution(path):
    text = "\n".join(_output_texts(nbformat.read(path, as_version=4)))
    for what, pattern in VOLATILE.items():
        found = re.search(pattern, text)
        assert found is None, f"{what} in a saved output: {found.group(0)!r} (refreshing changes it every time)"


@pytest.mark.parametrize("path", NOTEBOOKS + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_notebook_ends_with_its_verdict_line(path):
    nb = nbformat.read(path, as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.source.startswith("finish_stage(stage, "), last.source
    (output,) = last.outputs
    assert output.output_type == "stream" and output.text.startswith(f"{path.stem}: ")
    assert output.text.count("\n") == 1 and output.text.endswith("\n"), "one line"
