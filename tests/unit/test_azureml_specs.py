"""Azure ML specs, built offline: every model x env dry run loads and validates with azure-ai-ml's
own loaders, and our checks catch the reference mistakes azure-ai-ml lets through."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT, cli, copy_project

MODELS = ["breast_cancer", "diabetes", "penguins"]
PARTITIONED = ["sales"]  # one parallel job, not a step per stage: tests/unit/test_partitions.py
ENVS = ["dev", "prod", "stage"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from importlib.resources import files

    project = copy_project(tmp_path_factory.mktemp("azure") / "project", whole=True)
    # penguins reads the data registry, as after `make run` (which registers the package's CSV)
    registered = cli(project, "data", "register", "penguins", str(files("palmerpenguins") / "data" / "penguins.csv"))
    assert registered.returncode == 0, registered.stderr
    from modelfactory.core.demo_data import write_sales

    registered = cli(project, "data", "register", "sales", str(write_sales(project / "landing" / "sales.parquet")))
    assert registered.returncode == 0, registered.stderr
    return project


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(project))
    monkeypatch.delenv("MODELFACTORY_RUNS_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return project


def test_the_shipped_models_and_envs_are_the_ones_tested():
    assert sorted(p.stem for p in (ROOT / "params/models").glob("*.yaml")) == sorted(MODELS + PARTITIONED)
    assert sorted(p.stem for p in (ROOT / "params/env").glob("*.yaml")) == ENVS


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("model", MODELS)
def test_dry_run_builds_specs_that_azure_ai_ml_loads_and_validates(in_project, model, env):
    from azure.ai.ml import load_component, load_job
    from azure.ai.ml.entities import CommandComponent, PipelineJob
    from azure.ai.ml.entities._load_functions import load_schedule

    from modelfactory.ops.azureml import build
    from modelfactory.params import params_hash, resolve
    from modelfactory.ops.pipeline import load_pipeline

    params = resolve(model, env)
    pipeline = load_pipeline("training")
    submission = build.prepare(pipeline, params, f"dry-{model}-{env}")  # raises on any problem
    folder = submission.folder
    assert build.validate_folder(folder) == []

    job = load_job(folder / "pipeline.yaml")
    assert isinstance(job, PipelineJob) and job._validate().passed
    assert sorted(job.jobs) == sorted(pipeline.names)  # the order is the bindings below
    assert job.compute in (f"cpu-{env}", f"azureml:cpu-{env}")
    assert job.experiment_name == f"modelfactory-{env}"
    assert job.tags["model"] == model and job.tags["env"] == env
    assert job.tags["git_commit"]
    from modelfactory.ops.azureml.jobs import DATA_INPUT, reader_stage

    # A model whose rows are not bundled with scikit-learn gets them as the reader stage's job input.
    reader = reader_stage(pipeline) if params["data"]["source"] != "sklearn" else None
    for stage in pipeline.stages:
        node = job.jobs[stage.name]
        bound = {name: str(value.path) for name, value in node.inputs.items()}
        wanted = {need: f"${{{{parent.jobs.{need}.outputs.run}}}}" for need in stage.needs}
        if stage.name == reader:
            wanted[DATA_INPUT] = f"${{{{parent.inputs.{DATA_INPUT}}}}}"
        assert bound == wanted
        command = node.component.command
        assert f"--stages {stage.name}" in command and "--params-file params.yaml" in command
        assert "MODELFACTORY_RUNS_DIR=${{outputs.run}}" in command
        component = load_component(folder / "components" / f"{stage.name}.yaml")
        assert isinstance(component, CommandComponent) and component._validate().passed
        assert set(component.inputs) == set(wanted) and set(component.outputs) == {"run"}

    # The params travel inside the snapshot as YAML, typed, with tracking left to the job's workspace.
    shipped = yaml.safe_load((folder / "snapshot" / "params.yaml").read_text())
    assert shipped["tracking"]["uri"] == ""
    expected = copy.deepcopy(params)
    expected["tracking"]["uri"] = ""
    expected["data"]["dataset"] = submission.dataset  # a registered `latest` is pinned for the steps
    if params["data"]["source"] == "registered":
        assert submission.dataset == "penguins:1"
    assert shipped == expected and isinstance(shipped["seed"], int)
    assert job.tags["params_hash"] == params_hash(shipped)  # what the steps' manifests will record

    schedule = load_schedule(folder / "schedule.yaml")
    assert schedule.trigger.expression == params["azure"]["schedule"]["cron"]
    assert sorted(schedule.create_job.jobs) == sorted(pipeline.names)
    automl = load_job(folder / "automl.yaml")
    assert automl.target_column_name == params["data"]["target"]
    assert automl.task_type.lower() == params["model"]["task"]
    assert (folder / "automl-data" / "MLTable").is_file()
    # Bundled rows exist nowhere else, so they are written once; a file's rows are linked, not copied.
    copied = (folder / "automl-data" / "dataset.parquet").is_file()
    assert copied == (params["data"]["source"] == "sklearn")
    assert not str(automl.training_data.path).startswith("azureml:")


def test_snapshot_is_lean_and_holds_what_jobs_need(in_project):
    from modelfactory.ops.azureml import jobs
    from modelfactory.params import resolve

    (in_project / "config.json").write_text('{"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}')
    (in_project / "runs" / "old-run").mkdir(parents=True)
    (in_project / "runs" / "old-run" / "big.parquet").write_text("x")
    (in_project / "data").mkdir(exist_ok=True)
    (in_project / "data" / "scored.parquet").write_text("x")
    # what a user leaves lying in the project root, none of it tracked or needed by a job
    (in_project / "patients.csv").write_text("age,bmi\n1,2\n")
    (in_project / "scored.parquet").write_bytes(b"PAR1")
    (in_project / "scratch").mkdir()
    (in_project / "scratch" / "try.ipynb").write_text("{}")
    (in_project / "src" / "modelfactory" / "__pycache__").mkdir(exist_ok=True)
    (in_project / "src" / "modelfactory" / "__pycache__" / "paths.cpython-311.pyc").write_bytes(b"x")
    target = in_project.parent / "snapshot"
    notes = []
    files = jobs.stage_snapshot(in_project, target, resolve("diabetes", "dev"), notes=notes)
    assert "params.yaml" in files and "environment.yml" in files and "src/modelfactory/ops/runner.py" in files
    assert "notebooks/train.ipynb" in files and "pipelines/training.yaml" in files and "params/base.yaml" in files
    assert "pyproject.toml" in files
    assert not [f for f in files if f.startswith(("runs/", "data/", "tests/", "scratch/")) or f == "config.json"]
    assert not [f for f in files if "__pycache__" in f]
    assert not {"patients.csv", "scored.parquet"} & set(files)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == files
    # what was left out, and why, is written beside the snapshot and named in one note
    left_out = {line.split()[0]: line.split(None, 1)[1]
                for line in (in_project.parent / "snapshot-left-out.txt").read_text().splitlines()
                if not line.startswith("#")}
    for name in ("patients.csv", "scored.parquet", "scratch/", "runs/", "data/", "config.json"):
        assert left_out[name] == "not a part the jobs run from"
    assert left_out["src/modelfactory/__pycache__/"] == "matched .amlignore"
    [note] = notes
    assert note.startswith(f"code snapshot: {len(files)} files; left out ")
    assert "patients.csv" in note and note.endswith("snapshot-left-out.txt")


def test_submit_dry_run_from_the_command_line(in_project):
    done = cli(in_project, "submit", "--env", "stage", "--dry-run")
    assert done.returncode == 0, done.stderr
    for model in MODELS + PARTITIONED:
        assert f"{model} (stage): specs valid in runs/" in done.stdout
    assert done.stdout.strip().endswith("dry run: nothing was sent to Azure ML")
    assert "experimental class" not in done.stdout + done.stderr


def _pipeline_dict(in_project):
    from modelfactory.ops.azureml import build
    from modelfactory.params import resolve
    from modelfactory.ops.pipeline import load_pipeline

    folder = build.prepare(load_pipeline("training"), resolve("diabetes", "dev"), "dry-checks").folder
    return folder, yaml.safe_load((folder / "pipeline.yaml").read_text())


BREAKAGES = {
    "undefined reference": (lambda p: p["jobs"]["train"]["component"].__setitem__(
        "command", p["jobs"]["train"]["component"]["command"] + " --extra ${{inputs.features}}"),
        "step train: its command uses ${{inputs.features}}, which the component does not declare"),
    "unconnected input": (lambda p: p["jobs"]["deploy"]["inputs"].pop("evaluate"),
                          "step deploy: required input 'evaluate' is not connected"),
    "unnamed step": (lambda p: p["jobs"]["train"]["inputs"]["explore"].__setitem__(
        "path", "${{parent.jobs.None.outputs.run}}"),
        "step train: input 'explore' is bound to step 'None', which the pipeline does not have"),
    "folder into file": (lambda p: p["jobs"]["evaluate"]["component"]["inputs"]["train"].__setitem__("type", "uri_file"),
                         "step evaluate: input 'train' takes uri_file but train.outputs.run is uri_folder"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_our_checks_catch_what_azure_ai_ml_lets_through(in_project, breakage):
    from azure.ai.ml import load_job

    from modelfactory.ops.azureml import checks

    folder, pipeline = _pipeline_dict(in_project)
    assert checks.check_pipeline(pipeline) == []
    edit, message = BREAKAGES[breakage]
    edit(pipeline)
    assert checks.check_pipeline(pipeline) == [message]
    broken = folder / f"broken-{breakage.replace(' ', '-')}.yaml"
    broken.write_text(yaml.safe_dump(pipeline))
    if breakage in ("undefined reference", "unnamed step"):
        # the gap this check exists for: azure-ai-ml loads and validates these without complaint
        assert load_job(broken)._validate().passed


def test_a_bad_cron_is_refused_before_any_yaml_is_written(in_project):
    from modelfactory.ops.azureml import build
    from modelfactory.errors import AzureSpecError
    from modelfactory.params import resolve
    from modelfactory.ops.pipeline import load_pipeline

    params = resolve("diabetes", "dev", ["azure.schedule.cron=61 3 * * 1"])
    with pytest.raises(AzureSpecError, match=r"'61' is not a minute \(0-59\)"):
        build.prepare(load_pipeline("training"), params, "dry-cron")
