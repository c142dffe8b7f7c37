"""The monitor stage's helpers: the champion's reference, a window of scored rows, and the checks.

The drift arithmetic is core/drift.py's; this module finds what it compares (the champion's
``drift_reference.json``, read from the registry, and the scored rows of ``[since, until)``) and puts
the results in the shape of ``monitor.json``: breaches, verdict, metrics. How the report shows them
is ops/monitor_report.py's; what a result then sets off (a retraining run) is ops/retrain.py's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from modelfactory import paths
from modelfactory.errors import ParamsError, PipelineError

MONITOR_FILE = "monitor.json"


# -- the window ------------------------------------------------------------------------------------

def parse_time(text: str | datetime | date, key: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC when it names no zone) as an aware UTC datetime."""
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, date):
        moment = datetime(text.year, text.month, text.day)
    else:
        try:
            moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ParamsError(f"{key}: '{text}' is not an ISO date or date-time (e.g. 2026-11-30 or "
                              "2026-11-30T12:00)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def window_bounds(monitor: Mapping, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[since, until)`` from ``monitor.since`` / ``monitor.until``; absent, the last
    ``monitor.window_days`` days up to now (or up to ``until``)."""
    until = parse_time(monitor["until"], "monitor.until") if monitor.get("until") else (
        now or datetime.now(timezone.utc))
    since = (parse_time(monitor["since"], "monitor.since") if monitor.get("since")
             else until - timedelta(days=monitor["window_days"]))
    if since >= until:
        raise ParamsError(f"monitor.since {since.isoformat()} is not before monitor.until {until.isoformat()}")
    return since, until


def window_record(since: datetime, until: datetime) -> dict:
    """The window as monitor.json and the retrain trigger write it."""
    return {"since": since.isoformat(), "until": until.isoformat()}


def scored_folder(params: Mapping) -> Path:
    """Where the endpoint keeps the model's scored rows (date-partitioned Parquet)."""
    return paths.scored_data_dir(params["model"]["name"])


def read_scored(params: Mapping, since: datetime, until: datetime, columns: list[str]) -> pd.DataFrame:
    """Only ``columns`` of the rows scored in ``[since, until)``: what the plots and the labels'
    join need, never the whole window's every column (the checks stream it: ``check``)."""
    from modelfactory.core import drift

    return drift.read_window(scored_folder(params), since, until, columns)


# -- the champion ----------------------------------------------------------------------------------

def champion_reference(params: Mapping) -> dict:
    """The champion's version, its drift reference and the metrics it was judged on at training.

    Raises:
        ModelVersionError: the environment has no champion (one line, exit 2).
        PipelineError: the champion was trained before reference profiles were written.
    """
    from modelfactory.core.drift import REFERENCE_FILE
    from modelfactory.ops import registry
    from modelfactory.ops.serving.local import registered_model_dir

    import os

    from modelfactory.ops.serving.local import ModelVersionError

    # MLflow's download bar is noise in a stage's log and on the command's terminal
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        model_dir, version = registered_model_dir(params, None, registry.CHAMPION)
    except ModelVersionError:
        raise PipelineError(f"model {registry.registered_name(params)} has no champion to monitor; train one first: "
                            f"modelfactory run --model {params['model']['name']} --env {params['env']['name']}") from None
    path = model_dir / REFERENCE_FILE
    if not path.is_file():
        raise PipelineError(f"champion v{version} of {registry.registered_name(params)} has no {REFERENCE_FILE} (it "
                            f"was trained before monitoring existed); train a new one: modelfactory run --model "
                            f"{params['model']['name']} --env {params['env']['name']}")
    from modelfactory.core import contract

    reference = json.loads(path.read_text())
    held = contract.model_contract(model_dir)
    return {"version": version, "reference": reference, "data": reference.get("data"),
            "contract": contract.to_json(held) if held else None, "metrics": champion_metrics(params, version)}


def describe_champion(champion: Mapping, params: Mapping) -> str:
    """``penguins champion version 1, trained on penguins:1 (registered, hash f2a0c1d3e4b5)``."""
    data = champion.get("data") or {}
    what = data.get("uri") or data.get("name") or "data not recorded"
    source = ", ".join(x for x in (data.get("source"), f"hash {data['hash'][:12]}" if data.get("hash") else None) if x)
    return (f"{params['model']['name']} champion version {champion['version']}, trained on {what}"
            + (f" ({source})" if source else ""))


def champion_metrics(params: Mapping, version: str) -> dict[str, float]:
    """The holdout metrics of the run that registered ``version`` (its evaluate stage), from the run
    store; {} when that run is not on this machine (e.g. it ran on Azure ML)."""
    from modelfactory.ops import runs

    for manifest in runs.list_runs(params["model"]["name"]):
        gate = manifest.get("gate") or {}
        if manifest.get("env") == params["env"]["name"] and str(gate.get("version")) == str(version):
            metrics = manifest.get("headline_metrics") or {}
            return {k.removeprefix("holdout_"): v for k, v in metrics.items() if k.startswith("holdout_")}
    return {}


# -- the checks ------------------------------------------------------------------------------------

def read_labels(path: str | Path, id_column: str, target: str) -> pd.DataFrame:
    """A CSV or Parquet of request ids and true values; a missing file or column is one line."""
    file = Path(path)
    if not file.is_absolute():
        file = paths.project_root() / file
    if not file.is_file():
        raise ParamsError(f"monitor.labels: no file {path}")
    frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    missing = [c for c in (id_column, target) if c not in frame.columns]
    if missing:
        raise ParamsError(f"monitor.labels {path}: no column {missing[0]} (expected {id_column} and {target})")
    return frame[[id_column, *(["row"] if "row" in frame.columns else []), target]]


def live_performance(params: Mapping, since: datetime, until: datetime, labels: pd.DataFrame,
                     trained: Mapping) -> dict:
    """Labels joined to the scored rows; each metric live, at training, and against the gate's limits."""
    from modelfactory.core import drift

    window = read_scored(params, since, until, ["request_id", "row", "prediction"])
    joined, unmatched = drift.join_labels(window, labels)
    target, names = params["data"]["target"], params["evaluate"]["metrics"]
    live = drift.live_performance(joined, params["model"]["task"], names, target) if len(joined) else {}
    rows = []
    for name in names:
        limits = params["evaluate"]["gate"]["thresholds"].get(name) or {}
        value = live.get(name)
        low, high = limits.get("min"), limits.get("max")
        breached = value is not None and ((low is not None and value < low) or (high is not None and value > high))
        rows.append({"metric": name, "live": value, "training": trained.get(name), "min": low, "max": high,
                     "breached": bool(breached)})
    return {"labels": len(labels), "matched": len(joined), "unmatched": int(unmatched), "metrics": rows}


def check(champion: Mapping, params: Mapping, since: datetime, until: datetime,
          labels: pd.DataFrame | None = None) -> dict:
    """Everything monitor.json holds: drift per feature and of the predictions, data quality, live
    performance when labels are given, the breaches a retrain would answer, and the verdict.

    The window is streamed from its Parquet files into the checks (drift.check_folder): memory
    does not grow with the window."""
    from modelfactory.core import drift

    result = drift.check_folder(champion["reference"], scored_folder(params), since, until, params["monitor"],
                                champion["contract"])
    result = {"model": params["model"]["name"], "env": params["env"]["name"],
              "champion_version": champion["version"], "window": window_record(since, until), **result}
    result["performance"] = (live_performance(params, since, until, labels, champion["metrics"])
                             if labels is not None else None)
    result["breaches"] = breaches(result)
    result["verdict"] = verdict(result)
    return result


def breaches(result: Mapping) -> list[dict]:
    """What a retrain answers: each drifted feature, a drifted prediction, each live metric beyond
    the gate's limits; each with its metric, value, threshold and the window."""
    found = [{"kind": "drift", "feature": f["feature"], "metric": f["metric"], "value": f["value"],
              "threshold": f["threshold"], "window": result["window"]}
             for f in result.get("features", []) if f.get("drifted")]
    prediction = result.get("prediction")
    if prediction and prediction.get("drifted"):
        found.append({"kind": "prediction drift", "feature": "prediction", "metric": prediction["metric"],
                      "value": prediction["value"], "threshold": prediction["threshold"], "window": result["window"]})
    for row in (result.get("performance") or {}).get("metrics", []):
        if row["breached"]:
            limit = row["min"] if row["min"] is not None and row["live"] < row["min"] else row["max"]
            found.append({"kind": "performance", "feature": None, "metric": row["metric"], "value": row["live"],
                          "threshold": limit, "window": result["window"]})
    return found


def verdict(result: Mapping) -> str:
    """The drift verdict (core/drift.py's words), then any live metric beyond the gate's limits."""
    words = [result["verdict"]]
    for b in result.get("breaches", []):
        if b["kind"] == "performance":
            words.append(f"live {b['metric']} {b['value']:.3f} beyond the gate's {b['threshold']:g}")
    return "; ".join(words)


def metrics(result: Mapping) -> dict[str, float]:
    """The numbers MLflow and metrics.json keep: rows, drifted features, each feature's value."""
    found = {"rows": result["rows"], "drifted_features": len(result.get("drifted", []))}
    found.update({f"drift_{f['feature']}": f["value"] for f in result.get("features", []) if f.get("value") is not None})
    for row in (result.get("performance") or {}).get("metrics", []):
        if row["live"] is not None:
            found[f"live_{row['metric']}"] = row["live"]
    return found
