"""The ``modelfactory`` command. Imports stay inside the commands: ``--help`` must be fast.

Exit codes: 0 ok; 1 a stage failed (a cell raised); 2 a user error (params, pipeline, missing
inputs, unknown run); 3 the kernel died; 4 a cell timed out; 130 interrupted (Ctrl-C); 143
terminated (SIGTERM, handled like Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modelfactory.errors import EXIT_INTERRUPTED, ModelfactoryError, ParamsError

EPILOG = ("exit codes: 0 ok, 1 stage failed, 2 user error, 3 kernel died, 4 cell timeout, 130 interrupted (Ctrl-C), "
          "143 terminated (SIGTERM)")


PARTITION_HELP = "a model, or one partition of it ('sales/store=3,product=B' or sales--store-3--product-b)"


def _add_params_args(parser: argparse.ArgumentParser, many_models: bool) -> None:
    if many_models:
        parser.add_argument("--model", action="append", metavar="M",
                            help="a model under params/models/, or one partition of it, e.g. "
                            "'sales/store=3,product=B' (repeatable; default: every model)")
    else:
        parser.add_argument("--model", required=True, metavar="M", help="a model under params/models/, or one "
                            "partition of it ('sales/store=3,product=B' or sales--store-3--product-b)")
    parser.add_argument("--env", metavar="E", help="an environment under params/env/; lifecycle commands use its own "
                        "registered model <model>-<env> (default: $MODELFACTORY_ENV or dev)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override one params value, e.g. --set train.alpha=0.3 (value parsed as YAML)")
    parser.add_argument("--params-file", metavar="FILE",
                        help="use these resolved params (a run's params.yaml) instead of the layers")


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a zero or negative limit would hide runs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _add_env_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", metavar="E", help="the environment: its own registered model <model>-<env> and "
                        "champion (default: $MODELFACTORY_ENV or dev)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="modelfactory", description="Run parameterized notebooks headless, locally or on Azure ML.",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the pipeline's notebooks with papermill into runs/<run-id>/",
                         epilog=EPILOG)
    _add_params_args(run, many_models=True)
    run.add_argument("--stages", metavar="A,B", help="run only these stages; earlier outputs come from the "
                     "newest run where they succeeded")
    run.add_argument("--from-run", metavar="RUN_ID", help="take earlier stages' outputs from this run")
    run.add_argument("--input", action="append", default=[], dest="inputs", metavar="STAGE=FOLDER",
                     help="take stage STAGE's outputs from this run folder (e.g. a downloaded Azure ML step)")
    run.add_argument("--pipeline", default="training", help="a definition under pipelines/ (default: training)")
    run.add_argument("--models", action="append", default=[], metavar="GLOB",
                     help="the models whose names match, e.g. 'sales*' or 'd*' (repeatable; quote it from the shell)")
    run.add_argument("--all", action="store_true", help="every model under params/models/ (as with no --model)")
    run.add_argument("--jobs", type=_positive_int, metavar="N",
                     help=f"run N models at once, each with its own warm kernels (default: the number of cores, "
                          f"{os.cpu_count() or 1} here)")
    run.add_argument("--no-cache", action="store_true", help="run every selected stage, even when an earlier run "
                     "has its outputs with the same cache key (docs/running.md)")

    monitor = sub.add_parser("monitor", help="drift, data quality and live performance of the champion on a window of "
                             "scored rows (the monitoring pipeline); with monitor.on_drift: retrain, a breach retrains",
                             epilog=EPILOG)
    _add_params_args(monitor, many_models=True)
    monitor.add_argument("--since", metavar="WHEN", help="the window's start, an ISO date or date-time, UTC unless "
                         "it says otherwise (default: monitor.window_days before --until)")
    monitor.add_argument("--until", metavar="WHEN", help="the window's end, excluded (default: now)")
    monitor.add_argument("--labels", metavar="FILE", help="a CSV or Parquet of request_id and the target's true "
                         "values: live performance against training and the gate's thresholds")

    runs = sub.add_parser("runs", help="list past runs: pipeline, status, the gate's decision, headline metric")
    runs.add_argument("--model", metavar="M", help="one model's runs (a partitioned model's: every partition's)")
    runs.add_argument("--limit", type=_positive_int, default=20, metavar="N",
                      help="show the newest N runs (default: 20)")

    compare = sub.add_parser("compare", help="what changed between two runs: the params that differ, the "
                             "metrics side by side, each gate decision")
    compare.add_argument("run_a", metavar="RUN_A", help="a run id (or its start, or 'latest')")
    compare.add_argument("run_b", metavar="RUN_B", help="the run to compare it with")

    report = sub.add_parser("report", help="print (or open) the HTML report of a run")
    report.add_argument("run_id", nargs="?", default="latest", help="a run id, or 'latest' (default)")
    report.add_argument("--open", action="store_true", help="open it in the default browser")

    show = sub.add_parser("params", help="print the resolved params of a model as YAML")
    _add_params_args(show, many_models=False)

    notebooks = sub.add_parser("notebooks", help="re-execute notebooks/ in place, so their saved outputs are current")
    notebooks.add_argument("--model", metavar="M", help="leave notebooks/ alone: execute them for model M and write "
                           "the executed copies to docs/examples/M/")

    data = sub.add_parser("data", help="the data registry: register, list and show versioned raw data")
    data_sub = data.add_subparsers(dest="data_action", required=True, metavar="ACTION")
    register = data_sub.add_parser("register", help="store a CSV or Parquet file as a new immutable version")
    register.add_argument("name", metavar="NAME", help="the dataset's name (lowercase, e.g. penguins)")
    where = register.add_mutually_exclusive_group(required=True)
    where.add_argument("path", nargs="?", metavar="PATH", help="the file to register")
    where.add_argument("--from-folder", metavar="LANDING",
                       help="register the newest file in this folder, if it changed since the last version")
    register.add_argument("--azure", action="store_true",
                          help="also make the version an Azure ML data asset of the same name and version")
    register.add_argument("--dry-run", action="store_true",
                          help="with --azure: only write and validate the data asset spec (no credentials)")
    data_sub.add_parser("list", help="every registered version: rows, columns, hash, when, runs")
    show_data = data_sub.add_parser("show", help="one dataset's versions with their schema and the runs that used them")
    show_data.add_argument("name", metavar="NAME[:VERSION]")
    contract = data_sub.add_parser("contract", help="infer a data contract from a registered version into "
                                   "params/contracts/<model>.yaml, for you to review and commit")
    contract.add_argument("name", metavar="NAME[:VERSION]", help="a registered dataset (latest version by default)")
    contract.add_argument("--model", required=True, metavar="M", help="the model the contract is for (names the file)")
    contract.add_argument("--force", action="store_true", help="replace an existing contract file")

    promote = sub.add_parser("promote", help="make a registered version the champion (the old one is kept for rollback)")
    promote.add_argument("--model", required=True, metavar="M", help=PARTITION_HELP)
    _add_env_arg(promote)
    promote.add_argument("--version", required=True, metavar="N")
    promote.add_argument("--force", action="store_true",
                         help="promote a version the gate rejected (recorded on the version as forced_promote)")

    rollback = sub.add_parser("rollback", help="make the previous champion the champion again")
    rollback.add_argument("--model", required=True, metavar="M", help=PARTITION_HELP)
    _add_env_arg(rollback)

    serve = sub.add_parser("serve", help="serve a registered model with the Azure ML inference server on 127.0.0.1")
    serve.add_argument("--model", required=True, metavar="M", help=PARTITION_HELP)
    _add_env_arg(serve)
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="serve the version holding this role (default: champion)")
    which.add_argument("--version", metavar="N", help="serve this registered version")
    serve.add_argument("--host", help="interface to bind (default: deploy.endpoint.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: deploy.endpoint.port; 0 picks a free one)")

    score = sub.add_parser("score", help="score a CSV or Parquet file in chunks with a registered model")
    _add_params_args(score, many_models=False)
    which = score.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="the version holding this role (default: champion)")
    which.add_argument("--version", metavar="N")
    score.add_argument("--input", required=True, metavar="FILE", help="a .csv or .parquet file")
    score.add_argument("--output", required=True, metavar="FILE",
                       help="the .parquet or .csv file to write, by its suffix (must not exist; its folder must)")

    champion = sub.add_parser("champion", help="show the champion and previous champion of a model")
    champion.add_argument("--model", required=True, metavar="M", help=PARTITION_HELP)
    _add_env_arg(champion)

    submit = sub.add_parser("submit", help="run the pipeline on Azure ML: one command job per notebook",
                            epilog=EPILOG)
    _add_params_args(submit, many_models=True)
    submit.add_argument("--pipeline", default="training", help="a definition under pipelines/ (default: training)")
    submit.add_argument("--dry-run", action="store_true",
                        help="only build and validate the job YAML under runs/<id>/azureml/ (no credentials)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job step by step; if a step fails, download it and print a local rerun")

    jobs = sub.add_parser("jobs", help="show or download an Azure ML pipeline job")
    jobs.add_argument("action", choices=["show", "download"])
    jobs.add_argument("job_name", metavar="JOB")
    jobs.add_argument("--env", metavar="E", help="whose workspace params (default: $MODELFACTORY_ENV or dev)")
    jobs.add_argument("--pipeline", default="training")

    changed = sub.add_parser("changed", help="the models that the commits since a git ref touch (all of them when "
                             "shared code changed), one a line: what CI trains or dry-runs", epilog=EPILOG)
    changed.add_argument("--base", metavar="REF", help="compare HEAD with this commit or branch, e.g. origin/main "
                         "(default, or 40 zeros: every model)")
    changed.add_argument("--json", action="store_true", help="print a JSON list (for a CI matrix)")

    endpoint = sub.add_parser("endpoint", help="blue/green managed online endpoint (and batch endpoint) on Azure ML")
    endpoint.add_argument("action", choices=["deploy", "smoke", "shift", "promote", "rollback", "batch"],
                          help="deploy: the champion on green, then the params' traffic; smoke: the package's "
                          "sample request to green alone; shift --to; promote: green's model on blue; rollback: "
                          "all traffic to blue; batch: the batch endpoint and its default deployment")
    _add_params_args(endpoint, many_models=False)
    endpoint.add_argument("--from-run", metavar="RUN_ID",
                          help="ship this run's deploy package (a run of the same --env) instead of the env's champion")
    endpoint.add_argument("--force", action="store_true",
                          help="deploy a version the gate rejected (recorded in release.json, the deployment tags "
                               "and, once deployed, the version's tag forced_deploy)")
    endpoint.add_argument("--to", metavar="COLOUR=N", help="for shift: e.g. green=25 (the other colour takes the rest)")
    endpoint.add_argument("--dry-run", action="store_true",
                          help="only build and validate the endpoint YAML under runs/<id>/azureml/endpoint/")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelfactory`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from modelfactory.ops.interrupts import EXIT_TERMINATED, Terminated, restore_default_sigterm, terminate_like_ctrl_c

    terminate_like_ctrl_c()
    try:
        return COMMANDS[args.command](args, argv)
    except ModelfactoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("terminated (SIGTERM): stopped cleanly; what was written is kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly; what was written is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`modelfactory runs | head`): nothing is wrong. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        # The command's work is done and recorded: a SIGTERM now simply ends the process, rather
        # than raise into interpreter shutdown, where Python can only print it as "ignored".
        restore_default_sigterm()


def _cmd_run(args, argv) -> int:
    from modelfactory.params import list_models
    from modelfactory.ops.runner import RunRequest, run_pipeline

    models = _run_models(args, list_models)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    inputs = dict(_key_value(item, "--input") for item in args.inputs)
    requests = [RunRequest(m, args.env, args.overrides, stages, args.params_file, args.from_run, inputs,
                           no_cache=args.no_cache) for m in models]
    if args.pipeline == "monitoring":  # the champion checked first; a breach may retrain afterwards
        from modelfactory.ops.retrain import run_monitoring

        return run_monitoring(requests, argv, progress=sys.stderr.isatty())
    code = run_pipeline(requests, args.pipeline, argv, progress=sys.stderr.isatty(), jobs=args.jobs)
    return code


def _run_models(args, list_models) -> list[str]:
    """``run``'s models: --all, else --model and --models (globs) together, else as _models says."""
    if args.all:
        if args.model or args.models or args.params_file:
            raise ParamsError("--all: runs every model; leave out --model, --models and --params-file")
        return list_models()
    if not args.models:
        return _models(args, list_models)
    from modelfactory.ops.factory import select_models

    matched = select_models(args.models, list_models())
    return list(dict.fromkeys([*(args.model or []), *matched]))  # each model once, --model's first


def _cmd_monitor(args, argv) -> int:
    import json

    from modelfactory.params import list_models
    from modelfactory.ops.retrain import run_monitoring
    from modelfactory.ops.runner import RunRequest

    flags = {"monitor.since": args.since, "monitor.until": args.until, "monitor.labels": args.labels}
    # JSON is YAML: each value stays a string (a bare 2026-11-30 would parse as a date)
    overrides = [*args.overrides, *(f"{key}={json.dumps(value)}" for key, value in flags.items() if value)]
    requests = [RunRequest(m, args.env, list(overrides), None, args.params_file) for m in _models(args, list_models)]
    return run_monitoring(requests, argv, progress=sys.stderr.isatty())


def _models(args, list_models) -> list[str]:
    """--model as given; else the model a --params-file is for; else every model under params/models/."""
    if args.model:
        return args.model
    if not args.params_file:
        return list_models()
    from modelfactory.errors import ParamsError
    from modelfactory.yamlfile import read_yaml

    data = read_yaml(Path(args.params_file))  # the params loader's checks: UTF-8, no aliases
    try:
        return [data["model"]["name"]]
    except (TypeError, KeyError):
        raise ParamsError(f"--params-file {args.params_file}: not a run's params.yaml (it has no model.name)") from None


def _key_value(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key or not value:
        from modelfactory.errors import PipelineError

        raise PipelineError(f"{flag} {item}: expected NAME=VALUE")
    return key, value


def _cmd_runs(args, argv) -> int:
    from modelfactory.ops.compare import readable_metric
    from modelfactory.ops.runs import list_runs
    from modelfactory.ops.verdict import gate_cell

    from modelfactory.ops.partitions import belongs_to

    # --model sales lists every partition's runs too; a partition's display name lists that one's
    found = [m for m in list_runs() if not args.model or belongs_to(m.get("model", ""), args.model)][: args.limit]
    if not found:
        print("no runs yet: modelfactory run")
        return 0
    width, id_width = max([14] + [len(m["model"]) for m in found]), max([34] + [len(m["run_id"]) for m in found])
    print(f"{'run id':{id_width}} {'model':{width}} {'env':6} {'pipeline':10} {'status':12} {'gate':22} headline")
    for m in found:
        metrics = m.get("headline_metrics") or {}
        first = next(((k, v) for k, v in metrics.items() if isinstance(v, (int, float))), None)
        headline = f"{readable_metric(first[0])} {first[1]:.4g}" if first else "-"
        print(f"{m['run_id']:{id_width}} {m['model']:{width}} {m['env']:6} {m.get('pipeline') or '-':10} {m['status']:12} "
              f"{gate_cell(m):22} {headline}")
    return 0


def _cmd_compare(args, argv) -> int:
    from modelfactory.ops import runs
    from modelfactory.ops.compare import compare_runs
    from modelfactory.yamlfile import read_yaml

    a, b = runs.find_run(args.run_a), runs.find_run(args.run_b)
    params = [read_yaml(runs.params_file(Path(m["_dir"]))) for m in (a, b)]
    print("\n".join(compare_runs(a, b, *params)))
    return 0


def _cmd_report(args, argv) -> int:
    from modelfactory.ops import runs

    index = runs.index_file(Path(runs.find_run(args.run_id)["_dir"]))
    print(index)
    if args.open:
        import webbrowser

        webbrowser.open(index.as_uri())
    return 0


def _cmd_params(args, argv) -> int:
    import yaml

    from modelfactory.ops.partitions import resolve_named as resolve
    from modelfactory.params import params_hash

    resolved = resolve(args.model, args.env, args.overrides, args.params_file)
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    print(f"# params hash: {params_hash(resolved)}")
    return 0


def _cmd_data(args, argv) -> int:
    from modelfactory.ops import data_registry
    from modelfactory import paths
    from modelfactory.ops.azureml import data_assets  # light: azure-ai-ml loads only inside its functions

    if args.data_action == "register":
        if args.dry_run and not args.azure:
            raise ParamsError("data register --dry-run: only with --azure (a local register changes nothing twice)")
        if args.from_folder:
            record, created = data_registry.register_newest(args.name, Path(args.from_folder))
        else:
            record, created = data_registry.register_file(args.name, Path(args.path))
        where = paths.relative_to_root(data_registry.version_file(record))
        if created:
            print(f"registered {record['name']}:{record['version']} ({record['rows']} rows, {len(record['columns'])} "
                  f"columns, hash {record['hash'][:12]}) -> {where}")
        else:
            print(f"{record['name']}:{record['version']} already holds this content (hash {record['hash'][:12]}); "
                  "nothing copied")
        if not args.azure:
            return 0
        from modelfactory.ops.azureml.workflows import register_data_asset

        return register_data_asset(record, args.dry_run)
    if args.data_action == "contract":
        return _write_contract(args)
    if args.data_action == "list":
        versions = data_registry.list_versions()
        if not versions:
            print("no registered data yet: modelfactory data register NAME FILE")
            return 0
        print(f"{'name:version':24} {'rows':>9} {'cols':>4} {'hash':12} {'registered':25} runs")
        for r in versions:
            used = len(data_registry.runs_using(r["name"], r["version"]))
            print(f"{r['name'] + ':' + str(r['version']):24} {r['rows']:>9} {len(r['columns']):>4} "
                  f"{r['hash'][:12]:12} {r['registered']:25} {used}")
        return 0
    name, _, version = args.name.partition(":")
    chosen = [data_registry.find_version(name, version)] if version else data_registry.list_versions(name)
    if not chosen:
        data_registry.find_version(name)  # raises the one-line "no such registered dataset"
    for r in chosen:
        print(f"{r['name']}:{r['version']}  {r['rows']} rows, {len(r['columns'])} columns, {r['size_bytes']} bytes")
        print(f"  hash        {r['hash']}")
        print(f"  registered  {r['registered']} from {r['registered_from']}")
        print(f"  file        {paths.relative_to_root(data_registry.version_file(r))}")
        print("  schema      " + ", ".join(f"{c}: {t}" for c, t in r["columns"].items()))
        asset = data_assets.workspace_asset(r)
        if asset:
            print(f"  azure ml    {asset['asset']} in workspace {asset['workspace']} (created {asset['created']})")
        used = data_registry.runs_using(r["name"], r["version"])
        print("  used by     " + (", ".join(f"{u['run_id']} ({u['status']})" for u in used) or "no runs yet"))
    return 0


def _write_contract(args) -> int:
    """``data contract NAME[:VERSION] --model M``: infer a contract from the version's rows and write it."""
    import re

    from modelfactory.core import contract, sources
    from modelfactory import paths
    from modelfactory.errors import ParamsError
    from modelfactory.schema import NAME_PATTERN

    if not re.fullmatch(NAME_PATTERN, args.model):
        raise ParamsError(f"--model {args.model}: use lowercase letters, digits, '_' and '-', starting with a letter")
    ref = sources.locate_registered(args.name)
    inferred = contract.infer_contract(sources.read(ref), categorise=True)
    path = paths.params_dir() / "contracts" / f"{args.model}.yaml"
    contract.write_yaml(inferred, path, force=args.force)
    shown = paths.relative_to_root(path)
    print(f"wrote {shown} ({len(inferred.columns)} columns, inferred from {ref.uri}); review it, then name it in "
          f"params/models/{args.model}.yaml as data: {{contract: {shown}}}")
    return 0


def _cmd_notebooks(args, argv) -> int:
    from modelfactory.ops.refresh import refresh_notebooks

    return refresh_notebooks(model=args.model)


def _connect_registry(args) -> str:
    """Point MLflow at the environment's store; return the environment's registered model name."""
    from modelfactory.ops.partitions import resolve_named as resolve
    from modelfactory.ops.registry import registered_name
    from modelfactory.ops.tracking import connect

    params = resolve(args.model, args.env)
    connect(params)
    return registered_name(params)


def _cmd_promote(args, argv) -> int:
    from modelfactory.ops.registry import promote_by_hand

    result = promote_by_hand(_connect_registry(args), args.version, force=args.force)
    print(result["reason"])
    return 0 if result["promoted"] else 2


def _cmd_rollback(args, argv) -> int:
    from modelfactory.ops.registry import rollback

    print(rollback(_connect_registry(args))["reason"])
    return 0


def _cmd_serve(args, argv) -> int:
    from modelfactory.ops.partitions import resolve_named as resolve
    from modelfactory.ops.serving.local import serve_registered

    params = resolve(args.model, args.env, training_checks=False)  # the model is trained: no sklearn here
    return serve_registered(params, version=args.version, alias=args.alias, host=args.host, port=args.port)


def _cmd_score(args, argv) -> int:

    from modelfactory.core.batch import score_file
    from modelfactory.ops.partitions import resolve_named as resolve
    from modelfactory.ops.serving.local import registered_model_dir

    params = resolve(args.model, args.env, args.overrides, args.params_file)
    model_dir, version = registered_model_dir(params, args.version, args.alias)
    summary = score_file(model_dir, Path(args.input), Path(args.output), params["batch"], progress=sys.stderr.isatty())
    print(f"scored {summary['scored']} of {summary['rows']} rows with {params['model']['name']} version {version}"
          f" -> {summary['output']}")
    if summary["rejected"]:
        print(f"set aside {summary['rejected']} bad row(s) -> {summary['rejected_file']}")
    return 0


def _cmd_champion(args, argv) -> int:
    from modelfactory.ops.registry import PREVIOUS, champion_version, gate_verdict, newest_version, version_with_role

    name = _connect_registry(args)
    champion = champion_version(name)
    print(f"{name}: champion {champion or 'none'}, previous {version_with_role(name, PREVIOUS) or 'none'}")
    newest = newest_version(name)
    if newest is not None and newest != champion:  # a newer candidate that did not become champion: say why
        decision, reason = gate_verdict(name, newest)
        said = {"rejected": f"rejected by the gate: {reason}", "passed": f"passed the gate ({reason}); not champion"}
        print(f"  newest version {newest}: {said.get(decision, 'no gate decision recorded')}")
    return 0


def _cmd_submit(args, argv) -> int:
    from modelfactory.ops.azureml.workflows import submit_pipelines
    from modelfactory.params import list_models

    return submit_pipelines(_models(args, list_models), args.env, args.overrides, args.params_file, args.pipeline,
                            dry_run=args.dry_run, wait=args.wait)


def _cmd_jobs(args, argv) -> int:
    from modelfactory.ops.azureml.workflows import job_action

    return job_action(args.action, args.job_name, args.env, args.pipeline)


def _cmd_changed(args, argv) -> int:
    from modelfactory import paths
    from modelfactory.ops.changed import changed_models, format_models
    from modelfactory.params import list_models

    text = format_models(changed_models(args.base, paths.project_root(), list_models()), args.json)
    if text:  # no model changed: print nothing, so a shell loop over the lines runs no time
        print(text)
    return 0


def _cmd_endpoint(args, argv) -> int:
    from modelfactory.ops.azureml.workflows import endpoint_action

    return endpoint_action(args.action, args.model, args.env, args.overrides, args.params_file, args.from_run,
                           args.force, args.to, args.dry_run)


def _azure(command):
    """An Azure command whose azure-core errors end in one line (imported only when it runs)."""
    def run(args, argv) -> int:
        from modelfactory.ops.azureml.workspace import azure_call_errors

        with azure_call_errors():
            return command(args, argv)
    return run


COMMANDS = {"submit": _azure(_cmd_submit), "jobs": _azure(_cmd_jobs), "endpoint": _azure(_cmd_endpoint), "score": _cmd_score, "serve": _cmd_serve, "promote": _cmd_promote, "rollback": _cmd_rollback, "champion": _cmd_champion, "run": _cmd_run, "monitor": _cmd_monitor, "runs": _cmd_runs, "compare": _cmd_compare, "report": _cmd_report, "params": _cmd_params, "changed": _cmd_changed,
            "notebooks": _cmd_notebooks, "data": _cmd_data}


if __name__ == "__main__":
    sys.exit(main())
