"""The secret guard: no credential ever goes into params.

Credentials come from azure-identity (a service principal's variables in CI, the job's identity
inside Azure ML, ``az login`` on a laptop), never from a file in the repo. The guard refuses any
params value that looks like one, and names the file and key; it never prints the value.

What a credential looks like is detect-secrets' knowledge, not ours: every string (and every key)
goes through its plugins, and key names are matched against its keyword list. The few additions
below exist only where detect-secrets 1.5 has no plugin; each says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from modelfactory.errors import SecretInParamsError

# detect-secrets plugins left out, and why:
# - a public IP address is not a credential (deploy.endpoint.host may be one);
# - hex strings are commit ids, digests and data hashes far more often than keys;
# - the keyword plugin runs separately (on free text only), and key names have their own check below.
LEFT_OUT = {"IPPublicDetector", "HexHighEntropyString", "KeywordDetector"}

# Key-name parts that detect-secrets' keyword list lacks (it is tuned for source code, where
# "token" is a common word); a params key with these names can only hold a credential.
EXTRA_KEY_NAMES = ("token", "credentials?", "sas", "sas_?token", "connection_?string", "access_?key",
                   "shared_?key", "auth_?token")

# Credential shapes that detect-secrets 1.5 has no plugin for.
EXTRA_PATTERNS: list[tuple[str, re.Pattern]] = [
    # AzureStorageKeyDetector wants exactly 88 characters after AccountKey=; Service Bus and Event
    # Hubs use SharedAccessKey=, and a truncated key is still a leak.
    ("an Azure connection-string key", re.compile(r"(?i)\b(AccountKey|SharedAccessKey)\s*=\s*[^;\s]{4,}")),
    # No plugin knows Azure SAS signatures; this template's data lives in Azure storage.
    ("a SAS token", re.compile(r"(?i)(^|[?&])sig=[A-Za-z0-9%+/=]{16,}")),
    # No plugin knows an Authorization header pasted into a value.
    ("a bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}")),
    # GitHubTokenDetector knows the classic ghp_/gho_/ghu_/ghs_/ghr_ tokens, not fine-grained ones.
    ("a GitHub fine-grained token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    # OpenAIDetector knows only the legacy key format (with T3BlbkFJ inside); today's project,
    # service-account and Anthropic keys are sk-proj-..., sk-svcacct-..., sk-ant-....
    ("an API key (sk-...)", re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")),
]


def find_secrets(params: Mapping) -> Iterator[tuple[str, str]]:
    """Yield ``(key path, what it looks like)`` for every value that looks like a credential."""
    for dotted, key, value in _walk(params):
        if value is _KEY:
            if _looks_like(key, ""):  # a credential pasted where a key name goes
                yield dotted, "a credential used as a key name"
            continue
        if not isinstance(value, str) or not value.strip():
            continue
        found = _looks_like(value, key)
        if found:
            yield dotted, found
        elif _secret_key(key):
            yield dotted, f"a value under a credential's key name ('{key}')"


def check_params(params: Mapping, where: str | Callable[[str], str]) -> None:
    """Raise SecretInParamsError naming the file and key of the first credential-like value.

    Args:
        params: one layer (a file, the ``--set`` overrides) or the merged params.
        where: the layer's name, or a function from a key path to the file that set it.
    """
    for dotted, label in find_secrets(params):
        raise refusal(where(dotted) if callable(where) else where, dotted, label)


def refusal(source: str, dotted: str, label: str) -> SecretInParamsError:
    """The one-line error for a credential found in ``source`` at ``dotted``; never the value."""
    return SecretInParamsError(
        f"{source}: {dotted}: looks like {label}; secrets never go in params. Put it in the "
        "CI's secret store or Key Vault and let azure-identity read it (see docs/configuration.md)"
    )


def looks_like_secret(text: str) -> str | None:
    """What ``text`` (free text, no key) looks like, if it looks like a credential; else None."""
    return _looks_like(text, "")


@lru_cache(maxsize=4096)
def _looks_like(value: str, key: str) -> str | None:
    """Run detect-secrets' plugins, then our additions, over a value as a YAML line would show it.

    Remembered per (value, key): a pure function, and a command that resolves many models' params
    scans the same base and environment values once, not once per model (milliseconds each)."""
    plugins, keyword, entropy = _detectors()
    # The value alone, and as the line `key: "value"`: AWS secret keys are known by the key beside them.
    lines = [value, f'{key}: "{value}"'] if key else [value]
    for line in lines:
        for plugin in plugins:
            if next(iter(plugin.analyze_string(line)), None):
                return f"a credential ({plugin.secret_type}, by detect-secrets)"
    for label, pattern in EXTRA_PATTERNS:
        if pattern.search(value):
            return label
    from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP

    if next(iter(keyword.analyze_string(value, CONFIG_DENYLIST_REGEX_TO_GROUP)), None):  # password=... in text
        return f"a credential ({keyword.secret_type}, by detect-secrets)"
    # Last, as the least specific: a random-looking word, such as a bare AWS secret key.
    for token in re.split(r"[\s,;:='\"()\[\]{}<>@]+", value):
        if _high_entropy(entropy, token):
            return f"a credential ({entropy.secret_type}, by detect-secrets)"
    return None


def _high_entropy(plugin, token: str) -> bool:
    from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string

    # detect-secrets' own filters for strings that are random-looking but not secret.
    if is_potential_uuid(token) or is_sequential_string(token):
        return False
    return any(plugin.calculate_shannon_entropy(s) > plugin.entropy_limit
               for s in plugin.analyze_string(f'"{token}"'))


@lru_cache(maxsize=1)
def _detectors() -> tuple[list, Any, Any]:
    """detect-secrets' plugins, built once (imported on first use: the CLI's --help stays light)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
    from detect_secrets.plugins.keyword import KeywordDetector

    classes = get_mapping_from_secret_type_to_class().values()
    plugins = [cls() for cls in sorted(classes, key=lambda c: c.__name__)
               if cls.__name__ not in LEFT_OUT and cls is not Base64HighEntropyString]
    return plugins, KeywordDetector(), Base64HighEntropyString()


@lru_cache(maxsize=1)
def _key_name_pattern() -> re.Pattern:
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile("|".join((*DENYLIST, *EXTRA_KEY_NAMES)))


def _secret_key(key: str) -> bool:
    """Whether a key is named like a credential: a part (or two adjacent parts) of it is a keyword,
    so that "client_secret" and "apiKey" match and "max_tokens" or "secretary" do not."""
    parts = [p for p in re.split(r"[_\-.\s]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()) if p]
    candidates = [*parts, *(f"{a}_{b}" for a, b in zip(parts, parts[1:]))]
    pattern = _key_name_pattern()
    return any(pattern.fullmatch(c) for c in candidates)


_KEY = object()  # what _walk yields as the "value" of a mapping's key, so keys are scanned too


def _walk(node: Any, prefix: str = "", key: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            dotted = f"{prefix}.{k}" if prefix else str(k)
            yield prefix or "(top level)", str(k), _KEY  # the parent's path: the key may be the secret
            yield from _walk(v, dotted, str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{prefix}[{i}]", key)
    else:
        yield prefix, key, node
