"""Estimators from params, fitting and metrics. Shared by the train and evaluate stages."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from modelfactory.core.train_keys import RESERVED_KEYS, hyperparameters
from modelfactory.errors import DataValidationError, ParamsError

# What the preprocessing step encodes each kind of column with; a column's kind comes from its dtype
# unless ``train.preprocess.columns`` names it. Booleans cannot be missing (a bool column with a
# missing value is read as object), so they are only encoded.
KIND_DTYPES = {"numeric": ["number"], "categorical": ["object", "string", "category"], "boolean": ["bool"]}
TEXT_MISSING = "missing_value"  # scikit-learn's own fill value for text; categorical_impute: constant keeps it


def _rmse(y, pred, proba):
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(pred)) ** 2)))


def _sk(name: str, needs_proba: bool = False, **options) -> Callable:
    def metric(y, pred, proba):
        from sklearn import metrics

        return float(getattr(metrics, name)(y, proba if needs_proba else pred, **options))

    return metric


def _positive_class(name: str) -> Callable:
    """A binary metric of the positive (second) class's probability."""
    def metric(y, pred, proba):
        from sklearn import metrics

        return float(getattr(metrics, name)(y, proba.iloc[:, 1]))

    return metric


def _roc_auc_ovr(y, pred, proba):
    from sklearn import metrics

    if proba.shape[1] == 2:  # scikit-learn takes one column for two classes; OvR AUC is then the AUC
        return float(metrics.roc_auc_score(y, proba.iloc[:, 1]))
    return float(metrics.roc_auc_score(y, proba.to_numpy(), multi_class="ovr", labels=list(proba.columns)))


def _log_loss(y, pred, proba):
    from sklearn import metrics

    return float(metrics.log_loss(y, proba.to_numpy(), labels=list(proba.columns)))


# Metric name -> (task, function of (y_true, y_pred, y_score), higher_is_better). For classification
# y_score is the predicted probabilities, a DataFrame with one column per class (the model's classes_).
METRICS: dict[str, tuple[str, Callable, bool]] = {
    "rmse": ("regression", _rmse, False),
    "mae": ("regression", _sk("mean_absolute_error"), False),
    "r2": ("regression", _sk("r2_score"), True),
    "roc_auc": ("classification", _positive_class("roc_auc_score"), True),
    "roc_auc_ovr": ("classification", _roc_auc_ovr, True),
    "accuracy": ("classification", _sk("accuracy_score"), True),
    "f1": ("classification", _sk("f1_score"), True),
    "f1_macro": ("classification", _sk("f1_score", average="macro"), True),
    "log_loss": ("classification", _log_loss, False),
}
# Metrics of a positive class: defined for two classes only. Each names its multi-class counterpart.
BINARY_ONLY = {"roc_auc": "roc_auc_ovr", "f1": "f1_macro"}


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
        spec: ``{"estimator": "sklearn.linear_model.Ridge", "scale_features": true, "preprocess": {...},
            **hyperparameters}``. With ``preprocess`` (``train.preprocess``), the pipeline starts with a
            ColumnTransformer that imputes and encodes each column by its kind (see
            ``build_preprocessor``); without it, only the optional scaler.
        seed: passed as ``random_state`` when the estimator takes one and the spec does not set it.
        key: the params key of the spec, for error messages.

    Returns:
        An unfitted ``sklearn.pipeline.Pipeline``.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    cls = _import_class(spec["estimator"], f"{key}.estimator")
    hyper = hyperparameters(spec)
    allowed = cls().get_params(deep=False)
    for name in hyper:
        if name not in allowed:
            hint = difflib.get_close_matches(name, [*allowed, *RESERVED_KEYS], n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ParamsError(f"{key}.{name}: {cls.__name__} has no hyperparameter '{name}'{tip}")
    if seed is not None and "random_state" in allowed and "random_state" not in hyper:
        hyper["random_state"] = seed
    if spec.get("preprocess") is not None:
        steps = [("preprocess", build_preprocessor(spec["preprocess"], spec["scale_features"]))]
    else:
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


def build_preprocessor(spec: Mapping, scale: bool):
    """The pipeline's first step: impute and encode each column by its kind.

    Args:
        spec: ``train.preprocess``: ``numeric_impute`` (a SimpleImputer strategy for numbers),
            ``categorical_impute`` (for text and categories), ``unknown_categories`` (what
            OneHotEncoder does with a category not seen in training: ``ignore`` encodes it as all
            zeros, ``infrequent_if_exist`` as the infrequent bucket, ``refuse`` makes predicting on it
            an error, which the endpoint answers with a 400), ``min_frequency`` (rarer
            categories share that bucket) and ``columns`` (``{name: numeric|categorical|boolean|drop}``,
            overriding the kind a column's dtype gives it).
        scale: put a StandardScaler after the numeric imputer (``scale_features``).

    Returns:
        An unfitted ColumnTransformer. Columns are chosen by dtype when it is fitted (``fit_model``
        then writes the chosen names into it, so the saved model holds plain lists); columns of any
        other dtype (dates) are dropped.
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def encode():
        # refuse: scikit-learn's "error"; the endpoint answers 400 naming the column and the value
        unknown = "error" if spec["unknown_categories"] == "refuse" else spec["unknown_categories"]
        return ("encode", OneHotEncoder(handle_unknown=unknown, min_frequency=spec["min_frequency"],
                                        sparse_output=False))

    encoders = {
        "numeric": lambda: Pipeline([("impute", SimpleImputer(strategy=spec["numeric_impute"])),
                                     *([("scale", StandardScaler())] if scale else [])]),
        "categorical": lambda: Pipeline([
            # A missing text value is NaN (pandas' CSV reader) or None (Parquet, a JSON null), and one
            # SimpleImputer sees only one of them: mark both with scikit-learn's own fill value first.
            ("mark_nan", SimpleImputer(strategy="constant", fill_value=TEXT_MISSING)),
            ("mark_none", SimpleImputer(missing_values=None, strategy="constant", fill_value=TEXT_MISSING)),
            *([("impute", SimpleImputer(missing_values=TEXT_MISSING, strategy=spec["categorical_impute"]))]
              if spec["categorical_impute"] != "constant" else []),
            encode()]),
        "boolean": lambda: OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=False),
    }
    # A column named categorical is usually a number that codes a category (a zip code): its missing
    # values are NaN, imputed with the most frequent code; text columns are categorical by dtype already.
    named_encoders = {**encoders, "categorical": lambda: Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")), encode()])}
    named = spec["columns"]
    # A column named in preprocess.columns is taken out of its dtype's selection (a negative lookahead).
    others = "^(?!(?:" + "|".join(re.escape(str(c)) for c in named) + ")$)" if named else None
    branches = [(kind, make(), make_column_selector(pattern=others, dtype_include=KIND_DTYPES[kind]))
                for kind, make in encoders.items()]
    branches += [(f"{kind}_named", make(), [c for c, k in named.items() if k == kind])
                 for kind, make in named_encoders.items() if any(k == kind for k in named.values())]
    return ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=False)


def choose_columns(estimator, x: pd.DataFrame):
    """Write the columns each preprocessing branch takes from ``x`` into the pipeline, replacing the
    dtype selectors, and leave out the branches that take none: the fitted model then holds only
    column names and the steps it uses, and skops needs to trust no selector object to load it."""
    steps = dict(getattr(estimator, "steps", []))
    pre = steps.get("preprocess")
    if pre is not None:
        named = [c for _, _, columns in pre.transformers if not callable(columns) for c in columns]
        absent = [str(c) for c in named if c not in x.columns]
        if absent:
            raise DataValidationError(f"train.preprocess.columns: no column {', '.join(absent)} in the training "
                                      f"rows (columns: {', '.join(map(str, x.columns))})")
        chosen = [(name, step, columns(x) if callable(columns) else columns) for name, step, columns in pre.transformers]
        # A branch with no column is left out: the saved model holds only what it uses.
        pre.transformers = [branch for branch in chosen if len(branch[2])]
    return estimator


def imputed_columns(model) -> set[str]:
    """The input columns whose missing values a fitted pipeline fills in (its SimpleImputers')."""
    from sklearn.impute import SimpleImputer

    steps = dict(getattr(model, "steps", []))
    pre = steps.get("preprocess")
    found = set()
    for _, step, columns in getattr(pre, "transformers_", []):
        inner = [s for _, s in getattr(step, "steps", [])] or [step]
        if any(isinstance(s, SimpleImputer) for s in inner) and not isinstance(columns, str):
            found.update(map(str, columns))
    return found


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

    from modelfactory.core.data import target_fit

    task = "classification" if is_classifier(estimator) else "regression"
    observed, expected, fits = target_fit(train[target], task)
    if not fits:
        raise DataValidationError(f"data.target: column '{target}' does not suit a {task} model: observed "
                                  f"{observed}, expected {expected}")
    x = features(train, target)
    return choose_columns(estimator, x).fit(x, train[target])


def predict_scores(model, frame: pd.DataFrame, target: str, task: str) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Predictions, and for classification the probability of each class (one column per class)."""
    x = features(frame, target)
    try:
        pred = model.predict(x)
    except ValueError as exc:
        if "unknown categor" not in str(exc):
            raise
        # train.preprocess.unknown_categories: refuse, and these rows hold a category training never saw
        raise DataValidationError(f"train.preprocess.unknown_categories is refuse, and rows to score hold a category "
                                  f"the model did not see in training: {str(exc).splitlines()[0]}") from None
    if task != "classification" or not hasattr(model, "predict_proba"):
        return pred, None
    return pred, pd.DataFrame(model.predict_proba(x), columns=list(model.classes_), index=frame.index)


def compute_metrics(model, frame: pd.DataFrame, target: str, task: str, names: Sequence[str]) -> dict[str, float]:
    """The named metrics of a fitted model on the given rows, rounded to 6 decimals.

    A binary metric (``roc_auc``, ``f1``) asked of a model with more than two classes is refused in
    one line naming its multi-class counterpart.
    """
    check_metric_names(names, task)
    pred, proba = predict_scores(model, frame, target, task)
    classes = len(proba.columns) if proba is not None else frame[target].nunique()
    for name in names:
        if name in BINARY_ONLY and classes > 2:
            raise DataValidationError(f"evaluate.metrics: '{name}' is a binary metric, but target '{target}' has "
                                      f"{classes} classes; use '{BINARY_ONLY[name]}'")
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


def refused_categories(model) -> dict[str, set]:
    """Column -> the categories a fitted pipeline knows, for each column whose one-hot encoder refuses
    a category it did not see in training (``handle_unknown='error'``, params' ``refuse``). Read from
    the fitted model itself, so it holds exactly what training saw."""
    steps = dict(getattr(model, "steps", []))
    found = {}
    for _, step, names in getattr(steps.get("preprocess"), "transformers_", []):
        encoders = [s for _, s in getattr(step, "steps", [])] or [step]
        for encoder in encoders:
            if getattr(encoder, "handle_unknown", None) == "error" and hasattr(encoder, "categories_"):
                found.update({str(name): set(cats.tolist()) for name, cats in zip(names, encoder.categories_)})
    return found


def describe_estimator(spec: Mapping) -> str:
    """The estimator a spec names, with the hyperparameters it sets: ``Ridge (alpha=1.0)``."""
    hyper = ", ".join(f"{k}={v}" for k, v in hyperparameters(spec).items())
    return f"{str(spec['estimator']).rsplit('.', 1)[-1]} ({hyper or 'defaults'})"


def verdict(spec: Mapping, train: pd.DataFrame, metrics: Mapping[str, float], decimals: int) -> str:
    """The train stage in one line: "Ridge (alpha=1.0) fitted on 353 rows; on them rmse 53.575, r2 0.528"."""
    scores = ", ".join(f"{name} {value:.{decimals}f}" for name, value in metrics.items())
    return f"{describe_estimator(spec)} fitted on {len(train)} rows" + (f"; on them {scores}" if scores else "")
