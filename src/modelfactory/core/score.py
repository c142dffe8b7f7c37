"""Scoring script for an Azure ML online endpoint (and the local copy of it).

The contract: ``init()`` runs once and loads the model from ``AZUREML_MODEL_DIR``; ``run(raw_data)``
gets the request body and returns a JSON-serialisable answer. This file is copied as-is into the
deployable package, so it imports nothing from modelfactory. Its settings (the row limit) come from
``serving.json`` beside it, written from params when the package is built, and the rows it takes
from ``contract.json``, the model's data contract (modelfactory/contract.py says what each rule
means; ``compile_contract`` turns it into plain checks here, without pandera, and a test holds
these checks to the pandera schema's answers row by row). A package without contract.json (a
model logged before contracts) is held to its MLflow signature instead.

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
import pandas as pd

model = None
columns = []  # the model's input columns, in its signature's order: the order of the frame it is given
rules = []  # one Rule per column: the data contract, compiled
strict = True  # refuse columns the contract does not name (else they are dropped)
casts = {}  # column -> the dtype the model's signature takes it in (integers stay integers)
numeric_only = False  # every column a number or an integer: requests may take the numpy fast path
lower = upper = whole = None  # the fast path's per-column bounds and integer mask (arrays)
unique = []  # positions of the columns whose values must not repeat
max_rows = None
scored = None  # the ScoredDataWriter, when serving.json names a folder
direct = None  # a scikit-learn model's own predict function, for frames the numpy fast path built

DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
SIGNATURE_DTYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
                    "string": "string", "boolean": "boolean"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")  # bodies the server parses away
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
    """Load the model, its input signature and its data contract once, when the server starts."""
    global model, max_rows, scored, direct
    import mlflow.pyfunc
    from skops.io.exceptions import UntrustedTypesFoundException

    model_dir = _find_model_dir(Path(os.environ["AZUREML_MODEL_DIR"]))
    try:  # skops trusts only the types listed in the model's MLmodel, recorded when it was trained
        model = mlflow.pyfunc.load_model(str(model_dir))
    except UntrustedTypesFoundException as exc:
        raise RuntimeError(f"refused to load the model in {model_dir}: {str(exc).splitlines()[0].rstrip('.')}, "
                           "which its MLmodel does not list in skops_trusted_types") from None
    schema = model.metadata.get_input_schema()
    signature = [(spec.name, spec.type.name) for spec in schema.inputs] if schema else []
    contract_file = Path(__file__).with_name("contract.json")
    if contract_file.is_file():
        contract = json.loads(contract_file.read_text())
    else:
        optional = {spec.name for spec in schema.inputs if not spec.required} if schema else set()
        contract = signature_contract(signature, optional, refused_unknowns(model.get_raw_model()))
    compile_contract(contract, signature)
    direct = direct_predict(model)
    settings_file = Path(__file__).with_name("serving.json")
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    max_rows = settings.get("max_rows")
    store = settings.get("scored_data") or {}
    if azure_data_collection_on():
        scored = AzureDataCollector()
    elif store.get("dir"):
        scored = ScoredDataWriter(store["dir"], settings.get("model"), settings.get("model_version"),
                                  store["flush_rows"], store["flush_seconds"])


class Rule:
    """One column's part of the data contract, as plain Python checks of one JSON value."""

    def __init__(self, name, spec):
        self.name, self.dtype = name, spec["dtype"]
        self.nullable, self.unique = bool(spec.get("nullable")), bool(spec.get("unique"))
        self.min, self.max = spec.get("min"), spec.get("max")
        self.categories = set(spec["categories"]) if spec.get("categories") else None
        self.shown_categories = _names(sorted(map(str, spec.get("categories") or [])), SHOWN_EXPECTED)
        self.numeric = self.dtype in ("number", "integer")

    def problem(self, value):
        """What is wrong with one value, or None."""
        if value is None or (type(value) is float and value != value):  # null: None, or NaN
            return None if self.nullable else "a value is required, got null"
        if self.numeric:
            try:
                real = type(value) is not bool and isinstance(value, (int, float)) and math.isfinite(value)
            except OverflowError:  # an integer too large for a float
                real = False
            if not real:
                return f"expected a number, got {_shown(value)}"
            if self.dtype == "integer" and not float(value).is_integer():
                return f"expected a whole number, got {_shown(value)}"
            if self.min is not None and value < self.min:
                return f"{_shown(value)} is below the minimum {self.min:g}"
            if self.max is not None and value > self.max:
                return f"{_shown(value)} is above the maximum {self.max:g}"
            return None
        if self.dtype == "string":
            return None if isinstance(value, str) else f"expected a string, got {_shown(value)}"
        if self.dtype == "boolean":
            return None if type(value) is bool else f"expected true or false, got {_shown(value)}"
        try:
            known = type(value) is not bool and value in self.categories
        except TypeError:  # a list or an object: not hashable, not a category
            known = False
        return None if known else f"unknown category {_shown(value)}; the model knows {self.shown_categories}"


def compile_contract(contract, signature):
    """Make the contract (contract.json's content) this script's checks. Columns follow the model's
    signature (``[(name, type)]``); one the contract does not cover is held to its signature type."""
    global columns, rules, strict, casts, numeric_only, lower, upper, whole, unique
    specs = contract["columns"]
    names = [name for name, _ in signature] or list(specs)
    types = dict(signature)
    columns = [(name, types.get(name)) for name in names]
    rules = [Rule(name, specs.get(name) or {"dtype": SIGNATURE_DTYPES.get(types.get(name), "string")})
             for name in names]
    strict = bool(contract.get("strict"))
    casts = {name: DTYPES[t] for name, t in signature if t in DTYPES}
    # Nullable columns may take the fast path too: a null makes numpy's array an object one, and the
    # slow path then checks it.
    numeric_only = all(rule.numeric for rule in rules)
    lower = np.array([-np.inf if r.min is None else r.min for r in rules])
    upper = np.array([np.inf if r.max is None else r.max for r in rules])
    whole = np.array([r.dtype == "integer" for r in rules], dtype=bool)
    unique = [i for i, r in enumerate(rules) if r.unique]


def signature_contract(signature, optional, known):
    """The contract of a model logged without one: its signature's types, null where the signature
    marks a column optional, the categories its encoders refuse others of, and strict."""
    columns_ = {}
    for name, kind in signature:
        spec = {"dtype": SIGNATURE_DTYPES.get(kind, "string"), "nullable": name in optional}
        if name in known:
            spec.update(dtype="category", categories=sorted(known[name], key=str))
        columns_[name] = spec
    return {"strict": True, "columns": columns_}


def refused_unknowns(raw_model):
    """Column -> the categories a scikit-learn pipeline knows, for each column whose one-hot encoder
    refuses a category it did not see in training (``handle_unknown='error'``, params' ``refuse``).
    Read from the fitted model itself, so it holds exactly what training saw.

    The same reading as modeling.refused_categories, kept here on purpose: score.py ships alone in
    the package and imports nothing of modelfactory. Only a package without contract.json uses it."""
    steps = dict(getattr(raw_model, "steps", []))
    found = {}
    for _, step, names in getattr(steps.get("preprocess"), "transformers_", []):
        encoders = [s for _, s in getattr(step, "steps", [])] or [step]
        for encoder in encoders:
            if getattr(encoder, "handle_unknown", None) == "error" and hasattr(encoder, "categories_"):
                found.update({name: set(cats.tolist()) for name, cats in zip(names, encoder.categories_)})
    return found


def direct_predict(pyfunc_model):
    """The function MLflow's pyfunc predict ends in, for a scikit-learn model (its ``predict``, or the
    ``pyfunc_predict_fn`` it was logged with); None for any other flavour.

    pyfunc's predict first enforces the signature on the frame, which costs about 1 ms a request (more
    than a Ridge's own predict on one row). A frame the numpy fast path built already is what that
    enforcement would hand on: the signature's columns, in order, in its dtypes, every value a finite
    number. Only such frames skip it (run()); every other one goes through pyfunc as before."""
    flavour = (pyfunc_model.metadata.flavors or {}).get("python_function", {})
    if flavour.get("loader_module") != "mlflow.sklearn":
        return None
    return getattr(pyfunc_model.get_raw_model(), flavour.get("predict_fn") or "predict", None)


def parse_request(raw_data):
    """Turn a request body into a DataFrame in the signature's column order, or raise BadRequest.
    Columns the contract does not name are dropped, or refused when it is strict."""
    return _parse(raw_data)[0]


def _parse(raw_data):
    """parse_request's frame, and whether the numpy fast path built it (every column a finite number
    in the signature's dtype, in its order)."""
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
    if extra and strict:
        raise BadRequest(f"unknown column(s): {_names(extra, SHOWN_GIVEN)}; "
                         f"the model takes {_names(expected, SHOWN_EXPECTED)}")
    if len(set(given)) != len(given):
        raise BadRequest("a column appears twice in input_data.columns")
    rows = body["data"]
    if not rows:
        raise BadRequest("input_data.data has no rows")
    if max_rows is not None and len(rows) > max_rows:
        raise BadRequest(f"{len(rows)} rows in one request; the limit is {max_rows}")
    fast = _fast_frame(rows, given, expected) if numeric_only and not may_hold_booleans else None
    if fast is not None:
        return fast, True
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(given):
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(f"row {number}: expected a list of {len(given)} values, got {size}")
    check_rows(rows, given)
    frame = pd.DataFrame(rows, columns=given)[expected]
    try:
        return frame.astype(casts), False
    except (TypeError, ValueError):  # a null the contract allows where the model takes no null
        name = next(n for n in casts if frame[n].isna().any())
        raise BadRequest(f"column '{name}': a value is required by the model, got null") from None


def form_body_problem(raw_data, request_headers):
    """Why a body arrived empty when it was sent as a form, or None.

    The inference server hands run() ``request.data``, which Flask leaves empty for a form content
    type: it parses the body as form fields instead. ``curl -d`` sends
    application/x-www-form-urlencoded unless told otherwise, so a JSON body sent that way reaches
    run() as nothing. A body with no Content-Type at all, or any other type, arrives whole.
    """
    if raw_data not in (None, "", b""):
        return None
    headers = {k.lower(): v for k, v in (request_headers or {}).items()}
    given = headers.get("content-type", "").split(";")[0].strip().lower()
    if given not in FORM_TYPES:
        return None
    return (f"the request's Content-Type is {given}, which the server reads as form fields, so no JSON "
            "reached the model; send Content-Type: application/json (curl: -H 'Content-Type: application/json')")


def check_rows(rows, given):
    """Raise BadRequest naming the first row (then column) that breaks the contract."""
    position = {name: i for i, name in enumerate(given)}
    first = None
    for rule in sorted(rules, key=lambda r: position[r.name]):
        at = position[rule.name]
        for number, row in enumerate(rows if first is None else rows[:first[0]]):
            message = rule.problem(row[at])
            if message is not None:
                first = (number, rule.name, message)
                break
        if rule.unique:
            seen = {}
            for number, row in enumerate(rows):
                value = row[at]
                if value is None or (type(value) is float and value != value):
                    continue
                try:
                    if value in seen and (first is None or seen[value] < first[0]):
                        first = (seen[value], rule.name, f"{_shown(value)} appears more than once (the column is unique)")
                        break
                    seen.setdefault(value, number)
                except TypeError:
                    continue
    if first is not None:
        raise BadRequest(f"row {first[0]}, column '{first[1]}': {first[2]}")


def _shown(value):
    return _clip(json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value))


def _clip(text):
    """A name or value short enough for an error message."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _names(names, shown):
    """The first ``shown`` names, and how many more there are."""
    listed = ", ".join(_clip(str(n)) for n in names[:shown])
    return listed if len(names) <= shown else f"{listed} and {len(names) - shown} more"


def _fast_frame(rows, given, expected):
    """The common case, checked and converted by numpy in one pass: every column a number, every value
    a finite number within the contract (no booleans: the caller looked). Returns None when anything
    is unusual, and the slow path then names the problem (a string, a null or a short row makes numpy
    infer another dtype or fail)."""
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
    # the whole contract in three array operations: bounds, whole numbers, then unique columns if any
    if (values < lower).any() or (values > upper).any():
        return None
    if whole.any() and (values[:, whole] % 1 != 0).any():
        return None
    for i in unique:
        if len(np.unique(values[:, i])) != len(values):
            return None
    frame = pd.DataFrame(values, columns=expected)
    return frame.astype(casts) if any(t != "float64" for t in casts.values()) else frame


def run(raw_data, request_headers=None):
    """Score one request; a bad request gets HTTP 400 with a message naming the problem."""
    try:
        frame, fast = _parse(raw_data)
    except BadRequest as exc:
        return _bad_request(form_body_problem(raw_data, request_headers) or str(exc))
    values = np.asarray(direct(frame) if fast and direct is not None else model.predict(frame))
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
