"""End to end: a user's CSV, registered, trained on through one params file; the run records the version."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import cli, copy_project, runs_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registered_run(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer

    project = copy_project(tmp_path_factory.mktemp("registered") / "project")
    load_breast_cancer(as_frame=True).frame.rename(columns={"target": "benign"}).to_csv(
        project / "tumours.csv", index=False)
    registered = cli(project, "data", "register", "tumours", "tumours.csv")
    spec = yaml.safe_load((project / "params" / "models" / "breast_cancer.yaml").read_text())
    spec["data"].update(source="registered", dataset="tumours:latest", target="benign")
    (project / "params" / "models" / "tumours.yaml").write_text(yaml.safe_dump(spec))
    done = cli(project, "run", "--model", "tumours", "--stages", "explore,train,evaluate")
    return project, registered, done


def test_a_run_on_registered_data_records_its_version_and_hash(registered_run):
    import mlflow

    from modelfactory.core.sources import hash_file

    project, registered, done = registered_run
    assert registered.returncode == 0, registered.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    content = hash_file(project / "tumours.csv")
    (manifest,) = runs_of(project)
    assert manifest["status"] == "succeeded"
    assert manifest["data"] == {"source": "registered", "name": "tumours", "uri": "tumours:1", "version": "1",
                                "hash": content}

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    explore = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'explore'",
                                 output_format="list")
    assert len(explore) == 1
    (used,) = explore[0].inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest) == ("tumours:1", content[:36])
    stored = project / "data" / "registry" / "tumours" / "v1" / "tumours.csv"
    assert json.loads(used.dataset.source) == {"uri": str(stored)}
    tags = {t.key: t.value for t in used.tags}
    assert (tags["uri"], tags["version"], tags["content_hash"], tags["source"]) == ("tumours:1", "1", content,
                                                                                    "registered")
    # the pipeline's parent run, which holds the trained model's stage runs, names the same data
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string=f"attributes.run_name = 'tumours-{manifest['run_id']}'")
    (used,) = parent.inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest) == ("tumours:1", content[:36])
    assert {t.key: t.value for t in used.tags}["content_hash"] == content


def test_data_show_lists_the_run_that_used_the_version(registered_run):
    project, _, done = registered_run
    (manifest,) = runs_of(project)
    shown = cli(project, "data", "show", "tumours")
    assert shown.returncode == 0, shown.stderr
    assert f"  used by     {manifest['run_id']} (succeeded)\n" in shown.stdout
