"""Layered YAML params: the one loader that owns the merge order.

Order: ``base.yaml`` -> ``env/<env>.yaml`` -> ``models/<model>.yaml`` -> ``--set`` overrides.
The secret guard runs on every layer before the merge (a secret in base.yaml that a model file
overrides is still a secret in the repo). Then ``${VAR}`` / ``${VAR:-default}`` references are
expanded from the environment (the one place where environment-dependent values are resolved),
the guard runs again on the result, and it is validated against ``schema.Params`` and the
estimators it names. Every error names the file, the key path and the problem.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from modelfactory import paths, secrets
from modelfactory.errors import ParamsError
from modelfactory.yamlfile import LOADER as _Loader
from modelfactory.yamlfile import parse_yaml, read_yaml, refuse_aliases

ENV_VAR = "MODELFACTORY_ENV"
DEFAULT_ENV = "dev"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve(
    model: str,
    env: str | None = None,
    overrides: Iterable[str] = (),
    params_file: str | Path | None = None,
    training_checks: bool = True,
) -> dict:
    """Resolve, check and validate the params of one model in one environment.

    Args:
        model: a file name under params/models/, without ``.yaml``.
        env: an environment under params/env/; defaults to $MODELFACTORY_ENV, then ``dev``.
        overrides: ``a.b=value`` strings; each value is parsed as YAML.
        params_file: an already resolved params.yaml (from a run folder) to use instead of the
            layers; overrides still apply on top.
        training_checks: also build the estimators and read the data contract the params name
            (scikit-learn and pandas, seconds); ``serve`` of a trained model needs neither.

    Returns:
        The validated params as plain, JSON-serialisable data.
    """
    return resolve_layers(model, env, overrides, params_file, training_checks)[0]


def resolve_layers(model, env=None, overrides=(), params_file=None,
                   training_checks: bool = True) -> tuple[dict, dict[str, str]]:
    """Like resolve, and also return which source set each key path (for error messages)."""
    env = env or os.environ.get(ENV_VAR) or DEFAULT_ENV
    root = paths.project_root()
    merged: dict = {}
    origin: dict[str, str] = {}
    if params_file is not None:
        files = [Path(params_file)]
    else:
        files = layer_files(model, env, root)
    layers = [(paths.relative_to_root(f, root), _read_yaml(f, root)) for f in files]
    if params_file is None:
        layers.append(("--model/--env", {"model": {"name": model}, "env": {"name": env}}))
    layers.append(("--set", parse_overrides(overrides)))
    for source, data in layers:  # every layer, before the merge hides what a later one overrides
        secrets.check_params(data, source)
    for source, data in layers:
        _merge(merged, data, source, origin)
    merged = _expand(merged, origin)
    secrets.check_params(merged, lambda dotted: source_of(dotted, origin))  # values from ${VAR}
    _check_finite(merged, origin)
    validated = _validate(merged, origin)
    if training_checks:
        _check_estimators(validated, origin)
        _check_contract(validated, origin)
    return validated, origin


def layer_files(model: str, env: str, root: Path | None = None) -> list[Path]:
    """The YAML files that make up one model's params in one environment, in merge order."""
    pdir = paths.params_dir(root)
    env_file = pdir / "env" / f"{env}.yaml"
    model_file = pdir / "models" / f"{model}.yaml"
    from modelfactory.schema import ENV_NAME_PATTERN

    if not re.fullmatch(ENV_NAME_PATTERN, env):
        raise ParamsError(f"--env {env}: an environment's name is lowercase letters, digits and '_' (no '-': "
                          f"its registered models are named <model>-<env>); rename params/env/{env}.yaml")
    if not env_file.is_file():
        raise ParamsError(_unknown("environment", env, list_envs(root), "params/env/"))
    if not model_file.is_file():
        raise ParamsError(_unknown("model", model, list_models(root), "params/models/"))
    return [pdir / "base.yaml", env_file, model_file]


def list_models(root: Path | None = None) -> list[str]:
    """The models that have a params file."""
    return sorted(p.stem for p in (paths.params_dir(root) / "models").glob("*.yaml"))


def list_envs(root: Path | None = None) -> list[str]:
    """The environments that have a params file."""
    return sorted(p.stem for p in (paths.params_dir(root) / "env").glob("*.yaml"))


def parse_overrides(overrides: Iterable[str]) -> dict:
    """Turn ``["a.b=1", "c=[x, y]"]`` into a nested dict; values are parsed as YAML."""
    result: dict = {}
    for number, item in enumerate(overrides, 1):
        key, sep, raw = item.partition("=")
        # Checked before anything below echoes the argument back.
        label = secrets.looks_like_secret(item)
        if label:
            named = sep and not secrets.looks_like_secret(key)  # the key path itself may be the secret
            raise secrets.refusal("--set", key.strip() if named else f"(argument {number})", label)
        if not sep or not key.strip():
            raise ParamsError(f"--set {item}: expected key.path=value, e.g. --set train.alpha=0.3")
        value = parse_yaml(raw, f"--set {key.strip()}", lines=False) if raw.strip() else ""
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"--set {item}: {part} is set to a value and to a mapping")
        node[parts[-1]] = value
    return result


def params_hash(params: Mapping) -> str:
    """A short, stable hash of resolved params: equal params give equal hashes."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def dump(params: Mapping, path: Path) -> None:
    """Write resolved params as YAML, keys in schema order."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter, when the wheel has it: faster
    path.write_text(yaml.dump(dict(params), Dumper=dumper, sort_keys=False, default_flow_style=False))


def _read_yaml(path: Path, root: Path) -> dict:
    shown = paths.relative_to_root(path, root)
    data = read_yaml(path, root)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{shown}: the top level must be a mapping of keys, not a {type(data).__name__}")
    return data


def _merge(into: dict, layer: Mapping, source: str, origin: dict[str, str], prefix: str = "") -> None:
    """Deep-merge ``layer`` into ``into``: mappings merge key by key, anything else replaces."""
    for key, value in layer.items():
        if not isinstance(key, str):
            raise ParamsError(f"{source}: {prefix}{key!r}: keys must be strings")
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            origin.setdefault(dotted, source)
            _merge(into[key], value, source, origin, dotted + ".")
            continue
        into[key] = _plain(value)
        for stale in [k for k in origin if k.startswith(dotted + ".")]:
            del origin[stale]
        origin[dotted] = source
        if isinstance(value, Mapping):
            _record(value, source, origin, dotted + ".")


def _record(layer: Mapping, source: str, origin: dict[str, str], prefix: str) -> None:
    for key, value in layer.items():
        origin[f"{prefix}{key}"] = source
        if isinstance(value, Mapping):
            _record(value, source, origin, f"{prefix}{key}.")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def source_of(dotted: str, origin: Mapping[str, str]) -> str:
    """The file (or flag) that set a key path, or that set its nearest parent."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        found = origin.get(".".join(parts[:end]))
        if found:
            return found
    return "params/base.yaml"


def _expand(node: Any, origin: Mapping[str, str], dotted: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values with the environment's values."""
    if isinstance(node, dict):
        return {k: _expand(v, origin, f"{dotted}.{k}" if dotted else k) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, origin, f"{dotted}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def lookup(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ParamsError(
                    f"{source_of(dotted, origin)}: {dotted}: environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}})"
                )
            return default
        return value

    expanded = _REF.sub(lookup, node)
    whole = _REF.fullmatch(node.strip())
    if whole:  # a value that is one reference keeps its YAML type: ${TIMEOUT:-600} is an int
        try:
            refuse_aliases(expanded, f"{source_of(dotted, origin)}: {dotted}: ${{{whole.group(1)}}}", lines=False)
            return yaml.load(expanded, Loader=_Loader) if expanded.strip() else None
        except yaml.YAMLError:
            return expanded
    return expanded


def _check_finite(node: Any, origin: Mapping[str, str], dotted: str = "") -> None:
    """Refuse NaN and infinity: YAML reads .nan and .inf as floats, and JSON (papermill, MLflow)
    has no such numbers, so they would reach a notebook as null."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_finite(v, origin, f"{dotted}.{k}" if dotted else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_finite(v, origin, f"{dotted}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ParamsError(f"{source_of(dotted, origin)}: {dotted}: {node!r} is not a finite number; "
                          "params take finite numbers only")


def _check_estimators(params: Mapping, origin: Mapping[str, str]) -> None:
    """Build every estimator the params name (without fitting), so that a class or hyperparameter
    typo is refused here, with a suggestion, and not in a kernel a minute later.

    scikit-learn is imported here, on first use: ``modelfactory --help`` stays light.
    """
    from modelfactory.core.modeling import check_estimators

    try:
        check_estimators(params)
    except ParamsError as exc:
        # modeling's messages start with the key path ("train.alpah: Ridge has no ..."); add the file.
        dotted = str(exc).split(":", 1)[0]
        raise ParamsError(f"{source_of(dotted, origin)}: {exc}") from None


def _check_contract(params: Mapping, origin: Mapping[str, str]) -> None:
    """Read and validate the data contract that ``data.contract`` declares, so a mistake in it is one
    line here rather than a failed stage; an inline contract's errors name the params file."""
    from modelfactory.core.contract import declared_contract

    try:
        declared_contract(params["data"])
    except ParamsError as exc:
        if isinstance(params["data"]["contract"], Mapping):
            raise ParamsError(f"{source_of('data.contract', origin)}: {exc}") from None
        raise


def _validate(merged: dict, origin: Mapping[str, str]) -> dict:
    from pydantic import ValidationError

    from modelfactory.schema import Params

    try:
        return Params.model_validate(merged).model_dump(mode="json")
    except ValidationError as exc:
        raise ParamsError(_explain(exc.errors()[0], origin)) from None


def _explain(error: Mapping, origin: Mapping[str, str]) -> str:
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _fields_at(loc[:-1])
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        tip = f"; did you mean '{hint[0]}'?" if hint else f"; known keys here: {', '.join(known)}"
        return f"{source_of(dotted, origin)}: {dotted}: unknown key{tip}"
    if kind == "missing":
        files = sorted({v for v in origin.values() if v.endswith(".yaml")})
        return f"{_model_file(origin)}: {dotted}: required value is missing (none of {', '.join(files)} sets it)"
    value = error.get("input")
    msg = error["msg"]
    if kind == "value_error":
        return f"{source_of(dotted, origin)}: {dotted}: {msg.removeprefix('Value error, ')}"
    shown = repr(value) if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"
    return f"{source_of(dotted, origin)}: {dotted or '(top level)'}: {msg[0].lower() + msg[1:]}, got {shown}"


def _model_file(origin: Mapping[str, str]) -> str:
    files = [v for v in origin.values() if v.endswith(".yaml")]
    models = [f for f in files if "/models/" in f]
    return (models or files or ["params/base.yaml"])[0]


def _fields_at(loc: list[str]) -> list[str]:
    from modelfactory.schema import Params

    cls: Any = Params
    for part in loc:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = field.annotation
    return sorted(getattr(cls, "model_fields", {}))


def _unknown(kind: str, name: str, known: list[str], where: str) -> str:
    hint = difflib.get_close_matches(name, known, n=1)
    tip = f"; did you mean '{hint[0]}'?" if hint else ""
    return f"unknown {kind} '{name}': {where} has {', '.join(known) or 'none'}{tip}"
