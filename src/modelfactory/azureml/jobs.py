"""The pipeline definition as an Azure ML pipeline job: one command job per notebook.

Each stage becomes a command component whose command is the local runner itself::

    python -m modelfactory run --model diabetes --params-file params.yaml --pipeline training \
        --stages train --input explore=${{inputs.explore}}   # with MODELFACTORY_RUNS_DIR=${{outputs.run}}

so a step in Azure ML runs exactly what ``modelfactory run --stages train`` runs on a laptop: papermill
on the same notebook, with the same resolved params (a YAML file in the code snapshot, so types
survive), writing a run folder (executed notebook, HTML, stage outputs, manifest) to the step's
``run`` output. A later stage takes an earlier stage's ``run`` output as an input of that stage's
name. Built from azure-ai-ml objects and written as YAML for a dry run; nothing here talks to Azure.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory import params as params_mod
from modelfactory import paths
from modelfactory.pipeline import PipelineSpec

OUTPUT = "run"  # every step's single output: its run folder
SNAPSHOT_PARAMS = "params.yaml"


@dataclass
class Submission:
    """Everything one ``modelfactory submit`` builds, and where its dry-run files are."""

    job: object  # azure.ai.ml.entities.PipelineJob
    components: dict = field(default_factory=dict)
    environment: object | str | None = None
    folder: Path | None = None
    files: list[Path] = field(default_factory=list)


def job_params(params: Mapping) -> dict:
    """The params a job runs with: the resolved ones, except that tracking goes to the job's own
    workspace (``tracking.uri`` empty: MLflow takes MLFLOW_TRACKING_URI, which Azure ML sets)."""
    submitted = copy.deepcopy(dict(params))
    submitted["tracking"]["uri"] = ""
    return submitted


def stage_snapshot(root: Path, target: Path, params: Mapping) -> list[str]:
    """Copy the project into ``target`` as Azure ML would upload it (honouring .amlignore), then add
    the resolved params. Returns the files, relative. The folder is what the jobs run from."""
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    ignore = get_ignore_file(root)
    if target.exists():
        shutil.rmtree(target)
    copied = []
    for walked, dirs, files in os.walk(root):
        folder = Path(walked)
        # A pattern like "runs/" matches what is inside the folder, not the bare name: ask about a
        # file inside, so ignored trees (.venv, runs) are never walked.
        # Never copy the snapshot into itself, whatever .amlignore says about runs/.
        dirs[:] = [d for d in dirs if not ignore.is_file_excluded(folder / d / "_")
                   and (folder / d).resolve() != target.resolve()]
        for name in files:
            source = folder / name
            if ignore.is_file_excluded(source):
                continue
            relative = source.relative_to(root)
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
            copied.append(relative.as_posix())
    params_mod.dump(params, target / SNAPSHOT_PARAMS)
    copied.append(SNAPSHOT_PARAMS)
    return sorted(copied)


def build_environment(azure_params: Mapping, root: Path):
    """A registered environment named in params, or one built from environment.yml on the base image."""
    from azure.ai.ml.entities import Environment

    spec = azure_params["environment"]
    if spec.get("registered"):
        return spec["registered"]
    return Environment(image=spec["base_image"], conda_file=str(root / "environment.yml"),
                       description="modelfactory: environment.yml on " + spec["base_image"])


def stage_command(pipeline: PipelineSpec, stage, model: str) -> str:
    """The shell command of one step: the local runner, told where its inputs and output are."""
    inputs = " ".join(f"--input {need}=${{{{inputs.{need}}}}}" for need in stage.needs)
    return (f"MODELFACTORY_RUNS_DIR=${{{{outputs.{OUTPUT}}}}} PYTHONPATH=src python -m modelfactory run "
            f"--model {model} --params-file {SNAPSHOT_PARAMS} --pipeline {pipeline.name} --stages {stage.name}"
            + (f" {inputs}" if inputs else ""))


def build_component(pipeline: PipelineSpec, stage, snapshot: Path, environment, version: str, model: str):
    """A command component for one stage: inputs named after the stages it needs, one run-folder output."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandComponent

    return CommandComponent(
        name=f"modelfactory_{pipeline.name}_{stage.name}", version=version,
        display_name=f"{stage.name} ({Path(stage.notebook).name})",
        description=f"papermill runs {stage.notebook} through the modelfactory runner",
        inputs={need: Input(type="uri_folder", description=f"the run folder of stage {need}")
                for need in stage.needs},
        outputs={OUTPUT: Output(type="uri_folder", description="this stage's run folder: executed notebook, "
                                "HTML, outputs, manifest")},
        code=str(snapshot), environment=environment, command=stage_command(pipeline, stage, model),
    )


def build_pipeline_job(pipeline: PipelineSpec, params: Mapping, run_id: str, folder: Path,
                       root: Path | None = None) -> Submission:
    """The pipeline job for ``params`` (one model, one env), with its snapshot staged under ``folder``."""
    from azure.ai.ml.entities import PipelineJob

    from modelfactory import manifest as manifests

    root = root or paths.project_root()
    submitted = job_params(params)
    snapshot = folder / "snapshot"
    stage_snapshot(root, snapshot, submitted)
    environment = build_environment(params["azure"], root)
    version = params_mod.params_hash(submitted)
    components, nodes = {}, {}
    model = params["model"]["name"]
    for stage in pipeline.stages:
        component = build_component(pipeline, stage, snapshot, environment, version, model)
        node = component(**{need: nodes[need].outputs[OUTPUT] for need in stage.needs})
        # Name the node before a later node binds to it: bound first, the binding reads
        # ${{parent.jobs.None.outputs.run}}, and azure-ai-ml's validation does not notice.
        node.name = node.display_name = stage.name
        components[stage.name], nodes[stage.name] = component, node
    env = params["env"]["name"]
    git = manifests.git_state(root)
    # the hash of the params the steps run with, so it matches the params_hash in their manifests
    tags = {"model": model, "env": env, "pipeline": pipeline.name, "params_hash": version,
            "git_commit": git.get("commit") or "unknown", "git_dirty": str(git.get("dirty")), "run_id": run_id}
    job = PipelineJob(jobs=nodes, experiment_name=params["tracking"]["experiment"],
                      display_name=f"{pipeline.name} {model} {env} {run_id}", tags=tags,
                      compute=params["azure"]["compute"], description=pipeline.description)
    return Submission(job=job, components=components, environment=environment, folder=folder)


def write_dry_run(submission: Submission) -> list[Path]:
    """Write pipeline.yaml, components/<stage>.yaml and environment.yaml beside the snapshot."""
    folder = submission.folder
    files = [folder / "pipeline.yaml"]
    submission.job.dump(files[0])
    (folder / "components").mkdir(exist_ok=True)
    for name, component in submission.components.items():
        path = folder / "components" / f"{name}.yaml"
        component.dump(path)
        files.append(path)
    if not isinstance(submission.environment, str):
        path = folder / "environment.yaml"
        submission.environment.dump(path)
        files.append(path)
    submission.files = files
    return files
