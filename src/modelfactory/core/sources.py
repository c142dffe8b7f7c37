"""Where raw rows come from: a tiny registry of readers, one per ``data.source`` kind.

A kind is two functions: ``locate`` turns ``data.dataset`` into a DataRef (which files, their URI,
version and content hash) without loading any rows, and ``read`` turns that DataRef into a
DataFrame. A new kind is those two functions plus one ``register(...)`` line. CSV and Parquet are
read with pyarrow. Files are hashed in chunks, and checked from Parquet metadata or a CSV stream,
so a file larger than memory is never loaded whole just to hash or check it.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import re
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory import paths
from modelfactory.errors import DataValidationError, ParamsError

CHUNK_BYTES = 1 << 20          # hashing reads this much at a time, whatever the file's size
SNIFF_BYTES = 8192             # how much of a CSV is looked at to tell text from binary
if TYPE_CHECKING:  # pandas and pyarrow load only when rows are read: `data list` stays quick
    import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MOUNTED = ("file", "registered", "azureml", "blob")  # the kinds an Azure ML job receives as a job input
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error")


@dataclass(frozen=True)
class DataRef:
    """Rows located but not yet read: what a run records about its data."""

    kind: str
    name: str
    uri: str
    version: str | None
    hash: str
    files: tuple[Path, ...] = field(default=(), compare=False)
    workspace: str | None = field(default=None, compare=False)  # the Azure ML asset holding this version

    def record(self) -> dict:
        """The JSON-ready facts a manifest and MLflow keep: source, URI, version and content hash (and,
        when a workspace data asset holds this version, that asset)."""
        facts = {"source": self.kind, "name": self.name, "uri": self.uri, "version": self.version, "hash": self.hash}
        return {**facts, "workspace_version": self.workspace} if self.workspace else facts


@dataclass(frozen=True)
class Source:
    """One kind of source: how to locate it and how to read it."""

    locate: Callable[[str], DataRef]
    read: Callable[[DataRef], pd.DataFrame]


SOURCES: dict[str, Source] = {}


def register(kind: str, locate: Callable[[str], DataRef], read: Callable[[DataRef], pd.DataFrame]) -> None:
    """Make ``data.source: <kind>`` available."""
    SOURCES[kind] = Source(locate, read)


def locate(data_params) -> DataRef:
    """Locate and check the data that ``params['data']`` names, reading no rows where it can."""
    kind = data_params["source"]
    if kind not in SOURCES:
        raise ParamsError(f"data.source: unknown source '{kind}'; known: {', '.join(sorted(SOURCES))}")
    mount = paths.data_input()
    if mount is not None and kind in MOUNTED:  # an Azure ML step: the data is its mounted job input
        return locate_mount(kind, data_params["dataset"], mount)
    return SOURCES[kind].locate(data_params["dataset"])


def check_source(data_params) -> DataRef:
    """Everything about the data that can be found before a kernel starts: the file is there, readable,
    has rows, has the target column with at least one value, and its header fits a declared data
    contract (every contract column; no other when it is strict). Reads schemas and streams; no frame."""
    from modelfactory.core.contract import check_header, declared_contract

    ref = locate(data_params)
    if ref.files:
        check_target(ref.files, data_params["target"])
        contract = declared_contract(data_params)
        if contract is not None:
            for path in ref.files:
                check_header(header(path), contract, data_params["target"], shown(path))
    return ref


def header(path: Path) -> list[str]:
    """A file's column names, from Parquet's footer or a CSV's first block."""
    import pyarrow.csv as pacsv

    if FORMATS[path.suffix.lower()] == "parquet":
        return list(_parquet_file(path).schema_arrow.names)
    with pacsv.open_csv(path) as reader:
        return list(reader.schema.names)


def read(ref: DataRef) -> pd.DataFrame:
    """Read the rows a DataRef points at."""
    return SOURCES[ref.kind].read(ref)


# -- partitions (one model per key of data.partition_by; ops/partitions.py) ---------------------------

def partition_counts(data_params) -> list[tuple[dict, int]]:
    """Each distinct key of ``data.partition_by`` in the data, with its row count.

    Only the key columns are read (Parquet reads just those columns; a CSV is streamed with only
    them converted), so counting a large file's partitions costs little memory.

    Raises:
        DataValidationError: a key column is not in the data (one line naming it and the file).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    by = list(data_params["partition_by"])
    ref = locate(data_params)
    if not ref.files:  # a bundled dataset: small, read whole
        table = pa.Table.from_pandas(read(ref), preserve_index=False)
        _require_key_columns(table.column_names, by, ref.uri)
        tables = [table.select(by)]
    else:
        tables = []
        for path in ref.files:
            _require_key_columns(header(path), by, shown(path))
            if FORMATS[path.suffix.lower()] == "parquet":
                tables.append(pq.read_table(path, columns=by))
            else:
                options = pacsv.ConvertOptions(include_columns=by, strings_can_be_null=True)
                tables.append(pacsv.read_csv(path, convert_options=options))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    grouped = table.group_by(by).aggregate([([], "count_all")]).to_pylist()
    return [({c: row[c] for c in by}, row["count_all"]) for row in grouped]


def _require_key_columns(columns, by: list[str], where: str) -> None:
    missing = [c for c in by if c not in columns]
    if missing:
        raise DataValidationError(f"{where}: column '{missing[0]}' (data.partition_by) is not in the data; "
                                  f"its columns: {', '.join(map(str, columns))}")


def read_partition(ref: DataRef, partition) -> pd.DataFrame:
    """The rows of one partition (``{column: value}``), without its key columns, which are the same
    in every row. Parquet files are read with a pyarrow filter, so other partitions' row groups are
    skipped where the file's statistics allow; other sources are read whole and filtered."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if ref.files and all(FORMATS[p.suffix.lower()] == "parquet" for p in ref.files):
        condition = None
        for column, value in partition.items():
            term = pc.field(column) == value
            condition = term if condition is None else condition & term
        try:
            tables = [pq.read_table(path, filters=condition) for path in ref.files]
        except (pa.ArrowException, TypeError) as exc:  # a value of another type than the column's
            raise DataValidationError(f"{ref.uri}: cannot select partition {partition} ({_first_line(exc)})") from None
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        frame = table.to_pandas(split_blocks=True, self_destruct=True)
    else:
        frame = read(ref)
        mask = None
        for column, value in partition.items():
            # compared as text: a CSV's "007" and a key typed 7 by hand must not quietly differ in type
            term = frame[column].astype(str) == str(value)
            mask = term if mask is None else mask & term
        frame = frame[mask].reset_index(drop=True)
    return frame.drop(columns=list(partition))


# -- files -----------------------------------------------------------------------------------------

def shown(path: Path) -> str:
    """A path as a message shows it: from the project root when inside it."""
    return paths.relative_to_root(path)


def hash_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> str:
    """The SHA-256 of a file's bytes, read ``chunk_bytes`` at a time (memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


# While load_dataset reads (reading_while_hashing), the files being hashed are read in a thread at
# the same time: hashlib and pyarrow both let go of the GIL, so the read no longer waits for the hash.
_READING = threading.local()


@contextmanager
def reading_while_hashing():
    """Within it, hashing local files (hash_files, as each kind's locate does) starts reading them
    with pyarrow in a thread at once, and read_files takes that read instead of starting its own.
    Errors keep their order: a hash that does not match is raised first; the read's own error is
    raised by read_files. A read nobody took is waited for and dropped on leaving."""
    _READING.pending = {}
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelfactory-read") as pool:
            _READING.pool = pool
            yield
    finally:
        _READING.pending, _READING.pool = {}, None


def _start_reading(files: tuple[Path, ...]) -> None:
    pool = getattr(_READING, "pool", None)
    if pool is not None and files not in _READING.pending:
        _READING.pending[files] = pool.submit(_read_tables, files)


def hash_files(files: tuple[Path, ...]) -> str:
    """One file's hash, or for several, a hash over their names and hashes (renaming one changes it)."""
    _start_reading(tuple(files))
    if len(files) == 1:
        return hash_file(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{hash_file(path)}\n".encode())
    return digest.hexdigest()


def check_file(path: Path) -> str:
    """Refuse a file that is missing, empty, of an unknown kind, or not what its suffix says.

    Returns its format (``csv`` or ``parquet``). Only the first bytes (CSV) or the footer
    (Parquet) are read.
    """
    if not path.exists():
        raise DataValidationError(f"{shown(path)}: no such file")
    if not path.is_file():
        raise DataValidationError(f"{shown(path)}: not a file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataValidationError(f"{shown(path)}: not a CSV or Parquet file (the suffix is "
                                  f"'{path.suffix}'; expected .csv or .parquet)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise DataValidationError(f"{shown(path)}: cannot be read ({exc.strerror})") from None
    if not head:
        raise DataValidationError(f"{shown(path)}: the file is empty")
    if kind == "csv":
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            raise DataValidationError(f"{shown(path)}: binary, not CSV text (not UTF-8)") from None
        if b"\0" in head:
            raise DataValidationError(f"{shown(path)}: binary, not CSV text (it holds NUL bytes)")
    else:
        _parquet_file(path)
    return kind


def _parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(f"{shown(path)}: not a readable Parquet file ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def file_schema(path: Path) -> tuple[dict[str, str], int]:
    """``({column: type}, rows)`` of one file: from Parquet's metadata, or by streaming a CSV."""
    if check_file(path) == "parquet":
        meta = _parquet_file(path)
        schema = meta.schema_arrow
        rows = meta.metadata.num_rows
    else:
        schema, rows = _stream_csv(path)
    if not len(schema.names):
        raise DataValidationError(f"{shown(path)}: no columns")
    if rows == 0:
        raise DataValidationError(f"{shown(path)}: a header ({len(schema.names)} columns) but no rows")
    return {name: str(schema.field(name).type) for name in schema.names}, rows


def _stream_csv(path: Path, column_types: dict | None = None):
    """A CSV's schema and row count, one block in memory at a time.

    The stream fixes each column's type from the first block; when a later block holds text in a
    column typed as numbers, that column is read as text and the stream starts again, which is the
    type a whole-file ``read_csv`` gives it too (so the registry records what a stage reads).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    column_types = dict(column_types or {})
    try:
        options = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
        with pacsv.open_csv(path, convert_options=options) as reader:
            return reader.schema, sum(batch.num_rows for batch in reader)
    except pa.ArrowException as exc:
        found = _CONVERSION.search(str(exc))
        if found:
            names = pacsv.open_csv(path).schema.names
            index = int(found.group(1))
            if index < len(names) and names[index] not in column_types:
                return _stream_csv(path, {**column_types, names[index]: pa.string()})
        raise DataValidationError(f"{shown(path)}: not a readable CSV file ({_first_line(exc)})") from None


def check_target(files: tuple[Path, ...], target: str) -> None:
    """Refuse data whose target column is absent from a file, or has no value in any row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    empty_rows, rows = 0, 0
    for path in files:
        columns, count = file_schema(path)
        if target not in columns:
            raise DataValidationError(f"{shown(path)}: column '{target}' (data.target) is not in the file; "
                                      f"its columns: {', '.join(columns)}")
        rows += count
        if FORMATS[path.suffix.lower()] == "parquet":
            meta = _parquet_file(path).metadata
            index = meta.schema.to_arrow_schema().get_field_index(target)
            stats = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
            if all(s is not None and s.has_null_count for s in stats):
                empty_rows += sum(s.null_count for s in stats)
                continue
            table = _parquet_file(path).read(columns=[target])
            empty_rows += table.column(target).null_count
            continue
        # read as text, so a target of mixed types cannot fail here; empty and NA-like cells are nulls
        options = pacsv.ConvertOptions(include_columns=[target], column_types={target: pa.string()},
                                       strings_can_be_null=True)
        with pacsv.open_csv(path, convert_options=options) as reader:
            empty_rows += sum(batch.column(0).null_count for batch in reader)
    if rows and empty_rows == rows:
        where = shown(files[0]) if len(files) == 1 else f"{shown(files[0].parent)} ({len(files)} files)"
        raise DataValidationError(f"{where}: column '{target}' (data.target) is empty in all {rows} rows")


def read_files(ref: DataRef) -> pd.DataFrame:
    """Read CSV and Parquet files with pyarrow into one DataFrame (columns of the same name line up)."""
    import pyarrow as pa

    pending: Future | None = getattr(_READING, "pending", {}).pop(tuple(ref.files), None)
    try:
        table = pending.result() if pending is not None else _read_tables(tuple(ref.files))
    except _Mismatch as exc:
        raise DataValidationError(f"{ref.uri}: the files do not share one schema ({exc})") from None
    if table.num_rows == 0:
        raise DataValidationError(f"{ref.uri}: no rows")
    text = {name: table.column(i) for i, name in enumerate(table.column_names)
            if pa.types.is_string(table.schema.types[i]) or pa.types.is_large_string(table.schema.types[i])}
    # Each Arrow column is freed once converted, so the table and the frame are never both whole in
    # memory (a column per block: nothing is copied to consolidate them). Text columns are kept as
    # Arrow too (a few bytes a value), for the checks (text_columns).
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    _remember_text(frame, text)
    return frame



def _read_tables(files: tuple[Path, ...]):
    """The files as one pyarrow Table (columns of the same name line up)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tables = []
    for path in files:
        try:
            if check_file(path) == "parquet":
                tables.append(pq.read_table(path))
            else:
                # "NA", "NULL", "" and the like are gaps in text columns too, as pandas reads them:
                # otherwise a text column's blanks become a category of their own ("NA").
                tables.append(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)))
        except pa.ArrowException as exc:
            raise DataValidationError(f"{shown(path)}: not readable ({_first_line(exc)})") from None
    try:
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except pa.ArrowException as exc:
        raise _Mismatch(_first_line(exc)) from None


class _Mismatch(Exception):
    """Files that do not share one schema (read_files names the data, which only the DataRef knows)."""


# The text columns of each frame read_files returned, as Arrow read them, by id(frame) (DataFrames
# cannot be weak keys) and dropped with the frame: ``{id: (weakref, {column: (objects, arrow)})}``.
# pandas keeps text as one Python object a value, and answering "which are missing?" or "which
# values are there?" means looking at each one (about 0.1 s a column on 2 million rows); Arrow
# has the answer in a bitmap and in contiguous bytes. ``objects`` is a copy of the frame's column as
# read: it keeps those very str objects alive, so a column still holding the same objects (compared
# by address, text_columns) holds the same values as the Arrow one.
_TEXT: dict[int, tuple] = {}


def _remember_text(frame: pd.DataFrame, text: dict) -> None:
    import numpy as np

    if not frame.columns.is_unique:
        return
    kept = {}
    for name, column in text.items():
        if name in frame.columns and frame[name].dtype == object and len(column) == len(frame):
            objects = np.array(frame[name].to_numpy(), dtype=object, copy=True)
            kept[name] = (objects, column)
    if kept:
        key = id(frame)
        _TEXT[key] = (weakref.ref(frame, lambda ref, key=key: _forget(key, ref)), kept)


def _forget(key: int, ref) -> None:
    if _TEXT.get(key, (None,))[0] is ref:  # not a newer frame that took the same id
        del _TEXT[key]


def text_columns(frame: pd.DataFrame) -> dict:
    """The text columns of a frame that read_files returned, as Arrow arrays (``{column: pyarrow
    ChunkedArray}``), for those whose values are still exactly the ones read: the same str objects,
    in the same rows. A column changed since (a value set, rows dropped, the column replaced) is not
    among them; neither is any column of another frame, a copy included."""
    entry = _TEXT.get(id(frame))
    if entry is None or entry[0]() is not frame or not frame.columns.is_unique:
        return {}
    found = {}
    for name, (objects, column) in entry[1].items():
        if name in frame.columns and frame[name].dtype == object and _same_objects(frame[name].to_numpy(), objects):
            found[name] = column
    return found


def _same_objects(array, objects) -> bool:
    """Whether two object arrays hold the very same objects, row by row: their pointers compared as
    integers, in one pass (``==`` would call Python's comparison per value). ``objects`` keeps its
    values alive, so an address in both is the same object, not a new one where a freed one was."""
    import ctypes

    import numpy as np

    if array.shape != objects.shape or array.ndim != 1 or not array.flags.c_contiguous or not objects.flags.c_contiguous:
        return False

    def addresses(values):
        return np.frombuffer((ctypes.c_char * values.nbytes).from_address(values.ctypes.data), dtype=np.uintp)

    return bool(np.array_equal(addresses(array), addresses(objects)))


def find_files(dataset: str) -> tuple[Path, ...]:
    """The CSV and Parquet files that a path, folder or glob names (relative to the project root)."""
    root = paths.project_root()
    pattern = Path(dataset).expanduser()
    pattern = pattern if pattern.is_absolute() else root / pattern
    if glob.has_magic(str(pattern)):
        found = tuple(sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).suffix.lower() in FORMATS))
        if not found:
            raise DataValidationError(f"data.dataset {dataset}: no CSV or Parquet file matches")
        return found
    if pattern.is_dir():
        found = tuple(sorted(p for p in pattern.iterdir() if p.is_file() and p.suffix.lower() in FORMATS))
        if not found:
            raise DataValidationError(f"{shown(pattern)}: the folder holds no CSV or Parquet file")
        return found
    return (pattern,)


def locate_file(dataset: str) -> DataRef:
    """``data.source: file``: a CSV or Parquet file, or a folder or glob of them."""
    files = find_files(dataset)
    for path in files:
        check_file(path)
    name = files[0].stem if len(files) == 1 else Path(dataset).name
    return DataRef("file", name, dataset, None, hash_files(files), files)


# -- scikit-learn's bundled datasets (the demos) ---------------------------------------------------

def _sklearn_frame(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}", None)
    if loader is None:
        known = sorted(n.removeprefix("load_") for n in dir(datasets) if n.startswith("load_"))
        raise ParamsError(f"data.dataset: scikit-learn bundles no dataset '{name}'; it has {', '.join(known)}")
    return loader(as_frame=True).frame


def locate_sklearn(dataset: str) -> DataRef:
    """``data.source: sklearn``: a small dataset bundled with scikit-learn (its version is sklearn's)."""
    import sklearn

    from modelfactory.core.data import dataset_hash

    return DataRef("sklearn", dataset, f"sklearn:{dataset}", sklearn.__version__,
                   dataset_hash(_sklearn_frame(dataset)))


def read_sklearn(ref: DataRef) -> pd.DataFrame:
    """Load a scikit-learn dataset as one DataFrame, target included."""
    return _sklearn_frame(ref.name)


# -- the project's data registry (data_registry.py) ------------------------------------------------

def locate_registered(dataset: str) -> DataRef:
    """``data.source: registered``: ``NAME`` or ``NAME:VERSION`` from the data registry (latest when
    no version is given); its content is checked against the hash recorded when it was registered."""
    from modelfactory.ops import data_registry

    name, _, version = dataset.partition(":")
    record = data_registry.find_version(name, version or "latest")
    path = data_registry.version_file(record)
    check_file(path)
    found = hash_files((path,))
    if found != record["hash"]:
        raise DataValidationError(
            f"{shown(path)}: content changed since it was registered as {name}:{record['version']} "
            f"(hash {record['hash'][:12]}, now {found[:12]}); registered data is immutable: register the new "
            f"file as a new version ({paths.command_prefix()} data register {name} FILE)")
    return DataRef("registered", name, f"{name}:{record['version']}", str(record["version"]), found, (path,),
                   _workspace_asset(record))


def _workspace_asset(record: dict) -> str | None:
    from modelfactory.ops.azureml.data_assets import workspace_asset

    return (workspace_asset(record) or {}).get("asset")


# -- Azure: workspace data assets, blob storage, and a job's mounted input -------------------------

def locate_azureml(dataset: str) -> DataRef:
    """``data.source: azureml``: ``azureml:NAME:VERSION``, ``azureml:NAME@latest`` or an ``azureml://``
    URI, resolved through the MLClient and downloaded once into ``data/cache/azureml/`` (azureml/data_assets.py)."""
    from modelfactory.ops.azureml import data_assets

    found = data_assets.fetch(dataset)
    for path in found.files:
        check_file(path)
    return DataRef("azureml", found.name, found.uri, found.version, hash_files(found.files), found.files)


def locate_blob(dataset: str) -> DataRef:
    """``data.source: blob``: an ``abfss://`` or ``az://`` URI (a file, folder or glob), read through
    fsspec/adlfs with DefaultAzureCredential into ``data/cache/blob/`` (remote_data.py)."""
    from modelfactory.core import remote_data

    location = remote_data.parse_blob_uri(dataset)
    folder = remote_data.cache_dir("blob", location.account, *remote_data.base_path(location).split("/"))
    files = remote_data.fetch(location, folder)
    for path in files:
        check_file(path)
    name = Path(location.path.rstrip("/")).name or location.container
    return DataRef("blob", name, dataset, None, hash_files(files), files)


def locate_mount(kind: str, dataset: str, mount: Path) -> DataRef:
    """Inside an Azure ML step: the data is the step's mounted job input (``MODELFACTORY_DATA_INPUT``);
    no SDK, registry or storage call. The URI and version recorded are those the job input names."""
    from modelfactory.core import remote_data

    pattern = Path(dataset).name if kind == "file" and glob.has_magic(Path(dataset).name) else None
    files = remote_data.mounted_files(mount, pattern)
    for path in files:
        check_file(path)
    name, version = Path(dataset.rstrip("/")).stem or dataset, None
    if kind == "registered":
        name, _, version = dataset.partition(":")
    elif kind == "azureml" and dataset.startswith("azureml:") and not dataset.startswith("azureml://"):
        name, _, version = dataset.removeprefix("azureml:").partition(":")
        name = name.split("@")[0]
    return DataRef(kind, name, dataset, version or None, hash_files(files), files)


register("sklearn", locate_sklearn, read_sklearn)
register("file", locate_file, read_files)
register("registered", locate_registered, read_files)
register("azureml", locate_azureml, read_files)
register("blob", locate_blob, read_files)
