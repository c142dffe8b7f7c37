"""Batch scoring: chunked, checked like the endpoint, bad rows set aside or fatal, nothing overwritten."""

import pandas as pd
import pytest

from modelfactory.batch import score_file
from modelfactory.errors import DataValidationError, ModelfactoryError


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
