"""The deploy stage's checks: the package (built by ``serving/package.py``) answers exactly as the
trained model does, loaded in-process and behind the local endpoint."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.errors import ModelfactoryError
from modelfactory.ops.serving.packaging import build_request, launch_local_endpoint, wait_until_healthy


def smoke_test(endpoint, sample: pd.DataFrame, expected: np.ndarray, tolerance: float) -> pd.DataFrame:
    """Send the sample rows one request per row; compare with in-process answers; time each request."""
    import time

    answers, latencies = [], []
    for i in range(len(sample)):
        start = time.perf_counter()
        status, reply = endpoint.score(build_request(sample.iloc[[i]]))
        latencies.append((time.perf_counter() - start) * 1000)
        if status != 200:
            raise ModelfactoryError(f"the local endpoint answered HTTP {status} to holdout row {i}: {reply}")
        answers.extend(reply["predictions"])
    check = compare_answers(np.asarray(answers), expected, tolerance)
    check["p50 latency ms"] = float(np.percentile(latencies, 50))
    check["max latency ms"] = float(np.max(latencies))
    return check


SKIPPED = "skipped (deploy.local_endpoint: false)"


@contextmanager
def local_endpoint(package_dir: Path, deploy: Mapping):
    """Start the package behind the real inference server on loopback and stop it when the block
    ends, however it ends; the block runs while the server boots (``smoke_test_local_endpoint``
    waits for health). With ``deploy.local_endpoint`` false no server starts and the block gets None.

    Args:
        package_dir: the package folder (score.py, model/).
        deploy: the params' ``deploy`` section (``endpoint``, ``local_endpoint``).
    """
    if not deploy.get("local_endpoint", True):
        yield None
        return
    with launch_local_endpoint(package_dir, deploy["endpoint"]) as endpoint:
        yield endpoint


def smoke_test_local_endpoint(endpoint, deploy: Mapping, sample: pd.DataFrame, expected: np.ndarray,
                              progress=None) -> pd.DataFrame:
    """Wait until the local endpoint is healthy, then check it row by row (smoke_test). With no
    endpoint (``deploy.local_endpoint`` false) the table says the check was skipped (no rows,
    nothing to mismatch), and so does the verdict.

    Args:
        endpoint: what ``local_endpoint`` gave the block (None when no server was started).
        deploy: the params' ``deploy`` section (``endpoint``, ``tolerance``).
        sample: the holdout rows to send, one request each.
        expected: the trained model's answers for them.
        progress: a progress.ProgressLine for the wait while the server starts.
    """
    if endpoint is None:
        return pd.DataFrame({"rows scored": [0], "rows expected": [len(sample)], "max abs difference": [0.0],
                             "tolerance": [deploy["tolerance"]], "match": [True], "endpoint": [SKIPPED]})
    wait_until_healthy(endpoint, deploy["endpoint"], progress)
    return smoke_test(endpoint, sample, expected, deploy["tolerance"])


def latency_metrics(check: pd.DataFrame) -> dict[str, float]:
    """The endpoint's latencies from a smoke test, as MLflow metric names (none when it was skipped)."""
    if "p50 latency ms" not in check:
        return {}
    row = check.iloc[0]
    return {"endpoint_p50_latency_ms": float(row["p50 latency ms"]),
            "endpoint_max_latency_ms": float(row["max latency ms"])}


def load_scoring_script(package_dir: Path):
    """Import the package's score.py as the server would, point it at the model, and call init()."""
    spec = importlib.util.spec_from_file_location(f"score_{abs(hash(str(package_dir)))}", package_dir / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.environ["AZUREML_MODEL_DIR"] = str(package_dir / "model")
    module.init()
    return module


def check_package(package_dir: Path, sample: pd.DataFrame, expected: np.ndarray, tolerance: float) -> pd.DataFrame:
    """Load the package's score.py in this process, as the server would, score the sample through its
    run() in one request, and compare with the trained model's answers (``compare_answers``)."""
    scorer = load_scoring_script(package_dir)
    return compare_answers(score_request(scorer, build_request(sample)), expected, tolerance)


def score_request(scorer, request: dict) -> np.ndarray:
    """Send one request through the script's run(), as JSON text, and return the predictions."""
    answer = scorer.run(json.dumps(request))
    json.dumps(answer)  # the answer must be plain JSON
    return np.asarray(answer["predictions"])


def compare_answers(answers: np.ndarray, expected: np.ndarray, tolerance: float) -> pd.DataFrame:
    """Rows scored, the largest difference from the trained model, and whether it is in tolerance.

    Class labels that are text (a classifier trained on a text target) have no numeric difference:
    each differing label counts as 1, so any mismatch is out of any tolerance below 1."""
    expected = np.asarray(expected)
    if not len(answers) or len(answers) != len(expected):
        diff = 0.0 if not len(answers) else float("inf")
    elif answers.dtype.kind in "biuf" and expected.dtype.kind in "biuf":
        diff = float(np.max(np.abs(answers.astype(float) - expected.astype(float))))
    else:
        diff = float(np.max(answers.astype(str) != expected.astype(str)))
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


def verdict(promotion: Mapping, version: str | int | None, served: pd.DataFrame) -> str:
    """The stage in one line: "v3 promoted; the endpoint answered 20 rows within 1e-09"."""
    who = f"v{version}" if version is not None else "the candidate (not registered)"
    outcome = f"{who} promoted" if promotion["promoted"] else f"{who} {promotion['reason']}"
    row = served.iloc[0]
    if "endpoint" in served and row["endpoint"] == SKIPPED:
        return f"{outcome}; the package answered in-process; local endpoint smoke test {SKIPPED}"
    return f"{outcome}; the endpoint answered {row['rows scored']} rows within {row['tolerance']:g}"
