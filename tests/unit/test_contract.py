"""The data contract: declared or inferred, compiled to pandera, and one set of answers everywhere rows enter."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from modelfactory.core import contract
from modelfactory import paths
from modelfactory.core.batch import check_chunk
from modelfactory.errors import DataValidationError, ParamsError
from modelfactory.params import resolve

SCORE_PY = paths.Path(contract.__file__).parent / "score.py"
SIGNATURE_TYPES = {"integer": "long", "number": "double", "string": "string", "boolean": "boolean",
                   "category": "string"}

MIXED = {"strict": False, "columns": {
    "count": {"dtype": "integer", "min": 0, "max": 10},
    "share": {"dtype": "number", "nullable": True, "min": -1.0, "max": 1.0},
    "name": {"dtype": "string"},
    "flag": {"dtype": "boolean"},
    "island": {"dtype": "category", "categories": ["Biscoe", "Dream"]},
}}
GOOD = {"count": 3, "share": 0.5, "name": "ada", "flag": True, "island": "Dream"}
# (what changes in the good row, whether the contract takes it)
BANK = [
    ({}, True),
    ({"count": 2.0}, True),                      # a whole number written as a float is an integer
    ({"count": 0, "share": -1.0}, True),         # the bounds themselves
    ({"count": 10, "share": 1}, True),           # an int where a number goes
    ({"share": None}, True),                     # null where the column is nullable
    ({"share": float("nan")}, True),             # NaN is null
    ({"count": 1.5}, False),                     # 1.5 in an integer column
    ({"count": "3"}, False),                     # text is not a number (in JSON)
    ({"share": "0.5"}, False),
    ({"name": 3}, False),
    ({"flag": "yes"}, False),
    ({"flag": 1}, False),                        # a number is not a boolean ...
    ({"count": True}, False),                    # ... nor a boolean a number
    ({"share": False}, False),
    ({"island": True}, False),
    ({"count": None}, False),                    # null where it is not allowed
    ({"name": None}, False),
    ({"flag": None}, False),
    ({"island": None}, False),
    ({"count": float("nan")}, False),
    ({"count": 11}, False),                      # out of range
    ({"count": -1}, False),
    ({"share": 1.5}, False),
    ({"share": float("inf")}, False),            # infinite numbers are not numbers
    ({"count": -math.inf}, False),
    ({"island": "Atlantis"}, False),             # unknown category
    ({"island": 1}, False),
]


def load_score():
    spec = importlib.util.spec_from_file_location("score_under_test", SCORE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def request_path(body: dict, columns: list[str], rows: list[list], as_json: bool = False):
    """score.py's answer (None: taken; else the 400's message), its contract compiled from ``body``."""
    score = load_score()
    score.compile_contract(body, [(n, SIGNATURE_TYPES[s["dtype"]]) for n, s in body["columns"].items()])
    payload = {"input_data": {"columns": columns, "data": rows}}
    try:
        score.parse_request(json.dumps(payload) if as_json else payload)
    except score.BadRequest as exc:
        return str(exc)
    return None


def pandera_refuses(body: dict, frame: pd.DataFrame) -> set[int]:
    import pandera.pandas as pa

    try:
        contract.to_schema(contract.parse_contract(body, "test")).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return {int(i) for i in exc.failure_cases["index"].dropna()}
    return set()


def bank_rows(good, bank):
    return [list({**good, **change}.values()) for change, _ in bank]


def test_the_bank_gets_one_set_of_answers_from_pandera_the_endpoint_and_batch():
    columns = list(GOOD)
    rows = bank_rows(GOOD, BANK)
    expected = {i for i, (_, taken) in enumerate(BANK) if not taken}
    # pandera, on the whole bank as one frame (object columns) and row by row (pandas' own dtypes)
    assert pandera_refuses(MIXED, pd.DataFrame(rows, columns=columns)) == expected
    one_by_one = {i for i, row in enumerate(rows) if pandera_refuses(MIXED, pd.DataFrame([row], columns=columns))}
    assert one_by_one == expected
    # score.py, one request per row
    answers = [request_path(MIXED, columns, [row]) for row in rows]
    assert {i for i, answer in enumerate(answers) if answer is not None} == expected
    # batch, the bank as one chunk; text that reads as a number is one in a file, so those two rows differ
    _, bad = check_chunk(pd.DataFrame(rows, columns=columns), contract.parse_contract(MIXED, "test"), 0)
    text_numbers = {i for i, (change, _) in enumerate(BANK) if change in ({"count": "3"}, {"share": "0.5"})}
    assert set(bad["row"]) == expected - text_numbers


NUMERIC = {"strict": True, "columns": {"count": {"dtype": "integer", "min": 0, "max": 10},
                                       "share": {"dtype": "number", "min": -1.0, "max": 1.0}}}
NUMERIC_BANK = [({}, True), ({"count": 2.0}, True), ({"count": 1.5}, False), ({"count": 11}, False),
                ({"share": -2}, False), ({"share": None}, False), ({"count": True}, False), ({"share": "1"}, False)]


def test_numeric_requests_on_the_fast_path_get_the_same_answers():
    good = {"count": 3, "share": 0.5}
    rows = bank_rows(good, NUMERIC_BANK)
    expected = {i for i, (_, taken) in enumerate(NUMERIC_BANK) if not taken}
    assert pandera_refuses(NUMERIC, pd.DataFrame(rows, columns=list(good))) == expected
    answers = [request_path(NUMERIC, list(good), [row], as_json=True) for row in rows]
    assert {i for i, answer in enumerate(answers) if answer is not None} == expected
    # many good rows at once take numpy's path, and a bad one among them is still found
    assert request_path(NUMERIC, list(good), [rows[0], rows[1]] * 50, as_json=True) is None
    assert request_path(NUMERIC, list(good), [rows[0]] * 50 + [rows[3]], as_json=True) == \
        "row 50, column 'count': 11 is above the maximum 10"


def test_extra_columns_are_refused_only_by_a_strict_contract():
    row = [3, 0.5, "x"]
    columns = ["count", "share", "zip"]
    frame = pd.DataFrame([row], columns=columns)
    import pandera.pandas as pa

    with pytest.raises(pa.errors.SchemaErrors, match="column_in_schema"):  # the column fails, not a row
        contract.to_schema(contract.parse_contract(NUMERIC, "t")).validate(frame, lazy=True)
    assert request_path(NUMERIC, columns, [row]) == "unknown column(s): zip; the model takes count, share"
    loose = {**NUMERIC, "strict": False}
    contract.to_schema(contract.parse_contract(loose, "t")).validate(frame, lazy=True)
    assert request_path(loose, columns, [row]) is None
    with pytest.raises(DataValidationError, match=r"the input has column\(s\) zip not in the model's data contract"):
        check_chunk(frame, contract.parse_contract(NUMERIC, "t"), 0)
    assert check_chunk(frame, contract.parse_contract(loose, "t"), 0)[1].empty


def test_a_unique_column_refuses_a_repeated_value_in_a_request_and_in_pandera():
    body = {"columns": {"id": {"dtype": "integer", "unique": True}, "name": {"dtype": "string"}}}
    rows = [[1, "a"], [2, "b"], [1, "c"]]
    assert pandera_refuses(body, pd.DataFrame(rows, columns=["id", "name"])) == {0, 2}
    assert request_path(body, ["id", "name"], rows) == "row 0, column 'id': 1 appears more than once (the column is unique)"
    assert request_path(body, ["id", "name"], rows[:2]) is None


@pytest.mark.parametrize("change,message", [
    ({"count": 1.5}, "row 0, column 'count': expected a whole number, got 1.5"),
    ({"count": None}, "row 0, column 'count': a value is required, got null"),
    ({"count": 11}, "row 0, column 'count': 11 is above the maximum 10"),
    ({"share": -3}, "row 0, column 'share': -3 is below the minimum -1"),
    ({"island": "Atlantis"}, "row 0, column 'island': unknown category \"Atlantis\"; the model knows Biscoe, Dream"),
    ({"flag": 1}, "row 0, column 'flag': expected true or false, got 1"),
    ({"share": True}, "row 0, column 'share': expected a number, got true"),
])
def test_a_400_names_the_column_and_the_value(change, message):
    assert request_path(MIXED, list(GOOD), [list({**GOOD, **change}.values())]) == message


def test_integer_columns_stay_integers_on_the_request_path():
    score = load_score()
    score.compile_contract(NUMERIC, [("count", "long"), ("share", "double")])
    for body in ({"input_data": {"columns": ["count", "share"], "data": [[2.0, 0.5]]}},
                 json.dumps({"input_data": {"columns": ["count", "share"], "data": [[2.0, 0.5]]}})):
        frame = score.parse_request(body)
        assert frame["count"].dtype == "int64" and frame["count"].tolist() == [2]


# -- compiling, inferring, validating the contract itself -----------------------------------------------

def test_explore_gets_every_failure_at_once_with_counts_and_rows():
    frame = pd.DataFrame({"count": [1, 2, 30, 4, 50], "share": [0.1, None, 0.2, 9.0, 0.3],
                          "name": ["a", "b", "c", "d", None], "flag": [True, False, True, True, False],
                          "island": ["Biscoe", "Dream", "Mars", "Dream", "Biscoe"], "species": list("abcab")})
    strict = contract.parse_contract({**MIXED, "strict": True}, "t")
    failures = contract.validate_frame(frame, strict, allowed=("species",))
    assert failures.to_dict(orient="records") == [
        {"column": "count", "check": "range >= 0 and <= 10", "failures": 2, "example rows": "2, 4",
         "example values": "30, 50"},
        {"column": "share", "check": "range >= -1 and <= 1", "failures": 1, "example rows": "3",
         "example values": "9.0"},
        {"column": "name", "check": "nullable", "failures": 1, "example rows": "4", "example values": "None"},
        {"column": "island", "check": "dtype category", "failures": 1, "example rows": "2",
         "example values": "'Mars'"}]
    with pytest.raises(DataValidationError) as info:
        contract.require_valid(failures, "data/birds.csv")
    assert str(info.value) == (
        "data/birds.csv: the data breaks its contract in 4 check(s): column 'count': 2 value(s) fail range >= 0 "
        "and <= 10, e.g. row 2 30; column 'share': 1 value(s) fail range >= -1 and <= 1, e.g. row 3 9.0; column "
        "'name': 1 value(s) fail nullable, e.g. row 4 None; column 'island': 1 value(s) fail dtype category, e.g. "
        "row 2 'Mars' (the failure table in the explore notebook lists them)")
    extra = contract.validate_frame(frame.assign(zip=1), strict, allowed=("species",))
    assert ["zip", "not in the contract (strict)"] in extra[["column", "check"]].values.tolist()


def test_a_column_of_numbers_and_text_fails_by_name():
    """A CSV column of numbers with one word in it reads as text: inferred as numbers, the word fails."""
    frame = pd.DataFrame({"bmi": ["21.5", "30.1", "heavy", "25"], "target": [1, 2, 3, 4]})
    inferred, failures = contract.check_raw_data(frame, {"target": "target"})
    assert inferred.columns["bmi"].dtype == "number"
    assert failures[["column", "check", "failures", "example rows", "example values"]].values.tolist() == [
        ["bmi", "dtype number", 1, "2", "'heavy'"]]
    with pytest.raises(DataValidationError, match=r"^x.csv: .*column 'bmi': 1 value\(s\) fail dtype number, e.g. row 2 'heavy'"):
        contract.require_valid(failures, "x.csv")


def test_inference_reads_types_nulls_and_ranges_off_the_data():
    frame = pd.DataFrame({"n": [1, 5, 3], "x": [0.5, None, 2.5], "s": ["a", "b", None], "b": [True, False, True],
                          "c": pd.Categorical(["u", "v", "u"])})
    inferred = contract.infer_contract(frame)
    assert contract.to_json(inferred) == {"strict": False, "inferred": True, "columns": {
        "n": {"dtype": "integer", "nullable": False, "min": 1.0, "max": 5.0, "unique": False},
        "x": {"dtype": "number", "nullable": True, "min": 0.5, "max": 2.5, "unique": False},
        "s": {"dtype": "string", "nullable": True, "unique": False},
        "b": {"dtype": "boolean", "nullable": False, "unique": False},
        "c": {"dtype": "category", "nullable": False, "categories": ["u", "v"], "unique": False}}}
    assert contract.infer_contract(frame, categorise=True).columns["s"].categories == ["a", "b"]
    assert contract.validate_frame(frame, inferred).empty


@pytest.mark.parametrize("body,message", [
    ({"columns": {"a": {"dtype": "float"}}}, "columns.a.dtype: input should be 'integer', 'number', 'string', "
                                            "'boolean' or 'category', got 'float'"),
    ({"columns": {"a": {"dtype": "number", "mn": 1}}}, "columns.a.mn: unknown key"),
    ({"columns": {"a": {"dtype": "string", "min": 1}}}, "columns.a: min/max apply to integer and number columns, "
                                                       "not string"),
    ({"columns": {"a": {"dtype": "number", "min": 2, "max": 1}}}, "columns.a: min 2 is above max 1"),
    ({"columns": {"a": {"dtype": "category"}}}, "columns.a: a category column lists its categories"),
    ({"columns": {}}, "columns: names no column"),
    ({"strict": "yes", "columns": {"a": {"dtype": "number"}}}, "strict: input should be a valid boolean, got 'yes'"),
])
def test_a_malformed_contract_is_one_line_naming_the_key(body, message):
    with pytest.raises(ParamsError) as info:
        contract.parse_contract(body, "params/contracts/m.yaml")
    assert str(info.value) == f"params/contracts/m.yaml: {message}"


def test_a_malformed_contract_file_stops_the_command_with_exit_2(proj, capsys):
    from modelfactory.ops.cli import main

    (proj / "params" / "contracts").mkdir()
    (proj / "params" / "contracts" / "diabetes.yaml").write_text("columns:\n  age: {dtype: numbr}\n")
    code = main(["params", "--model", "diabetes", "--set", "data.contract=params/contracts/diabetes.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: params/contracts/diabetes.yaml: columns.age.dtype: input should be 'integer'")
    code = main(["params", "--model", "diabetes", "--set", "data.contract=../elsewhere.yaml"])
    assert code == 2 and "the contract file must be under params/" in capsys.readouterr().err
    code = main(["params", "--model", "diabetes", "--set", "data.contract={columns: {age: {dtype: number, max: x}}}"])
    assert code == 2
    assert capsys.readouterr().err == ("error: --set: data.contract: columns.age.max: input should be a valid number, "
                                       "got 'x'\n")


def test_a_strict_contract_against_the_files_header_is_refused_before_a_kernel(proj):
    from modelfactory.core import sources

    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.6], "zip": ["x", "y"], "y": [0, 1]})
    frame.to_csv(proj / "rows.csv", index=False)
    spec = {"strict": True, "columns": {"a": {"dtype": "integer"}, "b": {"dtype": "number"}}}
    data = {"source": "file", "dataset": "rows.csv", "target": "y", "contract": spec}
    with pytest.raises(DataValidationError) as info:
        sources.check_source(data)
    assert str(info.value) == ("rows.csv: column(s) zip are not in the data contract, which is strict (add them to it, "
                               "or set strict: false)")
    assert info.value.exit_code == 2
    with pytest.raises(DataValidationError, match=r"^rows.csv: column\(s\) c of the data contract are not in the file$"):
        sources.check_source({**data, "contract": {"columns": {**spec["columns"], "c": {"dtype": "string"}}}})
    sources.check_source({**data, "contract": {**spec, "strict": False}})


def test_data_contract_writes_a_file_to_review_and_will_not_overwrite_it(proj, capsys, monkeypatch):
    from modelfactory.ops.cli import main

    monkeypatch.chdir(proj)
    frame = pd.DataFrame({"island": ["Biscoe", "Dream", None] * 5, "mass": np.linspace(3.0, 6.0, 15),
                          "year": [2007, 2008, 2009] * 5, "species": ["a", "b", "c"] * 5})
    frame.to_parquet(proj / "birds.parquet", index=False)
    assert main(["data", "register", "birds", "birds.parquet"]) == 0
    assert main(["data", "contract", "birds", "--model", "birds"]) == 0
    out = capsys.readouterr().out.splitlines()[-1]
    assert out == ("wrote params/contracts/birds.yaml (4 columns, inferred from birds:1); review it, then name it in "
                   "params/models/birds.yaml as data: {contract: params/contracts/birds.yaml}")
    written = yaml.safe_load((proj / "params" / "contracts" / "birds.yaml").read_text())
    assert written["columns"]["island"] == {"dtype": "category", "nullable": True, "categories": ["Biscoe", "Dream"],
                                            "unique": False}
    assert written["columns"]["year"] == {"dtype": "integer", "nullable": False, "min": 2007.0, "max": 2009.0,
                                          "unique": False}
    declared = contract.declared_contract({"contract": "params/contracts/birds.yaml"})
    assert declared.columns["mass"].dtype == "number" and not declared.inferred
    before = (proj / "params" / "contracts" / "birds.yaml").read_text()
    assert main(["data", "contract", "birds:1", "--model", "birds"]) == 2
    assert capsys.readouterr().err == ("error: params/contracts/birds.yaml already exists; review it, or pass --force "
                                       "to replace it\n")
    assert (proj / "params" / "contracts" / "birds.yaml").read_text() == before
    assert main(["data", "contract", "birds:1", "--model", "birds", "--force"]) == 0


def test_the_contract_travels_with_the_model_into_the_package(tmp_path):
    """Logged in the MLmodel, written to package/contract.json, and what score.py checks requests against."""
    import mlflow
    from sklearn.linear_model import Ridge

    from modelfactory.ops import deploy, tracking
    from modelfactory.ops.serving import packaging
    from conftest import PACKAGE_SETTINGS

    x = pd.DataFrame({"count": [1, 2, 3, 4, 5, 6], "share": [0.1, 0.4, 0.2, 0.8, 0.5, 0.3]})
    model = Ridge().fit(x, [1.0, 2.0, 2.5, 4.0, 5.5, 6.0])
    declared = contract.parse_contract({"strict": True, "columns": {
        "count": {"dtype": "integer", "min": 0, "max": 10}, "share": {"dtype": "number"}}}, "t")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("c", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            uri = tracking.log_model(model, x.astype({"count": "float64"}), ["scikit-learn"], declared)
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "model"))
    finally:
        mlflow.set_tracking_uri(None)
    assert contract.model_contract(tmp_path / "model") == declared
    packaging.package_model(tmp_path / "model", tmp_path / "package", x, PACKAGE_SETTINGS, "c", "1")
    assert json.loads((tmp_path / "package" / "contract.json").read_text()) == contract.to_json(declared)
    assert "pandera" not in (tmp_path / "package" / "requirements.txt").read_text()
    scorer = deploy.load_scoring_script(tmp_path / "package")
    answer = scorer.run(json.dumps({"input_data": {"columns": ["count", "share"], "data": [[2, 0.4], [12, 0.1]]}}))
    assert json.loads(answer.get_data(as_text=True)) == {"error": "row 1, column 'count': 12 is above the maximum 10"}
    answer = scorer.run(json.dumps({"input_data": {"columns": ["count", "share"], "data": [[2.0, 0.4]]}}))
    assert answer["predictions"] == pytest.approx(model.predict(x.iloc[[1]]).tolist())  # the long column took 2.0


def test_a_package_built_from_the_registry_has_a_sample_request_the_endpoint_takes():
    """`serve` and `endpoint` packages have no holdout rows for their sample request: a row of zeros
    would break any contract whose ranges exclude 0 (an inferred one records the ranges seen)."""
    rules = contract.parse_contract({"columns": {
        "radius": {"dtype": "number", "min": 6.9, "max": 28.1}, "year": {"dtype": "integer", "min": 2007.5},
        "depth": {"dtype": "number", "max": -1}, "island": {"dtype": "category", "categories": ["Dream"]},
        "male": {"dtype": "boolean"}, "name": {"dtype": "string"}}}, "t")
    row = contract.example_row(rules)
    assert row == {"radius": 6.9, "year": 2008, "depth": -1, "island": "Dream", "male": False, "name": ""}
    body = contract.to_json(rules)
    assert request_path(body, list(row), [list(row.values())]) is None


def test_a_nullable_number_column_keeps_the_fast_path_and_still_takes_a_null():
    body = {"columns": {"count": {"dtype": "integer"}, "share": {"dtype": "number", "nullable": True, "max": 1}}}
    score = load_score()
    score.compile_contract(body, [("count", "long"), ("share", "double")])
    assert score.numeric_only
    frame = score.parse_request(json.dumps({"input_data": {"columns": ["count", "share"], "data": [[1, None], [2, 0.5]]}}))
    assert frame["count"].tolist() == [1, 2] and math.isnan(frame["share"][0])
    assert request_path(body, ["count", "share"], [[1, 0.5], [2, 2.0]], as_json=True) == \
        "row 1, column 'share': 2.0 is above the maximum 1"


def test_the_logged_contract_covers_exactly_the_models_inputs():
    declared = contract.parse_contract({"columns": {"a": {"dtype": "integer", "min": 0, "max": 5},
                                                    "y": {"dtype": "string"}}}, "t")
    example = pd.DataFrame({"a": [1, 2], "b": [0.5, None]})
    covered = contract.cover(declared, example)
    assert list(covered.columns) == ["a", "b"] and covered.columns["a"] == declared.columns["a"]
    assert covered.columns["b"] == contract.ColumnContract(dtype="number", nullable=True)
    assert contract.cover(None, example) == contract.infer_contract(example)
