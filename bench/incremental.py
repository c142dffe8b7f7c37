"""Benchmark: incremental reruns of a 20-model factory (the stage cache, docs/running.md).

In a fresh copy of the project it writes 20 tiny models (diabetes Ridge, a different alpha each) as
params files, runs all of them once (all four stages, the setup), then side by side:

- a no-op rerun of the 20: every stage cached, no kernel started (target: at most 2 s);
- one model's full run (``--no-cache``), the yardstick for the next line;
- a rerun of the 20 after changing one model's ``train`` params: that model reruns train, evaluate
  and deploy, the other 19 are cached (target: at most 1.5x one model's full run).

It also records the import time of the no-op rerun's process (``python -X importtime``) and checks
that neither MLflow nor scikit-learn nor papermill was imported there.

    make bench          # or: .venv/bin/python bench/incremental.py [--models 20]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOOP_TARGET_S = 2.0
CHANGE_TARGET = 1.5
HEAVY = ("mlflow", "sklearn", "papermill")
RAN = re.compile(r"^  \[\d+/\d+\] \w+ \.\.\.", re.MULTILINE)  # a stage's start line: it ran, not cached


def fresh_project(base: Path, count: int) -> tuple[Path, list[str]]:
    """A project copy holding ``count`` tiny models (and only those)."""
    dest = base / "project"
    for part in ("params", "pipelines", "notebooks"):
        shutil.copytree(ROOT / part, dest / part)
    template = (ROOT / "params" / "models" / "diabetes.yaml").read_text()
    for old in (dest / "params" / "models").glob("*.yaml"):
        old.unlink()
    names = [f"ridge{i:02d}" for i in range(count)]
    for i, name in enumerate(names):
        write_model(dest, name, template, alpha=round(0.5 + 0.05 * i, 2))
    return dest, names


def write_model(project: Path, name: str, template: str, alpha: float) -> None:
    assert "alpha: 1.0" in template, "diabetes.yaml no longer says alpha: 1.0"
    text = template.replace("alpha: 1.0", f"alpha: {alpha}")
    (project / "params" / "models" / f"{name}.yaml").write_text(text)


def run(project: Path, args: list[str], python_flags: tuple[str, ...] = ()) -> tuple[float, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFACTORY_") and k != "MLFLOW_TRACKING_URI"}
    env["MODELFACTORY_PROJECT_DIR"] = str(project)
    cmd = [sys.executable, *python_flags, "-m", "modelfactory", "run", *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout, done.stderr


def model_args(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--model", name)]


def imported_heavy(importtime_log: str) -> list[str]:
    """The heavy top-level packages an ``-X importtime`` log shows were imported."""
    found = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            if module.split(".")[0] in HEAVY:
                found.add(module.split(".")[0])
    return sorted(found)


def import_seconds(importtime_log: str) -> float:
    """The cumulative import time of the top-level imports in an ``-X importtime`` log."""
    total = 0
    for line in importtime_log.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            if not parts[2].startswith("  "):  # one space, no indentation: imported by the program itself
                total += int(parts[1])
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20, help="how many tiny models (default: 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-incremental-") as scratch:
        project, names = fresh_project(Path(scratch), args.models)
        every = model_args(names)
        setup, _, _ = run(project, every)
        print(f"setup: {len(names)} models x 4 stages, first run          {setup:7.1f} s", flush=True)

        noop, out, log = run(project, every, ("-X", "importtime"))
        cached_lines = sum("cached from" in line for line in out.splitlines())
        ran_lines = len(RAN.findall(out))
        heavy = imported_heavy(log)
        print(f"no-op rerun of {len(names)} models                         {noop:7.2f} s   "
              f"(target <= {NOOP_TARGET_S:.0f} s; {cached_lines} stages cached, {ran_lines} ran; "
              f"imports {import_seconds(log):.2f} s, heavy imports: {', '.join(heavy) or 'none'})", flush=True)

        one, _, _ = run(project, ["--model", names[0], "--no-cache"])
        print(f"one model's full run (--no-cache)                  {one:7.1f} s", flush=True)

        template = (ROOT / "params" / "models" / "diabetes.yaml").read_text()
        write_model(project, names[1], template, alpha=9.5)
        changed, out, _ = run(project, every)
        ran = RAN.findall(out)
        print(f"rerun of {len(names)} after one model's train params changed {changed:7.1f} s   "
              f"({changed / one:.2f}x one model's full run; target <= {CHANGE_TARGET}x; "
              f"stages that ran: {len(ran)})", flush=True)
        verdict = "met" if noop <= NOOP_TARGET_S and changed / one <= CHANGE_TARGET and not heavy else "NOT met"
        print(f"targets {verdict}")


if __name__ == "__main__":
    main()
