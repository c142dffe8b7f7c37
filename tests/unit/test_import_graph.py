"""The package's import graph, read from the source (every import, those inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import modelfactory

PACKAGE = Path(modelfactory.__file__).parent

# Loops still there: the data code's, between core/ (data, sources, contract, modeling) and the ops
# modules that keep and find data (data_registry, azureml/data_assets, tracking). A loop anywhere
# else, or a new member of this one, fails the test.
KNOWN_LOOP = {"core.contract", "core.data", "core.modeling", "core.sources", "ops.azureml.data_assets",
              "ops.data_registry", "ops.tracking"}


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelfactory"):
                base = node.module.removeprefix("modelfactory").lstrip(".")
                for alias in node.names:
                    whole = f"{base}.{alias.name}".lstrip(".")
                    found.add(whole if whole in modules else base)
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("modelfactory.") for a in node.names if a.name.startswith("modelfactory.")}
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".") and m}
    return graph


def in_loops(graph: dict[str, set[str]]) -> set[str]:
    """Modules that can reach themselves again."""
    looped = set()
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module == start:
                looped.add(start)
                break
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
    return looped


def test_params_and_the_run_machinery_are_in_no_import_loop():
    looped = in_loops(import_graph())
    for module in ("params", "secrets", "schema", "paths", "errors", "ops.runs", "ops.runner", "ops.stage_loop",
                   "ops.notebook_run", "ops.kernel_code", "ops.cli", "ops.azureml.build", "ops.azureml.jobs",
                   "ops.azureml.workflows", "ops.azureml.deployment", "ops.azureml.rollout"):
        assert module not in looped, module
    assert looped <= KNOWN_LOOP, sorted(looped - KNOWN_LOOP)


def test_every_error_a_user_can_see_is_defined_in_errors_py():
    """One error model: a subclass of an errors.py class defined anywhere else is a second home for
    errors (score.py's BadRequest, a ValueError inside the scoring script that ships alone, is not one)."""
    errors_tree = ast.parse((PACKAGE / "errors.py").read_text())
    ours = {node.name for node in errors_tree.body if isinstance(node, ast.ClassDef)}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None) for b in node.bases}
                if bases & ours:
                    elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert elsewhere == [], elsewhere


def test_the_keys_that_are_not_hyperparameters_are_listed_once():
    """The index page's hyperparameters and the estimator's are told apart by one list (it was two,
    ops/report.py's and core/modeling.py's, which could drift apart)."""
    lists = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"estimator", "scale_features"} <= words:
                    lists.append(str(path.relative_to(PACKAGE)))
    assert lists == ["core/train_keys.py"], lists
    reached, todo, graph = set(), ["ops.report"], import_graph()
    while todo:  # the index page names hyperparameters without importing pandas through modeling.py
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph.get(module, ()))
    assert "core.modeling" not in reached
