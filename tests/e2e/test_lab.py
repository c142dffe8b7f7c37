"""`make lab` starts JupyterLab on 127.0.0.1, also as root (containers, Azure ML compute instances)."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, clean_env

pytestmark = pytest.mark.e2e


def test_make_lab_serves_on_loopback(tmp_path):
    log = tmp_path / "lab.log"
    args = f"LAB_ARGS=--no-browser --port 0 --ServerApp.root_dir={tmp_path}"
    with log.open("w") as out:
        proc = subprocess.Popen(["make", "-s", "lab", args], cwd=ROOT, env=clean_env(HOME=str(tmp_path)),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if re.search(r"http://127\.0\.0\.1:\d+/lab", log.read_text()):
                break
            time.sleep(0.5)
        text = log.read_text()
        assert proc.poll() is None, f"make lab ended (exit {proc.returncode}): {text[-1500:]}"
        assert re.search(r"http://127\.0\.0\.1:\d+/lab", text), text[-1500:]
        assert "0.0.0.0" not in text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
