"""Benchmark: the runner against the same helper calls in one plain Python process.

Both sides run the demo pipeline (every model in params/models, all four stages) from a fresh copy
of the project with an empty MLflow store, so both pay for creating the database. Rounds alternate
the two sides, so machine noise falls on both; the median of each side gives the ratio.

    make bench          # or: .venv/bin/python bench/pipeline.py --rounds 3
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5


def fresh_copy(base: Path, name: str) -> Path:
    dest = base / name
    for part in ("params", "pipelines", "notebooks"):
        shutil.copytree(ROOT / part, dest / part)
    # one model per partition (sales: 22 runs) is the factory's benchmark, not this one's
    (dest / "params" / "models" / "sales.yaml").unlink(missing_ok=True)
    return dest


def timed(cmd: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env["MODELFACTORY_PROJECT_DIR"] = str(cwd)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-fresh", action="store_true", help="skip the fresh-kernel-per-stage runner")
    args = parser.parse_args()
    runner_cmd = [sys.executable, "-m", "modelfactory", "run"]
    plain_cmd = [sys.executable, str(ROOT / "bench" / "plain_pipeline.py"), "."]
    times = {"runner": [], "plain": [], "fresh": []}
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-") as scratch:
        base = Path(scratch)
        for r in range(args.rounds):
            for side, cmd in (("plain", plain_cmd), ("runner", runner_cmd)):
                seconds = timed(cmd, fresh_copy(base, f"{side}-{r}"))
                times[side].append(seconds)
                print(f"round {r + 1}/{args.rounds}: {side:6} {seconds:6.1f} s", flush=True)
        if not args.skip_fresh:
            seconds = timed(runner_cmd + ["--set", "runner.shared_kernel=false"], fresh_copy(base, "fresh"))
            times["fresh"].append(seconds)
            print(f"once:      fresh kernel per stage {seconds:6.1f} s", flush=True)
    runner, plain = statistics.median(times["runner"]), statistics.median(times["plain"])
    ratio = runner / plain
    print()
    print("demo pipeline, 2 models x 4 stages, median wall time")
    print(f"  plain Python, one process      {plain:6.1f} s")
    print(f"  modelfactory run (shared kernel) {runner:6.1f} s   ratio {ratio:.2f}x  (target <= {TARGET}x)")
    if times["fresh"]:
        fresh = times["fresh"][0]
        print(f"  modelfactory run (fresh kernels) {fresh:6.1f} s   ratio {fresh / plain:.2f}x")
    print("PASS" if ratio <= TARGET else "ABOVE TARGET")


if __name__ == "__main__":
    main()
