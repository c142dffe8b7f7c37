"""Helpers of the explore, train and evaluate stages, on the bundled datasets."""

import math

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from modelfactory import data, evaluate, explore, modeling
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
    checks = data.check_data(raw, params["data"])
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
    checks = data.check_data(raw, spec)
    assert checks.set_index("check")["passed"].to_dict() == {
        "rows": False, "required columns present": False, "largest missing share": False,
        "target has no missing values": True, "all features numeric": True}
    with pytest.raises(DataValidationError) as info:
        data.require_checks_passed(checks)
    assert str(info.value) == (
        "3 data check(s) failed: rows: observed 3, expected >= 5 (data.checks.min_rows); "
        "required columns present: observed b, expected all (data.checks.required_columns); "
        "largest missing share: observed 0.3333, expected <= 0.0 (data.checks.max_missing_fraction)")


def test_unknown_dataset_and_target_are_clear():
    with pytest.raises(ParamsError, match="data.dataset: scikit-learn bundles no dataset 'diabetis'; it has"):
        data.load_dataset({"source": "sklearn", "dataset": "diabetis", "target": "target"})
    with pytest.raises(DataValidationError, match="data.target: column 'y' is not in dataset 'iris'"):
        data.load_dataset({"source": "sklearn", "dataset": "iris", "target": "y"})


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
