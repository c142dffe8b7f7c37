"""Benchmark: drift over 1 million scored rows x 10 features, streamed from partitioned Parquet.

A deterministic folder of scored data is generated once, as score.py's ScoredDataWriter lays it out
(``date=YYYY-MM-DD/part-*.parquet``; scored_at, request_id, row, model, model_version, 10 features:
8 numbers and 2 text categories, and the prediction): 10 days of 100,000 rows, in files of 10,000.
The reference is built from 50,000 rows of the same generator, as the train stage builds it.

Side by side, in one run, each measurement in a fresh process (never asserted on time):

- time: ``drift.check_folder`` over the whole 10-day window (drift of every feature and the
  prediction, data quality, the default metrics) against a plain pyarrow read of the same files and
  columns (``pyarrow.parquet.read_table(files, columns=...)``, to an Arrow table, nothing computed),
  alternating rounds, medians (target: at most 2x);
- peak RSS (``VmHWM``) of ``check_folder`` over a 1-day window and over the 10-day window, 10x the
  rows (target: at most 1.2x): the window is streamed into histograms, never whole in memory.

    make bench          # or: .venv/bin/python bench/monitor.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

DAYS, ROWS_PER_DAY, FILE_ROWS = 10, 100_000, 10_000
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
NUMBERS = [f"num_{i}" for i in range(8)]
CATEGORIES = {"cat_0": ["a", "b", "c", "d"], "cat_1": [f"v{i}" for i in range(12)]}
TARGETS = {"time": 2.0, "rss": 1.2}

CASE = """\
import json, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
import pyarrow.parquet as pq
from modelfactory.core import drift
from modelfactory.params import resolve

def peak_mib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024

side, folder, days = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
reference = json.loads((folder.parent / "drift_reference.json").read_text())
settings = resolve("diabetes", "dev")["monitor"]
since = datetime(2026, 11, 1, tzinfo=timezone.utc)
until = since + timedelta(days=days)
columns = ["scored_at", *reference["features"], "prediction"]
before = peak_mib()
start = time.perf_counter()
if side == "plain":
    files = [str(f) for f in drift.window_files(folder, since, until)]
    table = pq.read_table(files, columns=columns)
    rows, verdict = table.num_rows, ""
else:
    result = drift.check_folder(reference, folder, since, until, settings)
    rows, verdict = result["rows"], result["verdict"]
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": peak_mib(), "before_mib": before,
                  "rows": rows, "verdict": verdict}))
"""


def generate(root: Path) -> Path:
    """The scored folder and, beside it, the reference (deterministic: fixed seeds)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelfactory.core import drift
    from modelfactory.params import resolve

    def rows(rng, n, shift=0.0):
        frame = pd.DataFrame({name: rng.normal(i + shift * (i == 0), 1 + i / 4, n) for i, name in enumerate(NUMBERS)})
        for name, values in CATEGORIES.items():
            frame[name] = rng.choice(values, n)
        frame["prediction"] = frame[NUMBERS[:3]].sum(axis=1)
        return frame

    train = rows(np.random.default_rng(0), 50_000)
    reference = drift.build_reference(train.drop(columns="prediction"), train["prediction"], None,
                                      {**resolve("diabetes", "dev")["monitor"], "task": "regression"})
    (root / "drift_reference.json").write_text(json.dumps(reference))
    folder = root / "scored"
    rng = np.random.default_rng(1)
    step = timedelta(days=1) / ROWS_PER_DAY
    for day in range(DAYS):
        part = folder / f"date={(START + timedelta(days=day)).date().isoformat()}"
        part.mkdir(parents=True)
        for first in range(0, ROWS_PER_DAY, FILE_ROWS):
            frame = rows(rng, FILE_ROWS, shift=1.0 if day >= DAYS - 2 else 0.0)  # the last two days drift
            offsets = np.arange(first, first + FILE_ROWS) + day * ROWS_PER_DAY
            tick = np.timedelta64(int(step.total_seconds() * 1e6), "us")
            stamps = np.datetime64(START.replace(tzinfo=None), "us") + offsets * tick
            table = pa.table({"scored_at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                              "request_id": [f"req-{day}-{i}" for i in range(first, first + FILE_ROWS)],
                              "row": np.zeros(FILE_ROWS, "int64"), "model": ["bench"] * FILE_ROWS,
                              "model_version": ["1"] * FILE_ROWS, **{c: frame[c].to_numpy() for c in frame}})
            pq.write_table(table, part / f"part-{first:07d}.parquet")
    return folder


def measure(side: str, folder: Path, days: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, side, str(folder), str(days)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{side} over {days} day(s) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each timed side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        started = time.perf_counter()
        folder = generate(Path(tmp))
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 2**20
        print(f"generated {DAYS * ROWS_PER_DAY:,} scored rows x {len(NUMBERS) + len(CATEGORIES)} features "
              f"({size:.0f} MiB of Parquet) in {time.perf_counter() - started:.1f} s")
        plain, ours = [], []
        for _ in range(args.rounds):
            plain.append(measure("plain", folder, DAYS))
            ours.append(measure("monitor", folder, DAYS))
        t_plain = statistics.median(r["seconds"] for r in plain)
        t_ours = statistics.median(r["seconds"] for r in ours)
        print(f"\nwindow of {ours[0]['rows']:,} rows: {ours[0]['verdict']}")
        print(f"  plain pyarrow read of the same files and columns: {t_plain:.3f} s (median of {args.rounds})")
        print(f"  drift.check_folder (drift, prediction drift, quality): {t_ours:.3f} s "
              f"(rounds: {', '.join('%.3f' % r['seconds'] for r in ours)})")
        ratio = t_ours / t_plain
        print(f"  ratio: {ratio:.2f}x (target <= {TARGETS['time']}x: {'met' if ratio <= TARGETS['time'] else 'NOT met'})")
        small = measure("monitor", folder, 1)
        large = ours[-1]
        rss = large["peak_mib"] / small["peak_mib"]
        print(f"\npeak RSS, 1-day window ({small['rows']:,} rows): {small['peak_mib']:.0f} MiB "
              f"(after imports {small['before_mib']:.0f} MiB)")
        print(f"peak RSS, {DAYS}-day window ({large['rows']:,} rows): {large['peak_mib']:.0f} MiB "
              f"(after imports {large['before_mib']:.0f} MiB)")
        print(f"  ratio for a {DAYS}x window: {rss:.2f}x (target <= {TARGETS['rss']}x: "
              f"{'met' if rss <= TARGETS['rss'] else 'NOT met'}); plain read of {DAYS} days peaks at "
              f"{plain[-1]['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
