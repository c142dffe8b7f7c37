"""The CLI in a shell pipeline: a reader that stops early is not an error."""

import subprocess
import sys

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
