"""The data contract's fast paths (bench/data.py's read-and-validate) give the general path's answers.

Explore infers and checks the contract on an Arrow-backed view of the raw text columns, reads the range
of number columns in whole-array passes, and counts missing values without looking at every value of a
text column that has none. Each is held here to the plain pandas/pandera answer, column by column, on
a bank of columns that covers the types raw data arrives in (gaps of each kind, infinities, mixed types,
numbers written as text, bytes, an empty column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelfactory.core import contract, data

ROWS = 8
COLUMNS = {
    "floats": [0.5, -2.0, 3.25, 1.0, 0.0, 7.5, -1.0, 2.0],
    "floats with gaps": [0.5, np.nan, 3.25, None, 0.0, 7.5, -1.0, 2.0],
    "floats with infinity": [0.5, np.inf, 3.25, -np.inf, 0.0, np.nan, -1.0, 2.0],
    "only infinities": [np.inf, -np.inf, np.nan, np.inf, np.inf, np.inf, np.inf, np.inf],
    "no value": [np.nan] * ROWS,
    "float32": np.array([0.5, 1.5, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0], dtype="float32"),
    "integers": [1, 5, 3, -2, 0, 9, 4, 4],
    "unsigned": np.array([1, 5, 3, 2, 0, 9, 4, 4], dtype="uint16"),
    "nullable integers": pd.array([1, None, 3, 2, 0, 9, 4, 4], dtype="Int64"),
    "booleans": [True, False, True, True, False, False, True, False],
    "text": ["a", "b", "c", "a", "b", "c", "a", "b"],
    "text with None": ["a", None, "c", "a", "b", "c", "a", "b"],
    "text with NaN": ["a", np.nan, "c", "a", "b", "c", "a", "b"],
    "text with NA": ["a", pd.NA, "c", "a", "b", "c", "a", "b"],
    "text, only gaps": pd.Series([None] * ROWS, dtype=object),
    "numbers as text": ["1.5", "2", "x", "3", "4.25", "5", "6", "7"],
    "whole numbers as text": ["1", "2", "3", "4", "5", "6", "7", None],
    "text and numbers": ["a", 1, "c", 2.5, "b", "c", "a", "b"],
    "text and a boolean": ["a", True, "c", "a", "b", "c", "a", "b"],
    "bytes": [b"a", b"b", b"c", b"a", b"b", b"c", b"a", b"b"],
    "text and NaT": ["a", pd.NaT, "c", "a", "b", "c", "a", "b"],
    "categorical": pd.Categorical(["u", "v", "u", "v", "u", "v", "u", None]),
    "pyarrow strings": pd.array(["a", "b", None, "a", "b", "c", "a", "b"], dtype="string[pyarrow]"),
}


def bank() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values) for name, values in COLUMNS.items()})


@pytest.mark.parametrize("categorise", [False, True])
def test_inference_gives_the_general_answer_for_every_kind_of_column(categorise):
    frame = bank()
    inferred = contract.infer_contract(frame, categorise=categorise).columns
    for name in frame.columns:
        general = contract.ColumnContract.model_validate(contract._infer_column(frame[name], categorise))
        assert inferred[name] == general, name


def test_the_text_view_converts_only_text_and_leaves_the_frame_as_it_was():
    frame = bank()
    before = frame.copy(deep=True)
    view, text = contract.text_view(frame)
    assert text == {"text", "text with None", "text with NaN", "text with NA", "numbers as text",
                    "whole numbers as text"}
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame keeps its object columns
    for name in frame.columns:
        assert view[name].isna().tolist() == frame[name].isna().tolist(), name
        if name in text:
            assert view[name].dropna().tolist() == frame[name].dropna().tolist(), name
        else:
            assert view[name] is frame[name] or view[name].equals(frame[name]), name


def test_missing_counts_are_what_isna_counts():
    frame = bank()
    assert data.missing_counts(frame) == frame.isna().sum().tolist()


def _general(frame: pd.DataFrame, held: contract.Contract, allowed=()) -> list:
    """The failure table from pandera on the frame as it is, without the view."""
    cases = contract._schema_errors(contract.coerce_text_numbers(frame, held), held, allowed)
    return contract.failure_table(cases).to_dict("records")


# each declares one column's contract, and is checked against every column of the bank
SPECS = [
    {"dtype": "string"}, {"dtype": "string", "nullable": True}, {"dtype": "string", "unique": True},
    {"dtype": "category", "categories": ["a", "b"]}, {"dtype": "category", "categories": ["a", "b", "c"], "nullable": True},
    {"dtype": "category", "categories": [1, 2]},
    {"dtype": "number", "nullable": True}, {"dtype": "number", "min": 0, "max": 5},
    {"dtype": "integer", "nullable": True}, {"dtype": "boolean"},
]


@pytest.mark.parametrize("spec", SPECS, ids=[str(s) for s in SPECS])
def test_validation_through_the_view_gives_the_general_failure_table(spec):
    frame = bank()
    for name in frame.columns:
        held = contract.parse_contract({"columns": {name: spec}}, "t")
        assert contract.validate_frame(frame, held).to_dict("records") == _general(frame, held), name


def test_an_inferred_contract_passes_its_own_rows_through_the_view_and_names_a_break_as_before():
    frame = bank().drop(columns=["text and numbers", "text and a boolean", "bytes", "text and NaT"])
    held, failures = contract.check_raw_data(frame.assign(target=1.0), {"target": "target"})
    assert held == contract.infer_contract(frame.assign(target=1.0))
    # infinities are not numbers, and 'x' in the column of numbers written as text is not one either
    assert failures.to_dict("records") == _general(frame.assign(target=1.0), held, ("target",))
    assert failures["column"].tolist() == ["floats with infinity", "only infinities", "numbers as text"]
    broken = frame.assign(text=["a", "b", None, "a", "b", "c", "a", "zz"])
    shown = contract.validate_frame(broken, held).to_dict("records")
    assert shown == _general(broken, held)
    assert {"column": "text", "check": "nullable", "failures": 1, "example rows": "2",
            "example values": "None"} in shown


@pytest.mark.parametrize("bounds", [{"min": 0}, {"max": 5}, {"min": 0, "max": 5}, {"min": -1.5, "max": 1.0}])
def test_the_range_check_keeps_each_finite_number_within_bounds_and_passes_everything_else(bounds):
    spec = contract.ColumnContract(dtype="number", **bounds)
    frame = bank()
    for name in frame.columns:
        expected = []
        for value in frame[name].tolist():
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            if not number or not np.isfinite(float(value)):
                expected.append(True)  # not a finite number: the dtype check's business
            else:
                expected.append(bounds.get("min", -np.inf) <= float(value) <= bounds.get("max", np.inf))
        assert contract.range_ok(frame[name], spec).tolist() == expected, name
