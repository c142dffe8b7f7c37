"""Batch scoring: a CSV or Parquet file through a model, in chunks, so files larger than memory stream.

Rows are checked like the endpoint checks a request (every signature column present, numbers where
numbers are expected, no missing values). ``batch.on_bad_rows`` chooses whether bad rows are set
aside (written beside the output with their row numbers and the problem) or stop the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

from modelfactory import tracking
from modelfactory.errors import DataValidationError, ModelfactoryError

NUMERIC = {"double", "float", "long", "integer"}


def read_chunks(path: Path, chunk_rows: int) -> tuple[Iterator[pd.DataFrame], int | None]:
    """Chunks of a CSV or Parquet file, and its row count when the format tells it up front.

    A file that cannot be read (corrupt, not really CSV or Parquet) raises DataValidationError in
    one line, whether that shows at opening or in a later chunk.
    """
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
            batches = (b.to_pandas() for b in source.iter_batches(batch_size=chunk_rows))
            return guarded(batches), source.metadata.num_rows
        if suffix == ".csv":
            return guarded(iter(pd.read_csv(path, chunksize=chunk_rows))), None
    except unreadable as exc:
        raise DataValidationError(f"--input {path}: cannot be read as {suffix[1:]}: {exc}") from None
    raise ModelfactoryError(f"--input {path}: expected a .csv or .parquet file")


def check_chunk(chunk: pd.DataFrame, columns: list[tuple[str, str]], first_row: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk into (rows fit to score, typed) and (bad rows: row number, column, problem)."""
    missing = [name for name, _ in columns if name not in chunk.columns]
    if missing:
        raise DataValidationError(f"the input has no column(s) {', '.join(missing)}; the model needs "
                                  f"{', '.join(n for n, _ in columns)}")
    rows = pd.RangeIndex(first_row, first_row + len(chunk))
    frame = chunk[[n for n, _ in columns]].set_axis(rows)
    problems = []
    for name, kind in columns:
        values = frame[name]
        absent = values.isna()
        problems += [(r, name, "missing value") for r in values.index[absent]]
        if kind in NUMERIC:
            numeric = pd.to_numeric(values, errors="coerce")
            problems += [(r, name, f"not a number: {values[r]!r}") for r in values.index[numeric.isna() & ~absent]]
            frame[name] = numeric
    bad = pd.DataFrame(problems, columns=["row", "column", "problem"]).sort_values("row", kind="stable")
    bad = bad.drop_duplicates("row").reset_index(drop=True)
    good = frame.drop(index=bad["row"]) if len(bad) else frame
    return good.astype({n: "float64" for n, k in columns if k in NUMERIC}), bad


def score_file(model_dir: Path, input_path: Path, output_path: Path, batch_params: Mapping,
               progress: bool = True, replace: bool = False) -> dict:
    """Score every row of ``input_path`` into ``output_path`` (Parquet); return a summary.

    The output has the input's model columns, ``row`` (the 0-based row number in the input) and
    ``prediction``. Bad rows go to ``<output>.rejected.csv`` when ``on_bad_rows`` is ``skip``.
    An existing output is an error unless ``replace`` (a notebook rerun by hand in its scratch folder).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if not input_path.is_file():
        raise ModelfactoryError(f"--input {input_path}: no such file")
    rejected_path = output_path.with_name(output_path.name + ".rejected.csv")
    if replace:
        output_path.unlink(missing_ok=True)
        rejected_path.unlink(missing_ok=True)
    if output_path.exists():
        raise ModelfactoryError(f"--output {output_path}: already exists; choose a new name (nothing is overwritten)")
    model = tracking.load_model(model_dir, "pyfunc")
    columns = [(s.name, s.type.name) for s in model.metadata.get_input_schema().inputs]
    chunks, total = read_chunks(input_path, batch_params["chunk_rows"])
    partial = output_path.with_name(f".{output_path.name}.partial")
    writer, scored, rejected, first_row = None, 0, 0, 0
    bar = tqdm(total=total, unit="rows", desc=f"scoring {input_path.name}", disable=not progress)
    try:
        for chunk in chunks:
            good, bad = check_chunk(chunk, columns, first_row)
            if len(bad) and batch_params["on_bad_rows"] == "fail":
                shown = "; ".join(f"row {r.row}, column '{r.column}': {r.problem}" for r in bad.head(5).itertuples())
                raise DataValidationError(f"{len(bad)} bad row(s) in chunk starting at row {first_row}: {shown}"
                                          " (batch.on_bad_rows=fail; set it to skip to set them aside)")
            if len(bad):
                bad.to_csv(rejected_path, mode="a", header=not rejected, index=False)
                rejected += len(bad)
            out = good.assign(prediction=model.predict(good) if len(good) else [])
            out.insert(0, "row", out.index)
            table = pa.Table.from_pandas(out, preserve_index=False)
            writer = writer or pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)
            scored += len(good)
            first_row += len(chunk)
            bar.update(len(chunk))
    except BaseException:
        if writer:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if writer is None:
        raise DataValidationError(f"--input {input_path}: the file has no rows")
    writer.close()
    partial.replace(output_path)
    return {"rows": first_row, "scored": scored, "rejected": rejected, "output": str(output_path),
            "rejected_file": str(rejected_path) if rejected else None}


def input_file(batch_params: Mapping, data_params: Mapping, stage) -> Path:
    """The file the scoring stage reads: ``batch.input`` (relative to the project root), or, when it
    is null, the features of the model's own data source written into the stage folder (the demo)."""
    from modelfactory import data, paths

    if batch_params.get("input"):
        path = Path(batch_params["input"])
        path = path if path.is_absolute() else paths.project_root() / path
        if not path.is_file():
            raise ModelfactoryError(f"batch.input {batch_params['input']}: no such file (relative paths start "
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
