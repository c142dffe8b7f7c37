"""Benchmark: how long the endpoint takes to start, against the bare inference server.

Side by side in one run, rounds alternating so machine noise falls on every side:

- ``python -c pass``: the floor of any process start;
- a bare inference server: ``azmlinfsrv --entry_script score.py --model_dir model`` in the run's
  deploy/package folder (its own command, with the host it hard-codes, 0.0.0.0, set to 127.0.0.1),
  from process start to the first 200 on GET /;
- ``modelfactory serve --model diabetes`` (the champion, already downloaded: a second serve of one
  version), from process start to the first 200 on GET /;
- the deploy stage (``modelfactory run --stages evaluate,deploy --no-cache``, reusing the run's explore and
  train): the deploy stage's own duration from the manifest, which packages, starts the same server,
  smoke-tests it and stops it. Evaluate runs first so that deploy finds the kernel warm, as in a
  whole run (the first stage of a run also waits for the kernel to start and import its libraries).

Ratios are against the bare server; targets: serve <= 1.5x, the deploy stage <= 1.5x. Everything
runs in a fresh copy of the project with its own MLflow store; servers bind 127.0.0.1, every wait
is bounded in count and time, and every server is stopped.

    .venv/bin/python bench/startup.py [--rounds 3]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5
HEALTHY_WITHIN_S = 180  # a server not healthy by then is a failure, not a sample
POLL_S = 0.05
# azmlinfsrv's own entry point (azureml_inference_server_http.amlserver:run), with the one constant
# it binds to, 0.0.0.0, set to loopback: nothing else differs from typing `azmlinfsrv ...`.
BARE = ("import sys; from azureml_inference_server_http import amlserver; amlserver.DEFAULT_HOST = '127.0.0.1'; "
        "sys.argv = ['azmlinfsrv', *sys.argv[1:]]; amlserver.run()")


def fresh_copy(dest: Path) -> Path:
    for part in ("params", "pipelines", "notebooks"):
        shutil.copytree(ROOT / part, dest / part)
    return dest


def environment(project: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env["MODELFACTORY_PROJECT_DIR"] = str(project)
    return env


def modelfactory(project: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "modelfactory", *args], cwd=project, env=environment(project),
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        sys.exit(f"benchmark command failed: modelfactory {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_to_healthy(command: list[str], cwd: Path, env: dict, port: int, log: Path) -> float:
    """Seconds from starting ``command`` to the first 200 on GET / of ``port``; the server is then stopped."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        while time.perf_counter() - start < HEALTHY_WITHIN_S:
            if healthy(port):
                return time.perf_counter() - start
            if process.poll() is not None:
                sys.exit(f"server exited ({process.returncode}) before it was healthy; see {log}:\n"
                         + log.read_text(errors="replace")[-2000:])
            time.sleep(POLL_S)
        sys.exit(f"server not healthy within {HEALTHY_WITHIN_S} s; see {log}")
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C (as a user stops serve), then SIGTERM to the group, then SIGKILL: nothing outlives a sample."""
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # gunicorn workers left in the group after their master ended
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def deploy_stage(project: Path) -> float:
    """The deploy stage after evaluate, reusing the first run's explore and train: its duration in the manifest."""
    modelfactory(project, "run", "--model", "diabetes", "--stages", "evaluate,deploy", "--no-cache")
    newest = max((project / "runs").glob("*-diabetes-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())["stages"]["deploy"]["duration_s"]


def main() -> None:
    # SIGTERM (timeout, a CI runner) unwinds like Ctrl-C: subprocess.run kills its child, finally stops servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples = {"python -c pass": [], "bare azmlinfsrv": [], "modelfactory serve": [], "deploy stage": []}
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-startup-") as scratch:
        project = fresh_copy(Path(scratch) / "project")
        print("setting up: modelfactory run --model diabetes (all four stages) ...", flush=True)
        modelfactory(project, "run", "--model", "diabetes")
        [run] = [p.parent for p in (project / "runs").glob("*-diabetes-*/manifest.json")]
        first_deploy = json.loads((run / "manifest.json").read_text())["stages"]["deploy"]["duration_s"]
        package = run / "deploy" / "package"
        model_dir = next(package.glob("model/*/*"))
        env = environment(project)
        serve = [sys.executable, "-m", "modelfactory", "serve", "--model", "diabetes", "--port"]
        bare = [sys.executable, "-c", BARE, "--entry_script", "score.py", "--model_dir", str(model_dir), "--port"]
        logs = Path(scratch) / "logs"
        logs.mkdir()
        port = free_port()  # warm-up (not counted): serve downloads the champion once, both warm the file cache
        start_to_healthy(serve + [str(port)], project, env, port, logs / "warm-serve.log")
        start_to_healthy(bare + [str(port)], package, env, port, logs / "warm-bare.log")
        for r in range(args.rounds):
            samples["python -c pass"].append(timed([sys.executable, "-c", "pass"]))
            port = free_port()
            samples["bare azmlinfsrv"].append(start_to_healthy(bare + [str(port)], package, env, port,
                                                               logs / f"bare-{r}.log"))
            port = free_port()
            samples["modelfactory serve"].append(start_to_healthy(serve + [str(port)], project, env, port,
                                                                  logs / f"serve-{r}.log"))
            samples["deploy stage"].append(deploy_stage(project))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()),
                  flush=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    bare_s = medians["bare azmlinfsrv"]
    print()
    print(f"endpoint start-up, medians of {args.rounds} alternating rounds (start to the first 200 on GET /)")
    for name, seconds in medians.items():
        print(f"  {name:20} {seconds:7.2f} s  {seconds / bare_s:5.2f}x bare server")
    print(f"  (the first run's deploy stage, with a cold file cache: {first_deploy:.2f} s)")
    for name in ("modelfactory serve", "deploy stage"):
        ratio = medians[name] / bare_s
        print(f"  {name}: {ratio:.2f}x the bare server (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
