"""Scoring script for an Azure ML online endpoint (and the local copy of it).

The contract: ``init()`` runs once and loads the model from ``AZUREML_MODEL_DIR``; ``run(raw_data)``
gets the request body and returns a JSON-serialisable answer. This file is copied as-is into the
deployable package, so it imports nothing from modelfactory.

Request:  {"input_data": {"columns": ["age", ...], "data": [[0.03, ...], ...]}}
Answer:   {"predictions": [151.2, ...]}
"""

import json
import os
from pathlib import Path

model = None


def _find_model_dir(root: Path) -> Path:
    """Azure mounts the model under AZUREML_MODEL_DIR/<name>/...; find the folder with MLmodel."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(root.rglob("MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under AZUREML_MODEL_DIR={root}")
    return found[0].parent


def init():
    """Load the model once, when the server starts."""
    global model
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(_find_model_dir(Path(os.environ["AZUREML_MODEL_DIR"]))))


def run(raw_data):
    """Score one request and answer with plain JSON."""
    import pandas as pd

    payload = json.loads(raw_data) if isinstance(raw_data, (str, bytes)) else raw_data
    frame = pd.DataFrame(payload["input_data"]["data"], columns=payload["input_data"]["columns"])
    predictions = model.predict(frame)
    return {"predictions": [p.item() if hasattr(p, "item") else p for p in predictions]}
