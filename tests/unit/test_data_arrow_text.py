"""Text columns kept as Arrow read them (sources.text_columns), for explore's checks.

read_files keeps each text column's Arrow array beside the frame, so the checks count gaps and
values without converting Python strings again. These hold that the Arrow columns are used only
while the frame's column still holds exactly what was read: a value set in place, a column replaced,
rows dropped or a copy all fall back to reading the frame itself, and the answers follow the frame.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from modelfactory.core import contract, data, sources

ROWS = 6


def rows() -> pd.DataFrame:
    return pd.DataFrame({
        "size": [1.5, 2.0, np.nan, 4.0, 5.5, 6.0],
        "colour": ["red", "blue", "red", "blue", "red", "blue"],
        "shape": ["disc", None, "cube", "cube", None, "disc"],
        "target": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
    })


@pytest.fixture(params=["parquet", "csv"])
def loaded(request, tmp_path):
    path = tmp_path / f"rows.{request.param}"
    rows().to_parquet(path, index=False) if request.param == "parquet" else rows().to_csv(path, index=False)
    return data.load_dataset({"source": "file", "dataset": str(path), "target": "target"})


def test_a_frame_as_read_comes_with_its_text_columns_as_arrow(loaded):
    kept = sources.text_columns(loaded)
    assert set(kept) == {"colour", "shape"}
    for name, column in kept.items():
        assert column.to_pylist() == loaded[name].tolist(), name
    assert data.missing_counts(loaded) == loaded.isna().sum().tolist() == [1, 0, 2, 0]
    view, text = contract.text_view(loaded)
    assert text == {"colour", "shape"}
    converted = contract.text_view(loaded.copy())[0]  # a copy is not the frame read: converted from its objects
    assert not sources.text_columns(loaded.copy())
    pd.testing.assert_frame_equal(view, converted)


CATEGORIES = {"strict": False, "columns": {
    "colour": {"dtype": "category", "categories": ["red", "blue"]},
    "shape": {"dtype": "category", "categories": ["disc", "cube"], "nullable": True}}}


def _set_in_place(frame):
    frame.loc[3, "colour"] = "green"  # the frame's own object array, written in place


def _replace_column(frame):
    frame["colour"] = frame["colour"].str.replace("blue", "green")


def _gap_in_place(frame):
    frame.iloc[0, frame.columns.get_loc("colour")] = None


@pytest.mark.parametrize("change", [_set_in_place, _replace_column, _gap_in_place])
def test_a_column_changed_after_reading_is_checked_as_it_is_now(loaded, change):
    held = contract.parse_contract(CATEGORIES, "t")
    assert contract.check_raw_data(loaded, {"target": "target", "contract": CATEGORIES})[1].empty
    change(loaded)
    assert set(sources.text_columns(loaded)) == {"shape"}  # the changed column's Arrow copy is no longer used
    failures = contract.check_raw_data(loaded, {"target": "target", "contract": CATEGORIES})[1]
    expected = contract.failure_table(contract._schema_errors(loaded, held, ("target",)))
    assert not failures.empty
    assert failures.to_dict("records") == expected.to_dict("records")
    assert data.missing_counts(loaded) == loaded.isna().sum().tolist()


def test_rows_dropped_give_a_new_frame_checked_from_its_own_values(loaded):
    fewer = loaded[loaded["colour"] == "red"]
    assert not sources.text_columns(fewer)
    assert data.missing_counts(fewer) == fewer.isna().sum().tolist()
    assert contract.check_raw_data(fewer, {"target": "target"})[0] == contract.infer_contract(fewer)


def test_the_arrow_columns_go_with_the_frame(tmp_path):
    rows().to_parquet(tmp_path / "rows.parquet", index=False)
    frame = data.load_dataset({"source": "file", "dataset": str(tmp_path / "rows.parquet"), "target": "target"})
    key = id(frame)
    assert key in sources._TEXT
    del frame
    gc.collect()
    assert key not in sources._TEXT
