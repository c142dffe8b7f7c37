"""Benchmark: `modelfactory --help` beside `python -c pass`, and what azure-ai-ml would add.

The CLI must start without importing azure-ai-ml (or mlflow, pandas, scikit-learn); target: --help
in at most 0.5 s. Runs alternate, medians of N.

    .venv/bin/python bench/cli.py [--runs 10]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "modelfactory --help": [str(BIN / "modelfactory"), "--help"],
        "modelfactory submit --help": [str(BIN / "modelfactory"), "submit", "--help"],
        "python -c 'import azure.ai.ml'": [sys.executable, "-c", "import azure.ai.ml"],
    }
    for command in commands.values():  # warm the file cache
        timed(command)
    samples = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            samples[name].append(timed(command))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["python -c pass"]
    print(f"CLI start-up (medians of {args.runs} alternating runs)")
    for name, seconds in medians.items():
        print(f"  {name:34} {seconds:6.3f} s  {seconds / base:5.2f}x python -c pass")
    verdict = "met" if medians["modelfactory --help"] <= 0.5 else "NOT met"
    print(f"  modelfactory --help {medians['modelfactory --help']:.3f} s (target <= 0.5 s: {verdict})")


if __name__ == "__main__":
    main()
