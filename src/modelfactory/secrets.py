"""The secret guard: no credential ever goes into params.

Credentials come from azure-identity (a service principal's variables in CI, the job's identity
inside Azure ML, ``az login`` on a laptop), never from a file in the repo. The guard refuses any
params value that looks like one, and names the file and key; it never prints the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from modelfactory.errors import SecretInParamsError

# Key names whose string values would be credentials, matched against the parts of a key
# split on "_", "-" and ".", so that "max_tokens" or "secretary" do not match.
SECRET_KEY_PARTS = {
    "password", "passwd", "pwd", "secret", "token", "apikey", "sas", "credential", "credentials",
}
SECRET_KEY_PAIRS = {
    ("api", "key"), ("access", "key"), ("account", "key"), ("private", "key"), ("client", "secret"),
    ("connection", "string"), ("shared", "key"), ("sas", "token"), ("auth", "token"),
}

# What credentials look like, whatever key they sit under.
SECRET_VALUE_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("an Azure storage connection string", re.compile(r"(?i)(AccountKey|SharedAccessKey)\s*=")),
    ("an Azure storage connection string", re.compile(r"(?i)DefaultEndpointsProtocol=\w+;")),
    ("a SAS token", re.compile(r"(?i)(^|[?&])sig=[A-Za-z0-9%+/=]{16,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("a password inside a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("an account key (base64, 88 characters)", re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==")),
]


def find_secrets(params: Mapping) -> Iterator[tuple[str, str]]:
    """Yield ``(key path, what it looks like)`` for every value that looks like a credential."""
    for dotted, key, value in _walk(params):
        if not isinstance(value, str) or not value.strip():
            continue
        for label, pattern in SECRET_VALUE_PATTERNS:
            if pattern.search(value):
                yield dotted, label
                break
        else:
            if _secret_key(key):
                yield dotted, f"a value under a credential's key name ('{key}')"


def check_params(params: Mapping, origin: Mapping[str, str] | None = None) -> None:
    """Raise SecretInParamsError naming the file and key of the first credential-like value."""
    from modelfactory.params import source_of

    for dotted, label in find_secrets(params):
        where = source_of(dotted, origin or {})
        raise SecretInParamsError(
            f"{where}: {dotted}: looks like {label}; secrets never go in params. Put it in the "
            "CI's secret store or Key Vault and let azure-identity read it (see docs/configuration.md)"
        )


def _secret_key(key: str) -> bool:
    parts = [p for p in re.split(r"[_\-.\s]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()) if p]
    if any(p in SECRET_KEY_PARTS for p in parts):
        return True
    return any(pair in SECRET_KEY_PAIRS for pair in zip(parts, parts[1:]))


def _walk(node: Any, prefix: str = "", key: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k), str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{prefix}[{i}]", key)
    else:
        yield prefix, key, node
