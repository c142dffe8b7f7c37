"""One model per partition: the pure expansion, the names and their round trip, the partition's rows,
and the Azure ML parallel job that trains every partition (built offline, loaded back with azure-ai-ml)."""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_project

from modelfactory.errors import DataValidationError, ParamsError
from modelfactory.ops import partitions


def _params(partition_by=("store", "product"), min_rows=100) -> dict:
    return {"model": {"name": "sales", "task": "regression"},
            "env": {"name": "dev"},
            "data": {"partition_by": list(partition_by), "partition": None, "target": "units",
                     "checks": {"min_rows": min_rows}}}


COUNTS = [({"store": 2, "product": "A"}, 730), ({"store": 1, "product": "B"}, 99),
          ({"store": 1, "product": "A"}, 100), ({"store": None, "product": "A"}, 400)]


def test_expand_gives_one_params_per_partition_and_skips_the_small_and_the_keyless():
    base = _params()
    before = copy.deepcopy(base)
    expansion = partitions.expand("sales", base, COUNTS)
    assert [(p["model"]["name"], p["data"]["partition"]) for p in expansion.params] == [
        ("sales--store-1--product-a", {"store": 1, "product": "A"}),   # exactly min_rows: trained
        ("sales--store-2--product-a", {"store": 2, "product": "A"})]
    assert expansion.skipped == [
        partitions.Skipped("sales/store=1,product=B", 99, "99 rows, fewer than data.checks.min_rows (100)"),
        partitions.Skipped("sales/store=None,product=A", 400, "a key column is empty in these rows")]
    assert base == before, "the model's own params are left as they were"
    # each partition's params are its own object: changing one changes no other
    expansion.params[0]["data"]["checks"]["min_rows"] = 1
    assert expansion.params[1]["data"]["checks"]["min_rows"] == 100
    assert partitions.skipped_lines(expansion.skipped) == [
        "skipped 2 partition(s), not trained:",
        "  sales/store=1,product=B: 99 rows, fewer than data.checks.min_rows (100)",
        "  sales/store=None,product=A: a key column is empty in these rows"]
    assert partitions.skipped_lines([]) == []


def test_two_keys_that_would_share_a_model_name_are_refused():
    with pytest.raises(ParamsError, match=r"partitions sales/product=B and sales/product=b would share the model "
                                          r"name sales--product-b"):
        partitions.expand("sales", _params(["product"]), [({"product": "B"}, 200), ({"product": "b"}, 200)])


@pytest.mark.parametrize("key,display,name", [
    ({"store": 3, "product": "B"}, "sales/store=3,product=B", "sales--store-3--product-b"),
    ({"region": "New York", "sku_id": "X/7"}, "sales/region=New York,sku_id=X/7", "sales--region-new-york--sku_id-x-7"),
])
def test_names_of_a_partition_and_their_round_trip(key, display, name):
    from modelfactory.schema import NAME_PATTERN

    assert partitions.display_name("sales", key) == display
    assert partitions.partition_name("sales", key) == name
    assert re.fullmatch(NAME_PATTERN, name), "a valid model.name, MLflow and Azure ML model name"
    model, parsed = partitions.parse_name(f"sales/{','.join(f'{c}={v}' for c, v in key.items())}")
    assert model == "sales" and parsed == {c: str(v) for c, v in key.items()}
    assert partitions.partition_name(model, parsed) == name, "display name -> model name without the data"
    assert partitions.parse_name(name) == ("sales", None)
    assert partitions.belongs_to(name, "sales") and partitions.belongs_to(name, name)
    assert not partitions.belongs_to(name, "sale") and not partitions.belongs_to("salesforce", "sales")


def test_select_finds_a_partition_by_either_name_and_says_why_a_skipped_one_is_not_there():
    expansion = partitions.expand("sales", _params(), COUNTS)
    for asked in ("sales/store=2,product=A", "sales--store-2--product-a"):
        [chosen] = partitions.select(expansion, "sales", asked).params
        assert chosen["data"]["partition"] == {"store": 2, "product": "A"}
    with pytest.raises(ParamsError, match=r"^--model sales/store=1,product=B: partition sales/store=1,product=B is "
                                          r"skipped: 99 rows, fewer than data.checks.min_rows \(100\)$"):
        partitions.select(expansion, "sales", "sales/store=1,product=B")
    with pytest.raises(ParamsError, match=r"sales has no such partition \(it has 2, e.g. sales/store=1,product=A"):
        partitions.select(expansion, "sales", "sales/store=9,product=A")
    with pytest.raises(ParamsError, match="expected MODEL/COLUMN=VALUE"):
        partitions.parse_name("sales/store3")


def test_long_endpoint_names_are_shortened_to_what_azure_ai_ml_accepts():
    from azure.ai.ml.entities._endpoint._endpoint_helpers import validate_endpoint_or_deployment_name

    from modelfactory.ops.azureml.deployment import endpoint_name

    assert endpoint_name("{model}-{env}", "sales--store-1", "dev", partition=True) == "sales--store-1-dev", \
        "a name that fits is left alone"
    names = {endpoint_name("{model}-{env}-batch", f"sales--store-{s}--product-b", "prod", True) for s in (1, 2)}
    assert len(names) == 2, "two partitions keep two endpoints"
    for name in names:
        assert len(name) == 32 and name.startswith("sales--store-")
        validate_endpoint_or_deployment_name(name)  # azure-ai-ml's own check: raises on a bad name
    assert endpoint_name("{model}-{env}-batch", "sales--store-1--product-b", "prod", True) in names, "stable"
    # a model's own template that is too long is still the user's mistake to hear about, not shortened
    assert len(endpoint_name("{model}-{env}-endpoint-for-the-whole-company", "diabetes", "dev")) > 32


def test_partition_by_the_target_is_refused_in_one_line(proj):
    from modelfactory.params import resolve

    with pytest.raises(ParamsError, match=r"^--set: data.partition_by: 'target' is the target \(data.target\); a "
                                          "partition's key cannot be what the model predicts$"):
        resolve("diabetes", "dev", ["data.partition_by=[sex, target]"])
    with pytest.raises(ParamsError, match=r"^--set: data.partition_by: 'sex' is also in data.checks.required_columns"):
        resolve("diabetes", "dev", ["data.partition_by=[sex]"])


@pytest.fixture
def sales_table(tmp_path):
    frame = pd.DataFrame({"store": [1, 1, 2, 2, 2], "product": ["A", "B", "A", "A", None],
                          "price": [1.0, 2.0, 3.0, 4.0, 5.0], "units": [10.0, 20.0, 30.0, 40.0, 50.0]})
    frame.to_parquet(tmp_path / "sales.parquet", index=False)
    frame.to_csv(tmp_path / "sales.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_partition_counts_and_one_partitions_rows_without_its_key_columns(proj, sales_table, suffix):
    from modelfactory.core import data, sources

    params = {"source": "file", "dataset": str(sales_table / f"sales.{suffix}"), "target": "units",
              "partition_by": ["store", "product"]}
    counts = sorted(sources.partition_counts(params), key=str)
    assert counts == sorted([({"store": 1, "product": "A"}, 1), ({"store": 1, "product": "B"}, 1),
                             ({"store": 2, "product": "A"}, 2), ({"store": 2, "product": None}, 1)], key=str)
    frame = data.load_dataset({**params, "partition": {"store": 2, "product": "A"}})
    assert frame.to_dict("list") == {"price": [3.0, 4.0], "units": [30.0, 40.0]}
    assert frame.attrs["source"]["partition"] == {"store": 2, "product": "A"}
    with pytest.raises(DataValidationError, match=r"partition store=7, product=A: no rows \(data.partition\)$"):
        data.load_dataset({**params, "partition": {"store": 7, "product": "A"}})
    with pytest.raises(DataValidationError, match=r"column 'shop' \(data.partition_by\) is not in the data"):
        sources.partition_counts({**params, "partition_by": ["shop"]})


@pytest.fixture(scope="module")
def sales_project(tmp_path_factory):
    """A whole project copy (as an Azure ML snapshot needs) with the demo's sales registered."""
    import os

    from modelfactory.core.demo_data import write_sales
    from modelfactory.ops import data_registry

    project = copy_project(tmp_path_factory.mktemp("partitions") / "project", whole=True)
    saved = os.environ.get("MODELFACTORY_PROJECT_DIR")
    os.environ["MODELFACTORY_PROJECT_DIR"] = str(project)
    try:
        data_registry.register_file("sales", write_sales(project / "landing" / "sales.parquet"))
    finally:
        os.environ.pop("MODELFACTORY_PROJECT_DIR") if saved is None else os.environ.update(
            MODELFACTORY_PROJECT_DIR=saved)
    return project


@pytest.fixture
def in_sales(sales_project, monkeypatch):
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(sales_project))
    for var in ("MODELFACTORY_RUNS_DIR", "MLFLOW_TRACKING_URI", "MODELFACTORY_ENV"):
        monkeypatch.delenv(var, raising=False)
    return sales_project


def test_the_demo_has_twenty_partitions_or_more_and_two_are_skipped(in_sales):
    from modelfactory.core.demo_data import generate_sales

    expansion = partitions.plan("sales", "dev")
    assert len(expansion.params) >= 20
    assert [s.display for s in expansion.skipped] == ["sales/store=4,product=E", "sales/store=4,product=F"]
    assert generate_sales().equals(generate_sales()), "the generator is deterministic"
    [one] = partitions.plan("sales/store=3,product=B", "dev").params
    assert one["model"]["name"] == "sales--store-3--product-b" and one["data"]["partition"] == {"store": 3,
                                                                                              "product": "B"}
    with pytest.raises(ParamsError, match="params/models/diabetes.yaml has no data.partition_by"):
        partitions.plan("diabetes/sex=1", "dev")


def test_lifecycle_commands_take_a_partitions_name(in_sales, capsys):
    from modelfactory.ops import cli

    assert cli.main(["champion", "--model", "sales/store=3,product=B"]) == 0
    assert capsys.readouterr().out.startswith("sales--store-3--product-b-dev: champion none")
    assert cli.main(["params", "--model", "sales--store-3--product-b"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["name"] == "sales--store-3--product-b" and shown["data"]["partition_by"] == ["store",
                                                                                                    "product"]


def test_submit_dry_run_builds_one_parallel_job_that_azure_ai_ml_loads_and_validates(in_sales):
    from azure.ai.ml import load_job
    from azure.ai.ml.entities import PipelineJob
    from azure.ai.ml.entities._builders.parallel import Parallel

    from modelfactory.ops.azureml import build
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.params import resolve

    params = resolve("sales", "stage", ["azure.parallel.instance_count=3",
                                        "azure.parallel.retry_settings.max_retries=4"])
    submission = build.prepare(load_pipeline("training"), params, "dry-sales")  # raises on any problem
    folder = submission.folder
    assert sorted(p.name for p in submission.files) == ["environment.yaml", "pipeline.yaml", "schedule.yaml"]
    assert build.validate_folder(folder) == []
    job = load_job(folder / "pipeline.yaml")
    assert isinstance(job, PipelineJob) and job._validate().passed
    [(name, node)] = job.jobs.items()
    assert name == "partitions" and isinstance(node, Parallel)
    assert node.partition_keys == ["store", "product"]
    assert node.resources.instance_count == 3
    assert (node.retry_settings.max_retries, node.retry_settings.timeout) == (4, 1800)
    assert (node.mini_batch_error_threshold, node.max_concurrency_per_instance) == (5, 4)
    assert node.task["entry_script"] == "src/modelfactory/ops/azureml/parallel_entry.py"
    assert (folder / "snapshot" / node.task["entry_script"]).is_file()
    assert "--runs-dir ${{outputs.runs}}" in node.task["program_arguments"]
    # the data is an MLTable naming the registered file (a link: no copy), bound to the parallel step
    written = yaml.safe_load((folder / "pipeline.yaml").read_text())
    assert written["inputs"]["data"] == {"type": "mltable", "path": str(folder / "data")}
    assert written["jobs"]["partitions"]["inputs"]["data"] == {"path": "${{parent.inputs.data}}"}
    mltable = yaml.safe_load((folder / "data" / "MLTable").read_text())
    assert mltable == {"paths": [{"file": "./sales.parquet"}], "transformations": ["read_parquet"]}
    assert (folder / "data" / "sales.parquet").is_symlink()
    snapshot = yaml.safe_load((folder / "snapshot" / "params.yaml").read_text())
    assert snapshot["data"]["dataset"] == "sales:1" and snapshot["model"]["name"] == "sales"
    assert not (folder / "snapshot" / "data").exists(), "the data travels as the job input, not in the code"


def test_submit_sends_the_parallel_job_through_the_client(in_sales):
    from unittest.mock import create_autospec

    from azure.ai.ml.operations import JobOperations

    from modelfactory.ops.azureml import build, submit
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.params import resolve

    submission = build.prepare(load_pipeline("training"), resolve("sales", "stage"), "send-sales")
    jobs = create_autospec(JobOperations, instance=True)
    jobs.create_or_update.return_value = SimpleNamespace(name="pj-1", display_name="d", studio_url=None)
    said = []
    submit.submit(SimpleNamespace(jobs=jobs), submission.job, say=said.append)
    sent = jobs.create_or_update.call_args
    assert sent.args[0] is submission.job and sent.kwargs == {"experiment_name": "modelfactory-stage"}
    assert list(sent.args[0].jobs) == ["partitions"] and said == ["submitted pj-1: d"]


def test_the_entry_script_picks_the_partitions_params_and_skips_a_small_one(in_sales, tmp_path, monkeypatch):
    import importlib

    from modelfactory.ops.azureml.parallel import partition_params
    from modelfactory.params import resolve

    params = resolve("sales", "dev")
    chosen, display = partition_params(params, {"product": "B", "store": 3}, 730, tmp_path / "rows.parquet")
    assert display == "sales/store=3,product=B"
    assert chosen["model"]["name"] == "sales--store-3--product-b"
    assert chosen["data"] | {} == {**params["data"], "source": "file", "dataset": str(tmp_path / "rows.parquet"),
                                   "partition": {"store": 3, "product": "B"}}
    assert partition_params(params, {"store": 4, "product": "F"}, 45, tmp_path / "x.parquet") == (
        None, "sales/store=4,product=F: skipped, 45 rows, fewer than data.checks.min_rows (100)")
    # the contract Azure ML calls: init() once, run(rows, context) per partition; a small one trains nothing
    entry = importlib.import_module("modelfactory.ops.azureml.parallel_entry")
    monkeypatch.setattr(entry, "CODE", in_sales)
    params_mod = importlib.import_module("modelfactory.params")
    params_mod.dump(params, in_sales / "params-entry.yaml")
    monkeypatch.setattr("sys.argv", ["driver", "--params", "params-entry.yaml", "--runs-dir", str(tmp_path / "out")])
    entry.init()
    rows = pd.DataFrame({"store": [4] * 45, "product": ["F"] * 45, "units": [1.0] * 45})
    said = entry.run(rows, SimpleNamespace(partition_key_value={"store": 4, "product": "F"}))
    assert said == ["sales/store=4,product=F: skipped, 45 rows, fewer than data.checks.min_rows (100)"]
    assert not (tmp_path / "out").exists(), "nothing ran"


def test_base_yaml_documents_the_new_keys():
    text = (ROOT / "params" / "base.yaml").read_text()
    for key in ("partition_by:", "partition:", "parallel:", "max_concurrency_per_instance:",
                "mini_batch_error_threshold:", "retry_settings:"):
        line = next(l for l in text.splitlines() if l.strip().startswith(key))
        assert "#" in line, f"{key} has no comment in params/base.yaml"


def test_the_runner_plans_one_run_per_partition_and_lists_the_skipped(in_sales):
    from modelfactory.errors import PipelineError
    from modelfactory.ops.pipeline import load_pipeline
    from modelfactory.ops.runner import RunRequest, check_requests

    said = []
    checked = check_requests([RunRequest("sales", "dev")], load_pipeline("training"), said.append)
    assert len(checked) == 22 and [s.display for s in checked.skipped] == ["sales/store=4,product=E",
                                                                          "sales/store=4,product=F"]
    assert said[0] == "skipped 2 partition(s), not trained:" and len(said) == 3
    _, resolved, _, _, record, _ = checked[0]
    assert record["partition"] == resolved["data"]["partition"] == {"store": 1, "product": "A"}
    said.clear()
    with pytest.raises(PipelineError, match=r"^nothing to run: every partition was skipped \(see above\)$"):
        check_requests([RunRequest("sales", "dev", ["data.checks.min_rows=1000"])], load_pipeline("training"),
                       said.append)
    assert said[0] == "skipped 24 partition(s), not trained:"
