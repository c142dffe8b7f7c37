"""End to end: docs/OnboardingNewModel.md, run as written. Its fenced shell commands run in order, in
bash, in a copy of the project whose `.venv/bin/` calls this interpreter; what the doc shows under a
command (its `# ` lines, `...` standing for anything) must be in what the command printed. So a
renamed command or flag, or a changed message, fails here.

Two liberties, both kept small: the server the doc starts in its own terminal runs in the background
here, on a free port instead of the doc's 8765, and is stopped at the end; and only the doc's first
`modelfactory run` runs (each costs 20-40 s), a later one is parsed by the real argument parser."""

from __future__ import annotations

import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ROOT, clean_env, copy_project, runs_of

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "OnboardingNewModel.md"
DOC_PORT = "8765"
SERVER_START_SECONDS = 180
STOP_SECONDS = 60


@dataclass
class Command:
    """One shell command of the doc and the lines it is shown to print."""

    text: str
    expected: list[str] = field(default_factory=list)


def doc_commands(text: str) -> list[Command]:
    """The commands of every ```bash block, in order, each with the `# ` lines under it (one line each:
    the doc writes no continued lines)."""
    commands: list[Command] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("#") and commands:
                commands[-1].expected.append(line[1:].strip())
            elif line.strip():
                commands.append(Command(line.strip()))
    return commands


def shows(output: str, expected: list[str]) -> list[str]:
    """The expected lines not found in ``output``, in order; `...` matches anything, spaces any spacing."""
    missing, position = [], 0
    for line in expected:
        pattern = r"\s+".join(".*".join(re.escape(part) for part in word.split("...")) for word in line.split())
        found = re.compile(pattern).search(output, position)
        if found is None:
            missing.append(line)
        else:
            position = found.end()
    return missing


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _venv(project: Path) -> None:
    """`.venv/bin/python` and `.venv/bin/modelfactory` in the copy, both this interpreter (a symlink to
    a venv's python loses the venv: Python finds its packages from where the link points)."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, tail in (("python", ""), ("modelfactory", " -m modelfactory")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{tail} "$@"\n')
        (bin_dir / name).chmod(0o755)


class Server:
    """The doc's `modelfactory serve`, in the background, its output collected by a thread."""

    def __init__(self, command: str, project: Path):
        self.proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=project, env=clean_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output = ""
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def wait_ready(self) -> str:
        """Everything it printed up to its "Ctrl-C stops it" line (bounded in time)."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        while "Ctrl-C stops it" not in self.output and time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.output += self.lines.get(timeout=1)
            except queue.Empty:
                continue
        return self.output

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # what Ctrl-C does; the server goes with it
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_SECONDS)
        return self.proc.returncode


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Every command of the doc, run in order: (project, [(command, returncode, output)], server output)."""
    from modelfactory.ops.cli import build_parser

    project = copy_project(tmp_path_factory.mktemp("onboarding") / "project")
    _venv(project)
    text = DOC.read_text()
    example = re.search(r"```yaml\n(# params/models/penguins\.yaml.*?)```", text, re.S).group(1)
    (project / "params" / "models" / "penguins.yaml").write_text(example)
    port = _free_port()
    done, server, server_output, runs = [], None, "", 0
    try:
        for command in doc_commands(text):
            line = command.text.replace(DOC_PORT, port)
            expected = [e.replace(DOC_PORT, port) for e in command.expected]
            argv = shlex.split(line)
            if argv[0].endswith("modelfactory") and argv[1] == "run":
                runs += 1
                if runs > 1:  # parsed, not run: a renamed flag still fails here
                    build_parser().parse_args(argv[1:])
                    done.append((command, 0, "(parsed only)", []))
                    continue
            if argv[0].endswith("modelfactory") and argv[1] == "serve":
                server = Server(line, project)
                server_output = server.wait_ready()
                done.append((command, server.proc.poll(), server_output, shows(server_output, expected)))
                continue
            result = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=project, env=clean_env(),
                                    capture_output=True, text=True, timeout=600)
            output = result.stdout + result.stderr
            done.append((command, result.returncode, output, shows(output, expected)))
    finally:
        stopped = server.stop() if server else None
    return project, done, stopped


def test_the_doc_is_a_whole_walk_from_a_csv_to_a_served_model():
    commands = [" ".join(c.text.split()) for c in doc_commands(DOC.read_text())]
    for step in ("data register penguins landing/", "params --model penguins", "run --model penguins",
                 "runs --model penguins", "report latest", "champion --model penguins", "serve --model penguins",
                 "curl -s", "score --model penguins", "data register penguins --from-folder landing/",
                 "data show penguins"):
        assert any(step in c for c in commands), step


def test_the_params_file_in_the_doc_is_the_shipped_one():
    text = DOC.read_text()
    example = re.search(r"```yaml\n(# params/models/penguins\.yaml.*?)```", text, re.S).group(1)
    assert example == (ROOT / "params" / "models" / "penguins.yaml").read_text()
    for key in ("model.task", "data.source", "data.dataset", "data.target", "data.stratify", "data.checks.min_rows",
                "data.checks.max_missing_fraction", "data.checks.required_columns", "train.estimator",
                "train.scale_features", "train.preprocess.unknown_categories", "evaluate.primary_metric",
                "evaluate.metrics", "evaluate.gate.thresholds", "evaluate.baseline"):
        assert f"| `{key}`" in text, f"the key table does not explain {key}"


def test_every_command_of_the_doc_succeeds_and_prints_what_the_doc_shows(walked):
    _, done, _ = walked
    for command, code, output, missing in done:
        assert code in (0, None), f"{command.text}\n{output[-3000:]}"  # None: the server, still serving then
        assert missing == [], f"{command.text}\nnot printed: {missing}\n{output[-3000:]}"


def test_the_walk_trained_served_and_scored_the_registered_versions(walked):
    import pandas as pd

    project, done, stopped = walked
    (manifest,) = runs_of(project)
    assert manifest["model"] == "penguins" and manifest["status"] == "succeeded"
    assert manifest["data"]["uri"] == "penguins:1"
    assert sorted(p.name for p in (project / "data" / "registry" / "penguins").iterdir()) == ["v1", "v2"]
    scored = pd.read_csv(project / "scored.csv")
    assert len(scored) == 344 and set(scored["prediction"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert stopped == 0, "the server stops cleanly on SIGTERM"
    # the served answers were real: the inference server logged them
    log = next((project / "runs" / "serving").glob("penguins-dev-v1/*/endpoint-*.log")).read_text()
    assert "POST /score 200" in log and "POST /score 400" in log


def test_the_checker_catches_a_changed_message():
    """The comparison can fail: a doc line the output does not hold is reported."""
    output = "registered penguins:1 (344 rows, 8 columns, hash f204db2c753b) -> data/registry/penguins/v1/x.csv\n"
    assert shows(output, ["registered penguins:1 (344 rows, ...) -> data/registry/penguins/v1/x.csv"]) == []
    assert shows(output, ["registered penguins:2 (344 rows, ...)"]) == ["registered penguins:2 (344 rows, ...)"]
    assert shows(output, ["... -> data/registry/penguins/v1/x.csv", "registered penguins:1"]) == [
        "registered penguins:1"], "lines are matched in order"
