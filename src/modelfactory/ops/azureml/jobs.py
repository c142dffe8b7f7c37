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
from modelfactory.errors import PipelineError
from modelfactory.ops.pipeline import PipelineSpec

OUTPUT = "run"  # every step's single output: its run folder
DATA_INPUT = "data"  # the reader step's input: the model's raw data (uri_file, uri_folder or mltable)
SNAPSHOT_PARAMS = "params.yaml"
# What a job runs from: the code, the notebooks, the stage graph, the params layers, and what its
# environment is built from. Anything else in the project root (data, scored files, runs, scratch) stays here.
SNAPSHOT_PARTS = ("src", "notebooks", "pipelines", "params", "pyproject.toml", "environment.yml")
SHOWN_LEFT_OUT = 6  # names in the one-line summary; the file beside the snapshot lists them all


@dataclass
class Submission:
    """Everything one ``modelfactory submit`` builds, and where its dry-run files are."""

    job: object  # azure.ai.ml.entities.PipelineJob
    components: dict = field(default_factory=dict)
    environment: object | str | None = None
    folder: Path | None = None
    files: list[Path] = field(default_factory=list)
    data_input: object | None = None  # azure.ai.ml.Input carrying the model's data; None for sklearn
    dataset: str | None = None        # data.dataset as the steps run it (a latest version pinned)
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def job_params(params: Mapping) -> dict:
    """The params a job runs with: the resolved ones, except that tracking goes to the job's own
    workspace (``tracking.uri`` empty: MLflow takes MLFLOW_TRACKING_URI, which Azure ML sets)."""
    submitted = copy.deepcopy(dict(params))
    submitted["tracking"]["uri"] = ""
    return submitted


def stage_snapshot(root: Path, target: Path, params: Mapping, leave_out: tuple[Path, ...] = (),
                   notes: list[str] | None = None) -> list[str]:
    """Copy what the jobs run from into ``target``, then add the resolved params. Returns the files, relative.

    Only the parts in SNAPSHOT_PARTS are copied, minus what .amlignore excludes inside them: a data
    file, a scored Parquet or a scratch notebook left in the project root never goes up with the code.
    ``leave_out`` are the model's local data files: they travel as the job's data input, so they are
    never copied into the code as well. What was left out, and why, is written beside the snapshot
    (``<target>-left-out.txt``), and a one-line summary naming that file is appended to ``notes``.
    """
    leave_out = {p.resolve() for p in leave_out}
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    ignore = get_ignore_file(root)
    if target.exists():
        shutil.rmtree(target)
    copied, skipped = [], {}  # skipped: relative path -> why
    for path in leave_out:
        if path.is_relative_to(root):
            skipped[path.relative_to(root).as_posix()] = "the model's data: it travels as the job's data input"
    for entry in sorted(root.iterdir()):
        if entry.name not in SNAPSHOT_PARTS and entry.resolve() != target.resolve():
            skipped.setdefault(entry.name + ("/" if entry.is_dir() else ""), "not a part the jobs run from")
    for part in SNAPSHOT_PARTS:
        if (root / part).is_file():
            walked_tree = [(root, [], [part])]
        else:
            walked_tree = os.walk(root / part)
        for walked, dirs, files in walked_tree:
            folder = Path(walked)
            # A pattern like "runs/" matches what is inside the folder, not the bare name: ask about a
            # file inside, so ignored trees (__pycache__, checkpoints) are never walked.
            for name in [d for d in dirs if ignore.is_file_excluded(folder / d / "_")]:
                dirs.remove(name)
                skipped[(folder / name).relative_to(root).as_posix() + "/"] = "matched .amlignore"
            for name in files:
                source = folder / name
                relative = source.relative_to(root).as_posix()
                if source.resolve() in leave_out:
                    continue
                if ignore.is_file_excluded(source):
                    skipped[relative] = "matched .amlignore"
                    continue
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / relative)
                copied.append(relative)
    params_mod.dump(params, target / SNAPSHOT_PARAMS)
    copied.append(SNAPSHOT_PARAMS)
    record = target.parent / f"{target.name}-left-out.txt"
    width = max((len(name) for name in skipped), default=0) + 2
    record.write_text(f"# Left out of {target.name}/, which holds only {', '.join(SNAPSHOT_PARTS)} (minus "
                      f".amlignore) and {SNAPSHOT_PARAMS}: what a job runs from.\n"
                      + "".join(f"{name:<{width}}{why}\n" for name, why in sorted(skipped.items())))
    if notes is not None:
        # files first (a stray CSV or Parquet is what a reader looks for), then folders, hidden ones last
        named = sorted((n for n, why in skipped.items() if why != "matched .amlignore"),
                       key=lambda n: (n.startswith("."), n.endswith("/"), n))
        shown = ", ".join(named[:SHOWN_LEFT_OUT]) + (", ..." if len(named) > SHOWN_LEFT_OUT else "")
        notes.append(f"code snapshot: {len(copied)} files; left out {len(skipped)} entries "
                     f"({shown or 'only what .amlignore excludes'}): the list and why is "
                     f"{paths.relative_to_root(record, root)}")
    return sorted(copied)


def build_environment(azure_params: Mapping, root: Path):
    """A registered environment named in params, or one built from environment.yml on the base image."""
    from azure.ai.ml.entities import Environment

    spec = azure_params["environment"]
    if spec.get("registered"):
        return spec["registered"]
    return Environment(image=spec["base_image"], conda_file=str(root / "environment.yml"),
                       description="modelfactory: environment.yml on " + spec["base_image"])


def stage_command(pipeline: PipelineSpec, stage, model: str, reads_data: bool = False) -> str:
    """The shell command of one step: the local runner, told where its inputs and output are.

    The step that reads the raw data is told where its ``data`` input is mounted, the way every step
    is told where its output goes: an environment variable (paths.data_input), so the params, and
    their hash, stay those submitted.
    """
    inputs = " ".join(f"--input {need}=${{{{inputs.{need}}}}}" for need in stage.needs)
    data = f"MODELFACTORY_DATA_INPUT=${{{{inputs.{DATA_INPUT}}}}} " if reads_data else ""
    return (f"{data}MODELFACTORY_RUNS_DIR=${{{{outputs.{OUTPUT}}}}} PYTHONPATH=src python -m modelfactory run "
            f"--model {model} --params-file {SNAPSHOT_PARAMS} --pipeline {pipeline.name} --stages {stage.name}"
            + (f" {inputs}" if inputs else ""))


def build_component(pipeline: PipelineSpec, stage, snapshot: Path, environment, version: str, model: str,
                    data_type: str | None = None):
    """A command component for one stage: inputs named after the stages it needs (plus ``data``, of
    ``data_type``, for the stage that reads the raw data), one run-folder output."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandComponent

    inputs = {need: Input(type="uri_folder", description=f"the run folder of stage {need}") for need in stage.needs}
    if data_type:
        inputs[DATA_INPUT] = Input(type=data_type, description="the model's raw data (params data.source)")
    return CommandComponent(
        name=f"modelfactory_{pipeline.name}_{stage.name}", version=version,
        display_name=f"{stage.name} ({Path(stage.notebook).name})",
        description=f"papermill runs {stage.notebook} through the modelfactory runner",
        inputs=inputs,
        outputs={OUTPUT: Output(type="uri_folder", description="this stage's run folder: executed notebook, "
                                "HTML, outputs, manifest")},
        code=str(snapshot), environment=environment, command=stage_command(pipeline, stage, model, bool(data_type)),
    )


def reader_stage(pipeline: PipelineSpec) -> str | None:
    """The stage that reads the raw data: the one whose output the pipeline hashes as its dataset."""
    return pipeline.dataset.split("/", 1)[0] if pipeline.dataset else None


def build_pipeline_job(pipeline: PipelineSpec, params: Mapping, run_id: str, folder: Path,
                       root: Path | None = None, client=None) -> Submission:
    """The pipeline job for ``params`` (one model, one env), with its snapshot staged under ``folder``.

    The model's data is the pipeline's ``data`` input, bound to the reader stage (data_assets.job_input);
    ``client``, when given (a real submit), resolves an asset's ``@latest`` and type in the workspace.
    """
    from azure.ai.ml.entities import PipelineJob

    from modelfactory.core import sources
    from modelfactory.ops import runs
    from modelfactory.ops.azureml import data_assets

    root = root or paths.project_root()
    data_input, dataset = data_assets.job_input(params["data"], client)
    if DATA_INPUT in pipeline.names:
        raise PipelineError(f"pipeline {pipeline.name}: a stage may not be named '{DATA_INPUT}' (the data input's name)")
    reader = reader_stage(pipeline) if data_input is not None else None
    submitted = job_params(params)
    submitted["data"]["dataset"] = dataset  # pinned: the steps record the version resolved now
    snapshot = folder / "snapshot"
    local = sources.find_files(params["data"]["dataset"]) if params["data"]["source"] == "file" else ()
    notes: list[str] = []
    stage_snapshot(root, snapshot, submitted, local, notes)
    environment = build_environment(params["azure"], root)
    version = params_mod.params_hash(submitted)
    components, nodes = {}, {}
    model = params["model"]["name"]
    for stage in pipeline.stages:
        reads = stage.name == reader
        component = build_component(pipeline, stage, snapshot, environment, version, model,
                                    data_input.type if reads else None)
        bindings = {need: nodes[need].outputs[OUTPUT] for need in stage.needs}
        if reads:
            bindings[DATA_INPUT] = f"${{{{parent.inputs.{DATA_INPUT}}}}}"
        node = component(**bindings)
        # Name the node before a later node binds to it: bound first, the binding reads
        # ${{parent.jobs.None.outputs.run}}, and azure-ai-ml's validation does not notice.
        node.name = node.display_name = stage.name
        components[stage.name], nodes[stage.name] = component, node
    env = params["env"]["name"]
    git = runs.git_state(root)
    # the hash of the params the steps run with, so it matches the params_hash in their manifests
    tags = {"model": model, "env": env, "pipeline": pipeline.name, "params_hash": version,
            "git_commit": git.get("commit") or "unknown", "git_dirty": str(git.get("dirty")), "run_id": run_id}
    job = PipelineJob(jobs=nodes, experiment_name=params["tracking"]["experiment"],
                      inputs={DATA_INPUT: data_input} if reader else None,
                      display_name=f"{pipeline.name} {model} {env} {run_id}", tags=tags,
                      compute=params["azure"]["compute"], description=pipeline.description)
    return Submission(job=job, components=components, environment=environment, folder=folder,
                      data_input=data_input, dataset=dataset, notes=notes)


def _unprefix_local_inputs(path: Path) -> None:
    """azure-ai-ml 1.35 dumps a local input path as ``azureml:<path>``, which loads back as a reference
    to an asset of that name (and the schedule submits this YAML): write the local path as it is."""
    import yaml

    spec = yaml.safe_load(path.read_text())
    changed = False
    for value in (spec.get("inputs") or {}).values():
        where = value.get("path") if isinstance(value, Mapping) else None
        if isinstance(where, str) and where.startswith("azureml:") and Path(where.removeprefix("azureml:")).exists():
            value["path"] = where.removeprefix("azureml:")
            changed = True
    if changed:
        path.write_text(yaml.safe_dump(spec, sort_keys=False))


def write_dry_run(submission: Submission) -> list[Path]:
    """Write pipeline.yaml, components/<stage>.yaml and environment.yaml beside the snapshot."""
    folder = submission.folder
    files = [folder / "pipeline.yaml"]
    submission.job.dump(files[0])
    _unprefix_local_inputs(files[0])
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
