"""What bench/data.py made faster keeps its answers: the table schema MLflow records, batch scoring's
Parquet output when a chunk holds no value of a text column, and the raw data as load_dataset reads it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelfactory.ops import tracking
from modelfactory.core.batch import score_file


def _mixed(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"island": rng.choice(["Biscoe", "Dream"], rows).astype(object),
                          "mass": rng.normal(40.0, 5.0, rows), "count": rng.integers(0, 9, rows),
                          "male": rng.choice([True, False], rows)})
    frame.loc[frame.index % 7 == 6, "island"] = None  # the first gaps come after a small sample's rows
    frame.loc[frame.index % 9 == 8, "mass"] = np.nan
    return frame


def test_table_schema_gives_what_mlflow_infers_from_every_row():
    from mlflow.models import infer_signature

    frame = _mixed()
    expected = infer_signature(frame).inputs.to_dict()
    assert tracking.table_schema(frame, rows=5).to_dict() == expected  # types from 5 rows, gaps from all
    assert [c["required"] for c in expected] == [False, False, True, True]


def test_a_text_column_empty_in_the_first_chunk_keeps_the_parquet_output_whole(tmp_path):
    """The first chunk fixed the output's schema, typing a text column with no value as null, and the
    next chunk with text in it was refused by the Parquet writer, ending the job in a traceback."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = _mixed()
    x = frame[["island", "mass"]]
    pre = ColumnTransformer([("text", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                    OneHotEncoder(handle_unknown="ignore")), ["island"]),
                             ("number", SimpleImputer(), ["mass"])])
    model = make_pipeline(pre, Ridge()).fit(x, frame["count"])
    mlflow.sklearn.save_model(model, tmp_path / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"], skops_trusted_types=tracking.skops_trusted_types(model))
    rows = x.copy()
    rows.loc[:7, "island"] = None  # the whole first chunk of 8 rows: read from CSV as a column of NaN
    rows.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(tmp_path / "model", tmp_path / "in.csv", tmp_path / "out.parquet",
                         {"chunk_rows": 8, "on_bad_rows": "skip"}, progress=False)
    assert (summary["scored"], summary["rejected"]) == (60, 0)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["island"].tolist() == [None if pd.isna(v) else v for v in rows["island"]]
    assert out["prediction"].to_numpy() == pytest.approx(model.predict(rows))


def test_parquet_output_reuses_the_input_columns_and_keeps_their_values(tmp_path):
    """Columns whose type the signature shares are written from the input's record batch; a row set
    aside is taken out of them too, so every output row still matches its input row."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    frame = _mixed().drop(columns="island").fillna({"mass": 40.0})
    x = frame[["mass", "count", "male"]]
    model = LinearRegression().fit(x, frame["mass"] * 2)
    mlflow.sklearn.save_model(model, tmp_path / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"])
    rows = x.assign(extra="not scored")
    rows.loc[13, "mass"] = np.inf
    rows.to_parquet(tmp_path / "in.parquet")
    summary = score_file(tmp_path / "model", tmp_path / "in.parquet", tmp_path / "out.parquet",
                         {"chunk_rows": 16, "on_bad_rows": "skip"}, progress=False)
    assert (summary["scored"], summary["rejected"]) == (59, 1)
    out = pd.read_parquet(tmp_path / "out.parquet")
    kept = rows.drop(index=13).drop(columns="extra")
    assert list(out.columns) == ["row", "mass", "count", "male", "prediction"]
    assert out["row"].tolist() == kept.index.tolist()
    pd.testing.assert_frame_equal(out[["mass", "count", "male"]], kept.reset_index(drop=True))
    assert out["prediction"].to_numpy() == pytest.approx(model.predict(kept))


def test_load_dataset_moves_the_target_last_and_keeps_every_value(tmp_path):
    """The target is moved on its own (selecting every column in a new order copied the whole table),
    from an Arrow table converted column by column."""
    from modelfactory.core import data

    frame = _mixed()
    frame.insert(0, "species", np.where(frame["mass"] > 40, "big", "small"))
    frame.to_parquet(tmp_path / "rows.parquet")
    raw = data.load_dataset({"source": "file", "dataset": str(tmp_path / "rows.parquet"), "target": "species"})
    assert list(raw.columns) == ["island", "mass", "count", "male", "species"]
    pd.testing.assert_frame_equal(raw, frame[list(raw.columns)])
    assert raw.attrs["source"]["source"] == "file"


@pytest.mark.parametrize("values", [
    [0.5, -0.0, 0.0, 2.5, 0.5, 7.0], [3, 1, 3, 3, 2], [4.0, 4.0], [1.5, 9.0, 1.5], [True, False, True],
    ["b", "a", "b"], [np.nan, 2.0, np.nan, 1.0, 2.0], [np.nan, np.nan], [], [7.0, np.nan, 7.0, 7.0]])
def test_distinct_values_by_sorting_give_what_unique_gives(values):
    from modelfactory.core.data import _distinct, target_fit

    present = pd.Series(values)
    assert sorted(_distinct(present).tolist()) == sorted(present.dropna().unique().tolist())  # gaps left out
    for task in ("classification", "regression"):  # the checks table shows the same words as before
        assert target_fit(pd.Series(values + [None]), task) == _target_fit_by_unique(pd.Series(values + [None]), task)


def _target_fit_by_unique(values, task):
    """target_fit as it was, counting with Series.unique."""
    from unittest import mock

    from modelfactory.core import data

    with mock.patch.object(data, "_distinct", lambda values: values.dropna().unique()):
        return data.target_fit(values, task)
