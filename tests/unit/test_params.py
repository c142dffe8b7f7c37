"""Params: layering, environment variables, and one clear line (exit code 2) per mistake."""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import cli as run_cli
from modelfactory.ops import cli
from modelfactory.errors import ParamsError
from modelfactory.params import params_hash, resolve, resolve_layers


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
     "--set data.checks: YAML does not parse: did not find expected ',' or ']'"),
    ("env/dev.yaml", "tracking:\n  uri: ${TRACKING_SERVER}\n  experiment: x\n", [],
     "params/env/dev.yaml: tracking.uri: environment variable TRACKING_SERVER is not set "
     "(set it, or write ${TRACKING_SERVER:-default})"),
    ("env/dev.yaml", "tracking:\n  uri: https://admin:hunter2@mlflow.example.com\n  experiment: x\n", [],
     "params/env/dev.yaml: tracking.uri: looks like a credential (Basic Auth Credentials, by detect-secrets); "
     "secrets never go in params. "
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
    ("diabets", "dev", "unknown model 'diabets': params/models/ has breast_cancer, diabetes, penguins, sales; did you mean 'diabetes'?"),
    ("diabetes", "qa", "unknown environment 'qa': params/env/ has dev, prod, stage"),
    ("diabetes", "prd", "unknown environment 'prd': params/env/ has dev, prod, stage; did you mean 'prod'?"),
])
def test_unknown_model_or_env(proj, capsys, model, env, expected):
    assert cli.main(["params", "--model", model, "--env", env]) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"


def test_an_environment_name_with_a_hyphen_is_refused(proj, capsys):
    """Registered models are "<model>-<env>": model "a-b" in env "c" would share a name with model "a" in
    env "b-c", and so a champion, unless env names have no hyphen."""
    (proj / "params/env/b-c.yaml").write_text((proj / "params/env/dev.yaml").read_text())
    assert cli.main(["params", "--model", "diabetes", "--env", "b-c"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --env b-c: an environment's name is") and "rename params/env/b-c.yaml" in err
    assert err.count("\n") == 1


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


def one_line_error(capsys, *argv: str, code: int = 2) -> str:
    """Run the CLI in-process; check it failed with ``code`` and one line on stderr; return that line."""
    assert cli.main(list(argv)) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    return err.removeprefix("error: ").rstrip("\n")


def test_a_file_that_is_not_utf8_is_one_line(proj, capsys):
    (proj / "params" / "models" / "diabetes.yaml").write_bytes(
        b"model:\n  task: regression\n  description: Caf\xe9 data\n")
    assert one_line_error(capsys, "params", "--model", "diabetes") == (
        "params/models/diabetes.yaml:3: not UTF-8 text (byte 0xe9 at offset 44); save the file as UTF-8")


def test_a_params_file_that_is_not_utf8_is_one_line(proj, capsys):
    saved = proj / "saved.yaml"
    saved.write_bytes(b"model: {name: diabetes, description: \xff}\n")
    expected = "saved.yaml:1: not UTF-8 text (byte 0xff at offset 37); save the file as UTF-8"
    assert one_line_error(capsys, "params", "--model", "diabetes", "--params-file", str(saved)) == expected
    assert one_line_error(capsys, "run", "--params-file", str(saved)) == expected  # the run reads it for the model name


def billion_laughs(levels: int = 9) -> str:
    """Nine lines of YAML that expand to 9**9 (387 million) strings when walked."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_a_file_is_refused_at_once(project):
    model_file = project / "params" / "models" / "diabetes.yaml"
    original = model_file.read_text()
    model_file.write_text(original + billion_laughs())
    first_alias_line = original.count("\n") + 2
    # Bounded: before the fix this ran for minutes and took gigabytes.
    done = run_cli(project, "params", "--model", "diabetes", timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: params/models/diabetes.yaml:{first_alias_line}: YAML aliases (*l0) are not "
                           "allowed in this project's YAML; write the value out\n")


def test_an_alias_bomb_in_set_is_refused_at_once(project):
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    done = run_cli(project, "run", "--model", "diabetes", "--set", f"model.description=[{', '.join(levels)}]",
                   timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("error: --set model.description: YAML aliases (*l0) are not allowed in this project's YAML; "
                           "write the value out\n")
    assert not (project / "runs").exists()


def test_an_alias_in_an_environment_variable_is_refused(proj, capsys, monkeypatch):
    monkeypatch.setenv("MODELFACTORY_EXPERIMENT", "&a [x, *a]")
    assert one_line_error(capsys, "params", "--model", "diabetes").startswith(
        "params/env/dev.yaml: tracking.experiment: ${MODELFACTORY_EXPERIMENT}: YAML aliases (*a) are not allowed")


@pytest.mark.parametrize("args,expected", [
    (["--set", "train.alpha=.nan"], "--set: train.alpha: nan is not a finite number; params take finite numbers only"),
    (["--set", "train.alpha=-.inf"], "--set: train.alpha: -inf is not a finite number; params take finite numbers only"),
    (["--set", "evaluate.gate.thresholds={rmse: {max: .inf}}"],
     "--set: evaluate.gate.thresholds.rmse.max: inf is not a finite number; params take finite numbers only"),
])
def test_nan_and_infinity_are_refused(proj, capsys, args, expected):
    assert one_line_error(capsys, "params", "--model", "diabetes", *args) == expected


def test_nan_in_a_file_names_the_file(proj, capsys):
    write(proj, "models/diabetes.yaml", (proj / "params/models/diabetes.yaml").read_text().replace(
        "alpha: 1.0", "alpha: .NaN"))
    assert one_line_error(capsys, "params", "--model", "diabetes") == (
        "params/models/diabetes.yaml: train.alpha: nan is not a finite number; params take finite numbers only")


@pytest.mark.parametrize("args,expected", [
    (["--set", "train.alpha=abc"], "--set: train.alpha: The 'alpha' parameter of Ridge must be a float in the "
     "range [0.0, inf) or an array-like. Got 'abc' instead."),
    (["--set", "evaluate.baseline.strategy=middle"], "--set: evaluate.baseline.strategy: The 'strategy' parameter "
     "of DummyRegressor must be a str among"),
])
def test_a_hyperparameter_value_the_estimator_refuses_is_a_params_error(proj, capsys, args, expected):
    """Found by the newcomer: `--set train.alpha=abc` passed `params` and failed in the train cell."""
    assert one_line_error(capsys, "params", "--model", "diabetes", *args).startswith(expected)
    assert cli.main(["run", "--model", "diabetes", *args]) == 2
    assert not (proj / "runs").exists()


@pytest.mark.parametrize("args,expected", [
    (["--set", "train.alpah=1"], "--set: train.alpah: Ridge has no hyperparameter 'alpah'; did you mean 'alpha'?"),
    (["--set", "train.estimator=sklearn.linear_model.Rigde"],
     "--set: train.estimator: module 'sklearn.linear_model' has no class 'Rigde'; did you mean "
     "'sklearn.linear_model.Ridge'?"),
    (["--set", "evaluate.baseline.strategy=mean", "--set", "evaluate.baseline.stratgy=median"],
     "--set: evaluate.baseline.stratgy: DummyRegressor has no hyperparameter 'stratgy'; did you mean 'strategy'?"),
])
def test_estimator_typos_are_caught_by_the_params_command(proj, capsys, args, expected):
    assert one_line_error(capsys, "params", "--model", "diabetes", *args) == expected


def test_estimator_typo_in_a_model_file_names_the_file_and_stops_run_before_any_kernel(proj, capsys):
    write(proj, "models/diabetes.yaml", (proj / "params/models/diabetes.yaml").read_text().replace(
        "alpha: 1.0", "alhpa: 1.0"))
    assert one_line_error(capsys, "run", "--model", "diabetes") == (
        "params/models/diabetes.yaml: train.alhpa: Ridge has no hyperparameter 'alhpa'; did you mean 'alpha'?")
    assert not (proj / "runs").exists()  # no folder, so no failed run without its error


def test_missing_base_yaml_is_a_user_error_with_a_project_path(proj, capsys, monkeypatch):
    (proj / "params" / "base.yaml").unlink()
    monkeypatch.delenv("MODELFACTORY_PROJECT_DIR")
    monkeypatch.chdir(proj / "notebooks")
    line = one_line_error(capsys, "params", "--model", "diabetes")
    assert line.startswith("params/base.yaml: missing; ") and str(proj) not in line


def test_outside_any_project_is_a_user_error_without_machine_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MODELFACTORY_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, "runs")
    assert line.startswith("no params/base.yaml in this folder or any folder above it") and str(tmp_path) not in line


@pytest.mark.parametrize("limit", ["-1", "0", "two"])
def test_runs_limit_must_be_a_positive_number(capsys, limit):
    with pytest.raises(SystemExit) as info:
        cli.main(["runs", "--limit", limit])
    assert info.value.code == 2
    assert "argument --limit:" in capsys.readouterr().err


def test_runs_limit_shows_the_newest_runs(proj, capsys):
    for i in range(3):
        folder = proj / "runs" / f"run-{i}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({
            "run_id": f"run-{i}", "model": "diabetes", "env": "dev", "status": "succeeded",
            "created": f"2026-01-0{i + 1}T00:00:00", "headline_metrics": {}}))
    assert cli.main(["runs", "--limit", "2"]) == 0
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert shown == ["run-2", "run-1"]
