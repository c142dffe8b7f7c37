"""The ``modelfactory`` command. Imports stay inside the commands: ``--help`` must be fast.

Exit codes: 0 ok; 1 a stage failed (a cell raised); 2 a user error (params, pipeline, missing
inputs, unknown run); 3 the kernel died; 4 a cell timed out; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modelfactory.errors import EXIT_INTERRUPTED, ModelfactoryError

EPILOG = "exit codes: 0 ok, 1 stage failed, 2 user error, 3 kernel died, 4 cell timeout, 130 interrupted"


def _add_params_args(parser: argparse.ArgumentParser, many_models: bool) -> None:
    if many_models:
        parser.add_argument("--model", action="append", metavar="M",
                            help="a model under params/models/ (repeatable; default: every model)")
    else:
        parser.add_argument("--model", required=True, metavar="M", help="a model under params/models/")
    parser.add_argument("--env", metavar="E", help="an environment under params/env/ (default: $MODELFACTORY_ENV or dev)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override one params value, e.g. --set train.alpha=0.3 (value parsed as YAML)")
    parser.add_argument("--params-file", metavar="FILE",
                        help="use these resolved params (a run's params.yaml) instead of the layers")


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
    run.add_argument("--pipeline", default="training", help="a definition under pipelines/ (default: training)")

    runs = sub.add_parser("runs", help="list past runs with their status and headline metric")
    runs.add_argument("--model", metavar="M")
    runs.add_argument("--limit", type=int, default=20)

    report = sub.add_parser("report", help="print (or open) the HTML report of a run")
    report.add_argument("run_id", nargs="?", default="latest", help="a run id, or 'latest' (default)")
    report.add_argument("--open", action="store_true", help="open it in the default browser")

    show = sub.add_parser("params", help="print the resolved params of a model as YAML")
    _add_params_args(show, many_models=False)

    sub.add_parser("notebooks", help="re-execute notebooks/ in place, so their saved outputs are current")

    promote = sub.add_parser("promote", help="make a registered version the champion (the old one is kept for rollback)")
    promote.add_argument("--model", required=True, metavar="M")
    promote.add_argument("--version", required=True, metavar="N")
    promote.add_argument("--env", metavar="E", help="whose tracking store (default: $MODELFACTORY_ENV or dev)")

    rollback = sub.add_parser("rollback", help="make the previous champion the champion again")
    rollback.add_argument("--model", required=True, metavar="M")
    rollback.add_argument("--env", metavar="E")

    serve = sub.add_parser("serve", help="serve a registered model with the Azure ML inference server on 127.0.0.1")
    serve.add_argument("--model", required=True, metavar="M")
    serve.add_argument("--env", metavar="E")
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
    score.add_argument("--output", required=True, metavar="FILE", help="the .parquet file to write (must not exist)")

    champion = sub.add_parser("champion", help="show the champion and previous champion of a model")
    champion.add_argument("--model", required=True, metavar="M")
    champion.add_argument("--env", metavar="E")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelfactory`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except ModelfactoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly; what was written is kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def _cmd_run(args, argv) -> int:
    from modelfactory.params import list_models
    from modelfactory.runner import RunRequest, run_pipeline

    models = args.model or list_models()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    requests = [RunRequest(m, args.env, args.overrides, stages, args.params_file, args.from_run) for m in models]
    code = run_pipeline(requests, args.pipeline, argv, progress=sys.stderr.isatty())
    return code


def _cmd_runs(args, argv) -> int:
    from modelfactory.manifest import list_runs

    found = list_runs(args.model)[: args.limit]
    if not found:
        print("no runs yet: modelfactory run")
        return 0
    print(f"{'run id':34} {'model':14} {'env':6} {'status':12} headline")
    for m in found:
        metrics = m.get("headline_metrics") or {}
        first = next(iter(metrics.items()), None)
        headline = f"{first[0]}={first[1]:.4g}" if first else "-"
        print(f"{m['run_id']:34} {m['model']:14} {m['env']:6} {m['status']:12} {headline}")
    return 0


def _cmd_report(args, argv) -> int:
    from modelfactory import paths
    from modelfactory.errors import RunNotFoundError
    from modelfactory.manifest import list_runs

    runs = list_runs()
    if args.run_id == "latest":
        chosen = runs[:1]
    else:
        chosen = [m for m in runs if m["run_id"] == args.run_id or m["run_id"].startswith(args.run_id)]
    if not chosen:
        raise RunNotFoundError(f"no run '{args.run_id}' in {paths.relative_to_root(paths.runs_dir())} (see: modelfactory runs)")
    if len(chosen) > 1:
        raise RunNotFoundError(f"'{args.run_id}' matches {len(chosen)} runs; give more of the id")
    from pathlib import Path

    index = Path(chosen[0]["_dir"]) / "index.html"
    print(index)
    if args.open:
        import webbrowser

        webbrowser.open(index.as_uri())
    return 0


def _cmd_params(args, argv) -> int:
    import yaml

    from modelfactory.params import params_hash, resolve

    resolved = resolve(args.model, args.env, args.overrides, args.params_file)
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    print(f"# params hash: {params_hash(resolved)}")
    return 0


def _cmd_notebooks(args, argv) -> int:
    from modelfactory.refresh import refresh_notebooks

    return refresh_notebooks()


def _connect_registry(args) -> str:
    from modelfactory.params import resolve
    from modelfactory.tracking import connect

    params = resolve(args.model, args.env)
    connect(params)
    return params["model"]["name"]


def _cmd_promote(args, argv) -> int:
    from modelfactory.registry import promote_by_hand

    result = promote_by_hand(_connect_registry(args), args.version)
    print(result["reason"])
    return 0 if result["promoted"] else 2


def _cmd_rollback(args, argv) -> int:
    from modelfactory.registry import rollback

    print(rollback(_connect_registry(args))["reason"])
    return 0


def _cmd_serve(args, argv) -> int:
    from modelfactory.params import resolve
    from modelfactory.serving.local import serve_registered

    params = resolve(args.model, args.env)
    return serve_registered(params, version=args.version, alias=args.alias, host=args.host, port=args.port)


def _cmd_score(args, argv) -> int:
    from pathlib import Path

    from modelfactory.batch import score_file
    from modelfactory.params import resolve
    from modelfactory.serving.local import registered_model_dir

    params = resolve(args.model, args.env, args.overrides, args.params_file)
    model_dir, version = registered_model_dir(params, args.version, args.alias)
    summary = score_file(model_dir, Path(args.input), Path(args.output), params["batch"], progress=sys.stderr.isatty())
    print(f"scored {summary['scored']} of {summary['rows']} rows with {params['model']['name']} version {version}"
          f" -> {summary['output']}")
    if summary["rejected"]:
        print(f"set aside {summary['rejected']} bad row(s) -> {summary['rejected_file']}")
    return 0


def _cmd_champion(args, argv) -> int:
    from modelfactory.registry import PREVIOUS, champion_version, version_with_role

    name = _connect_registry(args)
    print(f"{name}: champion {champion_version(name) or 'none'}, previous {version_with_role(name, PREVIOUS) or 'none'}")
    return 0


COMMANDS = {"score": _cmd_score, "serve": _cmd_serve, "promote": _cmd_promote, "rollback": _cmd_rollback, "champion": _cmd_champion, "run": _cmd_run, "runs": _cmd_runs, "report": _cmd_report, "params": _cmd_params,
            "notebooks": _cmd_notebooks}


if __name__ == "__main__":
    sys.exit(main())
