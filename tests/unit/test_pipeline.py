"""Pipeline definitions: the shipped one is valid, malformed ones get one clear line."""

import pytest

from conftest import ROOT, copy_project
from modelfactory.errors import PipelineError
from modelfactory.ops.pipeline import load_pipeline, select_stages


def test_training_pipeline_wires_the_four_notebooks():
    spec = load_pipeline("training", ROOT)
    assert spec.names == ["explore", "train", "evaluate", "deploy"]
    assert spec.stage("evaluate").needs == {"train": ["model/MLmodel", "model.json", "train.parquet", "holdout.parquet"]}
    assert spec.stage("deploy").needs["evaluate"] == ["gate.json"]
    assert spec.stage("evaluate").records == ["gate.json"]
    assert all((ROOT / s.notebook).is_file() for s in spec.stages)


def test_select_stages_keeps_pipeline_order_and_rejects_unknown():
    spec = load_pipeline("training", ROOT)
    assert select_stages(spec, ["evaluate", "train"]) == ["train", "evaluate"]
    assert select_stages(spec, None) == spec.names
    with pytest.raises(PipelineError, match="--stages: unknown stage 'trian'; training has explore, train"):
        select_stages(spec, ["trian"])


@pytest.mark.parametrize("edit,message", [
    (("- name: train\n", "- name: train\n    needs_: {}\n"), "pipelines/training.yaml: stages.1.needs_: Extra inputs are not permitted"),
    (("notebook: notebooks/train.ipynb", "notebook: notebooks/trian.ipynb"),
     "pipelines/training.yaml: stage train: notebook notebooks/trian.ipynb does not exist"),
    (("    needs:\n      explore: [dataset.parquet, contract.json]", "    needs:\n      deploy: [package]"),
     "pipelines/training.yaml: stage train needs 'deploy', which is not an earlier stage (explore)"),
    (("- name: evaluate", "- name: train"), "pipelines/training.yaml: stage 'train' appears twice"),
    (("stages:", "stages: ["), "pipelines/training.yaml:"),
    (("stages:", "x: &a [1, 1]\ny: [*a, *a]\nstages:"), "pipelines/training.yaml:12: YAML aliases (*a) are not allowed"),
])
def test_malformed_pipeline_is_one_line(tmp_path, edit, message):
    root = copy_project(tmp_path / "p")
    path = root / "pipelines" / "training.yaml"
    path.write_text(path.read_text().replace(*edit, 1))
    with pytest.raises(PipelineError) as info:
        load_pipeline("training", root)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_pipeline_file_that_is_not_utf8_is_one_line(tmp_path):
    root = copy_project(tmp_path / "p")
    path = root / "pipelines" / "training.yaml"
    path.write_bytes(path.read_bytes().replace(b"stages:", b"# caf\xe9\nstages:", 1))
    with pytest.raises(PipelineError) as info:
        load_pipeline("training", root)
    assert str(info.value).startswith("pipelines/training.yaml:") and "not UTF-8 text" in str(info.value)


def test_unknown_pipeline_lists_what_exists(tmp_path):
    root = copy_project(tmp_path / "p")
    with pytest.raises(PipelineError, match=r"no pipeline definition pipelines/retrain.yaml \(pipelines/ has monitoring, scoring, training\)"):
        load_pipeline("retrain", root)


def test_a_params_file_runs_its_own_model_only(tmp_path):
    from argparse import Namespace

    from modelfactory.ops.cli import _models
    from modelfactory.errors import ParamsError

    params_file = tmp_path / "params.yaml"
    params_file.write_text("model:\n  name: diabetes\n")
    every = lambda: ["breast_cancer", "diabetes"]  # noqa: E731
    assert _models(Namespace(model=None, params_file=str(params_file)), every) == ["diabetes"]
    assert _models(Namespace(model=["breast_cancer"], params_file=str(params_file)), every) == ["breast_cancer"]
    assert _models(Namespace(model=None, params_file=None), every) == ["breast_cancer", "diabetes"]
    params_file.write_text("- not a mapping\n")
    with pytest.raises(ParamsError, match=r"--params-file .*params.yaml: not a run's params.yaml \(it has no model.name\)"):
        _models(Namespace(model=None, params_file=str(params_file)), every)
