"""Per-partition stage times of a partitioned model, read from its runs' manifests (docs/scale.md).

Run the demo first (`make run`, or `modelfactory run --model sales`), then:

    .venv/bin/python bench/partitions.py            # the newest run of each partition of sales
    .venv/bin/python bench/partitions.py --model sales --runs-dir runs

Prints, per stage and for the whole run, the median, 90th percentile and largest duration over the
partitions, and the wall time from the first run's start to the last run's end. Nothing is timed
here: the numbers are what the runner recorded.
"""

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def newest_runs(runs_dir: Path, model: str) -> list[dict]:
    """The newest succeeded run of each partition of ``model`` (by its data.partition record)."""
    found: dict[str, dict] = {}
    for path in runs_dir.glob("*/manifest.json"):
        manifest = json.loads(path.read_text())
        data = manifest.get("data") or {}
        if not data.get("partition") or not manifest["model"].startswith(model + "--"):
            continue
        if manifest.get("status") != "succeeded":
            continue
        if manifest["model"] not in found or manifest["created"] > found[manifest["model"]]["created"]:
            found[manifest["model"]] = manifest
    return sorted(found.values(), key=lambda m: m["created"])


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sales")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    args = parser.parse_args()
    manifests = newest_runs(Path(args.runs_dir), args.model)
    if not manifests:
        raise SystemExit(f"no succeeded partition runs of {args.model} in {args.runs_dir}: run the demo first")
    stages = [s for s, r in manifests[0]["stages"].items() if r.get("duration_s") is not None]
    print(f"{len(manifests)} partitions of {args.model}, seconds per partition (median / p90 / max):")
    totals = [sum(m["stages"][s]["duration_s"] for s in stages) for m in manifests]
    for stage in stages:
        values = [m["stages"][stage]["duration_s"] for m in manifests]
        print(f"  {stage:10} {statistics.median(values):6.1f} {quantile(values, 0.9):6.1f} {max(values):6.1f}")
    print(f"  {'stages':10} {statistics.median(totals):6.1f} {quantile(totals, 0.9):6.1f} {max(totals):6.1f}")
    start = min(datetime.fromisoformat(m["created"]) for m in manifests)
    end = max(datetime.fromisoformat(m["finished"]) for m in manifests)
    wall = (end - start).total_seconds()
    print(f"wall time, first start to last end: {wall:.0f} s ({wall / len(manifests):.1f} s per partition, "
          f"{wall / len(manifests) - statistics.median(totals):.1f} s of it outside the stages)")


if __name__ == "__main__":
    main()
