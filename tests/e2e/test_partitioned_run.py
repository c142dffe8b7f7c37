"""End to end: a partitioned model (data.partition_by) run headless, one run per partition.

One `modelfactory run --model sales --stages explore,train` on the demo's generator restricted to
three store x product pairs, one of them too small: two runs, one skip, each run on its own rows.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import cli, copy_project, runs_of

pytestmark = pytest.mark.e2e
KEPT = {(1, "A"), (1, "B"), (4, "E")}   # (4, "E") was listed late: fewer rows than min_rows


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    from modelfactory.core.demo_data import generate_sales

    project = copy_project(tmp_path_factory.mktemp("partitions") / "project")
    sales = generate_sales()
    sales = sales[[pair in KEPT for pair in zip(sales["store"], sales["product"])]]
    sales.to_parquet(project / "sales.parquet", index=False)
    registered = cli(project, "data", "register", "sales", "sales.parquet")
    assert registered.returncode == 0, registered.stderr
    done = cli(project, "run", "--model", "sales", "--stages", "explore,train")
    return project, done, sales


def test_each_partition_is_its_own_run_on_its_own_rows_and_the_small_one_is_skipped(partitioned):
    project, done, sales = partitioned
    assert done.returncode == 0, done.stdout + done.stderr
    manifests = runs_of(project)
    assert sorted(m["model"] for m in manifests) == ["sales--store-1--product-a", "sales--store-1--product-b"]
    skipped = ["skipped 1 partition(s), not trained:",
               "  sales/store=4,product=E: 60 rows, fewer than data.checks.min_rows (100)"]
    lines = done.stdout.splitlines()
    assert lines[:2] == skipped, "said before anything runs"
    assert lines[-2:] == skipped, "and again last, in the run's summary"
    for m in manifests:
        assert m["status"] == "succeeded" and m["stages"]["train"]["status"] == "succeeded"
        key = {"store": 1, "product": m["model"][-1].upper()}
        assert m["data"]["partition"] == key and m["data"]["uri"] == "sales:1"
        rows = pd.read_parquet(project / "runs" / m["run_id"] / "explore" / "dataset.parquet")
        assert "store" not in rows and "product" not in rows, "the key columns are constant: dropped"
        mine = sales[(sales["store"] == key["store"]) & (sales["product"] == key["product"])]
        assert rows["units"].tolist() == mine["units"].tolist(), "exactly this partition's rows"


def test_runs_lists_a_partitioned_models_runs_by_either_name(partitioned):
    project, _, _ = partitioned
    every = cli(project, "runs", "--model", "sales")
    assert every.returncode == 0
    assert sorted(line.split()[1] for line in every.stdout.splitlines()[1:]) == [
        "sales--store-1--product-a", "sales--store-1--product-b"]
    one = cli(project, "runs", "--model", "sales/store=1,product=B")
    assert one.returncode == 0
    assert [line.split()[1] for line in one.stdout.splitlines()[1:]] == ["sales--store-1--product-b"]
    # a skipped partition asked for by name is a user error, in one line
    small = cli(project, "run", "--model", "sales/store=4,product=E", "--stages", "explore")
    assert small.returncode == 2 and small.stderr == (
        "error: --model sales/store=4,product=E: partition sales/store=4,product=E is skipped: 60 rows, fewer "
        "than data.checks.min_rows (100)\n")
