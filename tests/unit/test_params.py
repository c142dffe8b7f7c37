"""Params: layering, environment variables, and one clear line (exit code 2) per mistake."""

from __future__ import annotations

import textwrap

import pytest

from conftest import copy_project
from modelfactory import cli
from modelfactory.errors import ParamsError
from modelfactory.params import params_hash, resolve, resolve_layers


@pytest.fixture
def proj(tmp_path, monkeypatch):
    root = copy_project(tmp_path / "project")
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(root))
    for var in ("MODELFACTORY_ENV", "MLFLOW_TRACKING_URI", "MODELFACTORY_EXPERIMENT", "MODELFACTORY_CELL_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    return root


def write(root, rel, text):
    path = root / "params" / rel
    path.write_text(textwrap.dedent(text))
    return path


def test_layers_merge_base_env_model_then_overrides(proj):
    write(proj, "env/stage.yaml", """\
        tracking: {uri: "", experiment: staging}
        deploy: {sample_rows: 7}
        """)
    params, origin = resolve_layers("diabetes", "stage", ["deploy.sample_rows=9", "train.alpha=0.3"])
    assert params["seed"] == 42 and origin["seed"] == "params/base.yaml"
    assert params["tracking"]["experiment"] == "staging" and origin["tracking.experiment"] == "params/env/stage.yaml"
    assert params["train"]["estimator"] == "sklearn.linear_model.Ridge"
    assert origin["train.estimator"] == "params/models/diabetes.yaml"
    assert params["deploy"]["sample_rows"] == 9 and origin["deploy.sample_rows"] == "--set"
    assert params["train"]["alpha"] == 0.3
    assert params["model"]["name"] == "diabetes" and params["env"]["name"] == "stage"


def test_env_comes_from_variable_then_defaults_to_dev(proj, monkeypatch):
    assert resolve("diabetes")["env"]["name"] == "dev"
    monkeypatch.setenv("MODELFACTORY_ENV", "prod")
    assert resolve("diabetes")["env"]["name"] == "prod"
    assert resolve("diabetes", "stage")["env"]["name"] == "stage"


def test_environment_variables_fill_references_with_their_types(proj, monkeypatch):
    assert resolve("diabetes", "prod")["runner"]["cell_timeout_seconds"] == 1800
    monkeypatch.setenv("MODELFACTORY_CELL_TIMEOUT", "90")
    monkeypatch.setenv("MODELFACTORY_EXPERIMENT", "nightly")
    params = resolve("diabetes", "prod")
    assert params["runner"]["cell_timeout_seconds"] == 90
    assert params["tracking"]["experiment"] == "nightly"
    assert params["tracking"]["uri"] is None


def test_params_file_reproduces_a_run_exactly(proj, tmp_path):
    from modelfactory.params import dump

    original = resolve("breast_cancer", "stage", ["train.C=0.25"])
    dump(original, tmp_path / "params.yaml")
    again = resolve("breast_cancer", params_file=tmp_path / "params.yaml")
    assert again == original and params_hash(again) == params_hash(original)
    assert resolve("breast_cancer", params_file=tmp_path / "params.yaml", overrides=["train.C=2"])["train"]["C"] == 2


def test_hash_changes_with_any_value(proj):
    assert params_hash(resolve("diabetes")) == params_hash(resolve("diabetes"))
    assert params_hash(resolve("diabetes")) != params_hash(resolve("diabetes", overrides=["seed=1"]))


BAD = [
    # (file to write, its text, extra CLI args, the exact error line)
    ("models/diabetes.yaml", "data:\n  holdout_fraction: 0.2\n  dataset diabetes\n", [],
     "params/models/diabetes.yaml:4: YAML does not parse: could not find expected ':'"),
    ("models/diabetes.yaml", "- just\n- a list\n", [],
     "params/models/diabetes.yaml: the top level must be a mapping of keys, not a list"),
    ("env/dev.yaml", "tracking:\n  uri: null\n  experiment: x\n  experiement: y\n", [],
     "params/env/dev.yaml: tracking.experiement: unknown key; did you mean 'experiment'?"),
    ("models/diabetes.yaml", "model: {task: regression, description: x}\ndata: {dataset: diabetes, holdout_fracton: 0.3}\n"
     "train: {estimator: sklearn.linear_model.Ridge}\nevaluate: {primary_metric: r2, metrics: [r2], "
     "baseline: {estimator: sklearn.dummy.DummyRegressor}}\n", [],
     "params/models/diabetes.yaml: data.holdout_fracton: unknown key; did you mean 'holdout_fraction'?"),
    (None, None, ["--set", "data.holdout_fraction=lots"],
     "--set: data.holdout_fraction: input should be a valid number, got 'lots'"),
    (None, None, ["--set", "data.holdout_fraction=1.5"],
     "--set: data.holdout_fraction: input should be less than 1, got 1.5"),
    ("base.yaml", "seed: forty-two\n", [],
     "params/base.yaml: seed: input should be a valid integer, got 'forty-two'"),
    ("models/diabetes.yaml", "model: {task: regression, description: x}\n", [],
     "params/models/diabetes.yaml: data.dataset: required value is missing (none of params/base.yaml, "
     "params/env/dev.yaml, params/models/diabetes.yaml sets it)"),
    (None, None, ["--set", "model.task=ranking"],
     "--set: model.task: input should be 'regression' or 'classification', got 'ranking'"),
    (None, None, ["--set", "evaluate.primary_metric=auc"],
     "--set: evaluate.primary_metric: 'auc' is not one of evaluate.metrics ['rmse', 'mae', 'r2']"),
    (None, None, ["--set", "runner.cell_timeout_seconds='10'"],
     "--set: runner.cell_timeout_seconds: input should be a valid integer, got '10'"),
    (None, None, ["--set", "train.alpha"],
     "--set train.alpha: expected key.path=value, e.g. --set train.alpha=0.3"),
    (None, None, ["--set", "data.checks=[unclosed"],
     "--set data.checks=[unclosed: the value does not parse as YAML (did not find expected ',' or ']')"),
    ("env/dev.yaml", "tracking:\n  uri: ${TRACKING_SERVER}\n  experiment: x\n", [],
     "params/env/dev.yaml: tracking.uri: environment variable TRACKING_SERVER is not set "
     "(set it, or write ${TRACKING_SERVER:-default})"),
    ("env/dev.yaml", "tracking:\n  uri: https://admin:hunter2@mlflow.example.com\n  experiment: x\n", [],
     "params/env/dev.yaml: tracking.uri: looks like a password inside a URL; secrets never go in params. "
     "Put it in the CI's secret store or Key Vault and let azure-identity read it (see docs/configuration.md)"),
]


@pytest.mark.parametrize("rel,text,args,expected", BAD, ids=[b[3][:40] for b in BAD])
def test_each_mistake_is_one_line_with_exit_code_2(proj, capsys, rel, text, args, expected):
    if rel:
        write(proj, rel, text)
    code = cli.main(["params", "--model", "diabetes", *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"error: {expected}\n"
    assert out == ""


@pytest.mark.parametrize("model,env,expected", [
    ("diabets", "dev", "unknown model 'diabets': params/models/ has breast_cancer, diabetes; did you mean 'diabetes'?"),
    ("diabetes", "qa", "unknown environment 'qa': params/env/ has dev, prod, stage"),
    ("diabetes", "prd", "unknown environment 'prd': params/env/ has dev, prod, stage; did you mean 'prod'?"),
])
def test_unknown_model_or_env(proj, capsys, model, env, expected):
    assert cli.main(["params", "--model", model, "--env", env]) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"


def test_run_command_validates_params_before_any_kernel(proj, capsys):
    assert cli.main(["run", "--model", "diabetes", "--set", "data.stratify=maybe"]) == 2
    assert capsys.readouterr().err == "error: --set: data.stratify: input should be a valid boolean, got 'maybe'\n"
    assert not (proj / "runs").exists()


def test_params_command_prints_resolved_yaml_and_hash(proj, capsys):
    assert cli.main(["params", "--model", "breast_cancer", "--set", "train.C=0.5"]) == 0
    out = capsys.readouterr().out
    assert "  C: 0.5\n" in out and "estimator: sklearn.linear_model.LogisticRegression" in out
    assert out.splitlines()[-1] == f"# params hash: {params_hash(resolve('breast_cancer', overrides=['train.C=0.5']))}"


def test_missing_environment_variable_error_type(proj):
    write(proj, "env/dev.yaml", "tracking:\n  uri: ${NOPE_NOT_SET}\n  experiment: x\n")
    with pytest.raises(ParamsError):
        resolve("diabetes")
