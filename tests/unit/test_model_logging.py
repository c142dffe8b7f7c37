"""Model logging: every common model family is saved in skops' safe format, trusting exactly the types
its own training produced, and loads wherever the project loads a model; a model file holding any
other type is refused."""

from __future__ import annotations

import shutil

import pytest
import yaml

from modelfactory.ops import deploy, tracking
from modelfactory.ops.serving import packaging
from modelfactory.core import modeling
from modelfactory.core.batch import score_file
from modelfactory.errors import ModelfactoryError

TREE = "sklearn.tree._tree.Tree"
HIST = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
# estimator -> (dataset, the types its skops file needs beyond skops' defaults)
FAMILIES = {
    "sklearn.tree.DecisionTreeRegressor": ("diabetes", [TREE]),
    "sklearn.ensemble.RandomForestClassifier": ("breast_cancer", [TREE]),
    "sklearn.ensemble.ExtraTreesRegressor": ("diabetes", [TREE]),
    "sklearn.ensemble.GradientBoostingClassifier": ("breast_cancer", [TREE]),
    "sklearn.ensemble.HistGradientBoostingRegressor": ("diabetes", [HIST]),
    "sklearn.linear_model.Ridge": ("diabetes", []),
}
SMALL = {"n_estimators": 5}  # enough trees to be a forest, few enough to be quick


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Each family fitted and logged through tracking.log_model to a real SQLite store."""
    import mlflow
    from sklearn import datasets

    root = tmp_path_factory.mktemp("logging")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment = mlflow.create_experiment("families", artifact_location=(root / "artifacts").as_uri())
    found = {}
    for estimator, (dataset, _) in FAMILIES.items():
        frame = getattr(datasets, f"load_{dataset}")(as_frame=True).frame
        x, y = frame.drop(columns="target"), frame["target"]
        cls = modeling._import_class(estimator, "train.estimator")
        hyper = {k: v for k, v in SMALL.items() if k in cls().get_params()}
        model = modeling.build_estimator({"estimator": estimator, "scale_features": False, **hyper}, seed=0).fit(x, y)
        with mlflow.start_run(experiment_id=experiment) as run:
            uri = tracking.log_model(model, x.head(5), ["scikit-learn"])
        folder = root / estimator.rsplit(".", 1)[1]
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder))
        found[estimator] = {"uri": uri, "folder": folder, "run": run.info.run_id, "x": x, "model": model}
    yield root, found
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("estimator", FAMILIES)
def test_each_family_is_logged_with_exactly_its_own_types_recorded(logged, estimator):
    import mlflow

    item = logged[1][estimator]
    flavour = yaml.safe_load((item["folder"] / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavour["serialization_format"] == "skops"
    assert flavour["skops_trusted_types"] == FAMILIES[estimator][1]
    tag = mlflow.MlflowClient().get_run(item["run"]).data.tags[tracking.TRUSTED_TYPES_TAG]
    assert tag == (", ".join(FAMILIES[estimator][1]) or "none")


@pytest.mark.parametrize("estimator", FAMILIES)
def test_each_family_loads_as_sklearn_and_pyfunc_from_mlflow_and_from_its_folder(logged, estimator):
    item = logged[1][estimator]
    expected = item["model"].predict(item["x"])
    for location, flavour in [(item["uri"], "sklearn"), (item["folder"], "sklearn"), (item["folder"], "pyfunc")]:
        assert tracking.load_model(location, flavour).predict(item["x"]) == pytest.approx(expected)


def test_a_tree_package_answers_through_score_py(logged, tmp_path):
    item = logged[1]["sklearn.ensemble.HistGradientBoostingRegressor"]
    settings = {"max_rows": 5, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(item["folder"], tmp_path / "package", item["x"], settings, "hgb", "1")
    scorer = deploy.load_scoring_script(tmp_path / "package")
    answers = deploy.score_request(scorer, packaging.build_request(item["x"].head(3)))
    assert answers == pytest.approx(item["model"].predict(item["x"].head(3)))


@pytest.fixture
def swapped(logged, tmp_path):
    """A Ridge model folder (which trusts nothing beyond skops' defaults) whose model file was
    replaced with a decision tree's: a model file from elsewhere, under a genuine MLmodel."""
    import skops.io

    root, found = logged
    folder = shutil.copytree(found["sklearn.linear_model.Ridge"]["folder"], tmp_path / "model")
    skops.io.dump(found["sklearn.tree.DecisionTreeRegressor"]["model"], folder / "model.skops")
    return folder, found["sklearn.linear_model.Ridge"]["x"]


def test_a_model_file_with_an_unrecorded_type_is_refused_everywhere(swapped, tmp_path):
    folder, x = swapped
    for flavour in ("sklearn", "pyfunc"):
        with pytest.raises(ModelfactoryError, match=r"refused to load it: Untrusted types found in the file: "
                                                     r"\['sklearn.tree._tree.Tree'\], which its MLmodel does not"):
            tracking.load_model(folder, flavour)
    x.head(3).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(ModelfactoryError, match="refused to load it: Untrusted types found"):
        score_file(folder, tmp_path / "in.csv", tmp_path / "out.parquet",
                   {"chunk_rows": 10, "on_bad_rows": "skip"}, progress=False)
    assert not (tmp_path / "out.parquet").exists()
    settings = {"max_rows": 5, "base_image": "python:3.11-slim",
                "endpoint": {"threads": 8, "client_timeout_seconds": 30},
                "scored_data": {"enabled": False, "flush_rows": 4, "flush_seconds": 0.2}}
    packaging.package_model(folder, tmp_path / "package", x, settings, "swapped", "1")
    with pytest.raises(RuntimeError, match=r"refused to load the model in .*Untrusted types found in the file: "
                                           r"\['sklearn.tree._tree.Tree'\]"):
        deploy.load_scoring_script(tmp_path / "package")


def test_a_tree_folder_refuses_another_trees_type(logged, tmp_path):
    """Trust is per model: a decision tree's recorded type does not admit HistGradientBoosting's."""
    import skops.io

    found = logged[1]
    folder = shutil.copytree(found["sklearn.tree.DecisionTreeRegressor"]["folder"], tmp_path / "model")
    skops.io.dump(found["sklearn.ensemble.HistGradientBoostingRegressor"]["model"], folder / "model.skops")
    with pytest.raises(ModelfactoryError, match="TreePredictor"):
        tracking.load_model(folder)


def test_logging_a_model_with_an_integer_column_warns_nothing(tmp_path):
    """MLflow hints that an integer column cannot hold a missing value. The project answers that itself
    (the endpoint and batch refuse a gap there in one line), and the hint, printed with a machine path
    into the train notebook (penguins' year), only alarmed the reader."""
    import warnings

    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"year": np.arange(2000, 2020, dtype="int64"), "size": np.linspace(1.0, 3.0, 20)})
    model = LinearRegression().fit(x, x["size"] * 2)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("integers", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            uri = tracking.log_model(model, x.head(5), ["scikit-learn"])
        schema = tracking.load_model(uri, "pyfunc").metadata.get_input_schema()
    finally:
        mlflow.set_tracking_uri(None)
    assert [str(w.message) for w in caught if "integer column" in str(w.message)] == []
    assert [(s.name, s.type.name, s.required) for s in schema.inputs] == [("year", "long", True),
                                                                         ("size", "double", True)]
