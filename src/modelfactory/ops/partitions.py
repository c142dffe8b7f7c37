"""One model per partition: a params file with ``data.partition_by`` becomes one model per key.

A partition has two names:

- its display name, ``sales/store=3,product=B``: the params file's model, then each key column and
  value in ``data.partition_by`` order. It is what a person types and reads, and it maps back to
  the key exactly;
- its model name, ``sales--store-3--product-b``: the display name lowercased, with every run of
  characters other than letters, digits and ``_`` turned into ``-``, key and value joined by ``-``
  and pairs by ``--``. It is what ``params.model.name`` holds in the partition's run, so everything
  keyed by the model's name is per partition with no other change: its run folders, its registered
  model ``<model name>-<env>`` in MLflow and on Azure ML (whose model names take letters, digits,
  ``-``, ``_`` and ``.``), its champion and gate, and its endpoint names.

Why a registered model per partition, not one registered model with partition tags: a champion is
an alias of one registered model, so one registered model would have one champion for every
partition, and promotion, rollback and the gate's "beat the champion" would need a tag filter
everywhere they look one up. A name per partition keeps every lifecycle command unchanged.

``expand`` is pure: it takes the dataset's distinct keys and row counts (read by
``sources.partition_counts``) and returns one resolved params dict per partition, with the key in
``data.partition`` (the explore stage reads only those rows, core/data.py). A partition with fewer
rows than ``data.checks.min_rows`` is skipped, and listed, rather than trained and failed.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelfactory.errors import ParamsError

DISPLAY_SEPARATOR = "/"
SLUG_SEPARATOR = "--"
_UNSAFE = re.compile(r"[^a-z0-9_]+")
HASH_CHARS = 6      # a shortened name ends in this many hex digits of the whole name's hash


@dataclass(frozen=True)
class Skipped:
    """A partition that is not trained, and why."""

    display: str
    rows: int
    reason: str


@dataclass
class Expansion:
    """What one partitioned model expands to: each partition's params, and the partitions skipped."""

    params: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def display_name(model: str, key: Mapping) -> str:
    """``sales/store=3,product=B``: the name a person reads, in ``data.partition_by`` order."""
    return model + DISPLAY_SEPARATOR + ",".join(f"{column}={value}" for column, value in key.items())


def partition_name(model: str, key: Mapping) -> str:
    """``sales--store-3--product-b``: the partition's model name (a valid ``model.name``, MLflow and
    Azure ML model name)."""
    return SLUG_SEPARATOR.join([model, *(f"{_slug(column)}-{_slug(value)}" for column, value in key.items())])


def _slug(value) -> str:
    return _UNSAFE.sub("-", str(value).lower()).strip("-") or "x"   # "x": a value of punctuation only


def parse_name(name: str) -> tuple[str, dict[str, str] | None]:
    """Split a partition's name into the params file's model and, for a display name, its key.

    ``sales/store=3,product=B`` gives ``("sales", {"store": "3", "product": "B"})`` (values as text),
    ``sales--store-3--product-b`` gives ``("sales", None)``, and a plain model name ``(name, None)``.
    """
    if DISPLAY_SEPARATOR in name:
        model, _, rest = name.partition(DISPLAY_SEPARATOR)
        key: dict[str, str] = {}
        for pair in rest.split(","):
            column, sep, value = pair.partition("=")
            if not sep or not column.strip() or column.strip() in key:
                raise ParamsError(f"--model {name}: expected MODEL/COLUMN=VALUE,COLUMN=VALUE "
                                  "(e.g. sales/store=3,product=B)")
            key[column.strip()] = value.strip()
        return model, key
    return name.split(SLUG_SEPARATOR, 1)[0], None


def is_partition_name(name: str) -> bool:
    """Whether ``name`` names a partition (display or model name) rather than a params file's model."""
    return DISPLAY_SEPARATOR in name or SLUG_SEPARATOR in name


def belongs_to(model_name: str, asked: str) -> bool:
    """Whether a run's model name is ``asked`` itself or, when ``asked`` is a partitioned model
    (``sales``), one of its partitions; a display name is matched by its model name."""
    if DISPLAY_SEPARATOR in asked:
        model, key = parse_name(asked)
        asked = partition_name(model, key)
    return model_name == asked or model_name.startswith(asked + SLUG_SEPARATOR)


def fit_name(name: str, limit: int) -> str:
    """``name`` if it has at most ``limit`` characters, else its start plus a short hash of the whole.

    Azure ML endpoint names take 3-32 characters; a partition's ``<model name>-<env>`` is often longer.
    The hash keeps two long names that share their start apart, and the same name always maps the same.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_CHARS]
    return f"{name[:limit - HASH_CHARS - 1].rstrip('-')}-{digest}"


def expand(model: str, resolved: Mapping, counts: Sequence[tuple[Mapping, int]]) -> Expansion:
    """One resolved params dict per partition of ``model``; small partitions are skipped.

    Args:
        model: the params file's model (``sales``).
        resolved: its resolved params, with ``data.partition_by`` set.
        counts: each distinct key of the dataset (``{column: value}`` in ``partition_by`` order) and
            its row count, as ``sources.partition_counts`` reads them.

    Returns:
        Each partition's params (``model.name`` its model name, ``data.partition`` its key), in key
        order, and the partitions skipped: fewer rows than ``data.checks.min_rows``, or a key value
        missing (such rows belong to no partition).

    Raises:
        ParamsError: two keys give the same model name (e.g. values ``B`` and ``b``).
    """
    by = list(resolved["data"]["partition_by"])
    min_rows = resolved["data"]["checks"]["min_rows"]
    result = Expansion()
    seen: dict[str, str] = {}
    for key, rows in sorted(counts, key=lambda item: [str(item[0][c]) for c in by]):
        key = {column: _plain(key[column]) for column in by}
        display = display_name(model, key)
        if any(value is None for value in key.values()):
            result.skipped.append(Skipped(display, rows, "a key column is empty in these rows"))
            continue
        if rows < min_rows:
            result.skipped.append(Skipped(display, rows, f"{rows} rows, fewer than data.checks.min_rows ({min_rows})"))
            continue
        name = partition_name(model, key)
        if name in seen:
            raise ParamsError(f"data.partition_by: partitions {seen[name]} and {display} would share the model "
                              f"name {name}; make the key values differ by more than case or punctuation")
        seen[name] = display
        params = copy.deepcopy(dict(resolved))
        params["model"]["name"] = name
        params["data"]["partition"] = key
        result.params.append(params)
    return result


def _plain(value):
    """A key value as JSON and YAML carry it: numbers and text stay, anything else (dates) is text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    return str(value)


def select(expansion: Expansion, model: str, asked: str) -> Expansion:
    """The one partition that ``asked`` names (display or model name), from ``model``'s expansion.

    Raises:
        ParamsError: no such partition, or the one named is skipped (one line with why).
    """
    _, key = parse_name(asked)
    wanted = asked if key is None else None
    for params in expansion.params:
        if params["model"]["name"] == wanted or (key is not None and _same_key(params["data"]["partition"], key)):
            return Expansion([params], [])
    for skipped in expansion.skipped:
        if (key is not None and skipped.display == display_name(model, key)) or (
                wanted and partition_name(*parse_name(skipped.display)) == wanted):
            raise ParamsError(f"--model {asked}: partition {skipped.display} is skipped: {skipped.reason}")
    shown = ", ".join(display_name(model, p["data"]["partition"]) for p in expansion.params[:3])
    raise ParamsError(f"--model {asked}: {model} has no such partition (it has {len(expansion.params)}, "
                      f"e.g. {shown})")


def _same_key(key: Mapping, asked: Mapping[str, str]) -> bool:
    return list(key) == list(asked) and all(str(key[c]) == asked[c] for c in key)


def skipped_lines(skipped: Sequence[Skipped]) -> list[str]:
    """The console's lines about skipped partitions (none when nothing was skipped)."""
    if not skipped:
        return []
    return [f"skipped {len(skipped)} partition(s), not trained:"] + [f"  {s.display}: {s.reason}" for s in skipped]


def resolve_named(name: str, env: str | None = None, overrides: Sequence[str] = (), params_file=None,
                  training_checks: bool = True) -> dict:
    """Resolve the params of a model, or of one partition by its display or model name.

    A partition's params are its model's, with ``model.name`` the partition's model name (so the
    registry, champion and endpoint commands find its own) and, for a display name, ``data.partition``
    its key. No data is read: the lifecycle commands (champion, serve, score) need the name only.
    """
    from modelfactory import params as params_mod

    if params_file is not None or not is_partition_name(name) or name in params_mod.list_models():
        return params_mod.resolve(name, env, overrides, params_file, training_checks)
    model, key = parse_name(name)
    resolved = params_mod.resolve(model, env, overrides, None, training_checks)
    by = resolved["data"]["partition_by"]
    if not by:
        raise ParamsError(f"--model {name}: params/models/{model}.yaml has no data.partition_by, so {model} has "
                          "no partitions")
    if key is not None and list(key) != list(by):
        raise ParamsError(f"--model {name}: a partition of {model} names {', '.join(by)} in that order "
                          f"(data.partition_by), e.g. {display_name(model, {c: '...' for c in by})}")
    resolved["model"]["name"] = partition_name(model, key) if key is not None else name
    if key is not None:  # as typed: the data's own types are known only when a run reads it (plan)
        resolved["data"]["partition"] = dict(key)
    return resolved


def plan(name: str, env: str | None = None, overrides: Sequence[str] = (), params_file=None,
         training_checks: bool = True) -> Expansion:
    """The params of every model a ``run --model`` names: one for a plain model or a run's params
    file, each partition for a partitioned model, one for a partition's name. The dataset's distinct
    keys and row counts are read here (only its key columns), before any kernel starts.
    ``training_checks`` as in params.resolve (False: no scikit-learn import, for a cached rerun)."""
    from modelfactory import params as params_mod
    from modelfactory.core import sources

    if params_file is not None:  # a run's params.yaml: already one partition's, data.partition included
        return Expansion([params_mod.resolve(name, env, overrides, params_file, training_checks)])
    model = name if name in params_mod.list_models() or not is_partition_name(name) else parse_name(name)[0]
    resolved = params_mod.resolve(model, env, overrides, None, training_checks)
    if not resolved["data"]["partition_by"]:
        if model != name:
            raise ParamsError(f"--model {name}: params/models/{model}.yaml has no data.partition_by, so {model} "
                              "has no partitions")
        return Expansion([resolved])
    expansion = expand(model, resolved, sources.partition_counts(resolved["data"]))
    return expansion if model == name else select(expansion, model, name)
