"""The CLI in a shell pipeline: a reader that stops early is not an error."""

import subprocess
import sys
from pathlib import Path

from conftest import clean_env, copy_project


def test_runs_piped_into_a_reader_that_has_gone_ends_quietly(tmp_path):
    project = copy_project(tmp_path / "project")
    # The read end is closed before the command writes a byte, as `| head -1` does once it has its line.
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory", "runs"], cwd=project, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_printed_commands_work_when_pasted_from_the_project_root(tmp_path):
    """The rerun line names the command as it was started: `.venv/bin/modelfactory` inside the project
    (a bare `modelfactory` fails unless .venv/bin is on PATH), `<python> -m modelfactory` otherwise."""
    project = copy_project(tmp_path / "project")
    (project / ".venv").symlink_to(Path(sys.executable).parents[1], target_is_directory=True)  # this venv
    code = "from modelfactory.paths import command_prefix; print(command_prefix())"
    env = clean_env(PATH="/usr/bin:/bin")
    as_script = subprocess.run([".venv/bin/python", "-c", f"import sys; sys.argv = ['.venv/bin/modelfactory']; {code}"],
                               cwd=project, env=env, capture_output=True, text=True, check=True)
    assert as_script.stdout.strip() == ".venv/bin/modelfactory"
    pasted = subprocess.run(["bash", "-c", f"{as_script.stdout.strip()} --help"], cwd=project, env=env,
                            capture_output=True, text=True)
    assert pasted.returncode == 0, pasted.stderr
    as_module = subprocess.run([sys.executable, "-m", "modelfactory", "--help"], cwd=project, env=env,
                               capture_output=True, text=True, check=True)
    assert as_module.returncode == 0
    direct = subprocess.run([sys.executable, "-c", f"import sys; sys.argv = ['-c']; {code}"], cwd=project,
                            env=env, capture_output=True, text=True, check=True)
    assert direct.stdout.strip() == f"{sys.executable} -m modelfactory"
