"""The deploy stage: package the model with its scoring script and prove the package answers."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.errors import ModelfactoryError

SCORE_SCRIPT = Path(__file__).parent / "serving" / "score.py"


def package_model(model_dir: Path, package_dir: Path, sample: pd.DataFrame) -> pd.DataFrame:
    """Write a self-contained package: the model, score.py and a one-row sample request. Lists its files."""
    if package_dir.exists():
        shutil.rmtree(package_dir)
    shutil.copytree(model_dir, package_dir / "model")
    shutil.copy2(SCORE_SCRIPT, package_dir / "score.py")
    (package_dir / "sample-request.json").write_text(json.dumps(build_request(sample.head(1)), indent=2))
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
