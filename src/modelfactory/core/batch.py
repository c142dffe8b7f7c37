"""Batch scoring: a CSV or Parquet file through a model, in chunks, so files larger than memory stream.

Rows are checked against the model's data contract (contract.py), the one the endpoint checks a
request against, with the same answers: each column's type, nulls, range, categories, uniqueness
(within a chunk), and, when the contract is strict, no other column. A model logged without a
contract is held to its signature (contract.signature_contract), as score.py holds it.
``batch.on_bad_rows`` chooses whether bad rows are set aside (written beside the output with their
row numbers and the problem) or stop the job. The output is written in the format its suffix names,
.parquet or .csv. Parquet input is read as pyarrow record batches of
the model's columns only; bench/data.py measures this path against a plain read and predict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.core import data
from modelfactory.ops import tracking
from modelfactory.core.contract import Contract, check_names, coerce_text_numbers, range_ok, type_ok
from modelfactory.errors import DataValidationError, InputFileError

NUMERIC = {"double", "float", "long", "integer"}
INTEGRAL = {"long", "integer"}
# The dtype each numeric signature type reaches the model as (the endpoint's score.py sends the same).
DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
# The Parquet output's type per signature type (pyarrow's factory names; pyarrow loads only when writing).
ARROW_TYPES = {**DTYPES, "string": "string", "boolean": "bool_"}
FORMATS = (".parquet", ".csv")  # what --input is read as and --output written as, by suffix


def read_chunks(path: Path, chunk_rows: int, columns: list[str] | None = None
                ) -> tuple[Iterator[pd.DataFrame], int | None]:
    """Chunks of a CSV or Parquet file, and its row count when the format tells it up front.

    ``columns`` limits a Parquet file to those of its columns (the rest are never decoded). A file
    that cannot be read (corrupt, not really CSV or Parquet) raises DataValidationError in one line,
    whether that shows at opening or in a later chunk.
    """
    batches, total = _read_batches(path, chunk_rows, columns)
    return (frame for frame, _ in batches), total


def _read_batches(path: Path, chunk_rows: int, columns: list[str] | None = None):
    """``((frame, arrow batch or None), ...)`` and the row count if known: Parquet as pyarrow record
    batches (the batch is kept, so the output can reuse its columns unconverted), CSV through
    pandas' chunked reader (which types each chunk by its own values, and names a repeated header)."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    unreadable = (pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError)

    def guarded(chunks):
        try:
            yield from chunks
        except unreadable as exc:
            raise DataValidationError(f"--input {path}: cannot be read as {suffix[1:]}: {exc}") from None

    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            source = pq.ParquetFile(path)
            names = source.schema_arrow.names
            data.require_unique_columns(pd.DataFrame(columns=names), f"--input {path}")
            wanted = None if columns is None else [n for n in columns if n in names] or names[:1]
            batches = ((b.to_pandas(), b) for b in source.iter_batches(batch_size=chunk_rows, columns=wanted))
            return guarded(batches), source.metadata.num_rows
        if suffix == ".csv":
            return guarded((frame, None) for frame in pd.read_csv(path, chunksize=chunk_rows)), None
    except unreadable as exc:
        raise DataValidationError(f"--input {path}: cannot be read as {suffix[1:]}: {exc}") from None
    raise InputFileError(f"--input {path}: expected a .csv or .parquet file")


def check_chunk(chunk: pd.DataFrame, rules: Contract, first_row: int,
                casts: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk into (rows fit to score, typed) and (bad rows: row number, column, problem).

    Vectorised per column with the contract's own checks (contract.type_ok, range_ok), so a row is
    refused here exactly when the pandera schema and the endpoint refuse it. Text that reads as a
    number counts as one in a number column (CSV has no types). The good rows are cast to the dtypes
    of the model's signature (``casts``): an integer column stays int64, as MLflow takes a ``long``.
    """
    names = list(rules.columns)
    missing = [name for name in names if name not in chunk.columns]
    if missing:
        raise DataValidationError(f"the input has no column(s) {', '.join(missing)}; the model needs "
                                  f"{', '.join(names)}")
    if rules.strict:
        extra = [str(c) for c in chunk.columns if c not in rules.columns]
        if extra:
            raise DataValidationError(f"the input has column(s) {', '.join(extra)} not in the model's data contract, "
                                      "which is strict; drop them from the file")
    rows = pd.RangeIndex(first_row, first_row + len(chunk))
    frame = coerce_text_numbers(chunk[names].set_axis(rows), rules)
    problems = []
    for name, spec in rules.columns.items():
        values = frame[name]
        absent = values.isna().to_numpy()
        if absent.any() and not spec.nullable:
            problems += [(r, name, "missing value") for r in rows[absent]]
        present = values[~absent]
        wrong = ~type_ok(present, spec)
        problems += [(r, name, _type_problem(spec, v)) for r, v in present[wrong].items()]
        if spec.min is not None or spec.max is not None:
            outside = ~range_ok(present, spec) & ~wrong
            problems += [(r, name, f"outside the range {check_names(spec)[1].removeprefix('range ')}: {v!r}")
                         for r, v in present[outside].items()]
        if spec.unique:
            twice = present.duplicated(keep=False).to_numpy()
            problems += [(r, name, f"appears more than once in the chunk: {v!r}") for r, v in present[twice].items()]
        if absent.any() and spec.dtype not in ("number", "integer"):  # a CSV's gap is NaN; MLflow takes None as text
            frame[name] = values.astype(object).where(~absent, None)
    bad = pd.DataFrame(problems, columns=["row", "column", "problem"]).sort_values("row", kind="stable")
    bad = bad.drop_duplicates("row").reset_index(drop=True)
    good = frame.drop(index=bad["row"]) if len(bad) else frame
    casts = {n: t for n, t in (casts or {}).items() if n in good and not (t.startswith("int") and good[n].isna().any())}
    return good.astype(casts), bad


def _type_problem(spec, value) -> str:
    """What batch says of a value of the wrong type (its rejected-rows file)."""
    if spec.dtype in ("number", "integer"):
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            return f"not a finite number: {value}"
        whole = spec.dtype == "integer" and isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        # the endpoint's words for a fraction in an integer column, so both answers read the same
        return f"expected a whole number, got {value!r}" if whole else f"not a number: {value!r}"
    if spec.dtype == "category":
        return f"unknown category: {value!r}"
    return {"string": "not a string", "boolean": "not true or false"}[spec.dtype] + f": {value!r}"


def model_rules(model) -> tuple[Contract, dict[str, str]]:
    """A loaded pyfunc model's data contract (or its signature's, for a model logged without one) and
    the dtypes its signature takes each column in."""
    from modelfactory.core import contract as contracts

    inputs = model.metadata.get_input_schema().inputs
    logged = (model.metadata.metadata or {}).get(contracts.METADATA_KEY)
    if logged:
        rules = contracts.Contract.model_validate(logged)
    else:  # a model from before contracts: batch scored its columns and passed over others (an id), and still does
        rules = contracts.signature_contract(
            [(s.name, s.type.name) for s in inputs], {s.name for s in inputs if not s.required},
            contracts.refused_by(model)).model_copy(update={"strict": False})
    return rules, {s.name: DTYPES[s.type.name] for s in inputs if s.type.name in DTYPES}


def score_file(model_dir: Path, input_path: Path, output_path: Path, batch_params: Mapping,
               progress: bool = True, replace: bool = False) -> dict:
    """Score every row of ``input_path`` into ``output_path`` (.parquet or .csv); return a summary.

    The output has the input's model columns, ``row`` (the 0-based row number in the input) and
    ``prediction``. Bad rows go to ``<output>.rejected.csv`` when ``on_bad_rows`` is ``skip``.
    An existing output is an error unless ``replace`` (a notebook rerun by hand in its scratch folder);
    so is an output folder that does not exist (a mistyped path creates nothing) and an input with no rows.
    """
    from tqdm.auto import tqdm

    if not input_path.is_file():
        raise InputFileError(f"--input {input_path}: no such file")
    if output_path.suffix.lower() not in FORMATS:
        raise InputFileError(f"--output {output_path}: expected a .parquet or .csv file name, got "
                             f"'{output_path.suffix or 'no suffix'}'")
    if not output_path.parent.is_dir():
        raise InputFileError(f"--output {output_path}: folder {output_path.parent} does not exist; create it first")
    rejected_path = output_path.with_name(output_path.name + ".rejected.csv")
    if replace:
        output_path.unlink(missing_ok=True)
        rejected_path.unlink(missing_ok=True)
    for taken in (output_path, rejected_path):
        if taken.exists():
            raise InputFileError(f"--output {output_path}: {taken.name} already exists; choose a new name "
                                 "(nothing is overwritten)")
    model = tracking.load_model(model_dir, "pyfunc")
    rules, casts = model_rules(model)
    columns = [(s.name, s.type.name) for s in model.metadata.get_input_schema().inputs]
    # a strict contract refuses a file with other columns, so then every column is read
    wanted = None if rules.strict else [n for n, _ in columns]
    chunks, total = _read_batches(input_path, batch_params["chunk_rows"], wanted)
    partial = output_path.with_name(f".{output_path.name}.partial")
    writer = _ChunkWriter(partial, columns, parquet=output_path.suffix.lower() == ".parquet")
    scored, rejected, first_row = 0, 0, 0
    bar = tqdm(total=total, unit="rows", desc=f"scoring {input_path.name}", disable=not progress)
    try:
        for chunk, batch in chunks:
            if chunk.empty:  # a CSV with only a header reads as one empty chunk: "no rows", said below
                continue
            if not first_row:
                data.require_unique_columns(chunk, f"--input {input_path}")
            good, bad = check_chunk(chunk, rules, first_row, casts)
            if len(bad) and batch_params["on_bad_rows"] == "fail":
                shown = "; ".join(f"row {r.row}, column '{r.column}': {r.problem}" for r in bad.head(5).itertuples())
                raise DataValidationError(f"{len(bad)} bad row(s) in chunk starting at row {first_row}: {shown}"
                                          " (batch.on_bad_rows=fail; set it to skip to set them aside)")
            if len(bad):
                bad.to_csv(rejected_path, mode="a", header=not rejected, index=False)
                rejected += len(bad)
            del chunk  # the checked copy is what is scored; the batch, if any, is what is written
            writer.write(good, model.predict(good) if len(good) else np.empty(0), batch, first_row)
            scored += len(good)
            first_row += len(good) + len(bad)
            bar.update(len(good) + len(bad))
        if not first_row:
            raise DataValidationError(f"--input {input_path}: the file has no rows")
    except BaseException:  # leave no half-written output, nor the rows set aside for it
        writer.close()
        partial.unlink(missing_ok=True)
        rejected_path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    writer.close()
    partial.replace(output_path)
    return {"rows": first_row, "scored": scored, "rejected": rejected, "output": str(output_path),
            "rejected_file": str(rejected_path) if rejected else None}


class _ChunkWriter:
    """Appends scored chunks to one file, Parquet or CSV as the final name's suffix says.

    Parquet goes through one ParquetWriter whose columns are typed by the model's signature, so a
    chunk in which a text column happens to be all missing cannot change the file's schema midway.
    A column of the input's record batch that already has that type is written as it was read
    (the rows kept taken from it), not converted back from pandas.
    """

    def __init__(self, path: Path, columns: list[tuple[str, str]], parquet: bool):
        self.path, self.columns, self.parquet, self.writer, self.started = path, columns, parquet, None, False

    def write(self, good: pd.DataFrame, predictions, batch, first_row: int, empty: bool = False) -> None:
        if not self.parquet:
            out = good.assign(prediction=predictions)
            out.insert(0, "row", out.index)
            out.to_csv(self.path, mode="a" if self.started else "w", header=not self.started, index=False)
            self.started = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not len(good) and not empty:  # nothing to add; a chunk with rows fixes the schema (see close)
            return
        kept = None
        if batch is not None and len(good) < batch.num_rows:
            kept = pa.array(good.index.to_numpy() - first_row)
        arrays, fields = [pa.array(good.index.to_numpy(), pa.int64())], [pa.field("row", pa.int64())]
        for name, kind in self.columns:
            wanted = getattr(pa, ARROW_TYPES[kind])() if kind in ARROW_TYPES else None
            source = batch.column(name) if batch is not None and name in batch.schema.names else None
            if source is not None and source.type == wanted:
                array = source if kept is None else source.take(kept)
            else:
                array = pa.array(good[name], type=wanted, from_pandas=True)
            arrays.append(array)
            fields.append(pa.field(name, array.type))
        predicted = pa.array(np.asarray(predictions), from_pandas=True)
        arrays.append(predicted)
        fields.append(pa.field("prediction", predicted.type))
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self.writer.schema):  # a type that comes from a chunk's values
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)
        self.started = True

    def close(self) -> None:
        if self.parquet and self.writer is None:  # no row was scored: still a Parquet file, with the columns
            self.write(pd.DataFrame({n: pd.Series(dtype=DTYPES.get(k, object)) for n, k in self.columns}),
                       np.empty(0), None, 0, empty=True)
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def input_file(batch_params: Mapping, data_params: Mapping, stage) -> Path:
    """The file the scoring stage reads: ``batch.input`` (relative to the project root), or, when it
    is null, the features of the model's own data source written into the stage folder (the demo)."""
    from modelfactory.core import data
    from modelfactory import paths

    if batch_params.get("input"):
        path = Path(batch_params["input"])
        path = path if path.is_absolute() else paths.project_root() / path
        if not path.is_file():
            raise InputFileError(f"batch.input {batch_params['input']}: no such file (relative paths start "
                                    "at the project root)")
        return path
    features = data.load_dataset(data_params).drop(columns=data_params["target"])
    return stage.save_table(features, "input.parquet")


def record(summary: Mapping, model_name: str, version: str) -> dict:
    """What the scoring stage keeps (and the run manifest shows): the model version and the counts."""
    return {"model": model_name, "version": str(version), "rows": summary["rows"], "scored": summary["scored"],
            "rejected": summary["rejected"]}


def summary_table(kept: Mapping) -> pd.DataFrame:
    """One row: the model version, rows read, scored and set aside."""
    return pd.DataFrame([{"model": kept["model"], "version": kept["version"], "rows read": kept["rows"],
                          "scored": kept["scored"], "set aside": kept["rejected"]}])


def rejected_rows(summary: Mapping) -> pd.DataFrame:
    """The rows set aside, with their row numbers and the problem (empty when none were)."""
    if not summary["rejected_file"]:
        return pd.DataFrame(columns=["row", "column", "problem"])
    return pd.read_csv(summary["rejected_file"])


def plot_predictions(output_path: Path, task: str):
    """How the predictions are distributed: a histogram (regression) or counts per class."""
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    predictions = pq.read_table(output_path, columns=["prediction"]).column("prediction").to_pandas()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if task == "classification":
        counts = predictions.value_counts().sort_index()
        ax.bar([str(c) for c in counts.index], counts.to_numpy(), color="#4c72b0")
        ax.set_xlabel("predicted class")
    else:
        ax.hist(predictions, bins=30, color="#4c72b0")
        ax.set_xlabel("prediction")
    ax.set_ylabel("rows")
    ax.set_title(f"{len(predictions):,} scored rows")
    fig.tight_layout()
    plt.close(fig)  # the notebook shows the returned figure once
    return fig


def verdict(kept: Mapping) -> str:
    """The scoring stage in one line: "442 of 442 rows scored with diabetes v1, 0 set aside"."""
    return (f"{kept['scored']} of {kept['rows']} rows scored with {kept['model']} v{kept['version']}, "
            f"{kept['rejected']} set aside")
