"""Scoring script for an Azure ML online endpoint (and the local copy of it).

The contract: ``init()`` runs once and loads the model from ``AZUREML_MODEL_DIR``; ``run(raw_data)``
gets the request body and returns a JSON-serialisable answer. This file is copied as-is into the
deployable package, so it imports nothing from modelfactory. Its settings (the row limit) come from
``serving.json`` beside it, written from params when the package is built.

Request:  {"input_data": {"columns": ["age", ...], "data": [[0.03, ...], ...]}}
Answer:   {"predictions": [151.2, ...]}
A client's mistake is answered with HTTP 400 and {"error": "<what is wrong, naming the column>"}.
"""

import atexit
import json
import math
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson  # parses a 1000-row request about 9x faster than the json module

model = None
columns = []  # [(name, type)] from the model's input signature
optional = set()  # the columns where null is accepted: the signature's optional ones (the pipeline imputes them)
known = {}  # column -> the categories the model knows, where its encoder refuses any other
max_rows = None
scored = None  # the ScoredDataWriter, when serving.json names a folder

DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
INTEGRAL = {"long", "integer"}
SHAPE = 'expected {"input_data": {"columns": [...], "data": [[...], ...]}}'
# An error names what is wrong, but never echoes a request back in full: a client can send a
# million column names, or one value of ten megabytes. Lists and values are cut to these sizes.
SHOWN_GIVEN = 5  # names the client sent (unknown columns)
SHOWN_EXPECTED = 50  # the model's own column names
SHOWN_CHARS = 60  # one name or one value


class BadRequest(ValueError):
    """A client's mistake: answered with HTTP 400, never 500."""


class ScoredDataWriter:
    """Keeps every scored row (inputs, prediction, model version, time, request id) as Parquet.

    ``run()`` only puts the request on a queue; a background thread writes a new file every
    ``flush_rows`` rows or ``flush_seconds`` seconds, to a hidden temporary name first and then
    renamed, so a file is either whole or absent. A crash or a kill loses at most the rows not yet
    flushed; it never leaves a half-written file or writes a row twice.
    """

    def __init__(self, folder, model_name, model_version, flush_rows, flush_seconds):
        self.folder, self.model_name, self.model_version = Path(folder), model_name, str(model_version)
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.queue = queue.SimpleQueue()
        self.columns = None  # the model's input columns, in the order every request's frame has them
        self.sequence = 0
        self.thread = threading.Thread(target=self._loop, name="scored-data", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def add(self, request_id, frame, predictions):
        """Queue one scored request (cheap: no I/O on the request path).

        Only plain arrays wait in the queue, not DataFrames: a second's worth of pending DataFrames
        is tens of thousands of objects for Python's garbage collector to walk on every request,
        which measurably slowed 1-row answers."""
        if self.columns is None:
            self.columns = list(frame.columns)
        self.queue.put((datetime.now(timezone.utc).replace(tzinfo=None), request_id, frame.to_numpy(),
                        np.asarray(predictions)))

    def _loop(self):
        # Wake a few times a second and drain the queue in bulk, rather than once per request:
        # fewer thread switches on the request path.
        pending, rows, last = [], 0, time.monotonic()
        pause = min(0.05, self.flush_seconds)
        while True:
            time.sleep(pause)
            closing = False
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # close() asked us to finish
                    closing = True
                    break
                pending.append(item)
                rows += len(item[2])
            if closing:
                self._write(pending)
                return
            if pending and (rows >= self.flush_rows or time.monotonic() - last >= self.flush_seconds):
                self._write(pending)
                pending, rows, last = [], 0, time.monotonic()

    def _write(self, pending):
        if not pending:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        sizes = [len(p[2]) for p in pending]
        total = sum(sizes)
        # One Arrow table per flush, built from stacked arrays: cheap however many requests are pending.
        values = np.vstack([p[2] for p in pending])
        columns = {
            "scored_at": pa.array(np.repeat(np.array([p[0] for p in pending], dtype="datetime64[us]"), sizes),
                                  pa.timestamp("us", tz="UTC")),
            "request_id": np.repeat(np.array([p[1] for p in pending], dtype=object), sizes),
            "row": np.concatenate([np.arange(n) for n in sizes]),
            "model": np.full(total, self.model_name, dtype=object),
            "model_version": np.full(total, self.model_version, dtype=object),
        }
        for i, name in enumerate(self.columns):
            columns[name] = values[:, i]
        columns["prediction"] = np.concatenate([p[3] for p in pending])
        table = pa.table(columns)
        day = pending[0][0].strftime("%Y-%m-%d")
        target_dir = self.folder / f"date={day}"
        target_dir.mkdir(parents=True, exist_ok=True)
        self.sequence += 1
        name = f"part-{os.getpid()}-{time.time_ns()}-{self.sequence:06d}.parquet"
        tmp = target_dir / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target_dir / name)

    def close(self):
        """Write what is queued and stop (runs at interpreter exit, e.g. on the server's SIGTERM)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout=30)


class AzureDataCollector:
    """On an Azure ML managed online endpoint with data collection on, scored rows go to Azure ML's
    data collector (azureml-ai-monitoring) instead of local Parquet: the model_inputs and
    model_outputs collections, joined by the request id. The collector queues in memory and a
    thread of its own sends to the deployment's collection sidecar, so the answer does not wait."""

    def __init__(self):
        import logging

        from azureml.ai.monitoring import Collector

        log = logging.getLogger("modelfactory.scored-data")
        self.inputs = Collector(name="model_inputs", on_error=lambda exc: log.warning("model_inputs: %s", exc))
        self.outputs = Collector(name="model_outputs", on_error=lambda exc: log.warning("model_outputs: %s", exc))
        atexit.register(self.close)

    def add(self, request_id, frame, predictions):
        import pandas as pd
        from azureml.ai.monitoring.context import BasicCorrelationContext

        context = self.inputs.collect(frame, BasicCorrelationContext(id=request_id))
        self.outputs.collect(pd.DataFrame({"prediction": predictions}), context)

    def close(self):
        """Send what is still queued (runs at interpreter exit, like the Parquet writer's close)."""
        from azureml.ai.monitoring.init import teardown

        teardown(wait_for_flush=True)


def azure_data_collection_on() -> bool:
    """Azure ML sets these in a deployment whose data_collector is enabled."""
    return bool(os.environ.get("AZUREML_MDC_CONFIG_PATH")) or os.environ.get("AZUREML_MDC_ENABLED", "").lower() == "true"


def _find_model_dir(root: Path) -> Path:
    """Azure mounts the model under AZUREML_MODEL_DIR/<name>/...; find the folder with MLmodel."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(root.rglob("MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLmodel file under AZUREML_MODEL_DIR={root}")
    return found[0].parent


def init():
    """Load the model and its input signature once, when the server starts."""
    global model, columns, optional, known, max_rows, scored
    import mlflow.pyfunc
    from skops.io.exceptions import UntrustedTypesFoundException

    model_dir = _find_model_dir(Path(os.environ["AZUREML_MODEL_DIR"]))
    try:  # skops trusts only the types listed in the model's MLmodel, recorded when it was trained
        model = mlflow.pyfunc.load_model(str(model_dir))
    except UntrustedTypesFoundException as exc:
        raise RuntimeError(f"refused to load the model in {model_dir}: {str(exc).splitlines()[0].rstrip('.')}, "
                           "which its MLmodel does not list in skops_trusted_types") from None
    schema = model.metadata.get_input_schema()
    columns = [(spec.name, spec.type.name) for spec in schema.inputs] if schema else []
    optional = {spec.name for spec in schema.inputs if not spec.required} if schema else set()
    known = refused_unknowns(model.get_raw_model())
    settings_file = Path(__file__).with_name("serving.json")
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    max_rows = settings.get("max_rows")
    store = settings.get("scored_data") or {}
    if azure_data_collection_on():
        scored = AzureDataCollector()
    elif store.get("dir"):
        scored = ScoredDataWriter(store["dir"], settings.get("model"), settings.get("model_version"),
                                  store["flush_rows"], store["flush_seconds"])


def refused_unknowns(raw_model):
    """Column -> the categories a scikit-learn pipeline knows, for each column whose one-hot encoder
    refuses a category it did not see in training (``handle_unknown='error'``, params' ``refuse``).
    Read from the fitted model itself, so it holds exactly what training saw."""
    steps = dict(getattr(raw_model, "steps", []))
    found = {}
    for _, step, names in getattr(steps.get("preprocess"), "transformers_", []):
        encoders = [s for _, s in getattr(step, "steps", [])] or [step]
        for encoder in encoders:
            if getattr(encoder, "handle_unknown", None) == "error" and hasattr(encoder, "categories_"):
                found.update({name: set(cats.tolist()) for name, cats in zip(names, encoder.categories_)})
    return found


def parse_request(raw_data):
    """Turn a request body into a DataFrame in the signature's column order, or raise BadRequest."""
    import pandas as pd

    if isinstance(raw_data, bytes):
        raw_data = raw_data.decode("utf-8", errors="replace")
    if raw_data is None or (isinstance(raw_data, str) and not raw_data.strip()):
        raise BadRequest(f"empty request body; {SHAPE}")
    if isinstance(raw_data, str):
        try:
            payload = orjson.loads(raw_data)  # strict JSON: NaN and Infinity are malformed
        except orjson.JSONDecodeError as exc:
            where = f"at line {exc.lineno} column {exc.colno}"
            word = next((w for w in ("NaN", "Infinity", "-Infinity") if raw_data.startswith(w, exc.pos)), None)
            if word:  # Python's json.dumps writes these by default; JSON has no such numbers
                raise BadRequest(f"malformed JSON: {word} {where} is not a JSON number") from None
            raise BadRequest(f"malformed JSON: {exc.msg} {where}") from None
        # JSON booleans are the one value numpy would quietly take as a number (true -> 1.0).
        may_hold_booleans = "true" in raw_data or "false" in raw_data
    else:
        payload, may_hold_booleans = raw_data, True
    body = payload.get("input_data") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("columns"), list) or not isinstance(body.get("data"), list):
        raise BadRequest(SHAPE)
    given = body["columns"]
    if not all(isinstance(c, str) for c in given):
        raise BadRequest("input_data.columns must be a list of column names (strings)")
    expected = [name for name, _ in columns]
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing:
        raise BadRequest(f"missing column(s): {_names(missing, SHOWN_EXPECTED)}")
    if extra:
        raise BadRequest(f"unknown column(s): {_names(extra, SHOWN_GIVEN)}; "
                         f"the model takes {_names(expected, SHOWN_EXPECTED)}")
    if len(set(given)) != len(given):
        raise BadRequest("a column appears twice in input_data.columns")
    rows = body["data"]
    if not rows:
        raise BadRequest("input_data.data has no rows")
    if max_rows is not None and len(rows) > max_rows:
        raise BadRequest(f"{len(rows)} rows in one request; the limit is {max_rows}")
    # The fast path checks only that numbers are numbers: categories to refuse need the slow one.
    fast = None if may_hold_booleans or known else _fast_frame(rows, given, expected)
    if fast is not None:
        return fast
    types = dict(columns)
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(given):
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(f"row {number}: expected a list of {len(given)} values, got {size}")
        for name, value in zip(given, row):
            if value is None:
                if name in optional:  # the model's pipeline fills it in
                    continue
                raise BadRequest(f"row {number}, column '{name}': a value is required, got null")
            kind = types[name]
            if kind == "string" and not isinstance(value, str):
                raise BadRequest(f"row {number}, column '{name}': expected a string, got {_clip(json.dumps(value))}")
            if name in known and value not in known[name]:
                raise BadRequest(f"row {number}, column '{name}': unknown category {_clip(json.dumps(value))}; the model "
                                 f"knows {_names(sorted(map(str, known[name])), SHOWN_EXPECTED)}")
            if kind == "boolean" and not isinstance(value, bool):
                raise BadRequest(f"row {number}, column '{name}': expected true or false, got {_clip(json.dumps(value))}")
            if kind in DTYPES and (isinstance(value, bool) or not isinstance(value, (int, float))
                                   or not math.isfinite(value)):
                raise BadRequest(f"row {number}, column '{name}': expected a number, got {_clip(json.dumps(value))}")
            if kind in INTEGRAL and not float(value).is_integer():
                raise BadRequest(f"row {number}, column '{name}': expected a whole number, got {_clip(json.dumps(value))}")
    return pd.DataFrame(rows, columns=given)[expected].astype({n: DTYPES[t] for n, t in columns if t in DTYPES})


def _clip(text):
    """A name or value short enough for an error message."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _names(names, shown):
    """The first ``shown`` names, and how many more there are."""
    listed = ", ".join(_clip(str(n)) for n in names[:shown])
    return listed if len(names) <= shown else f"{listed} and {len(names) - shown} more"


def _fast_frame(rows, given, expected):
    """The common case, checked and converted by numpy in one pass: every column a float, every value
    a finite number, no booleans (the caller looked). Returns None when anything is unusual, and the
    slow path then names the problem (a string, a null or a short row makes numpy infer another
    dtype or fail)."""
    import pandas as pd

    if any(t != "double" for _, t in columns):
        return None
    try:
        values = np.array(rows)
    except ValueError:  # rows of different lengths
        return None
    if values.dtype.kind not in "fi" or values.ndim != 2 or values.shape[1] != len(given):
        return None
    values = values.astype("float64", copy=False)
    if not np.isfinite(values).all():
        return None
    if given != expected:
        values = values[:, [given.index(name) for name in expected]]
    return pd.DataFrame(values, columns=expected)


def run(raw_data, request_headers=None):
    """Score one request; a bad request gets HTTP 400 with a message naming the problem."""
    try:
        frame = parse_request(raw_data)
    except BadRequest as exc:
        return _bad_request(str(exc))
    values = np.asarray(model.predict(frame))
    if scored is not None:
        headers = {k.lower(): v for k, v in (request_headers or {}).items()}
        request_id = headers.get("x-ms-request-id") or headers.get("x-request-id") or str(uuid.uuid4())
        scored.add(request_id, frame, values)
    return {"predictions": values.tolist()}


def _bad_request(message):
    try:
        from azureml_inference_server_http.api.aml_response import AMLResponse
    except ImportError:  # scored in-process without the server installed
        return {"error": message, "status": 400}
    return AMLResponse({"error": message}, 400, json_str=True)
