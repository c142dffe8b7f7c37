"""What ``modelfactory endpoint`` ships: one environment's model, checked against the gate, in a new folder.

By default that is the environment's champion, downloaded from the registry and packaged the way
the deploy stage packages a model. ``--from-run`` takes a run's package instead, but only a run of
the same environment. Either way a version the gate rejected is refused unless ``--force``, and the
package, the endpoint specs and ``release.json`` (what was shipped, from where, forced or not) go
into a new folder under ``runs/endpoint/``: an old run's folder is never written to.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.errors import RunNotFoundError

RECORD = "release.json"


@dataclass
class Release:
    """A package ready for the endpoint, and where its specs go."""

    folder: Path
    package: Path
    registered_name: str
    version: str
    forced: bool
    record: dict

    @property
    def specs_folder(self) -> Path:
        """Where the endpoint YAML is written."""
        return self.folder / "azureml"

    @property
    def tags(self) -> dict[str, str]:
        """Tags for the deployments: which registered version, the gate's word, and any force."""
        tags = {"registered_model": self.registered_name, "gate": self.record["gate"]}
        if self.forced:
            tags["forced"] = "true"
        return tags


def prepare_release(params: Mapping, from_run: str | None, force: bool, check_gate: bool = True) -> Release:
    """Find what to ship for the params' model and environment, refuse a rejected version, and
    package it in a new folder.

    Args:
        params: resolved params (model, env, deploy settings, tracking store).
        from_run: a run id whose deploy package to ship; None ships the environment's champion.
        force: ship a version the gate rejected anyway (recorded in release.json and the tags).
        check_gate: False for actions that ship no new model (shift, promote, rollback).
    """
    from modelfactory.ops import registry, tracking

    tracking.connect(params)
    name = registry.registered_name(params)
    model, env = params["model"]["name"], params["env"]["name"]
    if from_run:
        run_dir, version = _run_package(model, env, from_run)
        source = f"run {Path(run_dir).name}"
    else:
        run_dir, version = None, registry.champion_version(name)
        source = "champion"
        if version is None:
            raise RunNotFoundError(
                f"{name} has no champion in env {env}: run the pipeline there (modelfactory run --model {model} "
                f"--env {env}), promote a version (modelfactory promote --model {model} --env {env} --version N), "
                "or pass --from-run")
    gate, reason = registry.gate_verdict(name, version)
    forced = registry.refuse_rejected(name, version, "deploy", force) if check_gate else False
    folder = _new_folder(name, version)
    package = folder / "package"
    if run_dir is not None:
        shutil.copytree(Path(run_dir) / "deploy" / "package", package)
    else:
        _package_registered(params, name, version, folder)
    record = {"model": model, "env": env, "registered_model": name, "version": str(version), "source": source,
              "gate": gate, "gate_reason": reason, "forced": forced,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (folder / RECORD).write_text(json.dumps(record, indent=2))
    return Release(folder, package, name, str(version), forced, record)


def record_deployed(release: Release, endpoint: str) -> None:
    """After a real (not dry-run) deploy: a forced version gets the tag ``forced_deploy`` in the registry."""
    from modelfactory.ops import registry

    if release.forced:
        registry.record_force(release.registered_name, release.version, "deploy", f"endpoint {endpoint}")


def _run_package(model: str, env: str, run_id: str) -> tuple[str, str]:
    """The run folder of ``run_id`` and the registered version its package holds; it must be of ``env``."""
    from modelfactory.ops.runs import list_runs

    for m in list_runs(model):
        if m["run_id"] != run_id:
            continue
        package = Path(m["_dir"]) / "deploy" / "package"
        if not (package / "score.py").is_file():
            break
        if m.get("env") != env:
            raise RunNotFoundError(f"run {run_id} is a run of env {m.get('env')}, not {env}: an environment deploys "
                                   f"its own models (pass --env {m.get('env')}, or run the pipeline in {env})")
        version = json.loads((package / "serving.json").read_text()).get("model_version")
        return m["_dir"], str(version)
    raise RunNotFoundError(f"run {run_id} of {model} has no deploy package (runs/<id>/deploy/package/); "
                           "see: modelfactory runs")


def _package_registered(params: Mapping, name: str, version: str, folder: Path) -> None:
    """Download a registered version and package it as the deploy stage would."""
    import mlflow

    from modelfactory.ops.serving import packaging

    model_dir = folder / "registered"
    model_dir.mkdir()
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(model_dir))
    packaging.package_model(model_dir, folder / "package", packaging.signature_example(model_dir), params["deploy"],
                         params["model"]["name"], version)
    shutil.rmtree(model_dir)  # the package holds its own copy


def _new_folder(name: str, version: str) -> Path:
    """``runs/endpoint/<model>-<env>-v<N>-<UTC time>[-k]/``, made here and nowhere else."""
    base = runs.endpoint_releases_dir()
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-v{version}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    for attempt in range(1, 1000):
        folder = base / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{paths.relative_to_root(base)}: no free folder name for {stem}")
