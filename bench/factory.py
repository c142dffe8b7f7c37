"""Benchmark: the model factory. 20 small models x 4 stages, side by side in one run:

- ``modelfactory run --jobs 2`` against the same 20 with ``--jobs 1`` (target: at most 0.6x; the
  machine's limit on 2 cores is 0.5x);
- ``--jobs 2`` against plain Python training the 20 in one process (bench/plain_pipeline.py: the
  notebooks' own code cells exec'd, no kernels, no HTML; target: at most 1.3x);
- the peak memory of ``--jobs 2``'s whole process tree (runner, kernels, their children) against
  the workers times one run's peak (``--model tiny-01``), plus 300 MiB.

Each side starts from a fresh copy of the project holding only the 20 models (the diabetes Ridge,
alphas apart, ``deploy.local_endpoint: false``) and an empty MLflow store, so each pays for creating
the store. Peak memory is the largest sum of resident set sizes over the process tree, sampled every
0.2 s (psutil).

    make bench          # or: .venv/bin/python bench/factory.py [--models 20] [--jobs 2]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
JOBS_TARGET, PLAIN_TARGET, MEMORY_SLACK_MIB = 0.6, 1.3, 300
MODEL = """model:
  task: regression
  description: Ridge (alpha {alpha}) on scikit-learn's diabetes data, for bench/factory.py.
data:
  dataset: diabetes
train:
  estimator: sklearn.linear_model.Ridge
  alpha: {alpha}
evaluate:
  primary_metric: rmse
  metrics: [rmse, r2]
  gate:
    thresholds: {{rmse: {{max: 70.0}}}}
  baseline:
    estimator: sklearn.dummy.DummyRegressor
    strategy: mean
deploy:
  local_endpoint: false
"""


def factory_copy(base: Path, name: str, count: int) -> Path:
    """A project copy whose params/models/ holds only ``count`` small models."""
    dest = base / name
    for part in ("params", "pipelines", "notebooks"):
        shutil.copytree(ROOT / part, dest / part)
    for old in (dest / "params" / "models").glob("*.yaml"):
        old.unlink()
    for number in range(1, count + 1):
        text = MODEL.format(alpha=round(0.05 * 1.6 ** number, 4))
        (dest / "params" / "models" / f"tiny-{number:02d}.yaml").write_text(text)
    return dest


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants now."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak process-tree RSS (bytes) of one command run in ``cwd``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env["MODELFACTORY_PROJECT_DIR"] = str(cwd)
    peak = [0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(watched))
            except psutil.Error:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{out[-3000:]}\n{err[-3000:]}")
    return elapsed, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    run = [sys.executable, "-m", "modelfactory", "run"]
    sides = [
        ("plain", "plain Python, one process", [sys.executable, str(ROOT / "bench" / "plain_pipeline.py"), "."]),
        ("jobs1", "modelfactory run --jobs 1", run + ["--all", "--jobs", "1"]),
        (f"jobs{args.jobs}", f"modelfactory run --jobs {args.jobs}", run + ["--all", "--jobs", str(args.jobs)]),
        ("one", "one model (--model tiny-01)", run + ["--model", "tiny-01"]),
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-factory-") as scratch:
        for key, label, cmd in sides:
            seconds, peak = timed(cmd, factory_copy(Path(scratch), key, args.models))
            results[key] = (seconds, peak)
            print(f"{label:34} {seconds:7.1f} s   peak RSS {peak / 2**20:7.0f} MiB", flush=True)
    parallel, serial, plain = results[f"jobs{args.jobs}"][0], results["jobs1"][0], results["plain"][0]
    peak, one = results[f"jobs{args.jobs}"][1], results["one"][1]
    limit = args.jobs * one + MEMORY_SLACK_MIB * 2**20
    checks = [
        (f"--jobs {args.jobs} / --jobs 1", parallel / serial, JOBS_TARGET),
        (f"--jobs {args.jobs} / plain Python", parallel / plain, PLAIN_TARGET),
        (f"peak RSS / ({args.jobs} x one run + {MEMORY_SLACK_MIB} MiB)", peak / limit, 1.0),
    ]
    print()
    print(f"factory: {args.models} models x 4 stages")
    for label, ratio, target in checks:
        print(f"  {label:42} {ratio:5.2f}x  (target <= {target}x)  {'ok' if ratio <= target else 'ABOVE TARGET'}")
    print("PASS" if all(ratio <= target for _, ratio, target in checks) else "ABOVE TARGET")


if __name__ == "__main__":
    main()
