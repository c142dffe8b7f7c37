"""The entry script of a partitioned model's Azure ML parallel job (parallel.py builds the job).

Azure ML's parallel contract: ``init()`` once per worker process, then ``run(mini_batch, context)``
once per mini-batch. With ``partition_keys`` each mini-batch is one partition: ``mini_batch`` is its
rows as a DataFrame and ``context.partition_key_value`` its key (``{"store": 3, "product": "B"}``).

A partition is trained exactly as ``modelfactory run --model sales`` trains it on a laptop: the
partition's params come from the same expansion (ops/partitions.py: its own ``model.name``, so its
own registered model and champion; too few rows and it is skipped, not failed), its rows are written
to a Parquet file the params name, and the local runner runs the same notebooks on them into the
step's ``runs`` output. A failed partition raises, so Azure ML retries it (``retry_settings``) and
counts it against ``mini_batch_error_threshold``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = Path(__file__).resolve().parents[4]   # the job's code snapshot: src/, notebooks/, params/, params.yaml
SETTINGS: dict = {}


def init() -> None:
    """Read the job's arguments and the model's params once per worker process."""
    sys.path.insert(0, str(CODE / "src"))
    os.environ.setdefault("MODELFACTORY_PROJECT_DIR", str(CODE))
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", required=True)
    parser.add_argument("--pipeline", default="training")
    parser.add_argument("--runs-dir", required=True)
    args, _ = parser.parse_known_args()
    from modelfactory.yamlfile import read_yaml

    SETTINGS.update(params=read_yaml(CODE / args.params), pipeline=args.pipeline, runs_dir=args.runs_dir,
                    scratch=Path(tempfile.mkdtemp(prefix="modelfactory-partitions-")))


def run(mini_batch, mini_batch_context) -> list[str]:
    """Train one partition; return one line saying how it ended (raise when its run failed)."""
    from modelfactory.ops.azureml.parallel import partition_params

    key = dict(mini_batch_context.partition_key_value)
    folder = SETTINGS["scratch"] / "-".join(f"{c}-{v}" for c, v in key.items())
    folder.mkdir(parents=True, exist_ok=True)
    params, line = partition_params(SETTINGS["params"], key, len(mini_batch), folder / "rows.parquet")
    if params is None:
        print(line)
        return [line]
    mini_batch.to_parquet(folder / "rows.parquet", index=False)
    from modelfactory import params as params_mod

    params_mod.dump(params, folder / "params.yaml")
    env = {**os.environ, "MODELFACTORY_RUNS_DIR": SETTINGS["runs_dir"], "PYTHONPATH": str(CODE / "src")}
    env.pop("MODELFACTORY_DATA_INPUT", None)  # the rows are the file the params name, not a mount
    done = subprocess.run([sys.executable, "-m", "modelfactory", "run", "--model", params["model"]["name"],
                           "--params-file", str(folder / "params.yaml"), "--pipeline", SETTINGS["pipeline"]],
                          cwd=CODE, env=env, capture_output=True, text=True)
    print(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"{line}: the run failed (exit {done.returncode}); its run folder is in the runs output")
    return [f"{line}: trained"]
