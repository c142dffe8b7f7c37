"""score.py's per-request cut: a request the numpy fast path takes goes straight to the scikit-learn
model's own predict function, skipping pyfunc's signature enforcement, and answers exactly as
pyfunc's predict does (including a model logged with another ``pyfunc_predict_fn``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelfactory.ops import deploy
from modelfactory.ops.serving import packaging


def _package(base, model, x, **log):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(model, base / "model", signature=infer_signature(x), pip_requirements=["scikit-learn"],
                              **log)
    settings = {"max_rows": 50, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(base / "model", base / "package", x, settings, "demo", "1")
    return deploy.load_scoring_script(base / "package")


def _frame():
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    x = frame.drop(columns="target").iloc[:, :6]
    x["visits"] = np.arange(len(x)) % 7  # an integer column: the fast path casts it back to int64
    return x, frame["target"]


def _body(x):
    return json.dumps({"input_data": {"columns": list(x.columns), "data": x.values.tolist()}})


@pytest.mark.parametrize("predict_fn", ["predict", "predict_proba"])
def test_a_fast_path_request_answers_as_pyfunc_predict_does(tmp_path, predict_fn):
    from sklearn.linear_model import LogisticRegression

    x, y = _frame()
    model = LogisticRegression(max_iter=500).fit(x, y)
    score = _package(tmp_path, model, x, pyfunc_predict_fn=predict_fn)
    assert score.direct is not None and score.direct.__name__ == predict_fn
    rows = x.iloc[[0, 5, 17, 300]]
    frame, fast = score._parse(_body(rows))
    assert fast  # the rows took the numpy fast path, so the direct predict answers them
    answer = score.run(_body(rows))
    assert answer == {"predictions": np.asarray(score.model.predict(rows)).tolist()}
    assert answer == {"predictions": getattr(model, predict_fn)(rows).tolist()}
    one = score.run(_body(rows.head(1)))  # the benchmark's case: one row
    assert one == {"predictions": np.asarray(score.model.predict(rows.head(1))).tolist()}


def test_a_request_off_the_fast_path_still_goes_through_pyfunc(tmp_path):
    from sklearn.linear_model import Ridge

    x, y = _frame()
    score = _package(tmp_path, Ridge().fit(x, y), x)
    body = json.dumps({"input_data": {"columns": list(x.columns), "data": [[*x.iloc[0, :-1].tolist(), True]]}})
    assert score._parse(_body(x.head(2)))[1]
    with pytest.raises(score.BadRequest, match="column 'visits': expected a number, got true"):
        score._parse(body)  # a JSON boolean leaves the fast path too, and the contract refuses it
