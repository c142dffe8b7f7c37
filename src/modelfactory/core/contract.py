"""A model's data contract: what each column may hold, from the raw data to the scoring endpoint.

Per column: ``dtype`` (integer, number, string, boolean, category), ``nullable``, a ``min``/``max``
range (numbers), the allowed ``categories`` (category) and ``unique``; and ``strict``, whether
columns the contract does not name are refused. It is declared in params (``data.contract``: a
mapping, or a YAML file under params/), or inferred from the training data when it is not.

The contract is compiled here into a pandera DataFrameSchema, which the explore stage runs on the
raw data (every failure at once) and whose column checks batch scoring runs per chunk. The
endpoint's score.py cannot import this module: it compiles the same rules from ``contract.json``
into checks of its own, and tests/unit/test_contract.py holds both to the same answers, row by row.

What a value is, everywhere: null is None or NaN; a number is an int or float that is finite and not
a boolean; an integer is a number with no fraction (2.0 is one, 1.5 is not); a string is text; a
boolean is true or false; a category value is one of ``categories``. A range or category is checked
only on values of the right type; a wrong type is one failure, not three.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelfactory import paths
from modelfactory.errors import DataValidationError, ParamsError

FILE = "contract.json"  # beside score.py in a package, and in the explore stage's folder
METADATA_KEY = "data_contract"  # where the contract sits in a logged model's MLmodel (its metadata)
SHOWN_ROWS = 5  # example row numbers per failed check
SHOWN_CATEGORIES = 50  # distinct text values up to which `data contract` lists them as categories
MOSTLY_NUMBERS = 0.5  # a text column with at least this share of numbers is numbers with mistyped cells


class ColumnContract(BaseModel):
    """What one column may hold."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dtype: Literal["integer", "number", "string", "boolean", "category"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | list[int] | None = Field(default=None, min_length=1)
    unique: bool = False

    @model_validator(mode="after")
    def _fits_dtype(self) -> ColumnContract:
        numeric = self.dtype in ("integer", "number")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply to integer and number columns, not {self.dtype}")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"min/max must be finite numbers, got {bound}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.dtype == "category" and not self.categories:
            raise ValueError("a category column lists its categories")
        if self.categories is not None and self.dtype != "category":
            raise ValueError(f"categories apply to category columns, not {self.dtype}")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("categories are listed twice")
        return self


class Contract(BaseModel):
    """A model's data contract: its columns and whether others are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    strict: bool = False
    inferred: bool = False  # true when read off the training data rather than declared
    columns: dict[str, ColumnContract] = Field(min_length=1)

    def without(self, name: str) -> Contract:
        """The contract less one column (the target: what scoring receives has no target)."""
        return self.model_copy(update={"columns": {k: v for k, v in self.columns.items() if k != name}})


# -- declaring, reading and writing ------------------------------------------------------------------

def parse_contract(data, shown: str) -> Contract:
    """Validate a contract given as plain data; a mistake is one ParamsError naming ``shown`` and the key."""
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "too_short":
            message = "names no column" if key == "columns" else "lists nothing"
        elif error["type"] != "value_error" and "input" in error:
            value = error["input"]
            message += f", got {value!r}" if not isinstance(value, (dict, list)) else f", got a {type(value).__name__}"
        raise ParamsError(f"{shown}: {key}: {message[0].lower() + message[1:]}") from None


def declared_contract(data_params: Mapping, root: Path | None = None) -> Contract | None:
    """The contract ``data.contract`` declares (a mapping, or a YAML file under params/), or None."""
    from modelfactory.yamlfile import read_yaml

    declared = data_params.get("contract")
    if declared is None:
        return None
    if isinstance(declared, Mapping):
        return parse_contract(dict(declared), "data.contract")
    root = root or paths.project_root()
    path = (root / declared).resolve()
    params_dir = paths.params_dir(root).resolve()
    if not path.is_relative_to(params_dir):
        raise ParamsError(f"data.contract {declared}: the contract file must be under params/ "
                          "(e.g. params/contracts/<model>.yaml)")
    if not path.is_file():
        raise ParamsError(f"data.contract {declared}: no such file; write one with "
                          "modelfactory data contract NAME --model M")
    return parse_contract(read_yaml(path, root), paths.relative_to_root(path, root))


def to_json(contract: Contract) -> dict:
    """The contract as plain JSON data (what contract.json holds, and score.py reads)."""
    return contract.model_dump(mode="json", exclude_none=True)


def read_json(path: Path) -> Contract:
    """A contract written by ``to_json``."""
    return Contract.model_validate(json.loads(Path(path).read_text()))


def model_contract(model_dir: Path) -> Contract | None:
    """The contract logged with a model (its MLmodel's metadata), or None for a model logged without."""
    from mlflow.models import Model

    found = (Model.load(str(Path(model_dir) / "MLmodel")).metadata or {}).get(METADATA_KEY)
    return Contract.model_validate(found) if found else None


def write_yaml(contract: Contract, path: Path, force: bool = False) -> Path:
    """Write a contract as YAML for a user to review and commit; never over an existing file unless forced."""
    import yaml

    if path.exists() and not force:
        raise ParamsError(f"{paths.relative_to_root(path)} already exists; review it, or pass --force to replace it")
    body = to_json(contract)
    body.pop("inferred", None)  # once reviewed and committed, it is declared
    header = ("# The data contract: what each column may hold (docs/data.md, 'The data contract').\n"
              "# Inferred from the data; review it, then name it in the model's params:\n"
              f"#   data: {{contract: {paths.relative_to_root(path)}}}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return path


# -- inferring ----------------------------------------------------------------------------------------

def infer_contract(frame: pd.DataFrame, categorise: bool = False) -> Contract:
    """A contract read off the data: each column's dtype, nullable where a value is missing, the range
    of numbers as seen; not strict. A text column whose values are mostly numbers (numbers and text
    mixed in one CSV column) is taken as numbers, so the text in it fails the contract by name.

    Args:
        frame: the rows, as read.
        categorise: list the values of text columns with at most SHOWN_CATEGORIES distinct values as
            category columns (``data contract`` does, for the user to review); else they are strings.
    """
    return _infer(frame, *text_view(frame), categorise)


def _infer(frame: pd.DataFrame, view: pd.DataFrame, text: frozenset, categorise: bool) -> Contract:
    """infer_contract, reading text columns from ``view`` (text_view's), others from ``frame``."""
    columns = {}
    for name, values in frame.items():
        spec = (_infer_text(view[name], categorise) if name in text else _infer_numbers(values)) or \
            _infer_column(values, categorise)
        columns[str(name)] = spec
    return Contract.model_validate({"strict": False, "inferred": True, "columns": columns})


def _infer_column(values: pd.Series, categorise: bool) -> dict:
    """One column's contract, for any column (what the fast paths below answer for the common ones)."""
    present = values.dropna()
    spec: dict = {"nullable": bool(len(present) < len(values))}
    if isinstance(values.dtype, pd.CategoricalDtype):
        spec.update(dtype="category", categories=[_plain(v) for v in values.cat.categories])
    elif pd.api.types.is_bool_dtype(values) or (values.dtype == object and len(present)
                                                and _is_instance(present, (bool, np.bool_)).all()):
        spec["dtype"] = "boolean"
    elif pd.api.types.is_numeric_dtype(values) or _mostly_numbers(present):
        numbers = pd.to_numeric(present, errors="coerce").dropna()
        whole = pd.api.types.is_integer_dtype(values) or (not pd.api.types.is_float_dtype(values) and len(numbers)
                                                          and bool((numbers % 1 == 0).all()))
        spec["dtype"] = "integer" if whole else "number"
        finite = numbers[np.isfinite(numbers.astype("float64"))]
        if len(finite):
            spec.update(min=float(finite.min()), max=float(finite.max()))
    elif categorise and 0 < present.nunique() <= SHOWN_CATEGORIES and _is_instance(present, str).all():
        spec.update(dtype="category", categories=sorted(present.unique().tolist()))
    else:
        spec["dtype"] = "string"
    return spec


def _infer_numbers(values: pd.Series) -> dict | None:
    """_infer_column's answer for a NumPy integer or float column, in a few whole-array passes and no
    copy (None for any other column)."""
    array = values.to_numpy()
    if not isinstance(values.dtype, np.dtype) or array.dtype.kind not in "iuf":
        return None
    if array.dtype.kind == "f":
        gaps = np.isnan(array)
        spec: dict = {"nullable": bool(gaps.any()), "dtype": "number"}
        if gaps.all():
            return spec
        low, high = np.nanmin(array), np.nanmax(array)
        if not (np.isfinite(low) and np.isfinite(high)):  # an infinity: the range is that of the finite values
            finite = array[np.isfinite(array)]
            if not len(finite):
                return spec
            low, high = finite.min(), finite.max()
        return {**spec, "min": float(low), "max": float(high)}
    spec = {"nullable": False, "dtype": "integer"}
    return {**spec, "min": float(array.min()), "max": float(array.max())} if len(array) else spec


def _infer_text(values: pd.Series, categorise: bool) -> dict | None:
    """_infer_column's answer for a text column as text_view gives it (Arrow-backed): a string column,
    unless its values are mostly numbers or it is to be listed as categories (None: ask _infer_column)."""
    present = int(values.count())  # from the gap bitmap: no copy without the gaps
    if present and _numbers_share(values, present) or (categorise and 0 < values.nunique() <= SHOWN_CATEGORIES):
        return None
    return {"nullable": present < len(values), "dtype": "string"}


def _mostly_numbers(present: pd.Series) -> bool:
    """Text that is at least half numbers (CSV has no types: a mistyped cell makes a column text)."""
    if not len(present) or present.dtype != object or not _is_instance(present, str).all():
        return False
    return _numbers_share(present, len(present))


def _numbers_share(text: pd.Series, present: int) -> bool:
    """Whether at least MOSTLY_NUMBERS of the ``present`` values (not gaps) of some text read as
    numbers. Each distinct text is parsed once, weighted by how often it appears (a category column
    has a few). When no distinct text reads as a number (the usual text column), they are not counted."""
    distinct = pd.Series(text.unique(), dtype=object).dropna()
    if not pd.to_numeric(distinct, errors="coerce").notna().any():
        return False
    counts = text.value_counts(sort=False)  # gaps are not counted
    distinct = pd.Series(counts.index.to_numpy(dtype=object), dtype=object)
    numeric = pd.to_numeric(distinct, errors="coerce").notna().to_numpy()
    return bool(counts.to_numpy()[numeric].sum() / present >= MOSTLY_NUMBERS)


def _category(value):
    """A category as the contract lists it: text, or a whole number (encoders keep 2.0 for a float column)."""
    value = _plain(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def contract_for(frame: pd.DataFrame, data_params: Mapping) -> Contract:
    """The contract the data is held to: the declared one, else one inferred from ``frame``."""
    return declared_contract(data_params) or infer_contract(frame)


def check_raw_data(frame: pd.DataFrame, data_params: Mapping) -> tuple[Contract, pd.DataFrame]:
    """The explore stage's check: the contract the raw rows are held to (declared, else inferred from
    them) and the table of every check they fail (empty when they keep it). The target may be in the
    rows whether or not a strict contract names it."""
    view, text = text_view(frame)  # converted once, for inferring and checking
    contract = declared_contract(data_params) or _infer(frame, view, text, False)
    return contract, _validate(frame, contract, (data_params["target"],), view)


def cover(contract: Contract | None, example: pd.DataFrame) -> Contract:
    """The contract for exactly the model's input columns (``example``'s): a declared contract's
    columns the model does not take (the target) are left out, and a column it does not name gets
    the type and nulls inferred from the example, without a range, so the endpoint and batch check
    every input column. No contract at all: one inferred from the example."""
    if contract is None:
        return infer_contract(example)
    inferred = infer_contract(example).columns
    columns = {name: contract.columns.get(name) or inferred[name].model_copy(update={"min": None, "max": None})
               for name in map(str, example.columns)}
    return contract.model_copy(update={"columns": columns})


def fit_to_model(contract: Contract, model) -> Contract:
    """What the fitted model adds to a contract. A column whose one-hot encoder refuses unknown
    categories (``train.preprocess.unknown_categories: refuse``) only takes the categories it saw,
    whatever the contract says. An inferred contract also takes null where the pipeline imputes (the
    training rows may have had no gap there), except in integer columns: MLflow refuses a null in a
    ``long`` column."""
    from modelfactory.core.modeling import imputed_columns, refused_categories

    refused = refused_categories(model)
    imputed = imputed_columns(model) if contract.inferred else set()
    columns = {}
    for name, spec in contract.columns.items():
        update = {}
        if name in refused:
            known = sorted(_category(v) for v in refused[name])
            update = {"dtype": "category", "categories": known, "min": None, "max": None}
        if name in imputed and spec.dtype != "integer":
            update["nullable"] = True
        columns[name] = spec.model_copy(update=update)
    return contract.model_copy(update={"columns": columns})


def signature_contract(signature: list[tuple[str, str]], optional: set[str], known: Mapping[str, set]) -> Contract:
    """The contract of a model logged without one (score.py's ``signature_contract``, in this module's
    types): its signature's types, null where the signature marks a column optional, the categories
    its encoders refuse others of, and strict."""
    kinds = {"double": "number", "float": "number", "long": "integer", "integer": "integer", "string": "string",
             "boolean": "boolean"}
    columns = {}
    for name, kind in signature:
        spec = {"dtype": kinds.get(kind, "string"), "nullable": name in optional}
        if name in known:
            spec.update(dtype="category", categories=sorted((_category(v) for v in known[name]), key=str))
        columns[name] = spec
    return Contract.model_validate({"strict": True, "columns": columns})


def refused_by(pyfunc_model) -> dict[str, set]:
    """The categories a loaded pyfunc model's encoders refuse others of (modeling.refused_categories)."""
    from mlflow.exceptions import MlflowException

    from modelfactory.core.modeling import refused_categories

    try:
        return refused_categories(pyfunc_model.get_raw_model())
    except MlflowException:  # a pyfunc flavour without a raw scikit-learn model: nothing to read
        return {}


def conform(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The frame with each contract column in the dtype scoring gives it: integer columns without
    nulls as int64 and number columns as float64. The model's signature is inferred from this, so
    what the endpoint and batch hand MLflow matches what MLflow expects."""
    types = {}
    for name, spec in contract.columns.items():
        if name not in frame or not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            continue
        if spec.dtype == "integer" and not frame[name].isna().any():
            types[name] = "int64"
        elif spec.dtype == "number":
            types[name] = "float64"
    return frame.astype(types)


def example_row(contract: Contract) -> dict:
    """One row that keeps the contract: 0 (or the nearest bound) for numbers, the first category,
    false, an empty string. What a package's sample request holds when no real rows are at hand."""
    row = {}
    for name, spec in contract.columns.items():
        if spec.dtype in ("number", "integer"):
            value = 0.0 if spec.min is None else max(0.0, spec.min)
            value = value if spec.max is None else min(value, spec.max)
            row[name] = math.ceil(value) if spec.dtype == "integer" else value
        else:
            row[name] = {"category": (spec.categories or [""])[0], "boolean": False}.get(spec.dtype, "")
    return row


# -- checking -----------------------------------------------------------------------------------------

def text_view(frame: pd.DataFrame, keep=()) -> tuple[pd.DataFrame, frozenset]:
    """The frame as the checks read it, and which columns it changed: each text column (object dtype,
    every value a str or a gap) as an Arrow-backed string column with the same values and gaps.

    pandas answers "which values are missing?" for a column of Python objects by looking at each one
    (about 0.1 s a column on 2 million rows), and pandera asks it several times per column; an Arrow
    column keeps its gaps in a bitmap. Converting costs about one such look, once; a text column still
    as read_files read it is not converted at all: its Arrow column is taken as it was read
    (sources.text_columns). The other columns, and those named in ``keep``, are the frame's own (no
    copy); the frame itself is not changed.
    """
    import pyarrow as pa

    from modelfactory.core.sources import text_columns

    if not frame.columns.is_unique:  # columns are replaced by name below
        return frame, frozenset()
    read = text_columns(frame)
    converted = {}
    for name, values in frame.items():
        if values.dtype == object and name not in keep:
            arrow = (pd.arrays.ArrowStringArray(read[name].cast(pa.large_string())) if name in read
                     else _arrow_text(values.to_numpy()))
            if arrow is not None:
                converted[name] = pd.Series(arrow, index=frame.index, name=name)
    if not converted:
        return frame, frozenset()
    view = frame.copy(deep=False)
    for name, values in converted.items():
        view[name] = values
    return view, frozenset(converted)


def _arrow_text(array: np.ndarray):
    """An object array whose values are all str or missing, as an Arrow-backed string array (None if
    any value is something else). Arrow's gaps are pandas' own here: None, NaN and pd.NA; any other
    missing marker is not a str, and is refused by the test before it."""
    import pyarrow as pa

    if pd.api.types.infer_dtype(array, skipna=True) != "string":
        return None
    try:
        return pd.arrays.ArrowStringArray(pa.array(array, type=pa.large_string(), from_pandas=True))
    except pa.ArrowException:
        return None


def _is_arrow_text(values: pd.Series) -> bool:
    """Whether a column is Arrow-backed text (every value a str or a gap, by its type)."""
    return isinstance(values.array, pd.arrays.ArrowStringArray)


def _is_instance(values: pd.Series, kinds) -> np.ndarray:
    """``isinstance(value, kinds)`` for each value. A text column (every value a str, pandas' own
    C-level scan says so) is answered at once, and only its gaps are looked at one by one: the
    per-value loop took seconds a column on millions of rows."""
    array = values.to_numpy()
    if array.dtype == object and len(array) and pd.api.types.infer_dtype(array, skipna=False) == "string":
        return np.full(len(array), isinstance("", kinds))  # text throughout, not one gap
    if array.dtype == object and len(array) and pd.api.types.infer_dtype(array, skipna=True) == "string":
        answer = np.full(len(array), isinstance("", kinds))
        gaps = pd.isna(array)
        if gaps.any():
            answer[gaps] = [isinstance(v, kinds) for v in array[gaps]]
        return answer
    return np.fromiter((isinstance(v, kinds) for v in array), dtype=bool, count=len(array))


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(is a finite number, as float64) for non-null values, vectorised for numeric columns."""
    if pd.api.types.is_bool_dtype(values):
        return np.zeros(len(values), dtype=bool), np.zeros(len(values))
    if pd.api.types.is_numeric_dtype(values):
        # a float64 column is read as it is; other numbers (and nullable ones) as float64, gaps as NaN
        as_float = values.to_numpy() if values.dtype == np.float64 else values.to_numpy(dtype="float64", na_value=np.nan)
        return np.isfinite(as_float), as_float
    real = _is_instance(values, (int, float, np.integer, np.floating)) & ~_is_instance(values, (bool, np.bool_))
    as_float = np.full(len(values), np.nan)
    if real.any():
        as_float[real] = values.to_numpy()[real].astype("float64")
    return real & np.isfinite(as_float), as_float


def type_ok(values: pd.Series, spec: ColumnContract) -> np.ndarray:
    """Which (non-null) values are of the column's dtype: the dtype check, as a boolean array."""
    if spec.dtype == "integer" and values.dtype.kind in "iu":  # an integer array holds whole numbers only
        return np.ones(len(values), bool)
    if spec.dtype in ("number", "integer"):
        ok, as_float = _numbers(values)
        if spec.dtype == "integer":
            ok = ok & (np.mod(np.where(ok, as_float, 0.0), 1) == 0)
        return ok
    if spec.dtype == "boolean":
        return np.ones(len(values), bool) if pd.api.types.is_bool_dtype(values) else _is_instance(values, (bool, np.bool_))
    if spec.dtype == "string":
        if pd.api.types.is_string_dtype(values) and values.dtype != object:
            return np.ones(len(values), bool)
        return _is_instance(values, str)
    allowed = values.isin(spec.categories).to_numpy()
    return allowed if _is_arrow_text(values) else allowed & ~_is_instance(values, (bool, np.bool_))


def range_ok(values: pd.Series, spec: ColumnContract) -> np.ndarray:
    """Which values are within ``min``/``max``; values that are not numbers pass (the dtype check
    fails them)."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        return ~_outside(values.to_numpy(), spec)
    ok, as_float = _numbers(values)
    inside = np.ones(len(values), bool)
    with np.errstate(invalid="ignore"):  # what is not a finite number passes through ~ok, whatever it compares as
        if spec.min is not None:
            inside &= ~ok | (as_float >= spec.min)
        if spec.max is not None:
            inside &= ~ok | (as_float <= spec.max)
    return inside


def _outside(array: np.ndarray, spec: ColumnContract) -> np.ndarray:
    """range_ok's answer, negated, for a NumPy number array, in place of a float copy and a finiteness
    pass: a gap (NaN) compares as neither below nor above, and only when something is outside are
    infinities (not numbers: the dtype check names them) let through."""
    outside = np.zeros(len(array), bool)
    with np.errstate(invalid="ignore"):
        if spec.min is not None:
            outside |= array < spec.min
        if spec.max is not None:
            outside |= array > spec.max
    if array.dtype.kind == "f" and outside.any():
        outside &= np.isfinite(array)
    return outside


def check_names(spec: ColumnContract) -> tuple[str, str | None]:
    """The names the failure table gives a column's dtype and range checks."""
    lo = "" if spec.min is None else f">= {spec.min:g}"
    hi = "" if spec.max is None else f"<= {spec.max:g}"
    return f"dtype {spec.dtype}", (f"range {' and '.join(b for b in (lo, hi) if b)}" if lo or hi else None)


def coerce_text_numbers(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """CSV has no types: in a text column the contract says holds numbers, text that reads as a number
    becomes one; other text stays, for the dtype check to name."""
    changed = {}
    for name, spec in contract.columns.items():
        if spec.dtype in ("number", "integer") and name in frame and frame[name].dtype == object:
            values = frame[name]
            text = _is_instance(values, str)
            if text.any():
                parsed = pd.to_numeric(values.where(text), errors="coerce")
                changed[name] = values.where(~(text & parsed.notna().to_numpy()), parsed)
    return frame.assign(**changed) if changed else frame


def to_schema(contract: Contract):
    """The contract as a pandera DataFrameSchema (no coercion: it checks values, it does not change them)."""
    import pandera.pandas as pa

    columns = {}
    for name, spec in contract.columns.items():
        dtype_name, range_name = check_names(spec)
        checks = [pa.Check(_gaps_pass(type_ok, spec), name=dtype_name, ignore_na=False)]
        if range_name:
            checks.append(pa.Check(_gaps_pass(range_ok, spec), name=range_name, ignore_na=False))
        columns[name] = pa.Column(None, nullable=spec.nullable, unique=spec.unique, checks=checks, required=True,
                                  coerce=False)
    return pa.DataFrameSchema(columns, strict=contract.strict, coerce=False)


def _gaps_pass(check, spec: ColumnContract):
    """A column check for pandera that passes missing values, which the nullable check judges. The same
    answers as pandera dropping them first (``ignore_na``), without a copy of the column per check."""
    def run(values: pd.Series) -> pd.Series:
        answer = check(values, spec)
        if not (isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub"):  # those have no gaps
            answer = answer | values.isna().to_numpy()
        return pd.Series(answer, index=values.index)
    return run


CHECK_NAMES = {"not_nullable": "nullable", "field_uniqueness": "unique", "column_in_schema": "not in the contract (strict)",
               "column_in_dataframe": "missing column"}


def validate_frame(frame: pd.DataFrame, contract: Contract, allowed: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every way the rows break the contract, at once (pandera, lazily): one row per failed check,
    with the number of failures and example row numbers and values. Empty when the rows keep it.

    Args:
        frame: the rows (row numbers are its positions, from 0).
        contract: what they must keep.
        allowed: columns a strict contract lets through all the same (the target, in raw data).
    """
    return _validate(frame, contract, allowed, None)


def _validate(frame: pd.DataFrame, contract: Contract, allowed: tuple[str, ...], view) -> pd.DataFrame:
    """validate_frame, first on text_view's ``view`` of the frame (made here when None). Rows that pass
    there pass on the frame itself (its text columns hold the same values and gaps); rows that fail
    are checked again on the frame, so the failure table shows the values exactly as they were read."""
    numbered = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    if not numbered:
        frame, view = frame.reset_index(drop=True), None
    numeric = {name for name, spec in contract.columns.items() if spec.dtype in ("number", "integer")}
    if view is None:
        view = text_view(frame, keep=numeric)[0]
    # text the contract says holds numbers is read as numbers (coerce_text_numbers): not from the view
    back = [name for name in numeric if name in view and _is_arrow_text(view[name]) and not _is_arrow_text(frame[name])]
    if back:
        view = view.copy(deep=False)
        for name in back:
            view[name] = frame[name]
    if _schema_errors(view, contract, allowed) is None:
        return failure_table(None)
    return failure_table(_schema_errors(coerce_text_numbers(frame, contract), contract, allowed))


def _schema_errors(frame: pd.DataFrame, contract: Contract, allowed: tuple[str, ...]) -> pd.DataFrame | None:
    """pandera's failure cases for the frame (None when it keeps the contract)."""
    import pandera.pandas as pa

    schema = to_schema(contract)
    if allowed and contract.strict:
        schema = schema.add_columns({name: pa.Column(None, nullable=True) for name in allowed
                                     if name not in contract.columns})
    try:
        schema.validate(frame, lazy=True, inplace=True)  # nothing is coerced, so no copy of the table is needed
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases
    return None


def failure_table(cases: pd.DataFrame | None) -> pd.DataFrame:
    """pandera's failure cases grouped per column and check."""
    header = ["column", "check", "failures", "example rows", "example values"]
    if cases is None or not len(cases):
        return pd.DataFrame(columns=header)
    rows = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        if column is None or (isinstance(column, float) and math.isnan(column)):  # a frame-level check
            column, shown_rows = group["failure_case"].iloc[0], ""
            values = ""
        else:
            indices = [int(i) for i in group["index"].dropna()]
            shown_rows = ", ".join(map(str, indices[:SHOWN_ROWS]))
            values = ", ".join(_short(v) for v in group["failure_case"].head(SHOWN_ROWS))
        rows.append([str(column), CHECK_NAMES.get(check, check), len(group), shown_rows, values])
    return pd.DataFrame(rows, columns=header)


def _short(value) -> str:
    text = repr(_plain(value))
    return text if len(text) <= 40 else text[:40] + "..."


def require_valid(failures: pd.DataFrame, where: str) -> None:
    """Stop with one line when the rows broke the contract; the table above it shows every failure."""
    if not len(failures):
        return
    parts = []
    for r in failures.to_dict("records"):
        if r["check"] in ("missing column", "not in the contract (strict)"):
            parts.append(f"column '{r['column']}': {r['check']}")
        else:
            first_row, first_value = r["example rows"].split(", ")[0], r["example values"].split(", ")[0]
            parts.append(f"column '{r['column']}': {r['failures']} value(s) fail {r['check']}, e.g. row {first_row} "
                         f"{first_value}")
    raise DataValidationError(f"{where}: the data breaks its contract in {len(failures)} check(s): "
                              + "; ".join(parts) + " (the failure table in the explore notebook lists them)")


def check_header(columns: list[str], contract: Contract, target: str, where: str) -> None:
    """Before any row is read: the file's header has every contract column, and, when the contract is
    strict, no other (but the target)."""
    missing = [c for c in contract.columns if c not in columns]
    if missing:
        raise DataValidationError(f"{where}: column(s) {', '.join(missing)} of the data contract are not in the file")
    if contract.strict:
        extra = [c for c in columns if c not in contract.columns and c != target]
        if extra:
            raise DataValidationError(f"{where}: column(s) {', '.join(extra)} are not in the data contract, "
                                      "which is strict (add them to it, or set strict: false)")
