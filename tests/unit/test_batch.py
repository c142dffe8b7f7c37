"""Batch scoring: chunked, checked like the endpoint, bad rows set aside or fatal, nothing overwritten."""

import numpy as np
import pandas as pd
import pytest

from modelfactory.core.batch import score_file
from modelfactory.errors import DataValidationError, InputFileError, ModelfactoryError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    fitted = Ridge().fit(x, frame["target"])
    folder = tmp_path_factory.mktemp("batch") / "model"
    mlflow.sklearn.save_model(fitted, folder, signature=infer_signature(x, fitted.predict(x)),
                              pip_requirements=["scikit-learn"])
    return folder, x, fitted


def test_parquet_larger_than_a_chunk_streams_through(model, tmp_path):
    folder, x, fitted = model
    x.to_parquet(tmp_path / "in.parquet")
    summary = score_file(folder, tmp_path / "in.parquet", tmp_path / "out.parquet",
                         {"chunk_rows": 50, "on_bad_rows": "fail"}, progress=False)
    assert summary == {"rows": 442, "scored": 442, "rejected": 0, "output": str(tmp_path / "out.parquet"),
                       "rejected_file": None}
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["row"].tolist() == list(range(442))
    assert out["prediction"].to_numpy() == pytest.approx(fitted.predict(x))


def bad_csv(x, path):
    frame = x.head(20).astype(object)
    frame.loc[5, "bmi"] = "heavy"
    frame.loc[7, "age"] = None
    frame.to_csv(path, index=False)


def test_bad_rows_are_set_aside_with_their_row_numbers(model, tmp_path):
    folder, x, fitted = model
    bad_csv(x, tmp_path / "in.csv")
    summary = score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet",
                         {"chunk_rows": 8, "on_bad_rows": "skip"}, progress=False)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (20, 18, 2)
    rejected = pd.read_csv(summary["rejected_file"])
    assert rejected.to_dict(orient="records") == [
        {"row": 5, "column": "bmi", "problem": "not a number: 'heavy'"},
        {"row": 7, "column": "age", "problem": "missing value"}]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert 5 not in set(out["row"]) and len(out) == 18


def test_fail_mode_names_the_rows_and_leaves_no_output(model, tmp_path):
    folder, x, _ = model
    bad_csv(x, tmp_path / "in.csv")
    with pytest.raises(DataValidationError) as info:
        score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet",
                   {"chunk_rows": 100, "on_bad_rows": "fail"}, progress=False)
    assert str(info.value) == ("2 bad row(s) in chunk starting at row 0: row 5, column 'bmi': not a number: "
                               "'heavy'; row 7, column 'age': missing value (batch.on_bad_rows=fail; set it "
                               "to skip to set them aside)")
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".*partial"))


def test_missing_column_and_existing_output_are_refused(model, tmp_path):
    folder, x, _ = model
    x.drop(columns="bmi").to_parquet(tmp_path / "in.parquet")
    with pytest.raises(DataValidationError, match="the input has no column.s. bmi; the model needs age, sex, bmi"):
        score_file(folder, tmp_path / "in.parquet", tmp_path / "out.parquet",
                   {"chunk_rows": 100, "on_bad_rows": "skip"}, progress=False)
    (tmp_path / "taken.parquet").write_bytes(b"keep me")
    with pytest.raises(ModelfactoryError, match="already exists; choose a new name"):
        score_file(folder, tmp_path / "in.parquet", tmp_path / "taken.parquet",
                   {"chunk_rows": 100, "on_bad_rows": "skip"}, progress=False)
    assert (tmp_path / "taken.parquet").read_bytes() == b"keep me"


def test_unreadable_input_is_one_line_not_a_traceback(model, tmp_path):
    folder, _, _ = model
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataValidationError) as info:
        score_file(folder, tmp_path / "broken.parquet", tmp_path / "out.parquet",
                   {"chunk_rows": 100, "on_bad_rows": "skip"}, progress=False)
    message = str(info.value)
    assert message.startswith(f"--input {tmp_path / 'broken.parquet'}: cannot be read as parquet: ")
    assert "\n" not in message
    assert not (tmp_path / "out.parquet").exists()


SKIP = {"chunk_rows": 8, "on_bad_rows": "skip"}


def test_an_infinite_cell_is_set_aside_like_any_bad_row(model, tmp_path):
    folder, x, fitted = model
    frame = x.head(20).copy()
    frame.loc[3, "bmi"], frame.loc[11, "s1"] = np.inf, -np.inf
    frame.to_csv(tmp_path / "in.csv", index=False)  # written as inf / -inf, which pandas reads back as floats
    summary = score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet", SKIP, progress=False)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (20, 18, 2)
    assert pd.read_csv(summary["rejected_file"]).to_dict(orient="records") == [
        {"row": 3, "column": "bmi", "problem": "not a finite number: inf"},
        {"row": 11, "column": "s1", "problem": "not a finite number: -inf"}]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["prediction"].to_numpy() == pytest.approx(fitted.predict(x.head(20).drop(index=[3, 11])))


def test_output_is_written_in_the_format_its_suffix_names(model, tmp_path):
    folder, x, fitted = model
    x.head(30).to_parquet(tmp_path / "in.parquet")
    summary = score_file(folder, tmp_path / "in.parquet", tmp_path / "out.csv", SKIP, progress=False)
    assert summary["scored"] == 30
    out = pd.read_csv(tmp_path / "out.csv")  # a real CSV, header once, every chunk appended
    assert list(out.columns) == ["row", *x.columns, "prediction"] and out["row"].tolist() == list(range(30))
    assert out["prediction"].to_numpy() == pytest.approx(fitted.predict(x.head(30)))
    with pytest.raises(InputFileError) as info:
        score_file(folder, tmp_path / "in.parquet", tmp_path / "out.txt", SKIP, progress=False)
    assert str(info.value) == f"--output {tmp_path / 'out.txt'}: expected a .parquet or .csv file name, got '.txt'"
    assert info.value.exit_code == 2 and not (tmp_path / "out.txt").exists()


def test_an_output_folder_that_does_not_exist_is_one_line(model, tmp_path):
    folder, x, _ = model
    x.head(5).to_parquet(tmp_path / "in.parquet")
    target = tmp_path / "no" / "such" / "out.parquet"
    with pytest.raises(InputFileError) as info:
        score_file(folder, tmp_path / "in.parquet", target, SKIP, progress=False)
    assert str(info.value) == f"--output {target}: folder {target.parent} does not exist; create it first"
    assert info.value.exit_code == 2 and not (tmp_path / "no").exists()


def test_a_header_only_file_and_a_missing_input_are_user_errors(model, tmp_path):
    folder, x, _ = model
    (tmp_path / "empty.csv").write_text(",".join(x.columns[:3]) + "\n")  # no rows matters more than columns
    with pytest.raises(DataValidationError) as info:
        score_file(folder, tmp_path / "empty.csv", tmp_path / "out.parquet", SKIP, progress=False)
    assert str(info.value) == f"--input {tmp_path / 'empty.csv'}: the file has no rows"
    assert info.value.exit_code == 2
    assert not list(tmp_path.glob("*out*")) and not list(tmp_path.glob(".*partial"))
    with pytest.raises(InputFileError) as info:
        score_file(folder, tmp_path / "absent.csv", tmp_path / "out.parquet", SKIP, progress=False)
    assert str(info.value) == f"--input {tmp_path / 'absent.csv'}: no such file" and info.value.exit_code == 2


def test_a_duplicated_header_is_refused_not_scored_from_one_copy(model, tmp_path):
    folder, x, _ = model
    text = x.head(5).to_csv(index=False)
    (tmp_path / "dup.csv").write_text(text.replace("s1", "bmi", 1))  # the header now names bmi twice
    with pytest.raises(DataValidationError) as info:
        score_file(folder, tmp_path / "dup.csv", tmp_path / "out.parquet", SKIP, progress=False)
    assert str(info.value) == (f"--input {tmp_path / 'dup.csv'}: column 'bmi' appears twice (the copy was renamed "
                               "'bmi.1' when it was read); rename or drop the copy")
    assert not (tmp_path / "out.parquet").exists()


def test_a_failed_job_leaves_neither_output_nor_rows_set_aside(model, tmp_path):
    folder, x, _ = model
    frame = x.head(20).astype(object)
    frame.loc[2, "bmi"] = "heavy"  # set aside in the first chunk ...
    lines = frame.to_csv(index=False).splitlines()
    lines[16] += ",1.0"  # ... and a malformed line in the second stops the job
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match="cannot be read as csv"):
        score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet", SKIP, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_an_integer_column_scores_and_a_fraction_in_it_is_set_aside(tmp_path):
    """A model with an integer input column (penguins' year): pandas reads the column as floats once a
    cell is blank or fractional, and MLflow refuses floats for an integer column. The rows that are
    whole numbers are scored; the others are set aside, as the endpoint refuses them (a whole number)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"year": np.arange(2000, 2030, dtype="int64"), "size": np.linspace(1.0, 3.0, 30)})
    fitted = LinearRegression().fit(x, x["year"] * 0.5 + x["size"])
    folder = tmp_path / "model"
    mlflow.sklearn.save_model(fitted, folder, signature=infer_signature(x, fitted.predict(x)),
                              pip_requirements=["scikit-learn"])
    rows = x.astype(object)
    rows.loc[3, "year"] = 2003.5
    rows.loc[4, "year"] = None
    rows.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(folder, tmp_path / "in.csv", tmp_path / "out.csv",
                         {"chunk_rows": 10, "on_bad_rows": "skip"}, progress=False)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (30, 28, 2)
    assert pd.read_csv(summary["rejected_file"]).to_dict(orient="records") == [
        {"row": 3, "column": "year", "problem": "expected a whole number, got 2003.5"},
        {"row": 4, "column": "year", "problem": "missing value"}]
    out = pd.read_csv(tmp_path / "out.csv")
    kept = x.drop(index=[3, 4])
    assert out["row"].tolist() == kept.index.tolist()
    assert out["year"].tolist() == kept["year"].tolist()
    assert out["prediction"].to_numpy() == pytest.approx(fitted.predict(kept))


def test_a_model_with_integer_columns_scores_them_as_integers(tmp_path):
    """An integer column (``long`` in the signature) reaches the model as int64, as the endpoint sends
    it: casting it to float made MLflow refuse every chunk ("Can not safely convert float64 to int64")."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"dose": rng.normal(size=40), "visits": rng.integers(0, 9, size=40)})
    fitted = Ridge().fit(x, x["dose"] + x["visits"])
    mlflow.sklearn.save_model(fitted, tmp_path / "model", signature=infer_signature(x, fitted.predict(x)),
                              pip_requirements=["scikit-learn"])
    x.to_parquet(tmp_path / "in.parquet")
    summary = score_file(tmp_path / "model", tmp_path / "in.parquet", tmp_path / "out.parquet", SKIP, progress=False)
    assert (summary["scored"], summary["rejected"]) == (40, 0)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["visits"].dtype == "int64" and out["visits"].tolist() == x["visits"].tolist()
    assert out["prediction"].to_numpy() == pytest.approx(fitted.predict(x))
    frame = x.head(6).astype({"visits": "float64"})
    frame.loc[4, "visits"] = 2.5  # the endpoint refuses a fraction in an integer column; so does batch
    frame.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(tmp_path / "model", tmp_path / "in.csv", tmp_path / "out.csv", SKIP, progress=False)
    assert (summary["scored"], summary["rejected"]) == (5, 1)
    assert pd.read_csv(summary["rejected_file"]).to_dict(orient="records") == [
        {"row": 4, "column": "visits", "problem": "expected a whole number, got 2.5"}]
    assert pd.read_csv(tmp_path / "out.csv")["visits"].tolist() == x["visits"].head(6).drop(index=4).tolist()
