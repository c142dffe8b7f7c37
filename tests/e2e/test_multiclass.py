"""End to end: a multi-class model (scikit-learn's wine, three cultivars), onboarded with the params file
of docs/adding-a-model.md, runs explore, train and evaluate headless; the gate passes on the
multi-class metrics, the evaluate stage draws the confusion matrix, and the package answers through
score.py. One `modelfactory run`."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import ROOT, cli, copy_project, package_answers, runs_of

pytestmark = pytest.mark.e2e

MODEL = "wine"


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("multiclass") / "project")
    docs = (ROOT / "docs" / "adding-a-model.md").read_text()
    example = re.search(r"```yaml\n(# params/models/wine\.yaml.*?)```", docs, re.S).group(1)
    (project / "params" / "models" / f"{MODEL}.yaml").write_text(example)
    done = cli(project, "run", "--model", MODEL, "--stages", "explore,train,evaluate")
    manifest = next((m for m in runs_of(project) if m["model"] == MODEL), None)
    assert manifest is not None, done.stdout + done.stderr  # refused before any run folder was made
    return project, done, manifest, project / "runs" / manifest["run_id"]


def test_wine_trains_and_passes_the_gate_on_multi_class_metrics(wine_run):
    _, done, manifest, folder = wine_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert [manifest["stages"][s]["status"] for s in ("explore", "train", "evaluate")] == ["succeeded"] * 3
    metrics = json.loads((folder / "evaluate" / "metrics.json").read_text())
    for name in ("f1_macro", "accuracy", "roc_auc_ovr", "log_loss"):
        assert f"holdout_{name}" in metrics and f"baseline_{name}" in metrics, metrics
    assert metrics["holdout_log_loss"] < metrics["baseline_log_loss"]
    assert metrics["holdout_f1_macro"] > 0.9 > metrics["baseline_f1_macro"]
    verdict = json.loads((folder / "evaluate" / "gate.json").read_text())
    assert verdict["passed"] is True and verdict["version"], verdict
    checked = {(c["check"], c["metric"]) for c in verdict["checks"]}
    assert ("beats baseline", "f1_macro") in checked and ("log_loss <= threshold", "log_loss") in checked


def test_evaluate_draws_the_confusion_matrix(wine_run):
    """The drawing itself (a 3 x 3 matrix, one ROC curve per class) is checked in tests/unit/test_features.py;
    here, that the stage ran it on the three-class model and saved it: two panels side by side."""
    import matplotlib.image

    _, _, _, folder = wine_run
    height, width = matplotlib.image.imread(folder / "evaluate" / "diagnostics.png").shape[:2]
    assert width > 2 * height
    cells = json.loads((folder / "evaluate.ipynb").read_text())["cells"]
    drawn = next(c for c in cells if "plot_diagnostics" in "".join(c["source"]))
    assert not any(o.get("output_type") == "error" for o in drawn.get("outputs", []))


def test_the_wine_package_answers_through_score_py(wine_run, tmp_path):
    _, _, _, folder = wine_run
    answers, expected = package_answers(folder, MODEL, tmp_path / "package")
    assert answers.tolist() == expected.tolist() and set(answers) <= {0, 1, 2}
    flavour = yaml.safe_load((folder / "train" / "model" / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavour["skops_trusted_types"] == ["numpy.dtype"]
