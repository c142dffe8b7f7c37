"""Helpers of the explore, train and evaluate stages, on the bundled datasets."""

import math

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from modelfactory.core import data, evaluate, explore, modeling
from modelfactory.errors import DataValidationError, ParamsError
from modelfactory.params import resolve


@pytest.fixture(scope="module", params=["diabetes", "breast_cancer"])
def params(request):
    import os

    os.environ["MODELFACTORY_PROJECT_DIR"] = str(ROOT)
    return resolve(request.param, "dev")


def test_load_check_split_are_deterministic(params):
    raw = data.load_dataset(params["data"])
    assert raw.columns[-1] == "target" and not raw.isna().any().any()
    checks = data.check_data(raw, params["data"], params["model"]["task"])
    assert checks["passed"].all(), checks
    a_train, a_hold = data.split_data(raw, params["data"], params["seed"])
    b_train, b_hold = data.split_data(raw, params["data"], params["seed"])
    pd.testing.assert_frame_equal(a_hold, b_hold)
    assert len(a_hold) == math.ceil(len(raw) * params["data"]["holdout_fraction"])  # scikit-learn rounds up
    assert set(a_train.index).isdisjoint(a_hold.index)
    assert data.dataset_hash(raw) == data.dataset_hash(data.load_dataset(params["data"]))


def test_failed_checks_are_listed_with_their_params():
    raw = pd.DataFrame({"a": [1.0, None, 3.0], "target": [0, 1, 0]})
    spec = {"target": "target", "checks": {"min_rows": 5, "max_missing_fraction": 0.0, "required_columns": ["a", "b"]}}
    checks = data.check_data(raw, spec, "classification")
    assert checks.set_index("check")["passed"].to_dict() == {
        "rows": False, "required columns present": False, "largest missing share": False,
        "target has no missing values": True, "no infinite values": True,
        "target 'target' suits model.task classification": True, "feature types usable": True}
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(checks)
    assert str(info.value) == (
        "3 data check(s) failed: rows: observed 3, expected >= 5 (data.checks.min_rows); "
        "required columns present: observed b, expected all (data.checks.required_columns); "
        "largest missing share: observed 0.3333, expected <= 0.0 (data.checks.max_missing_fraction)")


def test_stratified_split_keeps_class_shares():
    params = resolve("breast_cancer", "dev")
    raw = data.load_dataset(params["data"])
    train, hold = data.split_data(raw, params["data"], params["seed"])
    assert abs(train["target"].mean() - hold["target"].mean()) < 0.01


@pytest.mark.parametrize("spec,message", [
    ({"estimator": "sklearn.linear_model.Ridge", "scale_features": True, "alpah": 1},
     "train.alpah: Ridge has no hyperparameter 'alpah'; did you mean 'alpha'?"),
    ({"estimator": "sklearn.linear_model.Rdge", "scale_features": True},
     "train.estimator: module 'sklearn.linear_model' has no class 'Rdge'; did you mean 'sklearn.linear_model.Ridge'?"),
    ({"estimator": "sklearn.linear_modell.Ridge", "scale_features": True},
     "train.estimator: cannot import module 'sklearn.linear_modell' (from 'sklearn.linear_modell.Ridge')"),
    ({"estimator": "pandas.DataFrame", "scale_features": True},
     "train.estimator: 'pandas.DataFrame' is not a scikit-learn estimator"),
])
def test_estimator_spec_errors(spec, message):
    with pytest.raises(ParamsError) as info:
        modeling.build_estimator(spec, seed=0)
    assert str(info.value) == message


def test_build_estimator_passes_hyperparameters_and_seed():
    pipe = modeling.build_estimator({"estimator": "sklearn.ensemble.RandomForestRegressor",
                                     "scale_features": False, "n_estimators": 7}, seed=3)
    assert [name for name, _ in pipe.steps] == ["model"]
    assert pipe.named_steps["model"].n_estimators == 7 and pipe.named_steps["model"].random_state == 3


def test_metric_names_must_fit_the_task():
    with pytest.raises(ParamsError, match="evaluate.metrics: metric 'roc_auc' is for classification, but model.task is regression"):
        modeling.check_metric_names(["rmse", "roc_auc"], "regression")
    with pytest.raises(ParamsError, match="unknown metric 'rsme'; did you mean 'rmse'"):
        modeling.check_metric_names(["rsme"], "regression")


def test_candidate_beats_dummy_baseline_on_both_demo_models(params):
    raw = data.load_dataset(params["data"])
    train, hold = data.split_data(raw, params["data"], params["seed"])
    target, task = params["data"]["target"], params["model"]["task"]
    model = modeling.fit_model(modeling.build_estimator(params["train"], params["seed"]), train, target)
    base = modeling.fit_model(modeling.build_estimator(params["evaluate"]["baseline"], params["seed"]), train, target)
    table = evaluate.compare_models({"candidate": model, "baseline": base}, hold, target, task,
                                    params["evaluate"]["metrics"])
    verdict = evaluate.judge_against_baseline(table, params["evaluate"]["primary_metric"], 3)
    assert bool(verdict["beats baseline"].iloc[0])
    fig = evaluate.plot_diagnostics(model, hold, target, task)
    assert len(fig.axes) >= 2
    profile = explore.profile_data(raw, 3)
    assert list(profile.index) == list(raw.columns) and (profile["missing"] == 0).all()


def test_rmse_matches_definition():
    fn = modeling.METRICS["rmse"][1]
    assert fn(np.array([0.0, 0.0]), np.array([3.0, 4.0]), None) == pytest.approx(np.sqrt(12.5))


def _frame(target, rows=120):
    """Two numeric features and the given target values, repeated to ``rows`` rows."""
    values = (list(target) * rows)[:rows]
    return pd.DataFrame({"a": np.arange(rows, dtype=float), "b": np.arange(rows, dtype=float) % 7, "target": values})


SPEC = {"target": "target", "checks": {"min_rows": 10, "max_missing_fraction": 0.0, "required_columns": []}}
MISFITS = [
    # (task, estimator, target values, the data check's words, fit_model's words)
    ("classification", "sklearn.linear_model.LogisticRegression", np.linspace(25.0, 346.0, 120),
     "target 'target' suits model.task classification: observed 120 distinct values (a regression target? then "
     "model.task: regression), expected 2 or more classes (model.task)",
     "data.target: column 'target' does not suit a classification model: observed 120 distinct values"),
    ("regression", "sklearn.linear_model.Ridge", [0, 1],
     "target 'target' suits model.task regression: observed 2 distinct values (0, 1): a classification target? "
     "then model.task: classification, expected numbers with more than 2 distinct values (model.task)",
     "data.target: column 'target' does not suit a regression model: observed 2 distinct values (0, 1)"),
    ("classification", "sklearn.linear_model.LogisticRegression", [1],
     "target 'target' suits model.task classification: observed 1 class (1) in every row, expected 2 or more classes "
     "(model.task)",
     "data.target: column 'target' does not suit a classification model: observed 1 class (1) in every row"),
    ("regression", "sklearn.linear_model.Ridge", [5.0],
     "target 'target' suits model.task regression: observed the constant 5 in every row: nothing to learn, "
     "expected numbers with more than 2 distinct values (model.task)",
     "data.target: column 'target' does not suit a regression model: observed the constant 5 in every row"),
]


@pytest.mark.parametrize("task,estimator,target,check_message,fit_message", MISFITS,
                         ids=["classifier-on-regression-target", "regressor-on-classes", "one-class", "constant"])
def test_a_target_that_does_not_suit_the_task_is_refused_before_training(task, estimator, target, check_message,
                                                                          fit_message):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    frame = _frame(target)
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(data.check_data(frame, SPEC, task))
    assert str(info.value) == f"1 data check(s) failed: {check_message}"
    pipe = modeling.build_estimator({"estimator": estimator, "scale_features": False}, seed=0)
    with pytest.raises(DataValidationError) as info:
        modeling.fit_model(pipe, frame, "target")
    assert str(info.value).startswith(fit_message)
    with pytest.raises(NotFittedError):
        check_is_fitted(pipe)


@pytest.mark.parametrize("task,key,estimator,message", [
    ("regression", "train", "sklearn.linear_model.LogisticRegression",
     "train.estimator: LogisticRegression is a classifier, but model.task is regression, which needs a regressor"),
    ("classification", "train", "sklearn.ensemble.RandomForestRegressor",
     "train.estimator: RandomForestRegressor is a regressor, but model.task is classification, which needs a "
     "classifier"),
    ("classification", "baseline", "sklearn.cluster.KMeans",
     "evaluate.baseline.estimator: KMeans is neither a classifier nor a regressor, but model.task is "
     "classification, which needs a classifier"),
])
def test_an_estimator_of_the_wrong_kind_for_the_task_is_a_params_error(task, key, estimator, message):
    params = resolve("breast_cancer" if task == "classification" else "diabetes", "dev")
    section = params["train"] if key == "train" else params["evaluate"]["baseline"]
    section.clear()
    section.update({"estimator": estimator, "scale_features": False})
    with pytest.raises(ParamsError) as info:
        modeling.check_estimators(params)
    assert str(info.value) == message


def test_empty_table_and_text_target_fail_the_checks_in_one_line():
    empty = _frame([1.0, 2.0, 3.0]).head(0)
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(data.check_data(empty, SPEC, "regression"))
    assert str(info.value) == (
        "2 data check(s) failed: rows: observed 0, expected >= 10 (data.checks.min_rows); target 'target' suits "
        "model.task regression: observed no values, expected numbers with more than 2 distinct values (model.task)")
    text = _frame(["low", "mid", "high"])
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(data.check_data(text, SPEC, "regression"))
    assert str(info.value) == (
        "1 data check(s) failed: target 'target' suits model.task regression: observed non-numeric values "
        "(dtype object), expected numbers with more than 2 distinct values (model.task)")


def test_an_infinite_value_fails_the_checks_naming_the_column():
    frame = _frame(np.linspace(25.0, 346.0, 120))
    frame.loc[3, "target"] = np.inf
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(data.check_data(frame, SPEC, "regression"))
    assert str(info.value) == "1 data check(s) failed: no infinite values: observed target, expected none"


def test_explore_checks_the_data_before_it_summarises_or_draws_it():
    """An empty table or a text target used to reach summarize_data first and die in KeyError: 'mean'."""
    import json

    cells = [("".join(c["source"])) for c in json.loads((ROOT / "notebooks" / "explore.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    first = {name: next(i for i, code in enumerate(cells) if name in code)
             for name in ("require_checks_passed", "summarize_data", "profile_data", "plot_target")}
    assert first["require_checks_passed"] < min(first["summarize_data"], first["profile_data"], first["plot_target"])




def test_the_profile_shows_counts_as_integers_and_no_negative_zero():
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    summary = explore.summarize_data(frame, "target", "regression", 3)
    shown = summary.to_html()
    for fact, count in (("rows", 442), ("columns", 11), ("missing cells", 0)):
        assert f"<th>{fact}</th>\n      <td>{count}</td>" in shown, shown
    assert "<td>152.133</td>" in shown  # a mean keeps its decimals
    profile = explore.profile_data(frame, 3)
    assert (profile["mean"].drop("target") == 0).all()  # centred features: means of about 1e-17 either side
    assert "-0.000" not in profile.to_html()
