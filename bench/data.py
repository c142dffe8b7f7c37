"""Benchmark: real data at scale, 2 million rows by 20 columns, through the project's own paths.

One deterministic Parquet file (numbers, integers, strings, a boolean, missing values, a numeric
target) is generated once in a temporary project and reused for every measurement of the run:

1. ``modelfactory data register`` stores it (the real command, in a subprocess);
2. ``modelfactory run --stages explore,train`` reads, checks and trains on it (the real runner, its
   kernel and MLflow store) from one params file;
3. ``batch.score_file`` (what ``modelfactory score`` runs) scores it with the model that run trained.

Side by side, in one run, it prints three ratios (never asserts on time):

- read-and-validate throughput: explore's path (``data.load_dataset``, which locates, hashes and
  reads the source, ``data.check_data`` and the pandera data contract, as the explore notebook calls
  them) against a plain
  ``pyarrow.parquet.read_table(...).to_pandas()`` of the same file, each in a fresh process,
  alternating rounds, medians (target >= 0.5x); the runner's own check before a kernel starts
  (``sources.check_source``, in the runner's process) is timed apart and shown beside it;
- peak RSS of that read-and-validate process (``VmHWM``) against the DataFrame's own in-memory size,
  ``memory_usage(deep=True).sum()`` (target <= 3x);
- batch scoring rows/s against a plain ``pd.read_parquet`` + ``model.predict`` of the same file with
  the same fitted model, both sides loading the model, in this process, alternating (target >= 0.7x).

Only Parquet is measured: a 2-million-row CSV costs more to write here than the rest of the
benchmark, and ``--csv`` adds the CSV read-and-validate side for a run that wants it.

    make bench          # or: .venv/bin/python bench/data.py [--rows 2000000] [--rounds 3] [--csv]
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "scale"
TARGETS = {"read": 0.5, "rss": 3.0, "batch": 0.7}
PARAMS = """\
# bench/data.py: a user's own file, onboarded with one params file and no code
model:
  task: regression
  description: Ridge regression on the benchmark's generated 2-million-row file.
data:
  source: registered
  dataset: {model}:latest
  target: target
  checks:
    min_rows: 1000
    max_missing_fraction: 0.1
    required_columns: [num_00, cat_0]
train:
  estimator: sklearn.linear_model.Ridge
  alpha: 1.0
evaluate:
  primary_metric: rmse
  metrics: [rmse, mae, r2]
  baseline:
    estimator: sklearn.dummy.DummyRegressor
    strategy: mean
batch:
  on_bad_rows: skip
"""

# Run in a fresh interpreter per measurement, so each side's peak RSS is its own and the imports are
# paid outside the timed part. Prints one JSON line.
CHILD = r'''
import json, os, sys, time
side, path = sys.argv[1], sys.argv[2]
import pandas as pd, pyarrow, pyarrow.csv, pyarrow.parquet
from modelfactory.core import contract, data, sources
if side == "project":  # the contract's own import (pandera), paid outside the timed part like pyarrow's
    import pandera.pandas
from modelfactory.params import resolve

def peak_mib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024

params = resolve("scale", "dev")
if path.endswith(".csv"):
    params["data"] = {**params["data"], "source": "file", "dataset": path}
before = peak_mib()
runner = 0.0
if side == "project":  # what the runner checks before a kernel starts, in its own process: timed apart
    start = time.perf_counter()
    sources.check_source(params["data"])
    runner = time.perf_counter() - start
start = time.perf_counter()
if side == "plain":
    table = pyarrow.csv.read_csv(path) if path.endswith(".csv") else pyarrow.parquet.read_table(path)
    frame = table.to_pandas()
    del table
else:
    frame = data.load_dataset(params["data"])                   # the explore notebook's read ...
    data.require_checks_passed(data.check_data(frame, params["data"], params["model"]["task"]))  # ... its checks
    contract.require_valid(contract.check_raw_data(frame, params["data"])[1], "bench")  # ... and the data contract
seconds = time.perf_counter() - start
peak = peak_mib()
print(json.dumps({"seconds": seconds, "runner_check": runner, "peak_mib": peak, "start_mib": before,
                  "rows": len(frame), "frame_mib": float(frame.memory_usage(deep=True).sum()) / 2**20}))
'''


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write the benchmark's file: 20 columns, deterministic for a given row count and seed.

    Eleven float columns (four with about 3% missing), three integer columns, four text columns of
    3 to 40 categories (two with missing values), one boolean and a numeric target that depends on
    most of them. Written in blocks, so generating it never holds more than one block of Python strings.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    block = 500_000
    levels = [3, 8, 15, 40]
    cats = [np.array([f"{chr(97 + k)}{i:03d}" for i in range(n)]) for k, n in enumerate(levels)]
    weights = rng.normal(size=11)
    writer = None
    for start in range(0, rows, block):
        n = min(block, rows - start)
        columns, signal = {}, np.zeros(n)
        for i in range(11):
            values = rng.normal(loc=i, scale=1 + i / 4, size=n)
            signal += weights[i] * values
            if i % 3 == 0:
                values[rng.random(n) < 0.03] = np.nan
            columns[f"num_{i:02d}"] = values
        for i in range(3):
            values = rng.integers(0, 10 ** (i + 2), size=n)
            signal += values / 10 ** (i + 2)
            columns[f"int_{i}"] = values
        for k, names in enumerate(cats):
            codes = rng.integers(0, len(names), size=n)
            signal += (codes % 5) * (k + 1) / 4
            text = names[codes].astype(object)
            if k % 2:
                text[rng.random(n) < 0.02] = None
            columns[f"cat_{k}"] = pa.array(text, type=pa.string())
        flag = rng.random(n) < 0.3
        columns["flag"] = flag
        columns["target"] = signal + 2 * flag + rng.normal(scale=2.0, size=n)
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def project(base: Path) -> Path:
    """A fresh project: the repository's params, pipelines and notebooks, plus the model's params file."""
    dest = base / "project"
    for part in ("params", "pipelines", "notebooks"):
        shutil.copytree(ROOT / part, dest / part)
    (dest / "params" / "models" / f"{MODEL}.yaml").write_text(PARAMS.format(model=MODEL))
    for demo in ("breast_cancer", "diabetes"):  # only the benchmark's model
        (dest / "params" / "models" / f"{demo}.yaml").unlink(missing_ok=True)
    return dest


def environment(cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env["MODELFACTORY_PROJECT_DIR"] = str(cwd)
    return env


def command(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=environment(cwd), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def child(side: str, path: Path, cwd: Path) -> dict:
    _, out = command([sys.executable, "-c", CHILD, side, str(path)], cwd)
    return json.loads(out.strip().splitlines()[-1])


def read_and_validate(path: Path, cwd: Path, rounds: int) -> dict:
    results = {"plain": [], "project": []}
    for r in range(rounds):
        for side in ("plain", "project"):
            results[side].append(child(side, path, cwd))
            print(f"  round {r + 1}/{rounds}: {side:7} {results[side][-1]['seconds']:6.2f} s, "
                  f"peak {results[side][-1]['peak_mib']:,.0f} MiB", flush=True)
    return results


def batch(path: Path, model_dir: Path, out_dir: Path, rounds: int, chunk_rows: int) -> dict:
    import pandas as pd

    from modelfactory.ops import tracking
    from modelfactory.core.batch import score_file

    tracking.load_model(model_dir, "pyfunc")  # imports (mlflow, skops) paid once, before either side is timed
    times = {"plain": [], "ours": []}
    for r in range(rounds):
        start = time.perf_counter()  # both sides load the model: score_file does, and so would any script
        fitted = tracking.load_model(model_dir)  # the scikit-learn pipeline the run trained
        frame = pd.read_parquet(path)
        fitted.predict(frame.drop(columns="target"))
        times["plain"].append(time.perf_counter() - start)
        del frame
        output = out_dir / f"scored-{r}.parquet"
        start = time.perf_counter()
        summary = score_file(model_dir, path, output, {"chunk_rows": chunk_rows, "on_bad_rows": "skip"},
                             progress=False)
        times["ours"].append(time.perf_counter() - start)
        output.unlink()
        print(f"  round {r + 1}/{rounds}: plain {times['plain'][-1]:6.2f} s, modelfactory score "
              f"{times['ours'][-1]:6.2f} s ({summary['scored']:,} of {summary['rows']:,} rows scored)", flush=True)
    return {side: statistics.median(t) for side, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of read-and-validate")
    parser.add_argument("--batch-rounds", type=int, default=3, help="alternating rounds of batch scoring")
    parser.add_argument("--csv", action="store_true", help="also measure read-and-validate of the same rows as CSV")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="batch.chunk_rows for scoring (default: the project's params)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-data-") as scratch:
        base = Path(scratch)
        cwd = project(base)
        landing = base / "landing"
        landing.mkdir()
        source = landing / f"{MODEL}.parquet"
        start = time.perf_counter()
        generate(source, args.rows)
        print(f"generated {args.rows:,} rows x 20 columns -> {source.stat().st_size / 2**20:,.0f} MiB Parquet "
              f"({time.perf_counter() - start:.1f} s)", flush=True)

        seconds, out = command([sys.executable, "-m", "modelfactory", "data", "register", MODEL, str(source)], cwd)
        print(f"data register: {seconds:.1f} s  {out.strip().splitlines()[-1]}", flush=True)
        registered = next((cwd / "data" / "registry" / MODEL).glob("v1/*.parquet"))

        seconds, out = command([sys.executable, "-m", "modelfactory", "run", "--model", MODEL,
                                "--stages", "explore,train"], cwd)
        stage_times = re.findall(r"\] (\w+) ok \(([\d.]+) s\)", out)
        run_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process so far
        print(f"modelfactory run --stages explore,train: {seconds:.1f} s ("
              + ", ".join(f"{name} {s} s" for name, s in stage_times)
              + f"); peak RSS of its largest process (the kernel) {run_peak:,.0f} MiB", flush=True)
        run_dir = Path(re.search(r"succeeded: (\S+)", out).group(1))
        run_dir = run_dir if run_dir.is_absolute() else cwd / run_dir

        print("read and validate (fresh process per side, alternating)", flush=True)
        reads = read_and_validate(registered, cwd, args.rounds)
        csv_reads = None
        if args.csv:
            csv = base / f"{MODEL}.csv"
            import pyarrow.csv as pacsv
            import pyarrow.parquet as pq

            pacsv.write_csv(pq.read_table(registered), csv)
            print(f"  as CSV: {csv.stat().st_size / 2**20:,.0f} MiB", flush=True)
            csv_reads = read_and_validate(csv, cwd, args.rounds)

        os.environ["MODELFACTORY_PROJECT_DIR"] = str(cwd)
        chunk_rows = args.chunk_rows
        if chunk_rows is None:
            from modelfactory.params import resolve

            chunk_rows = resolve(MODEL, "dev")["batch"]["chunk_rows"]
        print(f"batch scoring (chunk_rows {chunk_rows:,}; alternating, in this process)", flush=True)
        scoring = batch(registered, run_dir / "train" / "model", base, args.batch_rounds, chunk_rows)

    def med(results, side, key):
        return statistics.median(r[key] for r in results[side])

    rows = args.rows
    print()
    print(f"real data at scale: {rows:,} rows x 20 columns (Parquet); medians of {args.rounds} rounds "
          f"(batch: {args.batch_rounds})")
    verdicts = []
    for label, results in (("Parquet", reads), ("CSV", csv_reads)):
        if results is None:
            continue
        plain, ours = med(results, "plain", "seconds"), med(results, "project", "seconds")
        ratio = plain / ours
        print(f"  read+validate ({label}): plain pyarrow read {rows / plain:12,.0f} rows/s   "
              f"modelfactory {rows / ours:12,.0f} rows/s   {ratio:.2f}x  (target >= {TARGETS['read']}x)")
        runner = med(results, "project", "runner_check")
        print(f"    (plain {plain:.2f} s, explore's read and checks {ours:.2f} s; the runner's own check before the "
              f"kernel starts, in its process, {runner:.2f} s more: {plain / (ours + runner):.2f}x with it)")
        frame = med(results, "project", "frame_mib")
        peak = med(results, "project", "peak_mib")
        print(f"  peak RSS ({label}): read+validate {peak:,.0f} MiB, DataFrame {frame:,.0f} MiB in memory "
              f"-> {peak / frame:.2f}x  (target <= {TARGETS['rss']}x; a plain read peaks at "
              f"{med(results, 'plain', 'peak_mib'):,.0f} MiB, {med(results, 'plain', 'peak_mib') / frame:.2f}x; "
              f"the interpreter and imports alone {med(results, 'project', 'start_mib'):,.0f} MiB)")
        if label == "Parquet":
            verdicts += [ratio >= TARGETS["read"], peak / frame <= TARGETS["rss"]]
    ratio = scoring["plain"] / scoring["ours"]
    print(f"  batch scoring: plain read+predict {rows / scoring['plain']:12,.0f} rows/s   "
          f"modelfactory score {rows / scoring['ours']:12,.0f} rows/s   {ratio:.2f}x  (target >= {TARGETS['batch']}x)")
    verdicts.append(ratio >= TARGETS["batch"])
    print("PASS" if all(verdicts) else "BELOW TARGET")


if __name__ == "__main__":
    main()
