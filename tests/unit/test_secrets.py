"""The secret guard: nothing in params/ looks like a credential, and real-looking ones are refused."""

import pytest
import yaml

from conftest import ROOT
from modelfactory.errors import SecretInParamsError
from modelfactory.secrets import check_params, find_secrets


def test_no_params_file_in_the_repo_holds_a_secret():
    files = sorted((ROOT / "params").rglob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        assert list(find_secrets(yaml.safe_load(path.read_text()) or {})) == [], path


SECRETS = [
    ({"storage": {"conn": "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc123==;EndpointSuffix=core"}},
     "storage.conn", "an Azure storage connection string"),
    ({"data": {"url": "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&se=2030&sig=AbCdEfGhIjKlMnOpQrSt%3D"}},
     "data.url", "a SAS token"),
    ({"k": "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."}, "k", "a private key"),
    ({"headers": ["Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"]}, "headers[0]", "a bearer token"),
    ({"jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"}, "jwt", "a JSON web token"),
    ({"tracking": {"uri": "postgresql://mlflow:s3cret@db:5432/mlflow"}}, "tracking.uri", "a password inside a URL"),
    ({"aws": {"id": "AKIAIOSFODNN7EXAMPLE"}}, "aws.id", "an AWS access key id"),
    ({"gh": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}, "gh", "a GitHub token"),
    ({"k": "A" * 86 + "=="}, "k", "an account key (base64, 88 characters)"),
    ({"db": {"password": "correct horse"}}, "db.password", "a value under a credential's key name ('password')"),
    ({"azure": {"client_secret": "x"}}, "azure.client_secret", "a value under a credential's key name ('client_secret')"),
    ({"api": {"apiKey": "x"}}, "api.apiKey", "a value under a credential's key name ('apiKey')"),
]


@pytest.mark.parametrize("params,key,label", SECRETS, ids=[s[1] for s in SECRETS])
def test_credentials_are_found_with_their_key(params, key, label):
    assert list(find_secrets(params)) == [(key, label)]


@pytest.mark.parametrize("params", [
    {"max_tokens": 5}, {"tokenizer": "bert"}, {"secretary": "x"}, {"password": ""},
    {"tracking": {"uri": "https://mlflow.example.com/api"}}, {"token_limit": 12},
    {"description": "uses a bearer"}, {"n_estimators": 100},
])
def test_ordinary_values_pass(params):
    assert list(find_secrets(params)) == []


def test_error_names_the_file_and_key_but_never_the_value():
    with pytest.raises(SecretInParamsError) as info:
        check_params({"db": {"password": "hunter2-very-secret"}}, {"db.password": "params/env/prod.yaml"})
    message = str(info.value)
    assert message.startswith("params/env/prod.yaml: db.password: looks like a value under a credential's key name")
    assert "hunter2" not in message
    assert info.value.exit_code == 2
