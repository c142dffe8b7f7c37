"""Data sources (sklearn, file, registered), the versioned data registry, and bad files' one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import ROOT, cli, copy_project
from modelfactory import paths
from modelfactory.core import data, sources
from modelfactory.ops import data_registry
from modelfactory.errors import DataValidationError, ParamsError


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project copy that paths.py resolves to, with its own (empty) data registry and runs."""
    root = copy_project(tmp_path / "project")
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(root))
    monkeypatch.delenv("MODELFACTORY_DATA_DIR", raising=False)
    monkeypatch.delenv("MODELFACTORY_RUNS_DIR", raising=False)
    return root


@pytest.fixture(scope="module")
def frame():
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def spec(source: str, dataset: str, target: str = "target") -> dict:
    return {"source": source, "dataset": dataset, "target": target}


# -- sources ---------------------------------------------------------------------------------------

def test_csv_and_parquet_read_the_same_rows_with_the_target_last(project, frame):
    shuffled = frame[["target", *[c for c in frame.columns if c != "target"]]]
    shuffled.to_csv(project / "d.csv", index=False)
    shuffled.to_parquet(project / "d.parquet", index=False)
    from_csv = data.load_dataset(spec("file", "d.csv"))
    from_parquet = data.load_dataset(spec("file", "d.parquet"))
    assert list(from_csv.columns) == list(frame.columns)  # target moved last
    pd.testing.assert_frame_equal(from_csv, frame, check_exact=False)
    pd.testing.assert_frame_equal(from_parquet, frame)
    assert from_csv.attrs["source"] == {"source": "file", "name": "d", "uri": "d.csv", "version": None,
                                        "hash": sources.hash_file(project / "d.csv")}


def test_na_cells_in_a_text_column_are_missing_not_a_category(project):
    """The penguins CSV writes a missing sex as NA. pyarrow kept it as the text "NA" in a text column,
    so the model learnt a third sex and the contract never saw the gaps."""
    (project / "p.csv").write_text("sex,mass,target\nmale,1.5,0\nNA,2.5,1\nfemale,NA,0\n,3.5,1\n")
    read = data.load_dataset(spec("file", "p.csv"))
    assert read["sex"].isna().tolist() == [False, True, False, True]
    assert read["mass"].isna().tolist() == [False, False, True, False]


def test_a_folder_or_glob_reads_every_file_in_name_order(project, frame):
    landing = project / "landing"
    landing.mkdir()
    frame.iloc[:200].to_csv(landing / "a.csv", index=False)
    frame.iloc[200:].to_parquet(landing / "b.parquet", index=False)
    (landing / "notes.txt").write_text("not data")
    whole = data.load_dataset(spec("file", "landing"))
    pd.testing.assert_frame_equal(whole, frame.reset_index(drop=True), check_exact=False)
    globbed = data.load_dataset(spec("file", "landing/*.csv"))
    assert len(globbed) == 200
    folder_ref = sources.locate(spec("file", "landing"))
    assert [p.name for p in folder_ref.files] == ["a.csv", "b.parquet"]
    # renaming a file changes a folder's hash: the rows are the same, the data set is not
    (landing / "a.csv").rename(landing / "c.csv")
    assert sources.locate(spec("file", "landing")).hash != folder_ref.hash


def test_sklearn_source_keeps_working_and_names_unknown_datasets(project):
    ref = sources.locate(spec("sklearn", "diabetes"))
    assert (ref.uri, ref.version is not None, len(ref.hash)) == ("sklearn:diabetes", True, 12)
    with pytest.raises(ParamsError, match="data.dataset: scikit-learn bundles no dataset 'diabetis'; it has"):
        data.load_dataset(spec("sklearn", "diabetis"))
    with pytest.raises(DataValidationError) as info:
        data.load_dataset(spec("sklearn", "iris", "y"))
    assert str(info.value).startswith("dataset 'iris': column 'y' (data.target) is not in the data; its columns: "
                                      "sepal length (cm),")


def test_large_files_are_hashed_in_chunks(project, monkeypatch):
    path = project / "big.csv"
    path.write_bytes(b"a,target\n" + b"1,2\n" * 100_000)
    sizes = []
    real_open = open

    class Spy:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            sizes.append(size)
            return self.handle.read(size)

    monkeypatch.setattr(sources, "open", lambda p, mode="r": Spy(real_open(p, mode)), raising=False)
    digest = sources.hash_file(path, chunk_bytes=4096)
    monkeypatch.undo()
    import hashlib

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sizes and all(size == 4096 for size in sizes)  # never read(-1): never the whole file at once
    assert len(sizes) == path.stat().st_size // 4096 + 2  # every block, the short last one, then b""


# -- bad files: one line naming the file, the column and the problem ---------------------------------

@pytest.mark.parametrize("name,content,target,message", [
    ("missing.csv", None, "target", "missing.csv: no such file"),
    ("blob.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "target", "blob.csv: binary, not CSV text (not UTF-8)"),
    ("nul.csv", b"a,target\n1,\x002\n", "target", "nul.csv: binary, not CSV text (it holds NUL bytes)"),
    ("fake.parquet", b"a,target\n1,2\n", "target",
     "fake.parquet: not a readable Parquet file (Parquet magic bytes not found in footer. Either the file is "
     "corrupted or this is not a parquet file.)"),
    ("empty.csv", b"", "target", "empty.csv: the file is empty"),
    ("header.csv", b"a,b,target\n", "target", "header.csv: a header (3 columns) but no rows"),
    ("notarget.csv", b"a,b\n1,2\n3,4\n", "target", "notarget.csv: column 'target' (data.target) is not in the file; "
                                                   "its columns: a, b"),
    ("blank.csv", b"a,target\n1,\n3,\n", "target", "blank.csv: column 'target' (data.target) is empty in all 2 rows"),
    ("data.xlsx", b"PK\x03\x04", "target",
     "data.xlsx: not a CSV or Parquet file (the suffix is '.xlsx'; expected .csv or .parquet)"),
])
def test_bad_files_are_refused_in_one_line_before_a_kernel(project, name, content, target, message):
    if content is not None:
        (project / name).write_bytes(content)
    with pytest.raises(DataValidationError) as info:
        sources.check_source(spec("file", name, target))
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_a_parquet_target_with_no_values_is_found_from_its_metadata(project):
    pd.DataFrame({"a": [1.0, 2.0], "target": [None, None]}).astype({"target": "float64"}).to_parquet(
        project / "blank.parquet")
    with pytest.raises(DataValidationError, match=r"^blank.parquet: column 'target' \(data.target\) is empty in all "
                                                  r"2 rows$"):
        sources.check_source(spec("file", "blank.parquet"))


def test_a_duplicated_header_is_refused_naming_the_column(project):
    (project / "dup.csv").write_text("age,bmi,bmi,target\n" + "\n".join(f"{i},{i % 5},{i % 3},{i * 2.5}" for i in range(50)))
    with pytest.raises(DataValidationError) as info:
        data.load_dataset(spec("file", "dup.csv"))
    assert str(info.value) == "dup.csv: column 'bmi' appears 2 times; rename or drop the copies"


def test_the_cli_refuses_a_bad_file_with_exit_2_and_no_traceback(project):
    (project / "header.csv").write_text("a,target\n")
    done = cli(project, "run", "--model", "diabetes", "--stages", "explore",
               "--set", "data.source=file", "--set", "data.dataset=header.csv")
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: header.csv: a header (2 columns) but no rows\n"
    assert not (project / "runs").exists()  # refused before a run folder or a kernel


# -- the registry ------------------------------------------------------------------------------------

def test_register_dedupes_identical_content_and_versions_changes(project, frame):
    frame.to_csv(project / "d.csv", index=False)
    first, created = data_registry.register_file("diab", project / "d.csv")
    assert created and first["version"] == 1
    assert (first["rows"], len(first["columns"]), first["columns"]["target"]) == (442, 11, "double")
    again, created = data_registry.register_file("diab", project / "d.csv")
    assert not created and again == first
    assert sorted(p.name for p in (project / "data" / "registry" / "diab").iterdir()) == ["v1"]  # no copy
    frame.iloc[:300].to_csv(project / "d.csv", index=False)
    second, created = data_registry.register_file("diab", project / "d.csv")
    assert created and (second["version"], second["rows"]) == (2, 300) and second["hash"] != first["hash"]
    assert data_registry.find_version("diab")["version"] == 2
    assert data_registry.find_version("diab", "1") == first
    stored = data_registry.version_file(first)
    assert stored.stat().st_mode & 0o222 == 0  # read-only
    assert sources.hash_file(stored) == first["hash"]


def test_a_registered_file_whose_content_changed_is_refused(project, frame):
    frame.to_csv(project / "d.csv", index=False)
    record, _ = data_registry.register_file("diab", project / "d.csv")
    ref = sources.check_source(spec("registered", "diab:latest"))
    assert (ref.uri, ref.version, ref.hash) == ("diab:1", "1", record["hash"])
    stored = data_registry.version_file(record)
    stored.chmod(0o644)
    stored.write_text(stored.read_text().replace("151.0", "152.0", 1))
    with pytest.raises(DataValidationError) as info:
        sources.check_source(spec("registered", "diab"))
    now = sources.hash_file(stored)
    assert str(info.value) == (
        f"data/registry/diab/v1/d.csv: content changed since it was registered as diab:1 (hash {record['hash'][:12]}, "
        f"now {now[:12]}); registered data is immutable: register the new file as a new version "
        f"({paths.command_prefix()} data register diab FILE)")


def test_unknown_names_and_versions_are_one_line(project, frame):
    from modelfactory import paths

    with pytest.raises(ParamsError) as info:
        sources.locate(spec("registered", "nope"))
    # the register line starts the way this process was started, like the rerun lines: pasted, it works
    assert str(info.value) == ("data.dataset nope: no such registered dataset (registered: none); "
                               f"register it first: {paths.command_prefix()} data register nope FILE")
    assert paths.command_prefix() != "modelfactory"  # (pytest's python, not a bare name off PATH)
    frame.to_csv(project / "d.csv", index=False)
    data_registry.register_file("diab", project / "d.csv")
    with pytest.raises(ParamsError, match=r"^data.dataset diab:7: no such version; diab has 1$"):
        sources.locate(spec("registered", "diab:7"))
    with pytest.raises(ParamsError, match="dataset name 'Diab'"):
        data_registry.register_file("Diab", project / "d.csv")


def test_from_folder_registers_the_newest_changed_file(project, frame):
    import os

    landing = project / "landing"
    landing.mkdir()
    frame.iloc[:100].to_csv(landing / "jan.csv", index=False)
    frame.iloc[:200].to_csv(landing / "feb.csv", index=False)
    os.utime(landing / "jan.csv", ns=(1_000_000_000, 1_000_000_000))
    record, created = data_registry.register_newest("diab", landing)
    assert created and (record["rows"], record["file"]) == (200, "feb.csv")
    record, created = data_registry.register_newest("diab", landing)  # nothing new landed
    assert not created and record["version"] == 1
    frame.to_parquet(landing / "mar.parquet", index=False)
    record, created = data_registry.register_newest("diab", landing)
    assert created and (record["version"], record["rows"], record["file"]) == (2, 442, "mar.parquet")


def test_list_and_show_print_versions_schema_hash_and_the_runs_that_used_them(project, frame):
    frame.to_csv(project / "d.csv", index=False)
    done = cli(project, "data", "register", "diab", "d.csv")
    assert done.returncode == 0, done.stderr
    record = data_registry.find_version("diab")
    assert done.stdout == (f"registered diab:1 (442 rows, 11 columns, hash {record['hash'][:12]}) -> "
                           "data/registry/diab/v1/d.csv\n")
    # a run that read it, as the runner records it
    run = project / "runs" / "20261130-120000-diabetes-abcd"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "run_id": run.name, "model": "diabetes", "env": "dev", "status": "succeeded", "created": "x",
        "data": {"source": "registered", "name": "diab", "uri": "diab:1", "version": "1", "hash": record["hash"]}}))
    listed = cli(project, "data", "list")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:4] == ["diab:1", "442", "11", record["hash"][:12]] and row[-1] == "1"
    shown = cli(project, "data", "show", "diab:1")
    assert shown.returncode == 0, shown.stderr
    assert f"  hash        {record['hash']}\n" in shown.stdout
    assert "  schema      age: double, sex: double," in shown.stdout
    assert f"  registered  {record['registered']} from d.csv\n" in shown.stdout
    assert "  used by     20261130-120000-diabetes-abcd (succeeded)\n" in shown.stdout
    missing = cli(project, "data", "show", "diab:2")
    assert (missing.returncode, missing.stderr) == (2, "error: data.dataset diab:2: no such version; diab has 1\n")
    same = cli(project, "data", "register", "diab", "d.csv")
    assert same.stdout == f"diab:1 already holds this content (hash {record['hash'][:12]}); nothing copied\n"


def test_a_run_on_changed_registered_data_stops_with_exit_2_before_a_kernel(project, frame):
    frame.to_csv(project / "d.csv", index=False)
    record, _ = data_registry.register_file("diab", project / "d.csv")
    stored = data_registry.version_file(record)
    stored.chmod(0o644)
    with open(stored, "a") as handle:
        handle.write("1,2,3,4,5,6,7,8,9,10,11\n")
    done = cli(project, "run", "--model", "diabetes", "--stages", "explore",
               "--set", "data.source=registered", "--set", "data.dataset=diab")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: data/registry/diab/v1/d.csv: content changed since it was registered as "
                                  f"diab:1 (hash {record['hash'][:12]}, now ")
    assert len(done.stderr.splitlines()) == 1 and not (project / "runs").exists()


def test_a_registered_dataset_name_is_checked_with_the_params(project):
    from modelfactory.params import resolve

    with pytest.raises(ParamsError) as info:
        resolve("diabetes", "dev", ["data.source=registered", "data.dataset=Penguins v2"])
    assert str(info.value) == ("--set: data.dataset: 'Penguins v2' is not NAME, NAME:VERSION or NAME:latest of a "
                               "registered dataset (data.source: registered)")
    assert resolve("diabetes", "dev", ["data.source=registered", "data.dataset=penguins:3"])["data"]["dataset"] == \
        "penguins:3"


def test_a_run_that_reuses_explore_records_the_data_of_the_run_it_reuses(project, tmp_path):
    from modelfactory.ops import runner
    from modelfactory.params import resolve
    from modelfactory.ops.pipeline import load_pipeline

    pipeline = load_pipeline("training")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    used = {"source": "registered", "name": "diab", "uri": "diab:2", "version": "2", "hash": "ab" * 32}
    (earlier / "manifest.json").write_text(json.dumps({"data": used}))
    params = resolve("diabetes", "dev")
    assert runner._data_record(pipeline, ["train", "evaluate"], params, {"explore": earlier}) == used
    fresh = runner._data_record(pipeline, ["explore", "train"], params, {})
    assert (fresh["source"], fresh["uri"]) == ("sklearn", "sklearn:diabetes")


def test_a_csv_column_that_turns_to_text_after_the_first_block_is_recorded_as_read(project):
    # pyarrow's stream types columns from its first block (1 MiB); the whole-file reader sees all rows
    rows = "".join(f"{i},{i},{i % 7}\n" for i in range(200_000))
    (project / "late.csv").write_text("a,code,target\n" + rows + "7,x-12,3\n")
    assert (project / "late.csv").stat().st_size > 2 << 20
    ref = sources.check_source(spec("file", "late.csv"))
    columns, count = sources.file_schema(project / "late.csv")
    assert (columns, count) == ({"a": "int64", "code": "string", "target": "int64"}, 200_001)
    frame = sources.read(ref)
    assert frame["code"].iloc[-1] == "x-12" and frame["a"].dtype == "int64"


def test_a_missing_demo_dataset_names_the_one_command_that_registers_it(project):
    from modelfactory.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError) as info:  # a copied project has no Makefile: the register line
        sources.locate(spec("registered", "penguins:latest"))
    assert str(info.value).endswith(" data register penguins FILE")
    (project / "Makefile").write_text((ROOT / "Makefile").read_text())
    with pytest.raises(DataNotFoundError) as info:  # a clone: the demo's own target, `make run` runs first
        sources.locate(spec("registered", "penguins:latest"))
    assert str(info.value) == ("data.dataset penguins: no such registered dataset (registered: none); "
                               "register it first: make demo-data")
    assert "demo-data:" in (ROOT / "Makefile").read_text()


def test_a_run_of_several_models_skips_the_one_whose_data_is_missing(project):
    from modelfactory.errors import DataNotFoundError
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.ops.runner import RunRequest, check_requests

    training = load_pipeline("training")
    asked = [RunRequest("penguins"), RunRequest("diabetes")]
    said = []
    checked = check_requests(asked, training, said.append)
    assert [c[0].model for c in checked] == ["diabetes"]
    assert [(model, type(exc)) for model, exc in checked.missing] == [("penguins", DataNotFoundError)]
    assert said == [f"skipped penguins: {checked.missing[0][1]}"]
    assert DataNotFoundError.exit_code == 2
    with pytest.raises(DataNotFoundError):  # alone, it stops the command as before
        check_requests([RunRequest("penguins")], training, said.append)
    with pytest.raises(DataNotFoundError):  # and when no model has its data, nothing runs
        check_requests([RunRequest("penguins"), RunRequest("penguins", env="dev")], training, said.append)
def test_load_dataset_reads_a_file_while_hashing_it_and_keeps_the_errors_order(project, frame):
    frame.to_csv(project / "d.csv", index=False)
    with sources.reading_while_hashing():
        ref = sources.locate(spec("file", "d.csv"))
        assert tuple(ref.files) in sources._READING.pending  # the read started with the hash
        overlapped = sources.read(ref)
        assert not sources._READING.pending  # read_files took that read, it did not start another
    pd.testing.assert_frame_equal(overlapped, sources.read(ref))
    # a registered file changed into one pyarrow cannot read: the changed hash is what is said, as before
    record, _ = data_registry.register_file("diab", project / "d.csv")
    stored = data_registry.version_file(record)
    stored.chmod(0o644)
    stored.write_text(stored.read_text() + "1,2,3\n")  # a row with too few cells
    with pytest.raises(DataValidationError, match=r"^data/registry/diab/v1/d.csv: content changed since it was registered"):
        data.load_dataset(spec("registered", "diab"))
    (project / "e.csv").write_text(stored.read_text())
    with pytest.raises(DataValidationError, match=r"^e.csv: not readable \(CSV parse error"):
        data.load_dataset(spec("file", "e.csv"))
    assert not sources._READING.pending and sources._READING.pool is None
