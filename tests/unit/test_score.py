"""The packaged scoring script: the Azure ML init()/run() contract, and a 400 for every client mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelfactory.ops import deploy
from modelfactory.ops.serving import packaging


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    import os

    scored_root = tmp_path_factory.mktemp("scored")
    os.environ["MODELFACTORY_SCORED_DIR"] = str(scored_root)
    yield from _package(tmp_path_factory)
    os.environ.pop("MODELFACTORY_SCORED_DIR", None)


def _package(tmp_path_factory):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = Ridge().fit(x, y)
    base = tmp_path_factory.mktemp("score")
    mlflow.sklearn.save_model(model, base / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"])
    settings = {"max_rows": 5, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": True, "flush_rows": 4, "flush_seconds": 0.2}}
    files = packaging.package_model(base / "model", base / "package", x, settings, "demo", "7")
    yield base / "package", x, model, files


@pytest.fixture(scope="module")
def scorer(package):
    return deploy.load_scoring_script(package[0])


def request(columns, rows):
    return json.dumps({"input_data": {"columns": columns, "data": rows}})


def test_package_holds_everything_a_deployment_needs(package):
    folder, x, _, files = package
    assert set(files["file"]) >= {"score.py", "serving.json", "sample-request.json", "requirements.txt",
                                  "Dockerfile", "gunicorn.conf.py", "model/demo/7/MLmodel"}
    requirements = (folder / "requirements.txt").read_text().splitlines()
    for name in packaging.SERVING_REQUIREMENTS:
        assert any(line.startswith(f"{name}==") for line in requirements), name
    settings = json.loads((folder / "serving.json").read_text())
    assert settings["max_rows"] == 5 and settings["model"] == "demo" and settings["model_version"] == "7"
    assert settings["server"] == {"threads": 8, "client_timeout_seconds": 30}
    assert Path(settings["scored_data"]["dir"]).name == "demo"
    sample = json.loads((folder / "sample-request.json").read_text())
    assert sample["input_data"]["columns"] == list(x.columns) and len(sample["input_data"]["data"]) == 1
    assert "azureml-inference-server-http==" in (folder / "requirements.txt").read_text()
    dockerfile = (folder / "Dockerfile").read_text()
    assert dockerfile.startswith("# Serves") and "FROM python:3.11-slim" in dockerfile and "azmlinfsrv" in dockerfile
    # bytecode is compiled in the image, for the installed packages and for the package's own files
    steps = [line for line in dockerfile.replace("\\\n", " ").splitlines() if line and not line.startswith("#")]
    install = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install"))
    assert "python -m compileall" in steps[install] and "sysconfig" in steps[install]
    copy_all = steps.index("COPY . .")
    assert steps[copy_all + 1] == "RUN python -m compileall -q /package > /dev/null"


def test_valid_request_answers_like_the_model(package, scorer):
    _, x, model, _ = package
    answer = scorer.run(request(list(x.columns), x.head(3).to_numpy().tolist()))
    assert answer["predictions"] == pytest.approx(model.predict(x.head(3)).tolist())
    json.dumps(answer)
    shuffled = list(reversed(x.columns))
    answer = scorer.run(request(shuffled, x[shuffled].head(2).to_numpy().tolist()))
    assert answer["predictions"] == pytest.approx(model.predict(x.head(2)).tolist())


COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01]
BAD = [
    ("", "empty request body; expected {\"input_data\": {\"columns\": [...], \"data\": [[...], ...]}}"),
    ("{not json", "malformed JSON: unexpected character, expected a string key at line 1 column 2"),
    (request(COLUMNS, [[float("nan"), *ROW[1:]]]), "malformed JSON: NaN at line 1 column 103 is not a JSON number"),
    ("[1, 2]", "expected {\"input_data\": {\"columns\": [...], \"data\": [[...], ...]}}"),
    (request(COLUMNS[:-1], [ROW[:-1]]), "missing column(s): s6"),
    (request([*COLUMNS, "zip"], [[*ROW, 1]]),
     "unknown column(s): zip; the model takes age, sex, bmi, bp, s1, s2, s3, s4, s5, s6"),
    (request(COLUMNS, []), "input_data.data has no rows"),
    (request(COLUMNS, [ROW] * 6), "6 rows in one request; the limit is 5"),
    (request(COLUMNS, [ROW, ROW[:3]]), "row 1: expected a list of 10 values, got 3"),
    (request(COLUMNS, [[*ROW[:2], "heavy", *ROW[3:]]]), "row 0, column 'bmi': expected a number, got \"heavy\""),
    (request(COLUMNS, [[None, *ROW[1:]]]), "row 0, column 'age': a value is required, got null"),
    (request(COLUMNS, [[True, *ROW[1:]]]), "row 0, column 'age': expected a number, got true"),
    (request(COLUMNS, [ROW, [*ROW[:9], "0.5"]]), "row 1, column 's6': expected a number, got \"0.5\""),
    (request(COLUMNS, [ROW, [*ROW, 1.0]]), "row 1: expected a list of 10 values, got 11"),
    (request([*COLUMNS[:-1], 7], [ROW]), "input_data.columns must be a list of column names (strings)"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m[:30] for _, m in BAD])
def test_every_client_mistake_is_a_400_naming_the_problem(scorer, body, message):
    answer = scorer.run(body)
    assert answer.status_code == 400
    assert json.loads(answer.get_data(as_text=True)) == {"error": message}


def test_scored_rows_are_kept_once_each_with_their_request_id(package, scorer):
    import pandas as pd

    folder, x, model, _ = package
    ids = [f"req-{i}" for i in range(5)]
    for i, rid in enumerate(ids):
        answer = scorer.run(request(list(x.columns), x.iloc[i:i + 2].to_numpy().tolist()),
                            request_headers={"X-Request-Id": rid})
        assert len(answer["predictions"]) == 2
    scorer.scored.close()  # what the server's exit does
    store = json.loads((folder / "serving.json").read_text())["scored_data"]["dir"]
    rows = pd.read_parquet(store)
    mine = rows[rows["request_id"].isin(ids)]
    assert len(mine) == 10 and not mine.duplicated(["request_id", "row"]).any()
    assert set(mine["model"]) == {"demo"} and set(mine["model_version"]) == {"7"}
    first = mine[mine["request_id"] == "req-0"].sort_values("row")
    assert first["prediction"].tolist() == pytest.approx(model.predict(x.iloc[0:2]).tolist())
    assert first["bmi"].tolist() == pytest.approx(x["bmi"].iloc[0:2].tolist())
    assert not list(Path(store).rglob(".*.tmp")), "no half-written files left behind"


SCORE_WITH_COLLECTOR = """
import json, sys
from pathlib import Path
from modelfactory.ops import deploy
scorer = deploy.load_scoring_script(Path(sys.argv[1]))
print("STORE", type(scorer.scored).__name__, flush=True)
from modelfactory.ops.serving.packaging import build_request
body = json.dumps(build_request(__import__("pandas").read_json(sys.argv[2])))
answer = scorer.run(body, request_headers={"x-request-id": "azure-req-1"})
print("ANSWER", json.dumps(answer), flush=True)
# exiting runs scorer.scored.close(), which waits for the collector to send what it queued
"""


def test_on_azure_scored_rows_go_to_the_data_collector(package, tmp_path):
    """With Azure ML's data-collection variables set, score.py hands rows to azureml-ai-monitoring's
    Collector; a recorder on 127.0.0.1 stands in for the deployment's collection sidecar."""
    import http.server
    import os
    import subprocess
    import sys
    import threading

    folder, x, model, _ = package
    received = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = tmp_path / "rows.json"
    x.head(3).to_json(rows)
    env = {**os.environ, "AZUREML_MDC_ENABLED": "true", "AZUREML_MDC_HOST": "127.0.0.1",
           "AZUREML_MDC_PORT": str(server.server_address[1])}
    try:
        done = subprocess.run([sys.executable, "-c", SCORE_WITH_COLLECTOR, str(folder), str(rows)],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    said = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("STORE", "ANSWER")))
    kind, answer = said["STORE"], said["ANSWER"]
    assert kind == "AzureDataCollector"
    assert json.loads(answer)["predictions"] == pytest.approx(model.predict(x.head(3)).tolist())
    by_kind = {headers["ce-type"]: (path, headers, body) for path, headers, body in received}
    assert set(by_kind) == {"azureml.inference.model_inputs", "azureml.inference.model_outputs"}
    for path, headers, body in by_kind.values():
        assert path == "/modeldata/log" and headers["ce-x-request-id"] == "azure-req-1"
    inputs = json.loads(by_kind["azureml.inference.model_inputs"][2])
    outputs = json.loads(by_kind["azureml.inference.model_outputs"][2])
    assert [row["bmi"] for row in inputs] == pytest.approx(x["bmi"].head(3).tolist())
    assert [row["prediction"] for row in outputs] == pytest.approx(model.predict(x.head(3)).tolist())


def test_a_million_unknown_columns_are_counted_not_echoed(scorer):
    names = [f"junk_{i}" for i in range(1_000_000)]
    answer = scorer.run(request([*COLUMNS, *names], [[*ROW, *([0] * len(names))]]))
    assert answer.status_code == 400
    message = json.loads(answer.get_data(as_text=True))["error"]
    assert message == ("unknown column(s): junk_0, junk_1, junk_2, junk_3, junk_4 and 999995 more; "
                       "the model takes age, sex, bmi, bp, s1, s2, s3, s4, s5, s6")


def test_a_huge_value_or_name_is_cut_short_in_the_error(scorer):
    answer = scorer.run(request(COLUMNS, [[*ROW[:2], "x" * 10_000_000, *ROW[3:]]]))
    message = json.loads(answer.get_data(as_text=True))["error"]
    assert message == "row 0, column 'bmi': expected a number, got \"" + "x" * 59 + "..."
    answer = scorer.run(request([*COLUMNS, "y" * 100_000], [[*ROW, 1]]))
    message = json.loads(answer.get_data(as_text=True))["error"]
    assert message.startswith("unknown column(s): " + "y" * 60 + "...; the model takes age, ")


def test_gunicorn_reads_the_packages_server_settings_from_its_folder(package):
    # What the Dockerfile's azmlinfsrv (gunicorn underneath) sees when it runs from the package folder.
    import subprocess
    import sys

    folder = package[0]
    done = subprocess.run([sys.executable, "-m", "gunicorn", "--print-config", "x:app"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    settings = {k.strip(): v.strip() for k, v in settings.items()}
    assert settings["worker_class"] == "gthread" and settings["threads"] == "8"
    assert settings["when_ready"] == "<when_ready()>"
    assert "WORKDIR /package" in (folder / "Dockerfile").read_text()
