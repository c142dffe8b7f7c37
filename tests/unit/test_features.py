"""Features beyond numbers: text, category and boolean columns with missing values, encoded and imputed
inside the model pipeline, logged, packaged and served raw; and multi-class classification metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from modelfactory.core import data, evaluate, gate, modeling
from modelfactory.ops import deploy, tracking
from modelfactory.ops.serving import packaging
from modelfactory.errors import DataValidationError
from modelfactory.params import resolve

ISLANDS = ["Biscoe", "Dream", "Torgersen"]


def _preprocess(**overrides):
    """train.preprocess as params/base.yaml gives it, with overrides."""
    import os

    os.environ["MODELFACTORY_PROJECT_DIR"] = str(ROOT)
    return {**resolve("breast_cancer", "dev")["train"]["preprocess"], **overrides}


def _mixed_frame(rows: int = 240) -> pd.DataFrame:
    """A text column with missing values, a boolean, a number with missing values, a category, an
    integer, and a three-class target that depends on the island and the number."""
    rng = np.random.default_rng(7)
    island = rng.choice(ISLANDS, rows).astype(object)
    mass = rng.normal(40.0, 5.0, rows)
    target = np.where(island == "Biscoe", "adelie", np.where(mass > 40.0, "gentoo", "chinstrap"))
    frame = pd.DataFrame({"island": island, "mass": mass, "male": rng.choice([True, False], rows),
                          "colour": pd.Categorical(rng.choice(["red", "blue"], rows)),
                          "count": rng.integers(0, 9, rows), "species": target})
    frame.loc[frame.index % 11 == 0, "island"] = None
    frame.loc[frame.index % 13 == 0, "mass"] = np.nan
    return frame


def _build(spec_overrides=None, estimator="sklearn.linear_model.LogisticRegression", **hyper):
    spec = {"estimator": estimator, "scale_features": True, "preprocess": _preprocess(**(spec_overrides or {})),
            **hyper}
    return modeling.build_estimator(spec, seed=0)


def test_text_boolean_category_and_missing_values_are_encoded_inside_the_pipeline():
    frame = _mixed_frame()
    model = modeling.fit_model(_build(max_iter=500), frame, "species")
    columns = {name: list(cols) for name, _, cols in model.named_steps["preprocess"].transformers_
               if name != "remainder"}
    assert columns == {"numeric": ["mass", "count"], "categorical": ["island", "colour"], "boolean": ["male"]}
    assert modeling.imputed_columns(model) == {"mass", "count", "island", "colour"}
    raw = frame.drop(columns="species").head(6).copy()
    raw.loc[raw.index[0], "island"] = None
    raw.loc[raw.index[1], "mass"] = np.nan
    predictions = model.predict(raw)
    assert set(predictions) <= {"adelie", "chinstrap", "gentoo"}
    # a model that learnt something: the island alone decides most rows
    assert (model.predict(frame.drop(columns="species")) == frame["species"]).mean() > 0.8


def test_an_unseen_category_is_encoded_as_unknown_by_default():
    frame = _mixed_frame()
    model = modeling.fit_model(_build(max_iter=500), frame, "species")
    row = frame.drop(columns="species").head(1).copy()
    row["island"] = "Atlantis"
    encoded = model.named_steps["preprocess"].transform(row)
    names = list(model.named_steps["preprocess"].get_feature_names_out())
    island_columns = [i for i, n in enumerate(names) if n.startswith("island_")]
    assert len(island_columns) == len(ISLANDS) and not encoded[0, island_columns].any()
    assert model.predict(row)[0] in {"adelie", "chinstrap", "gentoo"}


def test_preprocess_columns_override_the_dtype_and_drop():
    frame = _mixed_frame()
    model = modeling.fit_model(_build({"columns": {"count": "categorical", "colour": "drop"}}, max_iter=500),
                               frame, "species")
    columns = {name: list(cols) for name, _, cols in model.named_steps["preprocess"].transformers_
               if name != "remainder"}
    assert columns == {"numeric": ["mass"], "categorical": ["island"], "boolean": ["male"],
                       "categorical_named": ["count"]}
    assert not any(n.startswith("colour") for n in model.named_steps["preprocess"].get_feature_names_out())


def test_a_text_column_fails_without_preprocessing_and_the_data_check_accepts_it():
    """Before train.preprocess the data check refused every non-numeric feature, and a pipeline
    without the preprocessing step cannot fit on text."""
    frame = _mixed_frame()
    spec = {"target": "species", "checks": {"min_rows": 10, "max_missing_fraction": 0.2, "required_columns": []}}
    checks = data.check_data(frame, spec, "classification").set_index("check")
    assert bool(checks.loc["feature types usable", "passed"]) and checks["passed"].all(), checks
    with pytest.raises(ValueError):
        modeling.fit_model(modeling.build_estimator(
            {"estimator": "sklearn.linear_model.LogisticRegression", "scale_features": True}, seed=0),
            frame, "species")


def test_a_date_column_fails_the_feature_type_check():
    frame = _mixed_frame().assign(seen=pd.Timestamp("2024-01-01"))
    spec = {"target": "species", "checks": {"min_rows": 10, "max_missing_fraction": 0.2, "required_columns": []}}
    with pytest.raises(DataValidationError, match="feature types usable: observed 5 of 6, expected all"):
        data.require_checks_passed(data.check_data(frame, spec, "classification"))


def _serve(tmp_path_factory, preprocess=None):
    """The mixed-type model, logged through tracking.log_model to a real SQLite store, packaged, and
    loaded through the package's score.py (init())."""
    import mlflow

    root = tmp_path_factory.mktemp("features")
    frame = _mixed_frame()
    train = frame.copy()
    train["colour"] = train["colour"].astype(object)  # as a CSV or a JSON request gives it
    model = modeling.fit_model(_build(preprocess, max_iter=500), train, "species")
    x = modeling.features(train, "species")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment = mlflow.create_experiment("features", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        uri = tracking.log_model(model, x, ["scikit-learn"])
    folder = root / "model"
    mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder))
    settings = {"max_rows": 50, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(folder, root / "package", x, settings, "mixed", "1")
    scorer = deploy.load_scoring_script(root / "package")
    mlflow.set_tracking_uri(None)
    return model, x, folder, scorer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return _serve(tmp_path_factory)


def test_a_model_that_refuses_unseen_categories_answers_400_naming_column_and_value(tmp_path_factory):
    model, x, _, scorer = _serve(tmp_path_factory, {"unknown_categories": "refuse",
                                                    "columns": {"count": "categorical"}})
    columns = list(x.columns)
    rows = x.iloc[1:3].astype(object).to_numpy().tolist()
    assert scorer.run(request(columns, rows))["predictions"] == model.predict(x.iloc[1:3]).tolist()
    rows[1][columns.index("island")] = "Atlantis"
    answer = scorer.run(request(columns, rows))
    assert answer.status_code == 400
    assert json.loads(answer.get_data(as_text=True)) == {
        "error": "row 1, column 'island': unknown category \"Atlantis\"; the model knows Biscoe, Dream, Torgersen"}
    rows[1][columns.index("island")] = None  # missing is not unknown: it is imputed
    rows[0][columns.index("count")] = 99  # a numeric code the model never saw
    answer = scorer.run(request(columns, rows))
    assert json.loads(answer.get_data(as_text=True))["error"].startswith("row 0, column 'count': unknown category 99;")
    with pytest.raises(ValueError, match="unknown categor"):  # the model itself refuses it too
        model.predict(pd.DataFrame([rows[0]], columns=columns).astype({"mass": "float64"}))


def test_the_preprocessing_pipeline_needs_no_extra_trusted_types(served):
    import yaml

    model, _, folder, _ = served
    flavour = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavour["serialization_format"] == "skops"
    # column names were written into the pipeline when it was fitted: no selector object to trust;
    # numpy.dtype is the text imputers' (their statistics_ are an object array)
    assert flavour["skops_trusted_types"] == ["numpy.dtype"] == tracking.skops_trusted_types(model)
    assert tracking.load_model(folder, "pyfunc").predict(served[1].head(5)).tolist() == \
        model.predict(served[1].head(5)).tolist()


def test_signature_marks_imputed_columns_optional_except_integers(served):
    from mlflow.models import Model

    _, _, folder, _ = served
    inputs = {s.name: (s.type.name, s.required) for s in Model.load(str(folder / "MLmodel")).get_input_schema().inputs}
    assert inputs == {"island": ("string", False), "mass": ("double", False), "male": ("boolean", True),
                      "colour": ("string", False), "count": ("long", True)}


def request(columns, rows):
    return json.dumps({"input_data": {"columns": columns, "data": rows}})


def test_score_py_takes_raw_strings_booleans_and_nulls(served):
    model, x, _, scorer = served
    columns = list(x.columns)
    rows = x.iloc[1:5].astype(object).to_numpy().tolist()  # rows 1-4 miss no value
    rows[0][columns.index("island")] = None
    rows[1][columns.index("mass")] = None
    rows[2][columns.index("colour")] = None
    rows[3][columns.index("island")] = "Atlantis"  # unseen in training: encoded as unknown
    answer = scorer.run(request(columns, rows))
    assert isinstance(answer, dict), answer.get_data(as_text=True)
    expected = model.predict(pd.DataFrame(rows, columns=columns).astype({"mass": "float64"}))
    assert answer["predictions"] == expected.tolist()
    json.dumps(answer)


@pytest.mark.parametrize("column,value,message", [
    ("island", 3, "row 0, column 'island': expected a string, got 3"),
    ("male", "yes", "row 0, column 'male': expected true or false, got \"yes\""),
    ("male", None, "row 0, column 'male': a value is required, got null"),
    ("count", None, "row 0, column 'count': a value is required, got null"),
    ("mass", "heavy", "row 0, column 'mass': expected a number, got \"heavy\""),
])
def test_score_py_names_the_column_of_a_wrong_value(served, column, value, message):
    _, x, _, scorer = served
    columns = list(x.columns)
    rows = x.iloc[1:2].astype(object).to_numpy().tolist()
    rows[0][columns.index(column)] = value
    answer = scorer.run(request(columns, rows))
    assert answer.status_code == 400
    assert json.loads(answer.get_data(as_text=True)) == {"error": message}


# --- multi-class, on scikit-learn's wine (three cultivars) ---------------------------------------------

MULTI = ["accuracy", "f1_macro", "roc_auc_ovr", "log_loss"]


@pytest.fixture(scope="module")
def wine():
    raw = data.load_dataset({"source": "sklearn", "dataset": "wine", "target": "target"})
    spec = {"target": "target", "holdout_fraction": 0.3, "stratify": True,
            "checks": {"min_rows": 100, "max_missing_fraction": 0.0, "required_columns": []}}
    train, holdout = data.split_data(raw, spec, 0)
    return raw, spec, train, holdout


def test_a_whole_number_regression_target_is_still_refused_for_classification():
    """Lifting the two-class limit must not take diabetes' scores (whole numbers, 214 values) for classes."""
    raw = data.load_dataset({"source": "sklearn", "dataset": "diabetes", "target": "target"})
    observed, _, fits = data.target_fit(raw["target"], "classification")
    assert not fits and observed == "214 distinct values (a regression target? then model.task: regression)"


def test_wine_and_iris_load_and_pass_the_class_check(wine):
    raw, spec, _, _ = wine
    checks = data.check_data(raw, spec, "classification").set_index("check")
    assert checks["passed"].all(), checks
    assert checks.loc["target 'target' suits model.task classification", "observed"] == "3 classes"
    iris = data.load_dataset({"source": "sklearn", "dataset": "iris", "target": "target"})
    assert iris["target"].nunique() == 3


def test_multi_class_metrics_match_scikit_learn_on_wine(wine):
    from sklearn import metrics

    _, _, train, holdout = wine
    model = modeling.fit_model(_build(max_iter=1000), train, "target")
    got = modeling.compute_metrics(model, holdout, "target", "classification", MULTI)
    x, y = holdout.drop(columns="target"), holdout["target"]
    proba = model.predict_proba(x)
    assert got == {"accuracy": round(metrics.accuracy_score(y, model.predict(x)), 6),
                   "f1_macro": round(metrics.f1_score(y, model.predict(x), average="macro"), 6),
                   "roc_auc_ovr": round(metrics.roc_auc_score(y, proba, multi_class="ovr"), 6),
                   "log_loss": round(metrics.log_loss(y, proba), 6)}
    assert got["accuracy"] > 0.9 and got["roc_auc_ovr"] > 0.95
    assert [modeling.higher_is_better(m) for m in MULTI] == [True, True, True, False]


def test_binary_metrics_are_refused_for_three_classes_naming_the_counterpart(wine):
    _, _, train, holdout = wine
    model = modeling.fit_model(_build(max_iter=1000), train, "target")
    with pytest.raises(DataValidationError, match="evaluate.metrics: 'roc_auc' is a binary metric, but target "
                                                   "'target' has 3 classes; use 'roc_auc_ovr'"):
        modeling.compute_metrics(model, holdout, "target", "classification", ["accuracy", "roc_auc"])


def test_multi_class_gate_and_confusion_matrix_on_wine(wine):
    _, _, train, holdout = wine
    model = modeling.fit_model(_build(max_iter=1000), train, "target")
    baseline = modeling.fit_model(_build(estimator="sklearn.dummy.DummyClassifier", strategy="prior"), train, "target")
    comparison = evaluate.compare_models({"candidate": model, "baseline": baseline}, holdout, "target",
                                         "classification", MULTI)
    for primary in MULTI:  # log loss: lower is better, and the gate compares downwards
        checks = gate.judge_candidate(comparison, {"thresholds": {"f1_macro": {"min": 0.8}}, "beat_baseline": True,
                                                   "margin": 0.0}, primary)
        assert checks["passed"].all(), checks
    # a champion exactly as good as the candidate: not beaten, in either direction
    tied = pd.concat([comparison, comparison.loc[["candidate"]].rename(index={"candidate": "champion"})])
    for primary in ("log_loss", "f1_macro"):
        checks = gate.judge_candidate(tied, {"thresholds": {}, "beat_baseline": True, "margin": 0.0}, primary)
        assert checks.set_index("check")["passed"].to_dict() == {"beats baseline": True,
                                                                 "beats champion": False}
    fig = evaluate.plot_diagnostics(model, holdout, "target", "classification")
    confusion, roc = fig.axes[0], fig.axes[1]
    assert confusion.get_title() == "Confusion matrix (holdout)"
    assert len(confusion.texts) == 9  # a 3 x 3 matrix of counts
    assert sum(int(t.get_text()) for t in confusion.texts) == len(holdout)
    assert len([line for line in roc.get_lines() if "vs rest" in line.get_label()]) == 3


def test_a_binary_model_still_draws_one_roc_curve_and_keeps_its_metrics():
    from sklearn import metrics

    params = resolve("breast_cancer", "dev")
    raw = data.load_dataset(params["data"])
    train, holdout = data.split_data(raw, params["data"], params["seed"])
    model = modeling.fit_model(modeling.build_estimator(params["train"], params["seed"]), train, "target")
    got = modeling.compute_metrics(model, holdout, "target", "classification", ["roc_auc", "roc_auc_ovr", "f1"])
    proba = model.predict_proba(holdout.drop(columns="target"))[:, 1]
    assert got["roc_auc"] == got["roc_auc_ovr"] == round(metrics.roc_auc_score(holdout["target"], proba), 6)
    fig = evaluate.plot_diagnostics(model, holdout, "target", "classification")
    assert fig.axes[1].get_title() == "ROC curve (holdout)"


def test_evaluating_rows_with_a_refused_category_is_one_line():
    frame = _mixed_frame()
    model = modeling.fit_model(_build({"unknown_categories": "refuse"}, max_iter=500), frame, "species")
    rows = frame.head(3).copy()
    rows.loc[rows.index[2], "island"] = "Atlantis"
    with pytest.raises(DataValidationError, match=r"^train.preprocess.unknown_categories is refuse, and rows to score "
                                                  r"hold a category the model did not see in training: Found unknown "
                                                  r"categories \['Atlantis'\]"):
        modeling.compute_metrics(model, rows, "species", "classification", ["accuracy"])


def test_batch_checks_keep_gaps_where_the_pipeline_imputes(served, tmp_path):
    """Batch used to set aside every row with a missing value, even where the model imputes it."""
    from modelfactory.core.batch import check_chunk, model_rules

    model, x, folder, _ = served
    rules, casts = model_rules(tracking.load_model(folder, "pyfunc"))
    rows = x.iloc[1:7].copy()
    rows.loc[rows.index[0], "island"] = None
    rows.loc[rows.index[1], "mass"] = np.nan
    rows.loc[rows.index[2], "count"] = np.nan  # an integer column: still required
    rows.loc[rows.index[3], "colour"] = np.nan  # a text gap as pandas' CSV reader gives it
    good, bad = check_chunk(rows.reset_index(drop=True), rules, 0, casts)
    assert bad[["row", "column", "problem"]].values.tolist() == [[2, "count", "missing value"]]
    assert list(good.index) == [0, 1, 3, 4, 5]
    assert good.loc[3, "colour"] is None and good.loc[0, "island"] is None and np.isnan(good.loc[1, "mass"])
    assert good["count"].dtype == "int64"  # the gap's row is set aside; the column is whole numbers again
    assert tracking.load_model(folder, "pyfunc").predict(good).tolist() == model.predict(good).tolist()


def test_batch_scores_a_file_with_an_integer_column(served, tmp_path):
    """Batch cast every numeric column to float, and MLflow then refused the model's ``long`` column,
    so a model with an integer feature could not score a file at all."""
    from modelfactory.core.batch import score_file

    model, x, folder, _ = served
    x.head(30).to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet",
                         {"chunk_rows": 8, "on_bad_rows": "fail"}, progress=False)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (30, 30, 0)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["count"].dtype == "int64"
    assert out["prediction"].tolist() == model.predict(x.head(30)).tolist()


def test_the_deploy_check_compares_text_labels():
    """It cast every answer to float, so a model with a text target could never pass the deploy stage."""
    labels = np.array(["adelie", "gentoo"])
    assert bool(deploy.compare_answers(labels, np.array(["adelie", "gentoo"], dtype=object), 1e-9)["match"].iloc[0])
    check = deploy.compare_answers(labels, np.array(["adelie", "chinstrap"], dtype=object), 1e-9)
    assert not bool(check["match"].iloc[0]) and check["max abs difference"].iloc[0] == 1.0
    assert deploy.compare_answers(np.array([1.0, 2.5]), np.array([1.0, 2.0]), 1e-9)["max abs difference"].iloc[0] == 0.5


def test_a_preprocess_column_not_in_the_data_is_one_line():
    frame = _mixed_frame()
    with pytest.raises(DataValidationError) as info:
        modeling.fit_model(_build({"columns": {"cuont": "categorical"}}, max_iter=500), frame, "species")
    assert str(info.value) == ("train.preprocess.columns: no column cuont in the training rows (columns: island, "
                               "mass, male, colour, count)")
