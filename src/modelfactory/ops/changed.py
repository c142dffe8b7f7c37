"""``modelfactory changed``: which models a commit range touches, for CI to train or dry-run only those.

The CI/CD definitions (.github/workflows, .azure-pipelines) ask this command rather than match paths
themselves, so the rule lives here, once, under test: a model's own files (its params file, its data
contract) concern that model; the code and definitions every model runs (src/, notebooks/, pipelines/,
params/base.yaml, params/env/, the environment) concern every model; anything else (docs, the CI
files themselves) concerns none.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from modelfactory.errors import PipelineError

# Prefixes (folders end in "/") of what every model's pipeline runs or is built from.
SHARED = ("src/", "notebooks/", "pipelines/", "params/base.yaml", "params/env/", "environment.yml",
          "requirements/", "pyproject.toml", ".amlignore")
# Folders under params/ whose files are named after the model they belong to (<model>.yaml or <model>/...).
PER_MODEL = ("params/models/", "params/contracts/")
# What GitHub sends as `github.event.before` for a push with no previous commit (a new branch).
NO_COMMIT = "0" * 40


def models_for_paths(changed: Iterable[str], models: Sequence[str]) -> list[str]:
    """The models that the changed files (paths relative to the project root, "/"-separated) concern.

    Args:
        changed: the changed files.
        models: every model of the project (params/models/*.yaml).

    Returns:
        The concerned models in ``models``' order: all of them when a shared file changed.
    """
    hit: set[str] = set()
    for path in changed:
        if path.startswith(SHARED):
            return list(models)
        for folder in PER_MODEL:
            if path.startswith(folder):
                rest = PurePosixPath(path[len(folder):])
                # params/models/<m>.yaml or params/models/<m>/anything
                hit.add(rest.parts[0] if len(rest.parts) > 1 else rest.stem)
    return [m for m in models if m in hit]


def changed_paths(base: str, root: Path) -> list[str]:
    """Files that differ between ``base`` and HEAD (``git diff base...HEAD``), relative to ``root``.

    Only files under ``root`` are listed, so a project kept in a subfolder of its repository works.
    """
    command = ["git", "diff", "--name-only", "--relative", "--no-renames", f"{base}...HEAD"]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PipelineError("changed: git is not installed") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise PipelineError(f"changed --base {base}: git diff failed ({said}); in CI, fetch the history "
                            "(actions/checkout with fetch-depth: 0)")
    return [line for line in done.stdout.splitlines() if line]


def changed_models(base: str | None, root: Path, models: Sequence[str]) -> list[str]:
    """The models to build for the commits since ``base``: every model when there is no base."""
    if not base or base == NO_COMMIT:
        return list(models)
    return models_for_paths(changed_paths(base, root), models)


def format_models(models: Sequence[str], as_json: bool) -> str:
    """One name a line, or a JSON list (for a CI matrix); empty text when no model changed."""
    if as_json:
        return json.dumps(list(models))
    return "\n".join(models)
