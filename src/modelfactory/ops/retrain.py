"""The monitoring workflow: `modelfactory monitor` (and `run --pipeline monitoring`), then the
retrain trigger.

Before any kernel starts, each model's champion is looked up (no champion: one line, exit 2) and
the window is fixed, so the monitor notebook and the trigger speak of the same ``[since, until)``.
The monitoring pipeline runs through the runner like any other. Then, for each run whose
``monitor.json`` lists breaches while ``monitor.on_drift`` is ``retrain``, the training pipeline
runs in this process through the same runner, on the newest registered version of the model's
data; the champion gate decides as always. The trigger's reason goes into the new run's manifest
(``trigger``) and onto its MLflow parent run as tags; the windows already answered are kept in
``runs/monitor/triggers.json``, so a window is retrained at most once however often it is checked.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from modelfactory import params as params_mod
from modelfactory import paths
from modelfactory.ops import runs

TRIGGERS = "triggers.json"


def triggers_file() -> Path:
    """Where the windows that started a retrain are kept: ``runs/monitor/triggers.json``."""
    return paths.runs_dir() / "monitor" / TRIGGERS


def window_key(result: Mapping) -> str:
    """One key per model, environment and window."""
    window = result["window"]
    return f"{result['model']}/{result['env']}/{window['since']}/{window['until']}"


def claim_window(result: Mapping, monitor_run: str) -> dict | None:
    """Record that ``monitor_run`` retrains this window; None when an earlier monitor run already
    did (the claim is made under a file lock, so two monitors at once start one retrain)."""
    path = triggers_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = json.loads(path.read_text()) if path.is_file() else {}
        key = window_key(result)
        if key in known:
            return None
        known[key] = {"monitor_run": monitor_run, "claimed": runs.now()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2))
        os.replace(tmp, path)
        return known[key]


def trigger_reason(result: Mapping, monitor_run: str) -> dict:
    """The trigger block of the new run's manifest: the first breach (metric, feature, value,
    threshold, window), how many there were, and the monitor run that found them."""
    first = result["breaches"][0]
    return {"monitor_run": monitor_run, "champion_version": result.get("champion_version"),
            "kind": first["kind"], "metric": first["metric"], "feature": first["feature"],
            "value": first["value"], "threshold": first["threshold"], "window": result["window"],
            "breaches": len(result["breaches"]), "verdict": result["verdict"]}


def newest_data(params: Mapping) -> list[str]:
    """The override that trains on the newest registered version of the model's data (none for
    data that is not in the registry: it is read as it is now)."""
    from modelfactory.ops import data_registry

    if params["data"]["source"] != "registered":
        return []
    name = params["data"]["dataset"].split(":", 1)[0]
    return [f"data.dataset={name}:{data_registry.find_version(name, 'latest')['version']}"]


def window_overrides(monitor: Mapping) -> list[str]:
    """``monitor.since`` / ``monitor.until`` fixed now: the notebook and the trigger use one window."""
    from modelfactory.ops.monitor import window_bounds

    since, until = window_bounds(monitor)
    return [f"monitor.since={json.dumps(since.isoformat())}", f"monitor.until={json.dumps(until.isoformat())}"]


def run_monitoring(requests: Sequence, argv: Sequence[str] = (), say: Callable[[str], None] = print,
                   progress: bool = False) -> int:
    """Check every model's champion, run the monitoring pipeline, then retrain where asked."""
    from modelfactory.ops.monitor import champion_reference, read_labels
    from modelfactory.ops.runner import run_pipeline

    for req in requests:  # every user error is one line here, before any kernel starts
        resolved = params_mod.resolve(req.model, req.env, req.overrides, req.params_file)
        fixed = window_overrides(resolved["monitor"])  # a bad --since/--until
        if resolved["monitor"]["labels"]:  # a missing labels file, or one without request_id or the target
            read_labels(resolved["monitor"]["labels"], "request_id", resolved["data"]["target"])
        champion_reference(resolved)  # no champion, or one without a reference
        req.overrides = [*req.overrides, *fixed]
    known = {m["run_id"] for m in runs.list_runs()}
    code = run_pipeline(requests, "monitoring", argv, say, progress)
    if code:
        return code
    for manifest in reversed([m for m in runs.list_runs() if m["run_id"] not in known]):
        code = retrain_if_asked(manifest, argv, say, progress) or code
    return code


def retrain_if_asked(manifest: Mapping, argv: Sequence[str], say: Callable[[str], None], progress: bool) -> int:
    """Start the training pipeline for a monitor run's breaches when ``monitor.on_drift`` says so."""
    from modelfactory.ops.monitor import MONITOR_FILE
    from modelfactory.ops.runner import RunRequest, run_pipeline

    folder = Path(manifest["_dir"])
    result_file = runs.stage_dir(folder, "monitor") / MONITOR_FILE
    if manifest.get("status") != runs.SUCCEEDED or not result_file.is_file():
        return 0
    result = json.loads(result_file.read_text())
    params = _read_params(folder)
    if params["monitor"]["on_drift"] != "retrain" or not result.get("breaches"):
        return 0
    claimed = claim_window(result, manifest["run_id"])
    if claimed is None:
        say(f"retrain: window {result['window']['since']} to {result['window']['until']} of {result['model']} was "
            "already answered by an earlier monitor run; no new training run")
        return 0
    trigger = trigger_reason(result, manifest["run_id"])
    say(f"retrain: {trigger['kind']} in {trigger['feature'] or trigger['metric']} ({trigger['metric']} "
        f"{trigger['value']:.3g}, threshold {trigger['threshold']:g}); starting the training pipeline")
    request = RunRequest(result["model"], result["env"], newest_data(params), trigger=trigger)
    before = {m["run_id"] for m in runs.list_runs(result["model"])}
    code = run_pipeline([request], "training", argv, say, progress)
    for new in runs.list_runs(result["model"]):
        if new["run_id"] not in before and new.get("trigger"):
            tag_trigger(params, Path(new["_dir"]), trigger)
    return code


def _read_params(folder: Path) -> dict:
    from modelfactory.yamlfile import read_yaml

    return read_yaml(runs.params_file(folder))


def trigger_tags(trigger: Mapping) -> dict[str, str]:
    """The trigger as MLflow tags (``trigger.metric``, ``trigger.feature``, ...)."""
    flat = {k: v for k, v in trigger.items() if k != "window"}
    flat.update({"window_since": trigger["window"]["since"], "window_until": trigger["window"]["until"]})
    return {f"trigger.{k}": str(v) for k, v in flat.items()}


def tag_trigger(params: Mapping, run_dir: Path, trigger: Mapping) -> None:
    """Put the trigger's reason on the training run's MLflow parent run."""
    import mlflow

    from modelfactory.ops.tracking import RUN_FILE, tracking_uri

    record = run_dir / RUN_FILE
    if not record.is_file():
        return
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(params))
    parent = json.loads(record.read_text())["parent_run_id"]
    for key, value in trigger_tags(trigger).items():
        client.set_tag(parent, key, value[:5000])
