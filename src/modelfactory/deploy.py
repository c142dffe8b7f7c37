"""The deploy stage: package the model with its scoring script and prove the package answers."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from importlib import metadata
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.errors import ModelfactoryError

SCORE_SCRIPT = Path(__file__).parent / "serving" / "score.py"
DOCKERFILE = """\
# Serves this package with the Azure ML inference server, the same server as the managed endpoint.
# docker build -t scorer . && docker run -p 127.0.0.1:5001:5001 scorer
FROM {base_image}
WORKDIR /package
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV AZUREML_MODEL_DIR=/package/model AZUREML_ENTRY_SCRIPT=/package/score.py
EXPOSE 5001
# Inside a container the server must listen on all interfaces; publish the port to 127.0.0.1 as above.
CMD ["azmlinfsrv", "--entry_script", "/package/score.py", "--model_dir", "/package/model", "--port", "5001"]
"""


def package_model(model_dir: Path, package_dir: Path, sample: pd.DataFrame, deploy_params: Mapping) -> pd.DataFrame:
    """Write a self-contained, deployable folder; list its files.

    It holds the model, score.py with its settings (serving.json), the environment spec, a one-row
    sample request from the holdout, and a Dockerfile running the same Azure ML inference server.
    """
    if package_dir.exists():
        shutil.rmtree(package_dir)
    shutil.copytree(model_dir, package_dir / "model")
    shutil.copy2(SCORE_SCRIPT, package_dir / "score.py")
    (package_dir / "serving.json").write_text(json.dumps({"max_rows": deploy_params["max_rows"]}, indent=2))
    (package_dir / "sample-request.json").write_text(json.dumps(build_request(sample.head(1)), indent=2))
    server = f"azureml-inference-server-http=={metadata.version('azureml-inference-server-http')}"
    requirements = (model_dir / "requirements.txt").read_text().splitlines()
    (package_dir / "requirements.txt").write_text("\n".join([*requirements, server]) + "\n")
    (package_dir / "Dockerfile").write_text(DOCKERFILE.format(base_image=deploy_params["base_image"]))
    files = sorted(p for p in package_dir.rglob("*") if p.is_file())
    return pd.DataFrame({"file": [p.relative_to(package_dir).as_posix() for p in files]})


def build_request(frame: pd.DataFrame) -> dict:
    """The request body the scoring script takes, for these rows."""
    return {"input_data": {"columns": [str(c) for c in frame.columns], "data": frame.to_numpy().tolist()}}


def load_scoring_script(package_dir: Path):
    """Import the package's score.py as the server would, point it at the model, and call init()."""
    spec = importlib.util.spec_from_file_location(f"score_{abs(hash(str(package_dir)))}", package_dir / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.environ["AZUREML_MODEL_DIR"] = str(package_dir / "model")
    module.init()
    return module


def score_request(scorer, request: dict) -> np.ndarray:
    """Send one request through the script's run(), as JSON text, and return the predictions."""
    answer = scorer.run(json.dumps(request))
    json.dumps(answer)  # the answer must be plain JSON
    return np.asarray(answer["predictions"])


def compare_answers(answers: np.ndarray, expected: np.ndarray, tolerance: float) -> pd.DataFrame:
    """Rows scored, the largest difference from the trained model, and whether it is in tolerance."""
    diff = float(np.max(np.abs(answers.astype(float) - np.asarray(expected, dtype=float)))) if len(answers) else 0.0
    return pd.DataFrame(
        {"rows scored": [len(answers)], "rows expected": [len(expected)],
         "max abs difference": [diff], "tolerance": [tolerance],
         "match": [len(answers) == len(expected) and diff <= tolerance]}
    )


def require_match(check: pd.DataFrame) -> float:
    """Stop the stage when the package's answers differ from the trained model's; else the difference."""
    row = check.iloc[0]
    if not bool(row["match"]):
        raise ModelfactoryError(
            f"the packaged model answers differently: {row['rows scored']} of {row['rows expected']} rows, "
            f"max difference {row['max abs difference']} > deploy.tolerance {row['tolerance']}"
        )
    return float(row["max abs difference"])
