"""The stage cache (ops/cache.py): what a stage's key holds, when an earlier run's stage is taken,
and that every params section a notebook reads is declared, so the key cannot go silently stale."""

import ast
import json
import re

import nbformat
import pytest

from conftest import ROOT, copy_project
from modelfactory.errors import PipelineError
from modelfactory.ops import cache, runs, verdict
from modelfactory.ops.pipeline import NOTEBOOK_PIPELINES, load_pipeline
from modelfactory.params import resolve

# Helpers a notebook may hand the whole params to: each reads only cache.ALWAYS_READS sections.
WHOLE_PARAMS_HELPERS = {"open_stage", "registered_name", "registered_model_dir"}
# Calls that read the registry (its champion): the stage must declare `champion` under reads.
REGISTRY_READS = re.compile(r"\bregistry\.|\bregistered_model_dir\(")

STAGES = [(name, stage) for name in NOTEBOOK_PIPELINES for stage in load_pipeline(name, ROOT).stages]


def notebook_code(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def params_sections(code: str) -> set[str]:
    """The sections ``params["..."]`` indexes in the code, and the helpers it hands ``params`` whole."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "params"
                and isinstance(node.slice, ast.Constant)):
            found.add(node.slice.value)
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id == "params" for a in node.args):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "?")
            if func not in WHOLE_PARAMS_HELPERS:
                found.add(f"<the whole params, to {func}()>")
    return found


@pytest.mark.parametrize("pipeline,stage", STAGES, ids=lambda s: getattr(s, "name", s))
def test_every_params_section_a_notebook_reads_is_in_its_cache_key(pipeline, stage):
    code = "\n".join(notebook_code(ROOT / stage.notebook))
    read = params_sections(code)
    assert read, "the scan found no params[...] at all: it is broken"
    undeclared = read - set(cache.stage_reads(stage)) if stage.cache else set()  # never cached: no key to go stale
    assert not undeclared, (f"{stage.notebook} reads {sorted(undeclared)} but pipelines/{pipeline}.yaml does not "
                            f"declare them under reads: for stage {stage.name}: its cache would go stale")
    assert not stage.cache or (cache.CHAMPION in stage.reads) == bool(REGISTRY_READS.search(code)), \
        f"stage {stage.name}: declare `champion` under reads exactly when its notebook reads the registry"


def test_the_stage_helpers_read_only_the_sections_every_key_holds():
    source = (ROOT / "src" / "modelfactory" / "ops" / "stage.py").read_text()
    read = set(re.findall(r"params\[\"(\w+)\"\]", source))
    assert read and read <= set(cache.ALWAYS_READS)


def test_the_scan_sees_an_undeclared_section():
    assert params_sections('x = params["batch"]["size"]\nhelper(params)') == {"batch", "<the whole params, to helper()>"}


@pytest.fixture(scope="module")
def training():
    return load_pipeline("training", ROOT)


@pytest.fixture(scope="module")
def params():
    return resolve("diabetes", "dev", training_checks=False)


def key_of(stage, params, inputs=None, data=None):
    return cache.cache_key(stage, params, ROOT, inputs or {}, data, {"pandas": "2"})


def test_a_train_param_changes_train_key_only_in_that_component(training, params):
    changed = json.loads(json.dumps(params))
    changed["train"]["alpha"] = 0.3
    train = training.stage("train")
    assert cache.first_difference(key_of(train, params), key_of(train, changed)) == "params.train"
    explore = training.stage("explore")
    assert key_of(explore, params, data="d") == key_of(explore, changed, data="d")


def test_the_key_holds_inputs_data_code_and_packages(training, params):
    evaluate = training.stage("evaluate")
    base = key_of(evaluate, params, {"train": {"model.json": "a"}})
    assert cache.first_difference(base, key_of(evaluate, params, {"train": {"model.json": "b"}})) == "inputs.train"
    explore = training.stage("explore")
    assert cache.first_difference(key_of(explore, params, data="x"), key_of(explore, params, data="y")) == "data"
    other = cache.cache_key(explore, params, ROOT, {}, "x", {"pandas": "3"})
    assert cache.first_difference(key_of(explore, params, data="x"), other) == "packages"
    assert set(base) >= {"notebook", "code", "params.model", "params.env", "params.seed", "params.tracking",
                         "params.evaluate", "params.data", "params.report"}
    assert "params.train" not in base and "params.deploy" not in base


def test_a_sklearn_dataset_is_identified_without_importing_sklearn(params):
    identity = cache.data_identity(params["data"])
    assert identity.startswith("sklearn:diabetes@") and identity != "sklearn:diabetes@None"


def earlier_run(tmp_path, run_id, stage, key, champion_seen=None, champion_after=None, files=None):
    """A finished run folder holding one stage, as the stage loop records it."""
    folder = tmp_path / "runs" / run_id
    stage_dir = runs.stage_dir(folder, stage.name)
    stage_dir.mkdir(parents=True)
    for name, text in (files or {"metrics.json": "{}", "model/MLmodel": "flavors: {}"}).items():
        (stage_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (stage_dir / name).write_text(text)
    (folder / f"{stage.name}.ipynb").write_text("{}")
    record = {"status": runs.SUCCEEDED, "cache_key": dict(key), "hashes": cache.output_hashes(stage_dir),
              "notebook": f"{stage.name}.ipynb", "outputs": ["metrics.json"], "champion_seen": champion_seen}
    manifest = {"run_id": run_id, "env": "dev", "stages": {stage.name: record}, "_dir": str(folder)}
    if champion_after is not None:
        manifest["champion_after"] = champion_after
    return manifest


def test_an_identical_earlier_stage_is_taken_as_hard_links_that_outlive_it(tmp_path, training, params):
    stage = training.stage("train")
    key = key_of(stage, params)
    old = earlier_run(tmp_path, "r1", stage, key)
    hit, why = cache.find_hit(stage, key, [old], "dev")
    assert hit is not None and why == ""
    new = tmp_path / "runs" / "r2"
    new.mkdir()
    fields = cache.take(hit, new, "train")
    assert fields["status"] == runs.CACHED and fields["cached_from"] == "r1" and fields["notebook"] == "train.ipynb"
    import shutil

    shutil.rmtree(tmp_path / "runs" / "r1")  # deleting the old run leaves the new one whole
    assert (new / "train" / "model" / "MLmodel").read_text() == "flavors: {}"
    assert cache.output_hashes(new / "train") == fields["hashes"]


def test_a_stage_taken_from_a_cached_stage_names_the_run_where_it_ran(tmp_path, training, params):
    stage = training.stage("train")
    key = key_of(stage, params)
    copy = earlier_run(tmp_path, "r2", stage, key)
    copy["stages"]["train"].update(status=runs.CACHED, cached_from="r1")
    hit, _ = cache.find_hit(stage, key, [copy], "dev")
    assert cache.take(hit, (tmp_path / "r3"), "train")["cached_from"] == "r1"


def test_tampered_outputs_other_keys_and_other_envs_are_not_taken(tmp_path, training, params):
    stage = training.stage("train")
    key = key_of(stage, params)
    tampered = earlier_run(tmp_path, "r3", stage, key)
    (tmp_path / "runs" / "r3" / "train" / "metrics.json").write_text('{"rmse": 1}')
    other = earlier_run(tmp_path, "r2", stage, {**key, "params.train": "0"})
    prod = {**earlier_run(tmp_path, "r1", stage, key), "env": "prod"}
    hit, why = cache.find_hit(stage, key, [tampered, other, prod], "dev")
    assert hit is None
    assert why == "outputs of run r3 changed since it ran (train/metrics.json)"
    hit, why = cache.find_hit(stage, key, [other], "dev")
    assert hit is None and why == "params.train differs from run r2"
    assert cache.find_hit(stage, key, [], "dev") == (None, cache.NO_EARLIER)


def test_champion_rule_a_noop_after_promotion_is_cached_a_new_champion_is_not(tmp_path, training, params):
    evaluate = training.stage("evaluate")
    key = key_of(evaluate, params)
    # run 1 judged its candidate with no champion, and its deploy stage made that candidate v1 champion
    first = earlier_run(tmp_path, "r1", evaluate, key, champion_seen=None, champion_after="1")
    assert cache.find_hit(evaluate, key, [first], "dev", champion="1")[0] is not None
    assert cache.find_hit(evaluate, key, [first], "dev", champion=None)[0] is not None
    hit, why = cache.find_hit(evaluate, key, [first], "dev", champion="7")
    assert hit is None and why == "champion is v7 now; run r1 judged against no champion"
    # a stage that does not read the champion does not care
    train = training.stage("train")
    assert cache.find_hit(train, key_of(train, params), [earlier_run(tmp_path, "r9", train, key_of(train, params))],
                          "dev", champion="7")[0] is not None


def test_unknown_reads_entry_is_one_line(tmp_path):
    root = copy_project(tmp_path / "p")
    path = root / "pipelines" / "training.yaml"
    path.write_text(path.read_text().replace("reads: [data, report]", "reads: [data, raport]", 1))
    with pytest.raises(PipelineError, match="pipelines/training.yaml: stage explore: reads: unknown 'raport'; "
                                            "a params section .* or champion"):
        load_pipeline("training", root)


def test_runs_and_the_verdict_say_a_decision_was_cached():
    manifest = {"model": "m", "env": "dev", "gate": {"passed": True, "version": "1", "reason": "no champion yet"},
                "promotion": {"promoted": True}, "stages": {"evaluate": {"status": "cached", "cached_from": "r1"}}}
    assert verdict.gate_cell(manifest) == "v1 promoted (cached)"
    assert verdict.verdict_line(manifest) == ("candidate v1 promoted: no champion yet (decided by run r1; "
                                              "cached here, nothing registered again)")


def test_the_file_naming_a_stages_mlflow_run_is_no_input(training, params):
    # it differs in every run: a rerun explore with the same dataset must not rerun train
    evaluate = training.stage("evaluate")
    one = key_of(evaluate, params, {"train": {"model.json": "a", "tracking.json": "1"}})
    assert one == key_of(evaluate, params, {"train": {"model.json": "a", "tracking.json": "2"}})
