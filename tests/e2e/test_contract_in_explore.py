"""End to end: rows that break the data contract fail the explore stage, and its saved notebook shows the table."""

from __future__ import annotations

import nbformat
import pytest
import yaml

from conftest import cli, copy_project, runs_of

pytestmark = pytest.mark.e2e


def test_rows_breaking_the_contract_fail_explore_with_the_failure_table(tmp_path):
    from sklearn.datasets import load_diabetes

    project = copy_project(tmp_path / "project")
    frame = load_diabetes(as_frame=True, scaled=False).frame.astype({"bmi": object})
    frame.loc[5, "bmi"] = "heavy"  # a word in a column of numbers: the CSV column reads as text
    frame.loc[[7, 9], "age"] = [130, 140]
    frame.to_csv(project / "patients.csv", index=False)
    spec = yaml.safe_load((project / "params" / "models" / "diabetes.yaml").read_text())
    spec["data"].update(source="file", dataset="patients.csv",
                        contract={"columns": {"age": {"dtype": "integer", "min": 0, "max": 120},
                                              "bmi": {"dtype": "number", "min": 10, "max": 70}}})
    (project / "params" / "models" / "patients.yaml").write_text(yaml.safe_dump(spec))

    done = cli(project, "run", "--model", "patients", "--stages", "explore")
    assert done.returncode == 1, done.stdout + done.stderr
    run = runs_of(project)[-1]
    summary = ("DataValidationError: patients.csv: the data breaks its contract in 2 check(s): column 'age': "
               "2 value(s) fail range >= 0 and <= 120, e.g. row 7 130.0; column 'bmi': 1 value(s) fail dtype number, "
               "e.g. row 5 'heavy' (the failure table in the explore notebook lists them)")
    assert run["error"] == f"stage explore: {summary}"
    assert f"  error:    {summary}" in done.stdout.splitlines()
    saved = nbformat.read(project / "runs" / run["run_id"] / "explore.ipynb", as_version=4)
    failed = next(c for c in saved.cells if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert "contract.require_valid(failures" in failed.source
    table = next(c for c in saved.cells if "contract.check_raw_data" in c.source)
    shown = next(o for o in table.outputs if o.get("output_type") == "execute_result")["data"]["text/plain"]
    lines = [line.split() for line in shown.splitlines()[1:]]
    assert lines == [["0", "age", "range", ">=", "0", "and", "<=", "120", "2", "7,", "9", "130.0,", "140.0"],
                     ["1", "bmi", "dtype", "number", "1", "5", "'heavy'"]]
    assert not (project / "runs" / run["run_id"] / "explore" / "contract.json").exists()
