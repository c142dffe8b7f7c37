"""The drift engine (core/drift.py): known shifts are flagged and only they, unchanged data stays quiet,
small windows are not judged, labels that match nothing are counted, data quality against the contract,
and the streamed Parquet path agrees with the DataFrame path."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelfactory.core import drift
from modelfactory.errors import DataValidationError, ParamsError
from modelfactory.params import resolve


@pytest.fixture(scope="module")
def settings() -> dict:
    """The monitor params as shipped in params/base.yaml (Azure ML's default metrics and thresholds)."""
    return resolve("diabetes", "dev")["monitor"]


def rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Four numerical and two categorical features, and a model's prediction of them."""
    frame = pd.DataFrame({
        "age": rng.normal(50, 10, n).round(), "bmi": rng.normal(26, 4, n), "income": rng.lognormal(10, 0.5, n),
        "score": rng.uniform(0, 1, n), "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n, p=[0.5, 0.35, 0.15]),
        "smoker": rng.choice([True, False], n, p=[0.2, 0.8])})
    frame["prediction"] = 0.5 * frame["bmi"] + frame["score"]
    return frame


@pytest.fixture(scope="module")
def reference(settings) -> dict:
    train = rows(np.random.default_rng(7), 5000)
    return drift.build_reference(train.drop(columns="prediction"), train["prediction"], None,
                                 {**settings, "task": "regression", "data": {"name": "synthetic", "version": "1"}})


def window(seed: int, n: int) -> pd.DataFrame:
    return rows(np.random.default_rng(seed), n)


def test_the_reference_is_json_safe_and_judges_the_same_after_a_round_trip(reference, settings):
    text = json.dumps(reference, allow_nan=False)
    sample = window(1, 2000)
    assert drift.check_window(json.loads(text), sample, settings) == drift.check_window(reference, sample, settings)
    assert reference["data"] == {"name": "synthetic", "version": "1"} and reference["rows"] == 5000
    assert reference["features"]["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert len(reference["features"]["bmi"]["edges"]) == settings["bins"] + 1


def test_a_shift_in_one_numerical_feature_flags_that_feature_only(reference, settings):
    shifted = window(2, 2000)
    shifted["bmi"] += 2.0  # half a standard deviation
    result = drift.check_window(reference, shifted, settings)
    assert result["drifted"] == ["bmi"]
    bmi = next(f for f in result["features"] if f["feature"] == "bmi")
    assert bmi["metric"] == "normalized_wasserstein_distance" and bmi["value"] == pytest.approx(0.5, abs=0.05)
    assert result["verdict"].startswith("drift in 1 of 6 features: bmi")


def test_a_shift_in_one_categorical_feature_flags_that_feature_only(reference, settings):
    shifted = window(3, 2000)
    shifted["island"] = np.random.default_rng(3).choice(["Biscoe", "Dream", "Torgersen"], 2000, p=[0.2, 0.3, 0.5])
    result = drift.check_window(reference, shifted, settings)
    assert result["drifted"] == ["island"] and result["verdict"] == "drift in 1 of 6 features: island"
    quality = {q["feature"]: q for q in result["quality"]}
    assert quality["island"]["out_of_range_rate"] == 0.0  # the same three islands, in other shares
    assert quality["smoker"] == {"feature": "smoker", "null_rate": 0.0, "type_error_rate": 0.0,
                                 "out_of_range_rate": 0.0, "nullable": False, "breached": False}


def test_windows_from_the_training_distribution_stay_quiet_in_95_of_100_draws(reference, settings):
    alerts = 0
    for seed in range(100):
        result = drift.check_window(reference, window(1000 + seed, settings["min_rows"]), settings)
        assert result["enough_rows"]
        alerts += bool(result["drifted"] or result["prediction"]["drifted"])
    assert alerts <= 5


def test_a_window_with_too_few_rows_says_so_rather_than_judging(reference, settings):
    few = window(4, 12)
    few["bmi"] += 100.0  # a drift no one could miss, were it judged
    result = drift.check_window(reference, few, settings)
    assert result["verdict"] == f"too few rows to judge: 12 < {settings['min_rows']}"
    assert not result["enough_rows"] and result["drifted"] == []
    assert not any(f["drifted"] for f in result["features"]) and not result["prediction"]["drifted"]
    assert next(f for f in result["features"] if f["feature"] == "bmi")["value"] > 1  # measured, not judged


def test_prediction_drift_alone_is_named_in_the_verdict(reference, settings):
    moved = window(5, 2000)
    moved["prediction"] += 3.0
    result = drift.check_window(reference, moved, settings)
    assert result["drifted"] == [] and result["prediction"]["drifted"]
    assert result["verdict"] == "drift in the prediction only (0 of 6 features)"


def test_unseen_categories_are_drift_mass_not_dropped(reference, settings):
    strange = window(6, 2000)
    strange["island"] = "Atlantis"
    result = drift.check_window(reference, strange, settings)
    island = next(f for f in result["features"] if f["feature"] == "island")
    # every row in a bin the reference holds none of: the distributions are disjoint, distance 1
    assert island["value"] == pytest.approx(1.0) and island["drifted"]
    assert island["unseen_rows"] == 2000 and island["unseen"] == ["Atlantis"]
    quality = next(q for q in result["quality"] if q["feature"] == "island")
    assert quality["out_of_range_rate"] == 1.0 and quality["breached"]


def test_all_null_columns_infinities_and_missing_columns(reference, settings):
    odd = window(8, 2000).drop(columns=["score"])
    odd["bmi"] = np.nan
    odd.loc[:99, "income"] = np.inf
    result = drift.check_window(reference, odd, settings)
    by_name = {f["feature"]: f for f in result["features"]}
    quality = {q["feature"]: q for q in result["quality"]}
    assert by_name["bmi"]["value"] is None and not by_name["bmi"]["drifted"]  # nothing to compare
    assert quality["bmi"]["null_rate"] == 1.0 and quality["bmi"]["breached"]
    assert quality["score"]["null_rate"] == 1.0  # a column the window lacks is all null there
    # the 100 infinities are type errors (5%), not values in the last bin: the rest is unchanged
    assert quality["income"]["type_error_rate"] == 0.05 and quality["income"]["null_rate"] == 0.0
    assert not by_name["income"]["drifted"]


def test_a_reference_column_with_no_values_or_one_value():
    frame = pd.DataFrame({"empty": [np.nan] * 300, "constant": [3.0] * 300, "x": np.arange(300.0)})
    settings = resolve("diabetes", "dev")["monitor"]
    reference = drift.build_reference(frame, None, None, settings)
    json.dumps(reference, allow_nan=False)
    assert reference["features"]["empty"]["edges"] is None and reference["prediction"] is None
    later = pd.DataFrame({"empty": np.arange(1200.0), "constant": [3.0] * 600 + [4.0] * 600, "x": np.arange(1200.0) % 300})
    result = drift.check_window(reference, later, settings)
    by_name = {f["feature"]: f for f in result["features"]}
    assert by_name["empty"]["value"] is None
    assert by_name["constant"]["drifted"] and not by_name["x"]["drifted"]


def test_data_quality_against_the_contract():
    contract = {"strict": False, "columns": {
        "n": {"dtype": "integer", "nullable": False, "min": 0, "max": 10},
        "kind": {"dtype": "category", "nullable": True, "categories": ["a", "b"]}}}
    train = pd.DataFrame({"n": np.tile(np.arange(11), 20), "kind": ["a", "b"] * 110})
    settings = resolve("diabetes", "dev")["monitor"]
    reference = drift.build_reference(train, None, contract, settings)
    # 10 rows: n has one null, one text, one fraction, one infinity and two values out of range;
    # kind has one null (allowed), one number (wrong type) and two unknown categories.
    scored = pd.DataFrame({
        "n": pd.Series([1, None, "x", 2.5, float("inf"), -1, 11, 3, 4, 5], dtype=object),
        "kind": pd.Series(["a", None, 7, "c", "d", "a", "b", "a", "b", "a"], dtype=object)})
    quality = {q["feature"]: q for q in drift.check_window(reference, scored, settings, contract)["quality"]}
    assert quality["n"] == {"feature": "n", "null_rate": 0.1, "type_error_rate": 0.3, "out_of_range_rate": 0.2,
                            "nullable": False, "breached": True}
    assert quality["kind"] == {"feature": "kind", "null_rate": 0.1, "type_error_rate": 0.1, "out_of_range_rate": 0.2,
                               "nullable": True, "breached": True}
    tolerant = {**settings, "quality": {"null_value_rate": 0.1, "data_type_error_rate": 0.3, "out_of_bounds_rate": 0.2}}
    assert not any(q["breached"] for q in drift.check_window(reference, scored, tolerant, contract)["quality"])


def test_a_per_feature_metric_overrides_its_kind_and_must_fit_it(reference, settings):
    ks = {**settings, "features": {"bmi": {"metric": "two_sample_kolmogorov_smirnov_test", "threshold": 0.05}}}
    result = drift.check_window(reference, window(9, 2000), ks)
    bmi = next(f for f in result["features"] if f["feature"] == "bmi")
    assert bmi["metric"] == "two_sample_kolmogorov_smirnov_test" and 0 <= bmi["value"] <= 1
    wrong = {**settings, "features": {"island": {"metric": "normalized_wasserstein_distance", "threshold": 0.1}}}
    with pytest.raises(ParamsError, match=r"monitor\.features\.island\.metric: 'normalized_wasserstein_distance' "
                                          r"does not apply to categorical column 'island'"):
        drift.check_window(reference, window(9, 2000), wrong)


def test_labels_that_match_no_request_are_counted_and_live_performance_uses_training_metrics():
    scored = pd.DataFrame({"request_id": ["r1", "r1", "r2", "r3"], "row": [0, 1, 0, 0],
                           "prediction": ["Adelie", "Gentoo", "Adelie", "Chinstrap"]})
    labels = pd.DataFrame({"request_id": ["r1", "r1", "r2", "r9", "r8", "r2"], "row": [0, 1, 0, 0, 0, 0],
                           "species": ["Adelie", "Adelie", "Gentoo", "Gentoo", "Adelie", "Adelie"]})  # r2 corrected
    joined, unmatched = drift.join_labels(scored, labels)
    assert unmatched == 2 and len(joined) == 3
    performance = drift.live_performance(joined, "classification", ["accuracy", "f1_macro", "log_loss"], "species")
    # 2 of 3 right; macro F1: Adelie P=1 R=2/3 F1=0.8, Gentoo P=0 R=0 F1=0 -> mean 0.4; log_loss needs probabilities
    assert performance == {"accuracy": pytest.approx(2 / 3, abs=1e-6), "f1_macro": pytest.approx(0.4), "log_loss": None}
    with pytest.raises(DataValidationError, match="no column 'request_id'"):
        drift.join_labels(scored, labels.drop(columns="request_id"))


# -- the Parquet window -----------------------------------------------------------------------------------

def write_scored(folder, day: str, stamps: list[datetime], frame: pd.DataFrame, name: str = "part-1.parquet",
                 row_group_size: int | None = None) -> None:
    """One scored file as score.py's ScoredDataWriter writes it (dated by its first row)."""
    table = pa.table({"scored_at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                      "request_id": [f"r{i}" for i in range(len(frame))], "row": np.zeros(len(frame), int),
                      "model": ["m"] * len(frame), "model_version": ["1"] * len(frame),
                      **{c: pa.array(frame[c], from_pandas=True) for c in frame}})  # NaN and None: null
    (folder / f"date={day}").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"date={day}" / name, row_group_size=row_group_size)


def test_read_window_reads_only_the_window_and_check_folder_agrees(tmp_path, reference, settings):
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    minutes = [start + timedelta(minutes=i) for i in range(3000)]  # two days and two hours
    data = window(11, 3000)
    data.loc[::100, "bmi"] = np.nan  # nulls in the Parquet files too
    data.loc[::50, "island"] = None
    days = [m.strftime("%Y-%m-%d") for m in minutes]
    for day in sorted(set(days)):
        picked = [i for i, d in enumerate(days) if d == day]
        write_scored(tmp_path, day, [minutes[i] for i in picked], data.iloc[picked], row_group_size=200)
    # a file dated 1 November whose last rows were scored after midnight: the writer dates a file by its first row
    write_scored(tmp_path, "2026-11-01", [start - timedelta(seconds=2), start + timedelta(seconds=5)],
                 data.head(2), name="part-late.parquet")
    # a partition far outside the window, not Parquet at all: reading it would fail
    (tmp_path / "date=2026-10-01").mkdir()
    (tmp_path / "date=2026-10-01" / "part-0.parquet").write_text("not parquet")

    since, until = datetime(2026, 11, 3), datetime(2026, 11, 4)  # naive: UTC
    rows = drift.read_window(tmp_path, since, until)
    assert len(rows) == 1440 and rows["scored_at"].min() == pd.Timestamp("2026-11-03", tz="UTC")
    assert rows["scored_at"].max() < pd.Timestamp("2026-11-04", tz="UTC")
    assert list(drift.read_window(tmp_path, since, until, columns=["bmi"]).columns) == ["bmi"]
    late = drift.read_window(tmp_path, datetime(2026, 11, 2), datetime(2026, 11, 2, 0, 0, 30))
    assert len(late) == 2  # the row after midnight in 1 November's file, and 2 November's first row
    streamed = drift.check_folder(reference, tmp_path, since, until, settings)
    assert streamed == drift.check_window(reference, rows, settings)
    quality = {q["feature"]: q for q in streamed["quality"]}
    assert quality["bmi"]["null_rate"] == pytest.approx(0.01, abs=0.001) and quality["bmi"]["breached"]
    assert quality["island"]["null_rate"] == pytest.approx(0.02, abs=0.001)
    assert len(drift.read_window(tmp_path, datetime(2027, 1, 1), datetime(2027, 1, 2))) == 0
    empty = drift.check_folder(reference, tmp_path, datetime(2027, 1, 1), datetime(2027, 1, 2), settings)
    assert empty["rows"] == 0 and empty["verdict"].startswith("too few rows to judge: 0 <")


def test_a_window_whose_files_disagree_on_a_type_is_one_clear_error(tmp_path):
    day = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
    write_scored(tmp_path, "2026-11-02", [day], pd.DataFrame({"x": [1.0]}), name="part-a.parquet")
    write_scored(tmp_path, "2026-11-02", [day], pd.DataFrame({"x": ["text"]}), name="part-b.parquet")
    with pytest.raises(DataValidationError, match="disagree on a column's type"):
        drift.read_window(tmp_path, datetime(2026, 11, 2), datetime(2026, 11, 3))


def test_check_folder_reads_what_the_endpoints_scored_data_writer_writes(tmp_path):
    """score.py's own writer (mixed text and number columns go through one object array, gaps as
    None and NaN), then the monitor over today's window."""
    from modelfactory.core.score import ScoredDataWriter

    train = pd.DataFrame({"island": ["Biscoe", "Dream", "Torgersen"] * 100, "bill_length_mm": np.linspace(32, 60, 300),
                          "sex": ["male", "female", None] * 100})
    settings = {**resolve("diabetes", "dev")["monitor"], "min_rows": 10}
    reference = drift.build_reference(train, np.array(["Adelie", "Gentoo", "Chinstrap"] * 100), None,
                                      {**settings, "task": "classification"})
    writer = ScoredDataWriter(tmp_path, "penguins", 1, flush_rows=40, flush_seconds=0.05)
    before = datetime.now(timezone.utc)
    for start in range(4):  # four requests of 75 rows: every fourth training row each, so all of them
        frame = train.iloc[start::4].reset_index(drop=True)
        frame.loc[0, "bill_length_mm"] = np.nan
        writer.add(f"req-{start}", frame, np.array(["Adelie"] * 75))
    writer.close()
    result = drift.check_folder(reference, tmp_path, before - timedelta(minutes=1), datetime.now(timezone.utc)
                                + timedelta(minutes=1), settings)
    assert result["rows"] == 300 and result["enough_rows"]
    quality = {q["feature"]: q for q in result["quality"]}
    assert quality["bill_length_mm"]["null_rate"] == pytest.approx(4 / 300, abs=1e-6)
    assert quality["sex"]["null_rate"] == pytest.approx(100 / 300, abs=1e-6) and not quality["sex"]["breached"]
    assert result["verdict"] == "drift in the prediction only (0 of 3 features)"  # every answer was Adelie
