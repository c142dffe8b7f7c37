"""Dependencies: environment.yml, pyproject.toml and the lock file agree; the CLI starts light."""

import re
import subprocess
import sys
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import ROOT


def _lock():
    text = (ROOT / "requirements/lock.txt").read_text()
    return {k.lower(): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def test_environment_yml_pins_every_pyproject_dependency_at_the_locked_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = dict(line.split("==") for line in pip)
    lock = _lock()
    assert "python=3.11" in env["dependencies"]
    assert sorted(pinned) == sorted(r.name for r in wanted)
    for req in wanted:
        assert pinned[req.name] == lock[req.name.lower()], req.name
        assert req.specifier.contains(pinned[req.name]), f"{req.name}=={pinned[req.name]} outside {req.specifier}"


def test_installed_versions_match_the_lock():
    from importlib import metadata

    lock = _lock()
    for name in ("papermill", "mlflow", "scikit-learn", "pandas", "nbval", "pydantic"):
        assert metadata.version(name) == lock[name]


def test_cli_import_pulls_in_no_heavy_library():
    code = ("import sys, modelfactory.ops.cli\n"
            "heavy = [m for m in ('mlflow', 'azure.ai.ml', 'papermill', 'sklearn', 'pandas', 'nbconvert') if m in sys.modules]\n"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_lists_the_commands_and_exit_codes():
    done = subprocess.run([sys.executable, "-m", "modelfactory", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for word in ("run", "runs", "report", "params", "notebooks", "3 kernel died", "4 cell timeout"):
        assert word in done.stdout


def test_azure_commands_help_does_not_import_azure():
    for args in (["--help"], ["submit", "--help"], ["endpoint", "--help"], ["jobs", "--help"]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelfactory", *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-500:]
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert not {m for m in imported if m.startswith(("azure", "mlflow", "pandas", "sklearn"))}, args


def test_the_pinned_set_includes_every_azure_package_the_jobs_need():
    lock = _lock()
    for name in ("azure-ai-ml", "azure-identity", "azureml-mlflow", "azureml-inference-server-http",
                 "azureml-ai-monitoring", "mlflow"):
        assert name in lock, name
