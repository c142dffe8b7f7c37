"""The secret guard: nothing in params/ looks like a credential, and real-looking ones are refused
in every layer, before anything is written."""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from modelfactory.ops import cli
from modelfactory.errors import SecretInParamsError
from modelfactory.params import dump, list_envs, list_models, resolve
from modelfactory.secrets import check_params, find_secrets

LOWER, ALNUM = string.ascii_lowercase + string.digits, string.ascii_letters + string.digits


def credential_bank() -> dict[str, tuple[str, str]]:
    """Fake but real-looking credentials: name -> (key under ``model:``, value).

    Generated at run time from a seeded generator, and their well-known prefixes are assembled from
    pieces, so that no secret scanner (GitHub push protection included) finds one in the repo.
    """
    rng = random.Random(8)

    def pick(chars: str, n: int) -> str:
        return "".join(rng.choice(chars) for _ in range(n))

    def password(n: int) -> str:
        return pick(string.ascii_letters, 1) + pick(ALNUM + "!#%*", n - 1)

    def b64url(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    b64 = ALNUM + "+/"
    pass_word = "Pass" + "word"
    return {
        "sql_connection_string": ("description", f"Server=tcp:sql-{pick(LOWER, 6)}.database.windows.net,1433;"
                                  f"Initial Catalog=sales;User ID=svc_reader;{pass_word}={password(16)};Encrypt=True"),
        "odbc_connection_string": ("description", f"Driver={{ODBC Driver 18}};Server=db01;Uid=etl;Pwd={password(14)};"),
        "password_in_free_text": ("description", f"reader account, {pass_word.lower()}={password(14)} (rotate monthly)"),
        "aws_secret_key_under_its_name": ("aws_secret_access_key", pick(b64, 40)),
        "aws_secret_key_in_free_text": ("description", f"aws_secret_access_key = {pick(b64, 40)}"),
        "aws_secret_key_bare": ("description", pick(b64, 40)),
        "aws_access_key_id": ("description", "AK" + "IA" + pick(string.ascii_uppercase + string.digits, 16)),
        "github_fine_grained_token": ("description", "github" + "_pat_" + pick(ALNUM, 22) + "_" + pick(ALNUM, 59)),
        "github_classic_token": ("description", "gh" + "p_" + pick(ALNUM, 36)),
        "slack_bot_token": ("description", "xo" + "xb-" + pick(string.digits, 12) + "-" + pick(string.digits, 13)
                            + "-" + pick(ALNUM, 24)),
        "openai_project_key": ("description", "s" + "k-proj-" + pick(ALNUM + "_-", 64)),
        "api_key_sk": ("description", "s" + "k-" + pick(ALNUM, 48)),
        "azure_storage_connection_string": ("description", "DefaultEndpointsProtocol=https;AccountName=acct;Account"
                                            + "Key=" + pick(b64, 86) + "==;EndpointSuffix=core.windows.net"),
        "sas_url": ("description", f"https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sp=r&s{'ig'}="
                    + pick(ALNUM, 43) + "%3D"),
        "private_key": ("description", "-----BEGIN RSA " + "PRIVATE KEY-----\n" + pick(b64, 64)
                        + "\n-----END RSA PRIVATE KEY-----"),
        "bearer_header": ("description", "Authorization: Bear" + "er " + pick(ALNUM, 40)),
        "json_web_token": ("description", b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": pick(LOWER, 10)})
                           + "." + pick(ALNUM + "-_", 43)),
        "password_in_url": ("description", f"postgresql://mlflow:{password(12)}@db.internal:5432/mlflow"),
        "azure_client_secret": ("client_secret", pick(ALNUM, 3) + "8Q~" + pick(ALNUM + "~._-", 34)),
    }


BANK = credential_bank()
LAYERS = ["base", "env", "model", "--set", "--params-file"]


def set_in_file(path: Path, key: str, value: str) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("model", {})[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def plant(root: Path, layer: str, key: str, value: str) -> tuple[list[str], str, Path | None]:
    """Put the value into one layer; return the extra CLI args, the source an error names, the file."""
    params = root / "params"
    model_file = params / "models" / "diabetes.yaml"
    if layer in ("base", "env"):
        path = params / ("base.yaml" if layer == "base" else "env/dev.yaml")
        set_in_file(path, key, value)
        set_in_file(model_file, key, "a harmless value")  # the model file overrides it: the merge would hide it
        return [], path.relative_to(root).as_posix(), path
    if layer == "model":
        set_in_file(model_file, key, value)
        return [], "params/models/diabetes.yaml", model_file
    if layer == "--set":
        return ["--set", f"model.{key}={value}"], "--set", None
    resolved = resolve("diabetes")
    resolved["model"][key] = value
    path = root / "saved" / "params.yaml"
    path.parent.mkdir()
    dump(resolved, path)
    return ["--params-file", str(path)], "saved/params.yaml", path


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("name", sorted(BANK))
def test_every_credential_is_refused_in_every_layer_before_anything_is_written(proj, capsys, layer, name):
    key, value = BANK[name]
    args, source, planted = plant(proj, layer, key, value)
    code = cli.main(["run", "--model", "diabetes", *args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith(f"error: {source}: model.{key}"), err
    assert "looks like" in err and "secrets never go in params" in err
    assert value not in out + err
    for part in value.split():  # no recognisable piece of it either
        assert len(part) < 12 or part not in err, part
    assert not (proj / "runs").exists() and not (proj / "mlruns").exists()
    for path in proj.rglob("*"):  # nothing the command wrote holds the value
        if path.is_file() and path != planted:
            assert value not in path.read_text(errors="replace"), path


def test_the_bank_is_refused_by_the_params_command_too(proj, capsys):
    for name, (key, value) in BANK.items():
        assert cli.main(["params", "--model", "diabetes", "--set", f"model.{key}={value}"]) == 2, name
        out, err = capsys.readouterr()
        assert out == "" and value not in err and err.startswith(f"error: --set: model.{key}: looks like"), name


@pytest.mark.parametrize("item", ["model.description=[{value}", "{value}", "model.{value}=1"])
def test_a_malformed_set_never_echoes_a_credential(proj, capsys, item):
    value = BANK["slack_bot_token"][1]
    assert cli.main(["params", "--model", "diabetes", "--set", item.format(value=value)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set: ") and "looks like a credential" in err and value not in err


def test_no_params_file_in_the_repo_holds_a_secret():
    files = sorted((ROOT / "params").rglob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        assert list(find_secrets(yaml.safe_load(path.read_text()) or {})) == [], path


def test_every_model_resolves_in_every_environment_without_a_false_alarm(monkeypatch):
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(ROOT))
    models, envs = list_models(ROOT), list_envs(ROOT)
    assert len(models) >= 2 and len(envs) >= 3
    for model in models:
        for env in envs:
            assert resolve(model, env)["model"]["name"] == model


@pytest.mark.parametrize("params", [
    {"max_tokens": 5}, {"tokenizer": "bert"}, {"secretary": "x"}, {"password": ""},
    {"tracking": {"uri": "https://mlflow.example.com/api"}}, {"token_limit": 12},
    {"description": "uses a bearer"}, {"n_estimators": 100},
    {"description": "Rotate the password in Key Vault every month."},
    {"base_image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"},
    {"subscription_id": "3f2c9a71-5b0e-4d8a-9c1f-2e7b6a4d0c93"},
    {"commit": "1fa0c25e9b7d4c3a2f1e0d9c8b7a6f5e4d3c2b1a"},
    {"run": "runs/20261127-120301-diabetes-3fa2/params.yaml"},
    {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor"},
    {"required_columns": ["mean radius", "mean texture", "worst concave points"]},
    {"experiment": "${MODELFACTORY_EXPERIMENT:-modelfactory-prod}"},
])
def test_ordinary_values_pass(params):
    assert list(find_secrets(params)) == []


def test_error_names_the_file_and_key_but_never_the_value():
    with pytest.raises(SecretInParamsError) as info:
        check_params({"db": {"password": "hunter2-very-secret"}}, "params/env/prod.yaml")
    message = str(info.value)
    assert message.startswith("params/env/prod.yaml: db.password: looks like a value under a credential's key name")
    assert "hunter2" not in message
    assert info.value.exit_code == 2


def test_labels_say_which_detector_found_it():
    found = dict(find_secrets({"a": BANK["slack_bot_token"][1], "b": BANK["github_fine_grained_token"][1]}))
    assert found == {"a": "a credential (Slack Token, by detect-secrets)", "b": "a GitHub fine-grained token"}


def test_a_credential_used_as_a_key_is_refused():
    token = BANK["github_classic_token"][1]
    assert list(find_secrets({"model": {token: 1}})) == [("model", "a credential used as a key name")]
    with pytest.raises(SecretInParamsError) as info:
        check_params({token: 1}, "--set")
    assert token not in str(info.value) and str(info.value).startswith("--set: (top level): looks like")
