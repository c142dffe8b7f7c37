"""The model registry: candidates, the champion, promotion and rollback. One API, two backends.

Locally (SQLite store) the champion is the MLflow registry alias ``champion`` and the one before it
``previous-champion``. Azure ML's MLflow registry does not promise aliases, so every change is also
written as version tags (``role`` = champion / previous-champion / challenger / rejected), and
reads fall back to the tags when the alias API is refused. Promotion is compare-and-set: it only
happens if the champion is still the one the candidate was judged against, under a file lock when
the store is local, so two runs finishing at once never leave two champions, none, or a worse one.

Each environment has its own registered model, ``<model>-<env>`` (``registered_name``), so its own
versions, champion and history: a run in one environment is judged against, and can only replace,
that environment's champion. A version the gate rejected is never promoted or deployed unless a
person forces it, and the force is recorded as a tag on the version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone

from modelfactory import paths
from modelfactory.errors import PromotionError, RejectedVersionError

CHAMPION = "champion"
PREVIOUS = "previous-champion"
BY_HAND = ("run by hand, so the registry was left alone (set tracking.registry_by_hand: true, "
           "or MODELFACTORY_REGISTRY_BY_HAND=true, to register and promote from Jupyter)")


def registered_name(params: Mapping) -> str:
    """The registered model that holds one model's versions in one environment: ``<model>-<env>``."""
    return f"{params['model']['name']}-{params['env']['name']}"


def _client():
    import mlflow

    return mlflow.MlflowClient()


@contextlib.contextmanager
def registry_lock() -> Iterator[None]:
    """Serialise promotions of this project's local store across processes (the deploy stages of a
    factory's models run in separate kernels): a lock file next to the SQLite database."""
    import mlflow

    from modelfactory.ops.tracking import store_lock

    with store_lock(mlflow.get_tracking_uri(), "registry.lock"):  # a remote registry: compare-and-set is the guard
        yield


def version_with_role(name: str, role: str) -> str | None:
    """The version holding a role (alias first, tags as the fallback), or None."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        return str(client.get_model_version_by_alias(name, role).version)
    except MlflowException:
        pass
    try:
        found = client.search_model_versions(f"name = '{name}' and tag.role = '{role}'")
    except MlflowException:
        return None
    return max((str(v.version) for v in found), key=int, default=None)


def newest_version(name: str) -> str | None:
    """The most recently registered version of a model (whatever the gate said), or None."""
    from mlflow.exceptions import MlflowException

    try:
        found = _client().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    return max((str(v.version) for v in found), key=int, default=None)


def champion_version(name: str) -> str | None:
    """The current champion's version of a registered model, or None."""
    return version_with_role(name, CHAMPION)


def load_version(name: str, version: str | None):
    """A registered version as a scikit-learn object; None for None. Loaded like every other model
    (``tracking.load_model``): a file holding a type its MLmodel does not list is refused in one line."""
    from modelfactory.ops import tracking

    return None if version is None else tracking.load_model(f"models:/{name}/{version}")


def promote_candidate(name: str, verdict: Mapping, writes_registry: bool = True) -> dict:
    """The deploy stage's promotion: only a candidate the gate passed, judged against the current champion.

    Args:
        name: the registered model (``registered_name``).
        verdict: the evaluate stage's gate.json, with the registered ``version``.
        writes_registry: False for a notebook run by hand that was not asked to change the registry.
    """
    if not writes_registry or verdict.get("version") is None:
        return {"promoted": False, "champion": champion_version(name), "previous": version_with_role(name, PREVIOUS),
                "reason": f"not promoted: {BY_HAND}"}
    if not verdict["passed"]:
        return {"promoted": False, "champion": champion_version(name), "previous": version_with_role(name, PREVIOUS),
                "reason": f"not promoted: rejected by the gate ({verdict['reason']})"}
    expected = verdict["champion_version"]
    return promote(name, str(verdict["version"]), None if expected is None else str(expected))


def register_candidate(model_uri: str, name: str, decision: Mapping, writes_registry: bool = True) -> str | None:
    """Register a candidate with the gate's decision and reason as tags; return its version.

    With ``writes_registry`` False (a notebook run by hand, not asked to register) nothing is
    registered and None is returned.
    """
    import mlflow

    if not writes_registry:
        return None
    tags = {"role": "challenger" if decision["passed"] else "rejected",
            "gate": "passed" if decision["passed"] else "rejected",
            "gate_reason": decision["reason"][:5000],
            "judged_against": str(decision.get("champion_version") or "none")}
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def record_gate_decision(stage, checks, champion_version: str | None) -> dict:
    """The evaluate stage's decision, settled in one call: the gate decides on its checks, the
    candidate (train/model.json) is registered with the decision (unless run by hand and not asked),
    the decision is written to evaluate/gate.json and the stage's MLflow tags, and a rejection stops
    the stage when ``evaluate.gate.fail_on_reject`` says so.

    Args:
        stage: the evaluate stage (``ops.stage.Stage``).
        checks: the gate's checks (``gate.judge_candidate``).
        champion_version: the champion the candidate was judged against; None on the first run.

    Returns:
        The decision, ``version`` included (None when nothing was registered), shown as a table.
    """
    from modelfactory.core import gate
    from modelfactory.ops import render

    decision = gate.decide(checks, champion_version)
    model_uri = stage.load_json("train", "model.json")["model_uri"]
    decision["version"] = register_candidate(model_uri, registered_name(stage.params), decision, stage.writes_registry)
    stage.record_decision(decision, "gate.json")
    gate.enforce(decision, stage.params["evaluate"]["gate"]["fail_on_reject"])
    return render.Facts({k: v for k, v in decision.items() if k != "checks"})  # the checks are shown above


def _set_role(name: str, version: str, role: str) -> None:
    from mlflow.exceptions import MlflowException

    client = _client()
    for holder in client.search_model_versions(f"name = '{name}' and tag.role = '{role}'"):
        if holder.version != version:
            client.set_model_version_tag(name, holder.version, "role", "retired")
    client.set_model_version_tag(name, version, "role", role)
    try:
        client.set_registered_model_alias(name, role, version)
    except MlflowException:
        pass  # a registry without aliases: the tags above carry the role


def promote(name: str, version: str, expected_champion: str | None) -> dict:
    """Make ``version`` the champion, if the champion is still ``expected_champion``.

    The champion it replaces becomes ``previous-champion`` (what ``rollback`` returns to).

    Returns:
        ``{"promoted": bool, "champion": version, "previous": version or None, "reason": str}``.
    """
    with registry_lock():
        current = champion_version(name)
        if current != expected_champion:
            return {"promoted": False, "champion": current, "previous": version_with_role(name, PREVIOUS),
                    "reason": f"champion changed from {expected_champion} to {current} since the candidate "
                              "was judged; rerun evaluate to judge it against the new champion"}
        if current == version:
            return {"promoted": False, "champion": current, "previous": version_with_role(name, PREVIOUS),
                    "reason": f"version {version} already is the champion"}
        if current is not None:
            _set_role(name, current, PREVIOUS)
        _set_role(name, version, CHAMPION)
        return {"promoted": True, "champion": version, "previous": current,
                "reason": f"version {version} is champion" + (f"; {current} kept for rollback" if current else "")}


def gate_verdict(name: str, version: str | int) -> tuple[str, str]:
    """The gate's word on a registered version and its reason: ``("passed"|"rejected"|"none", reason)``."""
    from mlflow.exceptions import MlflowException

    try:
        found = _client().get_model_version(name, str(version))
    except MlflowException:
        raise PromotionError(f"model {name} has no version {version}") from None
    return found.tags.get("gate", "none"), found.tags.get("gate_reason", "")


def refuse_rejected(name: str, version: str | int, action: str, force: bool) -> bool:
    """Stop a person who would ``action`` (promote, deploy) a version the gate rejected, unless ``force``.

    Returns:
        True when the version was rejected and ``force`` lets it through (the caller records it).
    """
    verdict, reason = gate_verdict(name, version)
    if verdict != "rejected":
        return False
    if not force:
        raise RejectedVersionError(f"{name} version {version} was rejected by the gate ({reason[:200]}); "
                                   f"pass --force to {action} it anyway (the force is recorded on the version)")
    return True


def record_force(name: str, version: str | int, action: str, detail: str = "") -> str:
    """Tag a version that a person forced past the gate: ``forced_<action>`` = when (and where)."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    value = f"{stamp} {detail}".strip()
    _client().set_model_version_tag(name, str(version), f"forced_{action}", value)
    return value


def promote_by_hand(name: str, version: str | int, force: bool = False) -> dict:
    """``modelfactory promote``: a human's decision, so no gate; still one champion at a time.

    A version the gate rejected is refused unless ``force``; a forced promotion is tagged on the
    version (``forced_promote``) and said in the reason.
    """
    version = str(version)
    forced = refuse_rejected(name, version, "promote", force)
    result = promote(name, version, champion_version(name))
    if forced and result["promoted"]:
        record_force(name, version, "promote")
        result["reason"] += " (forced past the gate's rejection; recorded as tag forced_promote)"
    return result


def rollback(name: str) -> dict:
    """Make the previous champion the champion again (and the current one the previous)."""
    with registry_lock():
        previous, current = version_with_role(name, PREVIOUS), champion_version(name)
        if previous is None:
            raise PromotionError(f"model {name} has no previous champion to roll back to")
        _set_role(name, current, PREVIOUS)
        _set_role(name, previous, CHAMPION)
    return {"promoted": True, "champion": previous, "previous": current,
            "reason": f"rolled back: version {previous} is champion again; {current} kept as previous"}
