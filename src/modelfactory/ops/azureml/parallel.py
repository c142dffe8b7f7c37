"""A partitioned model on Azure ML: one ``parallel`` job that trains every partition.

Locally the runner expands ``data.partition_by`` into one run per partition (ops/partitions.py). On
Azure ML the same expansion is Azure's: a pipeline job with one ``parallel`` step whose input is an
MLTable of the model's data and whose ``partition_keys`` are ``data.partition_by``, so each
mini-batch is one partition's rows. Its entry script (parallel_entry.py) trains that partition the
way a local run does: the same expansion picks the partition's params (``model.name`` its own, so
it registers its own model and champion), and the local runner runs the same notebooks on its rows,
into the step's ``runs`` output. How many partitions run at once, how often a failed one is retried
and how many may fail come from ``azure.parallel`` in params (docs/scale.md sizes them).

Written under runs/<id>/azureml/: snapshot/ (the code and params), data/MLTable (naming the model's
data), pipeline.yaml, environment.yaml and schedule.yaml; each is loaded back and validated with
azure-ai-ml (build.validate_folder), as the other specs are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modelfactory import params as params_mod
from modelfactory import paths
from modelfactory.errors import AzureSpecError
from modelfactory.ops.azureml import jobs

ENTRY_SCRIPT = "src/modelfactory/ops/azureml/parallel_entry.py"   # relative to the code snapshot
STEP = "partitions"            # the pipeline's one step
RUNS_OUTPUT = "runs"           # the step's output: one run folder per partition
MLTABLE_DIR = "data"           # runs/<id>/azureml/data/MLTable


def parallel_settings(params: Mapping) -> dict:
    """The ``parallel_run_function`` arguments that come from ``azure.parallel`` and ``data.partition_by``."""
    spec = params["azure"]["parallel"]
    return {
        "partition_keys": list(params["data"]["partition_by"]),
        "instance_count": spec["instance_count"],
        "max_concurrency_per_instance": spec["max_concurrency_per_instance"],
        "mini_batch_error_threshold": spec["mini_batch_error_threshold"],
        "error_threshold": spec["error_threshold"],
        "retry_settings": {"max_retries": spec["retry_settings"]["max_retries"],
                           "timeout": spec["retry_settings"]["timeout_seconds"]},
        "logging_level": spec["logging_level"],
    }


def write_mltable(params: Mapping, data_input, folder: Path) -> Path:
    """``folder/MLTable`` naming the model's data (a link to a local file; a cloud URI as it is)."""
    from modelfactory.ops.azureml import schedule

    reason = schedule.automl_skipped(data_input)  # a uri asset whose storage only the workspace knows
    if reason:
        raise AzureSpecError(f"data.dataset {params['data']['dataset']}: a partitioned model's parallel job reads "
                             "an MLTable, and this is a uri asset whose storage path only the workspace knows; "
                             "register it as an mltable asset (data.asset_type: mltable)")
    schedule._write_mltable(params, data_input, folder)  # the same MLTable the AutoML baseline reads
    return folder / "MLTable"


def build_parallel_job(pipeline, params: Mapping, run_id: str, folder: Path, root: Path | None = None,
                       client=None) -> jobs.Submission:
    """The pipeline job with one parallel step over the MLTable of ``params``'s data, partitioned by key."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import PipelineJob
    from azure.ai.ml.parallel import RunFunction, parallel_run_function

    from modelfactory.core import sources
    from modelfactory.ops import runs

    root = root or paths.project_root()
    data_input, dataset = _data(params, client)
    submitted = jobs.job_params(params)
    submitted["data"]["dataset"] = dataset
    snapshot = folder / "snapshot"
    local = sources.find_files(params["data"]["dataset"]) if params["data"]["source"] == "file" else ()
    notes: list[str] = []
    jobs.stage_snapshot(root, snapshot, submitted, local, notes)
    if data_input is not None and data_input.type == "mltable":
        table = Input(type="mltable", path=str(data_input.path))
    else:
        table = Input(type="mltable", path=str(write_mltable(params, data_input, folder / MLTABLE_DIR).parent))
    environment = jobs.build_environment(params["azure"], root)
    version = params_mod.params_hash(submitted)
    model, env = params["model"]["name"], params["env"]["name"]
    component = parallel_run_function(
        name=f"modelfactory_{pipeline.name}_partitions", version=version,
        display_name=f"{pipeline.name}: one model per {', '.join(params['data']['partition_by'])}",
        description=f"the {pipeline.name} pipeline's notebooks, run by the modelfactory runner on each partition",
        inputs={jobs.DATA_INPUT: Input(type="mltable", description="the model's data (params data.dataset)")},
        outputs={RUNS_OUTPUT: Output(type="uri_folder", description="one run folder per partition")},
        input_data=f"${{{{inputs.{jobs.DATA_INPUT}}}}}",
        task=RunFunction(code=str(snapshot), entry_script=ENTRY_SCRIPT, environment=environment,
                         program_arguments=f"--params {jobs.SNAPSHOT_PARAMS} --pipeline {pipeline.name} "
                                           f"--runs-dir ${{{{outputs.{RUNS_OUTPUT}}}}}"),
        is_deterministic=False,   # a rerun trains again (new data versions, a new champion to beat)
        **parallel_settings(params),
    )
    node = component(**{jobs.DATA_INPUT: f"${{{{parent.inputs.{jobs.DATA_INPUT}}}}}"})
    node.name = node.display_name = STEP
    git = runs.git_state(root)
    tags = {"model": model, "env": env, "pipeline": pipeline.name, "params_hash": version,
            "partition_by": ",".join(params["data"]["partition_by"]),
            "git_commit": git.get("commit") or "unknown", "git_dirty": str(git.get("dirty")), "run_id": run_id}
    job = PipelineJob(jobs={STEP: node}, experiment_name=params["tracking"]["experiment"],
                      inputs={jobs.DATA_INPUT: table}, tags=tags, compute=params["azure"]["compute"],
                      display_name=f"{pipeline.name} {model} (per {', '.join(params['data']['partition_by'])}) "
                                   f"{env} {run_id}",
                      description=pipeline.description)
    notes.append("automl.yaml not written: a partitioned model's baseline is each partition's own "
                 "(evaluate.baseline), not one AutoML job over every partition")
    return jobs.Submission(job=job, components={}, environment=environment, folder=folder,
                           data_input=table, dataset=dataset, notes=notes)


def _data(params: Mapping, client):
    from modelfactory.ops.azureml import data_assets

    if params["data"]["source"] == "sklearn":  # written out as Parquet beside the MLTable
        return None, params["data"]["dataset"]
    return data_assets.job_input(params["data"], client)


def partition_params(params: Mapping, key: Mapping, rows: int, data_file: Path) -> tuple[dict | None, str]:
    """One partition's params inside the parallel job, from the model's params and the mini-batch.

    The expansion is the local runner's (partitions.expand), so the partition gets the model name,
    champion and min_rows skip it gets locally; its data is ``data_file``, the mini-batch's rows.
    Returns ``(params, its display name)``, or ``(None, why it is skipped)``.
    """
    from modelfactory.ops import partitions

    model = params["model"]["name"]
    ordered = {column: key[column] for column in params["data"]["partition_by"]}
    expansion = partitions.expand(model, params, [(ordered, rows)])
    if not expansion.params:
        skipped = expansion.skipped[0]
        return None, f"{skipped.display}: skipped, {skipped.reason}"
    chosen = expansion.params[0]
    chosen["data"].update(source="file", dataset=str(data_file))
    return chosen, partitions.display_name(model, ordered)
