"""End to end: the whole pipeline, headless, in a copy of the project, as `make run` runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, clean_env, cli, copy_project, runs_of
from modelfactory.params import params_hash

pytestmark = pytest.mark.e2e
STAGES = ["explore", "train", "evaluate", "deploy"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """`make run` in a copy of the project, its recipe as the Makefile writes it (the penguins CSV
    registered, then every model run), with this interpreter's bin folder as the virtualenv's."""
    project = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    shutil.copy2(ROOT / "Makefile", project / "Makefile")
    # The partitioned demo's 22 runs would double this test's time: make run still generates and
    # registers its data here; tests/e2e/test_partitioned_run.py runs a few of its partitions.
    (project / "params" / "models" / "sales.yaml").unlink()
    done = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "run",
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=project, env=clean_env(), capture_output=True, text=True, timeout=900)
    return project, done


def test_make_run_registers_the_penguins_csv_and_runs_every_demo_model(full_run):
    from importlib.resources import files

    from modelfactory.core.sources import hash_file

    project, done = full_run
    assert done.returncode == 0, done.stdout + done.stderr
    manifests = runs_of(project)
    assert sorted(m["model"] for m in manifests) == ["breast_cancer", "diabetes", "penguins"]
    shipped = files("palmerpenguins") / "data" / "penguins.csv"
    assert re.search(r"^registered penguins:1 \(344 rows, 8 columns, hash [0-9a-f]{12}\)", done.stdout, re.M)
    assert re.search(r"^registered sales:1 \(16165 rows, 9 columns, hash [0-9a-f]{12}\)", done.stdout, re.M)
    penguins = next(m for m in manifests if m["model"] == "penguins")
    assert penguins["data"] == {"source": "registered", "name": "penguins", "uri": "penguins:1", "version": "1",
                                "hash": hash_file(Path(str(shipped)))}
    # make run's register step, again: the same content is the same version, and nothing is copied
    again = cli(project, "data", "register", "penguins", str(shipped))
    assert again.returncode == 0 and again.stdout.startswith("penguins:1 already holds this content")
    assert [p.name for p in (project / "data" / "registry" / "penguins").iterdir()] == ["v1"]
    for m in manifests:
        assert m["status"] == "succeeded"
        assert [m["stages"][s]["status"] for s in STAGES] == ["succeeded"] * 4
    # make run is a factory: one line per model as it finishes (the first champion of each), then the summary
    lines = done.stdout.splitlines()
    assert lines[0].startswith("registered penguins:1")  # make run's register step comes first
    assert f"factory: 3 models, {min(3, os.cpu_count() or 1)} at a time" in lines
    finished = {line.split()[1]: line for line in lines if line.startswith("  ok ")}
    assert sorted(finished) == ["breast_cancer", "diabetes", "penguins"]
    for m in manifests:
        assert finished[m["model"]].endswith(f"runs/{m['run_id']}/index.html")
        assert "(no champion yet)  " in finished[m["model"]] and " v1 promoted " in finished[m["model"]]
    assert re.search(r"^factory: 3 models in \S+: 3 succeeded$", done.stdout, re.M)
    report = re.search(r"^  report: (runs/factory-\S+/index.html)$", done.stdout, re.M)
    assert report and (project / report.group(1)).is_file()


def test_run_folder_holds_notebooks_html_params_and_manifest(full_run):
    project, _ = full_run
    for m in runs_of(project):
        run_dir = project / "runs" / m["run_id"]
        params = yaml.safe_load((run_dir / "params.yaml").read_text())
        assert m["params_hash"] == params_hash(params)
        assert re.fullmatch(r"[0-9a-f]{12}", m["data_hash"])
        assert m["packages"]["papermill"] and m["packages"]["scikit-learn"]
        assert set(m["git"]) == {"commit", "dirty"}
        for stage in STAGES:
            record = m["stages"][stage]
            assert (run_dir / record["notebook"]).is_file() and (run_dir / record["html"]).is_file()
            assert record["duration_s"] > 0 and record["start"] < record["end"]
            assert record["outputs"], stage
            html = (run_dir / record["html"]).read_text()
            assert not re.search(r"<script[^>]+src=\"https?:", html), "report needs a CDN"
            notebook = json.loads((run_dir / record["notebook"]).read_text())
            assert notebook["metadata"]["papermill"]["input_path"] == f"notebooks/{stage}.ipynb"
            assert not re.search(r'"/(tmp|work|root|home)/', (run_dir / record["notebook"]).read_text())
        index = (run_dir / "index.html").read_text()
        assert all(f'href="{s}.html"' in index and f'href="{s}-report.html"' in index for s in STAGES)
        verdict = index[index.index('<section class="verdict"'):index.index("</section>")]
        estimator = {"diabetes": "Ridge", "breast_cancer": "LogisticRegression",
                     "penguins": "RandomForestClassifier"}[m["model"]]
        for words in ("candidate v1 promoted", f"<b>{estimator}</b>", f"{m['model']}-dev version 1",
                      f"hash {m['data']['hash'][:12]}", "<b>yes</b>: version 1 is champion"):
            assert words in verdict, words
        for stage in STAGES:  # the readers' page: what the stage showed, without its code or logs
            readers = (run_dir / m["stages"][stage]["report"]).read_text()
            assert "NBVAL_CHECK_OUTPUT" not in readers and "open_stage" not in readers
            assert "INFO mlflow" not in readers and "Successfully registered model" not in readers
        assert 'src="evaluate/diagnostics.png"' in index
        assert m["headline_metrics"], "evaluate's metrics reach the manifest"
        assert (run_dir / "deploy/package/score.py").is_file()


def test_mlflow_has_a_parent_run_and_a_nested_run_per_stage(full_run):
    project, _ = full_run
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("modelfactory-dev")
    assert experiment.artifact_location.startswith("file://") and str(project / "mlruns") in experiment.artifact_location
    for m in runs_of(project):
        parent_id = json.loads((project / "runs" / m["run_id"] / "tracking.json").read_text())["parent_run_id"]
        parent = client.get_run(parent_id)
        assert parent.info.status == "FINISHED"
        children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        assert sorted(c.info.run_name for c in children) == sorted(STAGES)
        for child in children:
            assert child.info.status == "FINISHED"
            names = {a.path for a in client.list_artifacts(child.info.run_id, "notebook")}
            stage = child.info.run_name
            assert names == {f"notebook/{stage}.ipynb", f"notebook/{stage}.html", f"notebook/{stage}-report.html"}
            plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
            assert plots == {f"plots/{p.name}" for p in (project / "runs" / m["run_id"] / stage).glob("*.png")}
            assert plots or stage in ("train", "deploy"), stage  # the MLflow UI shows the stage's plots
        evaluate = next(c for c in children if c.info.run_name == "evaluate")
        params = yaml.safe_load((project / "runs" / m["run_id"] / "params.yaml").read_text())
        primary = f"holdout_{params['evaluate']['primary_metric']}"
        assert evaluate.data.metrics[primary] == pytest.approx(m["headline_metrics"][primary])


def test_runs_and_report_commands(full_run):
    project, _ = full_run
    listing = cli(project, "runs")
    assert listing.returncode == 0
    for m in runs_of(project):
        assert re.search(rf"{m['run_id']}\s+{m['model']}\s+dev\s+training\s+succeeded\s+v1 promoted\s+[A-Z]",
                         listing.stdout)
    report = cli(project, "report", "latest")
    assert report.returncode == 0 and report.stdout.strip().endswith("index.html")
    assert Path(report.stdout.strip()).is_file()
    missing = cli(project, "report", "nope")
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def test_selected_stages_reuse_the_latest_successful_outputs(full_run):
    project, _ = full_run
    first = next(m for m in runs_of(project) if m["model"] == "diabetes")
    done = cli(project, "run", "--model", "diabetes", "--env", "dev", "--set", "train.alpha=0.3",
               "--stages", "train,evaluate")
    assert done.returncode == 0, done.stdout + done.stderr
    latest = runs_of(project)[-1]
    assert latest["stages"]["explore"]["status"] == "reused"
    assert latest["stages"]["explore"]["reused_from"] == first["run_id"]
    assert latest["stages"]["deploy"]["status"] == "not selected"
    assert [latest["stages"][s]["status"] for s in ("train", "evaluate")] == ["succeeded", "succeeded"]
    params = yaml.safe_load((project / "runs" / latest["run_id"] / "params.yaml").read_text())
    assert params["train"]["alpha"] == 0.3
    assert latest["headline_metrics"]["holdout_rmse"] != first["headline_metrics"]["holdout_rmse"]


def test_selected_stages_without_earlier_outputs_say_what_is_missing(project):
    done = cli(project, "run", "--model", "diabetes", "--stages", "train")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: train needs the outputs of stage explore (contract.json, dataset.parquet), but any earlier run of diabetes "
        f"in env dev has no successful explore stage; run it first: {sys.executable} -m modelfactory run "
        "--model diabetes --env dev --stages explore"
    )
    assert not (project / "runs").exists() or not list((project / "runs").iterdir())


def test_first_run_registers_and_promotes_the_first_champion(full_run):
    project, _ = full_run
    for m in runs_of(project)[:3]:
        assert m["gate"]["passed"] and m["gate"]["reason"] == "no champion yet; beats the baseline and meets all thresholds"
        assert m["promotion"]["promoted"] and m["promotion"]["champion"] == m["gate"]["version"]
    shown = cli(project, "champion", "--model", "breast_cancer")
    assert shown.stdout.strip() == "breast_cancer-dev: champion 1, previous none"


def test_worse_model_is_rejected_and_champion_unchanged(full_run):
    project, _ = full_run
    done = cli(project, "run", "--model", "diabetes", "--set", "train.alpha=1000")
    assert done.returncode == 0, done.stdout + done.stderr  # evaluate.gate.fail_on_reject is false
    # The endpoint's start took 15-45 s without a word; a one-model run now shows each phase with the
    # seconds so far (one line per phase off a terminal, as here), then how it ended. (A factory of
    # several models shows one line per model instead: its stages' lines would interleave.)
    starts = _endpoint_starts(done.stderr)
    assert len(starts) == 1, done.stderr
    # /health answers as soon as init() is done, so a poll may never find the server between the two
    assert starts[0] in (["local endpoint: starting the server", "local endpoint: loading the model"],
                         ["local endpoint: starting the server", "local endpoint: loading the model",
                          "local endpoint: waiting for /health"]), done.stderr
    m = runs_of(project)[-1]
    assert not m["gate"]["passed"]
    assert re.fullmatch(r"rmse [\d.]+ is worse than champion v1's 53\.78", m["gate"]["reason"]), m["gate"]["reason"]
    version = m["gate"]["version"]
    # the run's last line says so, and so do `runs` and the index page
    assert done.stdout.strip().splitlines()[-1] == f"candidate v{version} rejected: {m['gate']['reason']}"
    assert re.search(rf"{m['run_id']}\s+diabetes\s+dev\s+training\s+succeeded\s+v{version} rejected\s",
                     cli(project, "runs").stdout)
    index = (project / "runs" / m["run_id"] / "index.html").read_text()
    assert f"candidate v{version} rejected" in index and "(alpha=1000)" in index
    # what changed since the champion's run: alpha, and the metrics it moved
    first = next(r for r in runs_of(project) if r["model"] == "diabetes" and r["gate"].get("version") == "1")
    compared = cli(project, "compare", first["run_id"], m["run_id"])
    assert compared.returncode == 0, compared.stderr
    assert re.search(r"^  train\.alpha\s+1\.0\s+1000$", compared.stdout, re.M), compared.stdout
    assert re.search(r"^  RMSE\s+53\.777\s+[\d.]+\s+\+[\d.]+$", compared.stdout, re.M), compared.stdout
    assert m["promotion"]["promoted"] is False and m["promotion"]["champion"] == "1"
    assert cli(project, "champion", "--model", "diabetes").stdout.strip().startswith("diabetes-dev: champion 1,")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    rejected = client.get_model_version("diabetes-dev", m["gate"]["version"])
    assert rejected.tags["role"] == "rejected" and rejected.tags["gate_reason"] == m["gate"]["reason"]

    strict = cli(project, "run", "--model", "diabetes", "--set", "train.alpha=1000",
                 "--set", "evaluate.gate.fail_on_reject=true", "--stages", "train,evaluate")
    assert strict.returncode == 1
    assert "ModelfactoryError: candidate rejected by the champion gate: rmse " in strict.stdout



def test_the_drift_reference_travels_with_the_model_to_the_registry_and_the_package(full_run, tmp_path, monkeypatch):
    """train writes model/drift_reference.json into the logged model: the registered version and the
    deploy stage's package carry it, with the training data's record (core/drift.py)."""
    import mlflow

    from modelfactory.core import drift

    project, _ = full_run
    m = next(m for m in runs_of(project) if m["model"] == "penguins")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    registered = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/penguins-dev/{m['gate']['version']}",
                                                          dst_path=str(tmp_path)))
    reference = drift.read_reference(registered)
    assert reference["data"] == m["data"]  # the registered CSV's source, version and hash
    train_rows = len(__import__("pandas").read_parquet(project / "runs" / m["run_id"] / "train" / "train.parquet"))
    assert reference["rows"] == train_rows
    assert reference["features"]["island"]["kind"] == "categorical"
    assert reference["features"]["bill_length_mm"]["kind"] == "numerical"
    assert reference["prediction"]["kind"] == "categorical"
    assert set(reference["prediction"]["categories"]) == {"Adelie", "Chinstrap", "Gentoo"}
    packaged = list((project / "runs" / m["run_id"] / "deploy" / "package" / "model").rglob(drift.REFERENCE_FILE))
    assert len(packaged) == 1 and json.loads(packaged[0].read_text()) == reference

def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp, IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_deploy_stage_smoke_tested_the_real_inference_server(full_run):
    project, done = full_run
    m = next(m for m in runs_of(project) if m["model"] == "breast_cancer")
    notebook = (project / "runs" / m["run_id"] / "deploy.ipynb").read_text()
    assert "local endpoint: healthy" in notebook
    assert "deploy: v1 promoted; the endpoint answered 20 rows within 1e-09" in notebook
    metrics = json.loads((project / "runs" / m["run_id"] / "deploy" / "metrics.json").read_text())
    assert metrics["endpoint_p50_latency_ms"] > 0, "the latencies go to MLflow and metrics.json, not the notebook"
    log = next((project / "runs" / m["run_id"] / "deploy").glob("endpoint-*.log")).read_text()
    assert "Users's init has completed successfully" in log and "POST /score 200" in log
    assert "Traceback" not in log, "the package is laid out as Azure ML mounts models: model/<name>/<version>/"


def _endpoint_starts(stderr: str) -> list[list[str]]:
    """The deploy stage's endpoint progress lines, grouped per start (each ends "healthy after N s")."""
    progress = [line.strip() for line in stderr.splitlines() if line.strip().startswith("local endpoint: ")]
    starts, phases = [], []
    for line in progress:
        if line.startswith("local endpoint: healthy"):
            assert re.fullmatch(r"local endpoint: healthy after \d+\.\d s", line), line
            starts.append(phases)
            phases = []
        else:
            phases.append(re.sub(r" \(\d+ s\)$", "", line))
    assert phases == [], progress  # every start ends healthy
    return starts


def test_local_endpoint_binds_loopback_and_answers_400_for_bad_requests(full_run):
    import concurrent.futures

    from modelfactory.ops.serving import packaging

    project, _ = full_run
    m = next(m for m in runs_of(project) if m["model"] == "diabetes")
    package = project / "runs" / m["run_id"] / "deploy" / "package"
    settings = {"host": "127.0.0.1", "port": 0, "workers": 1, "start_timeout_seconds": 120}
    with packaging.start_local_endpoint(package, settings) as endpoint:
        assert _listening_addresses(endpoint.port) == {"127.0.0.1"}
        sample = json.loads((package / "sample-request.json").read_text())
        status, answer = endpoint.score(sample)
        assert status == 200 and len(answer["predictions"]) == 1
        assert endpoint.score("") == (400, {"error": 'empty request body; expected {"input_data": '
                                                     '{"columns": [...], "data": [[...], ...]}}'})
        assert endpoint.score('{"input_data": ') [0] == 400
        bad = {"input_data": {"columns": sample["input_data"]["columns"][1:], "data": [sample["input_data"]["data"][0][1:]]}}
        assert endpoint.score(bad) == (400, {"error": "missing column(s): age"})
        with urllib.request.urlopen(endpoint.url + "/swagger.json?version=3", timeout=10) as reply:
            swagger = json.loads(reply.read())
        columns = swagger["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert columns["properties"]["input_data"]["properties"]["columns"]["items"]["enum"][0] == "age"
        ids = [f"burst-{i}" for i in range(2000)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:  # a bounded burst: 2,000 requests, 16 at a time
            statuses = list(pool.map(lambda rid: endpoint.score(sample, timeout=30, request_id=rid)[0], ids))
        assert statuses == [200] * 2000
        assert endpoint.process.poll() is None
    assert endpoint.process.poll() is not None
    import pandas as pd

    scored = pd.read_parquet(project / "data" / "scored" / "diabetes")
    burst = scored[scored["request_id"].str.startswith("burst-")]
    assert sorted(burst["request_id"]) == sorted(ids), "every request kept exactly once"


def test_serve_command_serves_the_champion_until_ctrl_c(full_run):
    import signal
    import subprocess
    import sys
    import time

    from conftest import clean_env

    project, _ = full_run
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "serve", "--model", "diabetes"], cwd=project,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = None, time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("serving diabetes version 1 at "):
                url = line.split(" at ")[1].strip()
        assert url and url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        body = (project / _example_body(proc) / "sample-request.json").read_bytes()
        req = urllib.request.Request(url + "/score", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as reply:
            assert reply.status == 200 and "predictions" in json.loads(reply.read())
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip().endswith("stopped")


def _example_body(proc) -> Path:
    """The package folder that serve names in its "example body" line (relative to the project)."""
    for _ in range(10):
        found = re.search(r"example body: (\S+)/sample-request.json\)", proc.stdout.readline())
        if found:
            return Path(found.group(1))
    raise AssertionError("serve printed no example body")


def _start_serve(project, *args):
    """``modelfactory serve`` for diabetes; wait (bounded) for its address; return (process, port, package)."""
    import subprocess
    import sys
    import time

    from conftest import clean_env

    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "serve", "--model", "diabetes", *args],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith("serving diabetes version "):
            port = int(line.rsplit(":", 1)[1])
            return proc, port, project / _example_body(proc)
    proc.kill()
    pytest.fail(f"serve did not start: {proc.communicate(timeout=30)[1]}")


def test_two_serves_of_one_version_keep_their_own_package_and_die_with_their_command(full_run):
    import signal
    import time

    project, _ = full_run
    first, first_port, first_package = _start_serve(project)
    try:
        second, second_port, second_package = _start_serve(project)
        try:
            assert first_package != second_package and first_package.parent.parent == second_package.parent.parent
            assert (first_package / "score.py").is_file(), "the second serve deleted the first one's package"
            assert (second_package.parent / f"endpoint-{second_port}.log").is_file()
            assert _listening_addresses(second_port) == {"127.0.0.1"}
            second.send_signal(signal.SIGKILL)  # no code of serve's runs: the server must go by itself
            second.communicate(timeout=60)
            deadline = time.monotonic() + 60
            while _listening_addresses(second_port) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not _listening_addresses(second_port), "the server outlived the killed serve command"
        finally:
            if second.poll() is None:
                second.kill()
        body = (first_package / "sample-request.json").read_bytes()
        req = urllib.request.Request(f"http://127.0.0.1:{first_port}/score", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as reply:
            assert reply.status == 200
        first.send_signal(signal.SIGTERM)  # as docker stop or systemd stop it: like Ctrl-C
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and out.strip().endswith("stopped")
    assert not _listening_addresses(first_port)


@pytest.mark.parametrize("version", ["../../../tmp/x", "1.0", "0"])
def test_serve_version_must_be_a_version_number(full_run, version):
    project, _ = full_run
    done = cli(project, "serve", "--model", "diabetes", "--version", version, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --version {version}: not a model version; give a registered version "
                                   "number, e.g. --version 3 (see: modelfactory champion --model diabetes --env dev)")


def test_killed_server_leaves_readable_scored_data_without_duplicates(full_run):
    import concurrent.futures
    import time

    import pandas as pd

    from modelfactory.ops.serving import packaging

    project, _ = full_run
    m = next(m for m in runs_of(project) if m["model"] == "breast_cancer")
    package = project / "runs" / m["run_id"] / "deploy" / "package"
    sample = json.loads((package / "sample-request.json").read_text())
    settings = {"host": "127.0.0.1", "port": 0, "workers": 1, "start_timeout_seconds": 120}
    endpoint = packaging.start_local_endpoint(package, settings)
    answered = []

    def send(rid):
        try:
            status, _ = endpoint.score(sample, timeout=10, request_id=rid)
        except OSError:
            return
        if status == 200:
            answered.append(rid)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # bounded: 600 requests, 8 at a time
        futures = [pool.submit(send, f"kill-{i}") for i in range(600)]
        deadline = time.monotonic() + 60
        while len(answered) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        endpoint.kill()  # mid-burst, no chance to flush
        concurrent.futures.wait(futures, timeout=60)
    assert 150 <= len(answered) < 600
    scored = pd.read_parquet(project / "data" / "scored" / "breast_cancer")  # every file still reads
    mine = scored[scored["request_id"].str.startswith("kill-")]
    assert not mine.duplicated(["request_id", "row"]).any()
    assert set(mine["request_id"]) <= set(answered), "only answered requests are kept"


def test_scoring_pipeline_scores_a_file_with_the_champion_and_sets_bad_rows_aside(full_run):
    import pandas as pd

    project, _ = full_run
    first = next(m for m in runs_of(project) if m["model"] == "diabetes")
    rows = pd.read_parquet(project / "runs" / first["run_id"] / "explore" / "dataset.parquet")
    rows = rows.drop(columns="target").head(300).astype(object)
    rows.loc[7, "bmi"], rows.loc[250, "age"] = "heavy", None
    (project / "data").mkdir(exist_ok=True)
    rows.to_csv(project / "data" / "new.csv", index=False)
    done = cli(project, "run", "--pipeline", "scoring", "--model", "diabetes",
               "--set", "batch.input=data/new.csv", "--set", "batch.chunk_rows=100")
    assert done.returncode == 0, done.stdout + done.stderr
    m = runs_of(project)[-1]
    assert m["pipeline"] == "scoring" and m["stages"]["score"]["status"] == "succeeded"
    champion = cli(project, "champion", "--model", "diabetes").stdout.split()[2].rstrip(",")
    # row 250's missing age is imputed by the model's pipeline (train.preprocess), so it is scored
    assert m["scoring"] == {"model": "diabetes", "version": champion, "rows": 300, "scored": 299, "rejected": 1}
    folder = project / "runs" / m["run_id"] / "score"
    scored = pd.read_parquet(folder / "scored.parquet")
    assert len(scored) == 299 and 7 not in set(scored["row"]) and 250 in set(scored["row"])
    rejected = pd.read_csv(folder / "scored.parquet.rejected.csv")
    assert rejected[["row", "column"]].values.tolist() == [[7, "bmi"]]
    assert (folder / "predictions.png").stat().st_size > 0
    assert 'href="score.html"' in (project / "runs" / m["run_id"] / "index.html").read_text()


def test_endpoint_specs_for_the_champion_dry_run_in_a_new_folder(full_run):
    project, _ = full_run
    done = cli(project, "endpoint", "deploy", "--model", "diabetes", "--env", "dev", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("diabetes-dev: diabetes-dev version 1 (champion, gate passed); specs valid in "
                                  "runs/endpoint/diabetes-dev-v1-")
    folder = project / done.stdout.split("specs valid in ")[1].splitlines()[0]
    assert sorted(p.name for p in folder.iterdir()) == ["batch-deployment.yaml", "batch-endpoint.yaml", "blue.yaml",
                                                        "endpoint.yaml", "green.yaml"]
    assert json.loads((folder.parent / "release.json").read_text())["source"] == "champion"
    assert not list((project / "runs").glob("*/azureml")), "no run folder is written to"
    shift = cli(project, "endpoint", "shift", "--model", "diabetes", "--to", "green=30", "--dry-run")
    assert "would set traffic {'green': 30, 'blue': 70}" in shift.stdout
    missing = cli(project, "endpoint", "shift", "--model", "diabetes", "--dry-run")
    assert missing.returncode == 2 and "endpoint shift needs --to, e.g. --to green=25" in missing.stderr


def test_a_worse_than_baseline_first_model_in_a_new_environment_never_ships(full_run, tmp_path):
    """stage starts empty, though dev has a champion: a constant-zero regressor, with no thresholds,
    is judged against nothing but the baseline, rejected, never promoted, served or deployed unless
    forced; the force is recorded."""
    project, _ = full_run
    shown = cli(project, "params", "--model", "diabetes", "--env", "stage")
    params = yaml.safe_load(shown.stdout)
    params["train"] = {"estimator": "sklearn.dummy.DummyRegressor", "scale_features": False,
                       "strategy": "constant", "constant": 0.0}
    params["evaluate"]["gate"]["thresholds"] = {}
    (tmp_path / "zero.yaml").write_text(yaml.safe_dump(params))
    done = cli(project, "run", "--params-file", str(tmp_path / "zero.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    m = runs_of(project)[-1]
    assert (m["env"], m["gate"]["passed"], m["gate"]["champion_version"]) == ("stage", False, None)
    assert re.fullmatch(r"rmse [\d.]+ is worse than the baseline's [\d.]+", m["gate"]["reason"])
    assert m["promotion"]["promoted"] is False
    shown = cli(project, "champion", "--model", "diabetes", "--env", "stage").stdout.splitlines()
    assert shown[0] == "diabetes-stage: champion none, previous none"
    assert re.fullmatch(r"  newest version 1: rejected by the gate: rmse [\d.]+ is worse than the baseline's [\d.]+",
                        shown[1])
    assert cli(project, "champion", "--model", "diabetes", "--env", "dev").stdout.startswith("diabetes-dev: champion 1,")

    served = cli(project, "serve", "--model", "diabetes", "--env", "stage", timeout=120)
    assert served.returncode != 0 and "diabetes-stage has no version with role 'champion'" in served.stderr
    deploy = ["endpoint", "deploy", "--model", "diabetes", "--dry-run"]
    none = cli(project, *deploy, "--env", "stage")
    assert none.returncode == 2 and none.stderr.startswith("error: diabetes-stage has no champion in env stage")
    rejected = cli(project, *deploy, "--env", "stage", "--from-run", m["run_id"])
    assert rejected.returncode == 2 and rejected.stderr.count("\n") == 1
    assert re.match(r"error: diabetes-stage version 1 was rejected by the gate \(rmse [\d.]+ is worse than the "
                    r"baseline's [\d.]+\); pass --force", rejected.stderr), rejected.stderr
    other_env = cli(project, *deploy, "--env", "prod", "--from-run", m["run_id"], "--force")
    assert other_env.returncode == 2
    assert other_env.stderr.startswith(f"error: run {m['run_id']} is a run of env stage, not prod")
    forced = cli(project, *deploy, "--env", "stage", "--from-run", m["run_id"], "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"(run {m['run_id']}, gate rejected, FORCED)" in forced.stdout
    folder = project / forced.stdout.split("specs valid in ")[1].splitlines()[0]
    assert yaml.safe_load((folder / "green.yaml").read_text())["tags"]["forced"] == "true"
    assert json.loads((folder.parent / "release.json").read_text())["forced"] is True
    assert not (project / "runs" / m["run_id"] / "azureml").exists()

    refused = cli(project, "promote", "--model", "diabetes", "--env", "stage", "--version", "1")
    assert refused.returncode == 2 and "pass --force to promote it anyway" in refused.stderr
    assert cli(project, "promote", "--model", "diabetes", "--env", "stage", "--version", "1", "--force").returncode == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    assert "forced_promote" in client.get_model_version("diabetes-stage", "1").tags
    assert cli(project, "champion", "--model", "diabetes", "--env", "dev").stdout.startswith("diabetes-dev: champion 1,")


def test_a_burst_with_one_feature_shifted_is_flagged_and_retrains_once(full_run):
    """The issue's "done when": after `make run`, a scripted burst of requests to the real local
    endpoint with bill_length_mm shifted; `modelfactory monitor` flags that feature and only it, in
    monitor.json and the HTML; with on_drift: retrain exactly one training run starts, with the reason
    recorded; the same window checked again starts none."""
    import numpy as np
    import pandas as pd
    from datetime import datetime, timedelta, timezone
    from importlib.resources import files

    from modelfactory.ops.serving import packaging

    project, _ = full_run
    champion_run = next(m for m in runs_of(project) if m["model"] == "penguins")
    package = project / "runs" / champion_run["run_id"] / "deploy" / "package"
    columns = json.loads((package / "sample-request.json").read_text())["input_data"]["columns"]
    rows = pd.read_csv(files("palmerpenguins") / "data" / "penguins.csv")[columns].dropna()
    burst = rows.sample(n=1200, replace=True, random_state=0)  # monitor.min_rows is 1000
    # +6 mm, kept inside the data contract's range (the endpoint refuses values beyond it)
    burst["bill_length_mm"] = (burst["bill_length_mm"] + 6).clip(upper=rows["bill_length_mm"].max())
    since = datetime.now(timezone.utc)
    settings = {"host": "127.0.0.1", "port": 0, "workers": 1, "start_timeout_seconds": 120}
    with packaging.start_local_endpoint(package, settings) as endpoint:
        for start in range(0, len(burst), 100):
            status, answer = endpoint.score(packaging.build_request(burst.iloc[start:start + 100]), timeout=60)
            assert status == 200, answer
    until = datetime.now(timezone.utc) + timedelta(seconds=1)  # the server flushed its rows as it stopped
    window = ["--since", since.isoformat(), "--until", until.isoformat(), "--set", "monitor.on_drift=retrain"]
    before = {m["run_id"] for m in runs_of(project)}

    done = cli(project, "monitor", "--model", "penguins", *window)
    assert done.returncode == 0, done.stdout + done.stderr
    new = [m for m in runs_of(project) if m["run_id"] not in before]
    [monitored] = [m for m in new if m["pipeline"] == "monitoring"]
    result = json.loads((project / "runs" / monitored["run_id"] / "monitor" / "monitor.json").read_text())
    assert result["rows"] == len(burst) and result["champion_version"] == champion_run["gate"]["version"]
    assert [f["feature"] for f in result["features"] if f["drifted"]] == ["bill_length_mm"]
    assert result["drifted"] == ["bill_length_mm"] and len(result["features"]) == 7
    assert result["verdict"].startswith("drift in 1 of 7 features: bill_length_mm")
    assert f"\n{result['verdict']}\nretrain: drift in bill_length_mm (" in done.stdout  # the monitor run's last line
    page = (project / "runs" / monitored["run_id"] / "monitor-report.html").read_text()
    assert "drift in 1 of 7 features: bill_length_mm" in page
    assert (project / "runs" / monitored["run_id"] / "monitor" / "drift-bill_length_mm.png").is_file()
    assert [p.name for p in (project / "runs" / monitored["run_id"] / "monitor").glob("drift-*.png")] == [
        "drift-bill_length_mm.png"]
    assert re.search(rf"{monitored['run_id']}\s+penguins\s+dev\s+monitoring\s+succeeded\s+drift 1 of 7\s",
                     cli(project, "runs").stdout)

    [retrained] = [m for m in new if m["pipeline"] == "training"]
    trigger = retrained["trigger"]
    assert {k: trigger[k] for k in ("monitor_run", "kind", "feature", "metric", "threshold")} == {
        "monitor_run": monitored["run_id"], "kind": "drift", "feature": "bill_length_mm",
        "metric": "normalized_wasserstein_distance", "threshold": 0.1}
    assert trigger["value"] > 0.1 and trigger["window"] == result["window"]
    assert retrained["overrides"] == ["data.dataset=penguins:1"]  # the newest registered version
    assert retrained["status"] == "succeeded" and "passed" in retrained["gate"]  # the gate decided, as always
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    parent = json.loads((project / "runs" / retrained["run_id"] / "tracking.json").read_text())["parent_run_id"]
    tags = client.get_run(parent).data.tags
    assert tags["trigger.feature"] == "bill_length_mm" and tags["trigger.monitor_run"] == monitored["run_id"]
    assert tags["trigger.window_since"] == result["window"]["since"]

    again = cli(project, "monitor", "--model", "penguins", *window)
    assert again.returncode == 0, again.stdout + again.stderr
    newer = [m for m in runs_of(project) if m["run_id"] not in before | {m["run_id"] for m in new}]
    assert [m["pipeline"] for m in newer] == ["monitoring"]  # checked again, and no second retrain
    assert again.stdout.strip().splitlines()[-1].startswith("retrain: window ")
    assert "already answered by an earlier monitor run; no new training run" in again.stdout
