"""The penguins demo's executed notebooks, committed under docs/examples/penguins/ as notebooks/ holds
the diabetes demo's: they are today's notebooks (same code, model injected), carry no run metadata,
and `modelfactory notebooks --model penguins` reproduces their checked outputs."""

from __future__ import annotations

import json
import re
from configparser import ConfigParser
from importlib.resources import files
from pathlib import Path

import pytest

from conftest import ROOT, cli, copy_project
from modelfactory.ops.pipeline import notebook_paths

MODEL = "penguins"
EXAMPLES = ROOT / "docs" / "examples" / MODEL
CHECKED = "NBVAL_CHECK_OUTPUT"


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c["metadata"].get("tags", [])]


def _checked_outputs(nb: dict) -> list[str]:
    """The plain-text outputs of the cells nbval checks, sanitized as tests/notebooks/sanitize.cfg says."""
    rules = ConfigParser()
    rules.read(ROOT / "tests" / "notebooks" / "sanitize.cfg")
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and CHECKED in "".join(cell["source"]):
            text = "".join("".join(o.get("data", {}).get("text/plain", o.get("text", ""))) for o in cell["outputs"])
            for section in rules.sections():
                text = re.sub(rules[section]["regex"], rules[section]["replace"], text)
            found.append(text)
    return found


@pytest.mark.parametrize("notebook", [p.name for p in notebook_paths(ROOT)])
def test_each_example_is_the_current_notebook_executed_for_penguins(notebook):
    shipped = json.loads((ROOT / "notebooks" / notebook).read_text())
    example = json.loads((EXAMPLES / notebook).read_text())
    assert _code(example) == _code(shipped), f"notebooks/{notebook} changed: make notebooks"
    (injected,) = [c for c in example["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert f'model = "{MODEL}"' in "".join(injected["source"])
    assert injected["id"] == "injected-parameters", "a fixed id: a refresh does not churn it"
    code = [c for c in example["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "every cell ran"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert "papermill" not in example["metadata"]
    assert not [c for c in example["cells"] if {"papermill", "execution"} & set(c["metadata"])]
    assert not re.search(r'"/(tmp|work|root|home)/', (EXAMPLES / notebook).read_text()), "no machine paths"


@pytest.mark.e2e
def test_the_notebooks_command_reproduces_the_committed_examples(tmp_path):
    project = copy_project(tmp_path / "project")
    registered = cli(project, "data", "register", MODEL, str(files("palmerpenguins") / "data" / "penguins.csv"))
    assert registered.returncode == 0, registered.stderr
    done = cli(project, "notebooks", "--model", MODEL, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"docs/examples/{MODEL}/ refreshed; review with git diff before committing")
    for path in notebook_paths(ROOT):
        fresh = json.loads((project / "docs" / "examples" / MODEL / path.name).read_text())
        committed = json.loads((EXAMPLES / path.name).read_text())
        assert _checked_outputs(fresh) == _checked_outputs(committed), f"{path.name}: make notebooks, then commit"
    assert _checked_outputs(committed), "the comparison has checked cells to compare"
    # notebooks/ itself was left alone
    assert (project / "notebooks" / "explore.ipynb").read_text() == (ROOT / "notebooks" / "explore.ipynb").read_text()


def test_an_unregistered_dataset_is_one_line_before_any_kernel(proj, capsys):
    from modelfactory.ops import cli as command

    code = command.main(["notebooks", "--model", MODEL])
    _, err = capsys.readouterr()
    assert code == 2
    from modelfactory import paths

    assert err == (f"error: data.dataset {MODEL}: no such registered dataset (registered: none); register it first: "
                   f"{paths.command_prefix()} data register {MODEL} FILE\n")
    assert not (Path(proj) / "docs").exists()
