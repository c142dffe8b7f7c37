"""The code sent into kernels: named functions of ops/kernel_code.py, called by a generated line."""

import os
import subprocess
import sys

import pytest

from modelfactory.ops import kernel_code


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_call_runs_the_named_function_with_its_arguments_in_a_fresh_interpreter():
    done = run_python(kernel_code.call(kernel_code.preload, ["json", "modelfactory.ops.runs"]))
    assert done.returncode == 0, done.stderr
    failed = run_python(kernel_code.call(kernel_code.preload, ["json", "no_such_module_here"]))
    assert failed.returncode == 1
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in failed.stderr


def test_arguments_travel_as_json_whatever_quotes_they_hold():
    code = kernel_code.call(kernel_code.preload, ["it's \"quoted\"\n"])
    done = run_python(code)
    assert "No module named 'it\\'s \"quoted\"\\n'" in done.stderr


def test_only_this_modules_functions_are_sent():
    with pytest.raises(ValueError, match="only this module's functions"):
        kernel_code.call(os.getcwd)
