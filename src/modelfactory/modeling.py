"""Estimators from params, fitting and metrics. Shared by the train and evaluate stages."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from modelfactory.errors import DataValidationError, ParamsError

RESERVED_KEYS = ("estimator", "scale_features")


def _rmse(y, pred, proba):
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(pred)) ** 2)))


def _sk(name: str, needs_proba: bool = False) -> Callable:
    def metric(y, pred, proba):
        from sklearn import metrics

        return float(getattr(metrics, name)(y, proba if needs_proba else pred))

    return metric


# Metric name -> (task, function of (y_true, y_pred, y_score), higher_is_better).
METRICS: dict[str, tuple[str, Callable, bool]] = {
    "rmse": ("regression", _rmse, False),
    "mae": ("regression", _sk("mean_absolute_error"), False),
    "r2": ("regression", _sk("r2_score"), True),
    "roc_auc": ("classification", _sk("roc_auc_score", needs_proba=True), True),
    "accuracy": ("classification", _sk("accuracy_score"), True),
    "f1": ("classification", _sk("f1_score"), True),
    "log_loss": ("classification", _sk("log_loss", needs_proba=True), False),
}


def check_metric_names(names: Sequence[str], task: str, key: str = "evaluate.metrics") -> None:
    """Raise ParamsError for a metric that is unknown or does not fit the task."""
    for name in names:
        if name not in METRICS:
            hint = difflib.get_close_matches(name, METRICS, n=1)
            raise ParamsError(f"{key}: unknown metric '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        if METRICS[name][0] != task:
            raise ParamsError(f"{key}: metric '{name}' is for {METRICS[name][0]}, but model.task is {task}")


def build_estimator(spec: Mapping, seed: int | None = None, key: str = "train"):
    """Build a scikit-learn pipeline from an estimator spec in params.

    Args:
        spec: ``{"estimator": "sklearn.linear_model.Ridge", "scale_features": true, **hyperparameters}``.
        seed: passed as ``random_state`` when the estimator takes one and the spec does not set it.
        key: the params key of the spec, for error messages.

    Returns:
        An unfitted ``sklearn.pipeline.Pipeline``.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    cls = _import_class(spec["estimator"], f"{key}.estimator")
    hyper = {k: v for k, v in spec.items() if k not in RESERVED_KEYS}
    allowed = cls().get_params(deep=False)
    for name in hyper:
        if name not in allowed:
            hint = difflib.get_close_matches(name, [*allowed, *RESERVED_KEYS], n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ParamsError(f"{key}.{name}: {cls.__name__} has no hyperparameter '{name}'{tip}")
    if seed is not None and "random_state" in allowed and "random_state" not in hyper:
        hyper["random_state"] = seed
    steps = [("scale", StandardScaler())] if spec["scale_features"] else []
    return Pipeline([*steps, ("model", _check_values(cls(**hyper), key))])


def _check_values(estimator, key: str):
    """Check hyperparameter values against the estimator's own constraints (scikit-learn declares
    them for its estimators), so ``alpha: abc`` is a params error, not a failed train cell."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        getattr(estimator, "_validate_params", lambda: None)()
    except InvalidParameterError as exc:
        found = re.search(r"The '(\w+)' parameter", str(exc))
        where = f"{key}.{found.group(1)}" if found else key
        raise ParamsError(f"{where}: {' '.join(str(exc).split())}") from None
    return estimator


def _import_class(dotted: str, key: str):
    module_name, _, name = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ParamsError(f"{key}: cannot import module '{module_name}' (from '{dotted}')") from None
    cls = getattr(module, name, None)
    if cls is None:
        hint = difflib.get_close_matches(name, [n for n in dir(module) if n[:1].isupper()], n=1)
        tip = f"; did you mean '{module_name}.{hint[0]}'?" if hint else ""
        raise ParamsError(f"{key}: module '{module_name}' has no class '{name}'{tip}")
    if not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise ParamsError(f"{key}: '{dotted}' is not a scikit-learn estimator")
    return cls


def features(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The model's input columns: everything but the target."""
    return frame.drop(columns=[target])


def fit_model(estimator, train: pd.DataFrame, target: str):
    """Fit the estimator on the training rows and return it.

    A target that does not suit the estimator (one class, a constant, a classifier on a regression
    target or the reverse) is refused in one line first; the explore stage's data checks say the
    same, this catches it when train runs on inputs checked under other params.
    """
    from sklearn.base import is_classifier

    from modelfactory.data import target_fit

    task = "classification" if is_classifier(estimator) else "regression"
    observed, expected, fits = target_fit(train[target], task)
    if not fits:
        raise DataValidationError(f"data.target: column '{target}' does not suit a {task} model: observed "
                                  f"{observed}, expected {expected}")
    return estimator.fit(features(train, target), train[target])


def predict_scores(model, frame: pd.DataFrame, target: str, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions, and for classification the positive class's probability."""
    x = features(frame, target)
    pred = model.predict(x)
    proba = model.predict_proba(x)[:, 1] if task == "classification" and hasattr(model, "predict_proba") else None
    return pred, proba


def compute_metrics(model, frame: pd.DataFrame, target: str, task: str, names: Sequence[str]) -> dict[str, float]:
    """The named metrics of a fitted model on the given rows, rounded to 6 decimals."""
    check_metric_names(names, task)
    pred, proba = predict_scores(model, frame, target, task)
    return {name: round(METRICS[name][1](frame[target], pred, proba), 6) for name in names}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the metric means a better model."""
    return METRICS[metric][2]


def check_estimators(params: Mapping) -> None:
    """Build (without fitting) every estimator the params name, to catch a bad class or hyperparameter,
    or a classifier where ``model.task`` is regression (or the reverse)."""
    task = params["model"]["task"]
    for key, spec in (("train", params["train"]), ("evaluate.baseline", params["evaluate"]["baseline"])):
        check_estimator_task(build_estimator(spec, params["seed"], key=key), task, f"{key}.estimator")
    check_metric_names(params["evaluate"]["metrics"], task)


def check_estimator_task(estimator, task: str, key: str = "train.estimator") -> None:
    """Raise ParamsError when the estimator is not a classifier (regressor) for a classification
    (regression) task."""
    from sklearn.base import is_classifier, is_regressor

    fits = is_classifier(estimator) if task == "classification" else is_regressor(estimator)
    if not fits:
        kind = ("a classifier" if is_classifier(estimator) else "a regressor" if is_regressor(estimator)
                else "neither a classifier nor a regressor")
        name = type(estimator[-1] if hasattr(estimator, "steps") else estimator).__name__
        want = "a classifier" if task == "classification" else "a regressor"
        raise ParamsError(f"{key}: {name} is {kind}, but model.task is {task}, which needs {want}")
