"""``modelfactory submit`` up to the point of sending: build, write and validate everything offline.

For one model and environment this writes, under runs/<id>/azureml/:
  snapshot/          the code the jobs run (the project minus .amlignore, plus the resolved params)
  pipeline.yaml      the pipeline job (one command step per notebook)
  components/*.yaml  each step's command component
  environment.yaml   the jobs' environment (unless params name a registered one)
  schedule.yaml      recurring retraining of that pipeline, on the cron from params
  automl.yaml        an AutoML job over the same data input, as a baseline (automl-data/MLTable names it)
A partitioned model (data.partition_by) is one pipeline job with one parallel step instead, over
data/MLTable (parallel.py); it has no automl.yaml.
and loads every file back with azure-ai-ml's own loaders, runs its validation and ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from modelfactory import paths
from modelfactory.ops import runs
from modelfactory.ops.azureml import checks, jobs, schedule, workspace
from modelfactory.errors import AzureSpecError


def prepare(pipeline, params: Mapping, run_id: str, root: Path | None = None, client=None) -> jobs.Submission:
    """Build and write every spec for one model and env; raise AzureSpecError on any problem.

    No data is copied: the model's data is a job input (data_assets.job_input). ``client`` (a real
    submit) lets the workspace resolve an asset's latest version and type.
    """
    workspace.quiet_azure_logs()
    root = root or paths.project_root()
    folder = runs.azureml_dir(run_id, root)
    folder.mkdir(parents=True, exist_ok=True)
    if params["data"]["partition_by"]:  # one model per partition: one parallel job over an MLTable (parallel.py)
        from modelfactory.ops.azureml import parallel

        submission = parallel.build_parallel_job(pipeline, params, run_id, folder, root, client)
        files = jobs.write_dry_run(submission)
        files.append(schedule.write_schedule(params, folder / "pipeline.yaml"))
        automl = None
    else:
        submission = jobs.build_pipeline_job(pipeline, params, run_id, folder, root, client)
        files = jobs.write_dry_run(submission)
        files.append(schedule.write_schedule(params, folder / "pipeline.yaml"))
        automl = schedule.write_automl(params, folder, submission.data_input)
        if automl is None:
            submission.notes.append(schedule.automl_skipped(submission.data_input))
    if automl is not None:
        files.append(automl)
    submission.files = files
    problems = validate_folder(folder)
    if problems:
        raise AzureSpecError(f"{len(problems)} problem(s) in {paths.relative_to_root(folder, root)}: "
                             + "; ".join(problems))
    return submission


def _load_problems(path: Path, loader) -> tuple[object | None, list[str]]:
    try:
        return loader(str(path)), []
    except Exception as exc:  # azure-ai-ml raises marshmallow, its own and OS errors for a bad file
        return None, [f"{path.name}: does not load: {workspace.load_error(exc)}"]


def validate_folder(folder: Path) -> list[str]:
    """Load every spec in a dry-run folder with azure-ai-ml and validate it; our checks on top."""
    from azure.ai.ml import load_component, load_environment, load_job
    from azure.ai.ml.entities._load_functions import load_schedule

    problems: list[str] = []
    job, found = _load_problems(folder / "pipeline.yaml", load_job)
    problems += found
    if job is not None:
        result = job._validate()
        problems += [f"pipeline.yaml: {where}: {message}" for where, message in result.error_messages.items()]
    problems += [f"pipeline.yaml: {p}" for p in checks.check_pipeline(yaml.safe_load((folder / "pipeline.yaml").read_text()))]
    for path in sorted((folder / "components").glob("*.yaml")):
        component, found = _load_problems(path, load_component)
        problems += found
        if component is not None:
            result = component._validate()
            problems += [f"components/{path.name}: {where}: {message}" for where, message in result.error_messages.items()]
    if (folder / "environment.yaml").exists():
        problems += _load_problems(folder / "environment.yaml", load_environment)[1]
    problems += _load_problems(folder / "schedule.yaml", load_schedule)[1]
    if not (folder / "automl.yaml").exists():
        return problems
    automl, found = _load_problems(folder / "automl.yaml", load_job)
    problems += found
    if (automl is not None and (folder / "automl-data").is_dir()
            and str(automl.training_data.path).startswith("azureml:")):
        problems.append(f"automl.yaml: training_data.path {automl.training_data.path} names a registered asset, "
                        "but the data is the local folder beside it")
    return problems
