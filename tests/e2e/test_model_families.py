"""End to end: one model of each common tree family trains and passes the gate, and its package answers
through score.py; HistGradientBoosting (the example in docs/adding-a-model.md) is deployed on the real
inference server and batch-scored with `modelfactory score`. A target that does not suit its task is
refused in explore, before training.

Cheap by design: one `modelfactory run` (one kernel) trains and gates every family without starting an
endpoint; only the HistGradientBoosting model runs the deploy stage.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, cli, copy_project, package_answers, runs_of
from modelfactory.ops import tracking

pytestmark = pytest.mark.e2e

TREE = "sklearn.tree._tree.Tree"
HIST = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
# train.preprocess's imputers keep the dtype they were fitted on: every model from params trusts it
DTYPE = "numpy.dtype"
# model -> (the demo model whose data and gate it borrows, its train section, the skops types it needs)
FAMILIES = {
    "fam_tree": ("diabetes", {"estimator": "sklearn.tree.DecisionTreeRegressor", "max_depth": 3,
                              "min_samples_leaf": 10}, [DTYPE, TREE]),
    "fam_forest": ("breast_cancer", {"estimator": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 30},
                   [DTYPE, TREE]),
    "fam_extra": ("diabetes", {"estimator": "sklearn.ensemble.ExtraTreesRegressor", "n_estimators": 30,
                               "min_samples_leaf": 5}, [DTYPE, TREE]),
    "fam_boost": ("breast_cancer", {"estimator": "sklearn.ensemble.GradientBoostingClassifier", "n_estimators": 30},
                  [DTYPE, TREE]),
}
DOCS_MODEL = "breast_cancer_gbm"  # the docs' example: HistGradientBoostingClassifier
MISFIT = "fam_misfit"  # a classifier on diabetes' regression target
TRAINED = [*FAMILIES, DOCS_MODEL]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("families") / "project")
    models = project / "params" / "models"
    for name, (base, train, _) in FAMILIES.items():
        spec = yaml.safe_load((models / f"{base}.yaml").read_text())
        spec["train"] = {"scale_features": False, **train}
        (models / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    docs = (ROOT / "docs" / "adding-a-model.md").read_text()
    example = re.search(r"```yaml\n(# params/models/breast_cancer_gbm\.yaml.*?)```", docs, re.S).group(1)
    (models / f"{DOCS_MODEL}.yaml").write_text(example)
    misfit = yaml.safe_load((models / "breast_cancer.yaml").read_text())
    misfit["data"] = {"dataset": "diabetes"}
    (models / f"{MISFIT}.yaml").write_text(yaml.safe_dump(misfit))
    # The misfit goes last: the runner stops at the first failed run.
    trained = cli(project, "run", "--stages", "explore,train,evaluate",
                  *[f"--model={m}" for m in [*TRAINED, MISFIT]])
    deployed = cli(project, "run", "--model", DOCS_MODEL, "--stages", "deploy")
    return project, trained, deployed


def _run_of(project, model):
    return next(m for m in runs_of(project) if m["model"] == model and "explore" in m["stages"])


@pytest.mark.parametrize("model", TRAINED)
def test_each_family_trains_passes_the_gate_and_records_its_trusted_types(trained, model):
    project, done, _ = trained
    manifest = _run_of(project, model)
    assert [manifest["stages"][s]["status"] for s in ("explore", "train", "evaluate")] == ["succeeded"] * 3, \
        done.stdout + done.stderr
    folder = project / "runs" / manifest["run_id"]
    verdict = yaml.safe_load((folder / "evaluate" / "gate.json").read_text())
    assert verdict["passed"] is True and verdict["version"], verdict
    flavour = yaml.safe_load((folder / "train" / "model" / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavour["serialization_format"] == "skops"
    assert flavour["skops_trusted_types"] == (FAMILIES[model][2] if model in FAMILIES else [DTYPE, HIST])


@pytest.mark.parametrize("model", TRAINED)
def test_each_familys_package_answers_through_score_py(trained, model, tmp_path):
    project, _, _ = trained
    folder = project / "runs" / _run_of(project, model)["run_id"]
    answers, expected = package_answers(folder, model, tmp_path / "package")
    assert answers.tolist() == pytest.approx(expected.tolist())


def test_histgradientboosting_serves_on_the_inference_server_and_batch_scores(trained):
    project, _, deployed = trained
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    manifest = runs_of(project)[-1]
    assert manifest["model"] == DOCS_MODEL and manifest["stages"]["deploy"]["status"] == "succeeded"
    folder = project / "runs" / manifest["run_id"] / "deploy"
    assert yaml.safe_load((folder / "promotion.json").read_text())["promoted"] is True
    assert "endpoint_p50_latency_ms" in yaml.safe_load((folder / "metrics.json").read_text())
    package_model = next((folder / "package" / "model").rglob("MLmodel"))
    assert yaml.safe_load(package_model.read_text())["flavors"]["sklearn"]["skops_trusted_types"] == [DTYPE, HIST]

    rows = pd.read_parquet(project / "runs" / _run_of(project, DOCS_MODEL)["run_id"] / "train" / "holdout.parquet")
    rows = rows.drop(columns="target")
    rows.iloc[4, 0] = np.inf  # one infinite cell is set aside, not the end of the job
    rows.to_csv(project / "new.csv", index=False)
    done = cli(project, "score", "--model", DOCS_MODEL, "--input", "new.csv", "--output", "scored.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"scored {len(rows) - 1} of {len(rows)} rows with {DOCS_MODEL} version ")
    scored = pd.read_csv(project / "scored.csv")
    assert len(scored) == len(rows) - 1 and 4 not in set(scored["row"])
    expected = tracking.load_model(project / "runs" / _run_of(project, DOCS_MODEL)["run_id"] / "train" / "model")
    assert scored["prediction"].tolist() == expected.predict(rows.drop(index=rows.index[4])).tolist()
    assert pd.read_csv(project / "scored.csv.rejected.csv")["problem"].tolist() == ["not a finite number: inf"]


def test_a_missing_score_input_is_one_line_exit_2(trained):
    """(The other input mistakes are in tests/unit/test_batch.py, with their exit codes.)"""
    project, _, _ = trained
    done = cli(project, "score", "--model", DOCS_MODEL, "--input", "absent.csv", "--output", "a.parquet")
    assert (done.returncode, done.stderr) == (2, "error: --input absent.csv: no such file\n")


def test_a_classifier_on_a_regression_target_is_refused_before_training(trained):
    project, done, _ = trained
    assert done.returncode == 1
    manifest = _run_of(project, MISFIT)
    assert manifest["stages"]["explore"]["status"] == "failed"
    assert manifest["stages"]["train"]["status"] != "succeeded"
    assert not (project / "runs" / manifest["run_id"] / "train").exists()
    assert ("target 'target' suits model.task classification: observed 214 distinct values (a regression "
            "target? then model.task: regression), expected 2 or more classes (model.task)") in done.stdout + done.stderr
