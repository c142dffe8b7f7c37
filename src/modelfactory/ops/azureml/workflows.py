"""The Azure ML commands' workflows: `submit`, `jobs`, `endpoint` and `data register --azure`.

cli.py parses the arguments and calls one function here, which resolves the params, builds and
validates every spec offline (build.py, deployment.py, data_assets.py) and, unless it is a dry run,
sends them through an MLClient (submit.py, rollout.py). Each returns the command's exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from modelfactory import paths
from modelfactory.errors import AzureSpecError


def submit_pipelines(models: Sequence[str], env: str | None, overrides: Sequence[str], params_file: str | None,
                     pipeline_name: str, dry_run: bool, wait: bool, say: Callable[[str], None] = print) -> int:
    """``modelfactory submit``: build and check every model's pipeline job before sending any.

    A real submit asks the workspace for a data asset's latest version and type; a dry run asks
    nothing and needs no credentials. With ``wait``, a failed job's step is brought home (exit 1).
    """
    from modelfactory.ops import runs
    from modelfactory.ops.azureml import build, submit, workspace
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.params import resolve

    pipeline = load_pipeline(pipeline_name)
    if pipeline.name == "monitoring":  # on Azure ML the monitor is a monitor schedule, not a pipeline job
        return submit_monitors(models, env, overrides, params_file, dry_run, say)
    prepared = []
    for model in models:
        params = resolve(model, env, list(overrides), params_file)
        run_id = runs.new_run_id(params["model"]["name"])
        client = None if dry_run else workspace.connect(params["azure"])
        submission = build.prepare(pipeline, params, run_id, client=client)
        say(f"{params['model']['name']} ({params['env']['name']}): specs valid in "
            f"{paths.relative_to_root(submission.folder)}")
        for path in submission.files:
            say(f"  {paths.relative_to_root(path)}")
        for note in submission.notes:
            say(f"  note: {note}")
        prepared.append((params, submission, client))
    if dry_run:
        say("dry run: nothing was sent to Azure ML")
        return 0
    code = 0
    for params, submission, client in prepared:
        created = submit.submit(client, submission.job, say=say)
        if params["azure"]["schedule"]["enabled"]:
            submit.create_schedule(client, submission.folder / "schedule.yaml", say=say)
        if wait:
            spec = params["azure"]["wait"]
            status = submit.wait(client, created.name, spec["poll_seconds"], spec["timeout_minutes"] * 60, say=say)
            if status != "Completed":
                submit.bring_home(client, created.name, pipeline, say=say)
                code = 1
    return code


def submit_monitors(models: Sequence[str], env: str | None, overrides: Sequence[str], params_file: str | None,
                    dry_run: bool, say: Callable[[str], None] = print) -> int:
    """``submit --pipeline monitoring``: each model's Azure ML monitor schedule (azureml/monitoring.py),
    written and loaded back for all before any is created in the workspace."""
    from modelfactory.ops import runs
    from modelfactory.ops.azureml import monitoring, workspace
    from modelfactory.params import resolve

    prepared = []
    for model in models:
        params = resolve(model, env, list(overrides), params_file)
        folder = runs.azureml_dir(runs.new_run_id(params["model"]["name"]))
        path = monitoring.write_monitor(params, folder)
        say(f"{params['model']['name']} ({params['env']['name']}): monitor schedule valid: "
            f"{paths.relative_to_root(path)}")
        prepared.append((params, path))
    if dry_run:
        say("dry run: nothing was sent to Azure ML")
        return 0
    from azure.ai.ml.entities._load_functions import load_schedule

    for params, path in prepared:
        client = workspace.connect(params["azure"])
        created = client.schedules.begin_create_or_update(load_schedule(str(path))).result()
        say(f"monitor schedule {created.name} created in workspace {client.workspace_name}")
    return 0


def job_action(action: str, job_name: str, env: str | None, pipeline_name: str,
               say: Callable[[str], None] = print) -> int:
    """``modelfactory jobs show|download JOB``: the workspace is the environment's, whatever the model."""
    from modelfactory.ops.azureml import submit, workspace
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.params import list_models, resolve

    workspace.quiet_azure_logs()
    params = resolve(list_models()[0], env)
    client = workspace.connect(params["azure"])
    if action == "show":
        submit.show(client, job_name, say=say)
        return 0
    home = submit.download_all(client, job_name, say=say)
    say(f"downloaded into {paths.relative_to_root(home)}")
    failed = submit.bring_home(client, job_name, load_pipeline(pipeline_name), say=say)
    return 1 if failed else 0


def endpoint_action(action: str, model: str, env: str | None, overrides: Sequence[str], params_file: str | None,
                    from_run: str | None, force: bool, to: str | None, dry_run: bool,
                    say: Callable[[str], None] = print) -> int:
    """``modelfactory endpoint deploy|smoke|shift|promote|rollback|batch``: the release's specs written and
    checked, then (unless a dry run) the blue/green rollout (or the batch endpoint) through an MLClient."""
    from modelfactory.ops.azureml import deployment, rollout, workspace
    from modelfactory.ops.partitions import resolve_named as resolve  # a partition ships its own champion
    from modelfactory.ops.release import prepare_release, record_deployed

    workspace.quiet_azure_logs()
    params = resolve(model, env, list(overrides), params_file)
    if action == "shift" and not to:
        raise AzureSpecError("endpoint shift needs --to, e.g. --to green=25")
    # only deploy ships a new model; the other actions move traffic between what is already there
    release = prepare_release(params, from_run, force, check_gate=action in ("deploy", "batch"))
    specs = deployment.build_specs(release.package, params, tags=release.tags)
    folder = release.specs_folder
    files = deployment.write_specs(specs, folder)
    problems = deployment.validate_specs(folder)
    if problems:
        raise AzureSpecError(f"{len(problems)} problem(s) in {paths.relative_to_root(folder)}: " + "; ".join(problems))
    say(f"{specs.online_endpoint.name}: {release.registered_name} version {release.version} "
        f"({release.record['source']}, gate {release.record['gate']}"
        f"{', FORCED' if release.forced else ''}); specs valid in {paths.relative_to_root(folder)}")
    for path in files:
        say(f"  {paths.relative_to_root(path)}")
    sample = release.package / "sample-request.json"
    if dry_run:
        if action == "shift":
            say(f"would set traffic {rollout.shifted(to)}")
        if action == "smoke":
            say(f"would send {paths.relative_to_root(sample)} to {specs.online_endpoint.name}'s green deployment")
        if action == "batch":
            say(f"would create or update batch endpoint {specs.batch_endpoint.name} "
                f"(deployment {specs.batch_deployment.name})")
        say("dry run: nothing was sent to Azure ML")
        return 0
    steps = rollout.EndpointRollout(workspace.connect(params["azure"]), specs, say=say)
    if action == "shift":
        steps.shift(to)
    elif action == "smoke":
        steps.smoke(sample)
    else:
        getattr(steps, action)()
    if action == "deploy":
        record_deployed(release, specs.online_endpoint.name)
    return 0


def register_data_asset(record: dict, dry_run: bool, say: Callable[[str], None] = print) -> int:
    """``data register --azure``: the registry version as an Azure ML data asset, its spec written and
    loaded back, then (unless a dry run) created in the workspace."""
    from modelfactory.ops import runs
    from modelfactory.ops.azureml import data_assets

    folder = runs.data_asset_dir(record["name"], record["version"])
    spec, asset = data_assets.write_asset_spec(record, folder)
    say(f"  data asset azureml:{record['name']}:{record['version']} (uri_file): spec valid in "
        f"{paths.relative_to_root(spec)}")
    if dry_run:
        say("dry run: nothing was sent to Azure ML")
        return 0
    note = data_assets.create_asset(data_assets.connect(), asset, record)
    say(f"  created {note['asset']} in workspace {note['workspace']}; runs that read "
        f"{record['name']}:{record['version']} record it")
    return 0
