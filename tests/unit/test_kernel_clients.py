"""A warm kernel runs notebook after notebook; the runner must not keep a client open for each one.

papermill (nbclient) opens a kernel client per notebook and closes it only when it started the kernel
itself. Ours is lent to it, so before issue 12's fix every notebook left a client behind whose iopub
socket queued everything the kernel printed afterwards: the runner grew by about 40 MiB a model.
"""

import gc

import nbformat
from jupyter_client.client import KernelClient

from modelfactory.ops.kernels import KernelSession, kernel_env
from modelfactory.ops.notebook_run import run_notebook


def open_clients(session: KernelSession) -> list:
    """Every kernel client in this process still connected to the session's kernel."""
    gc.collect()
    return [obj for obj in gc.get_objects()
            if isinstance(obj, KernelClient) and obj.connection_file == session.km.connection_file
            and obj.channels_running]


def test_notebooks_run_in_a_lent_kernel_leave_no_client_open(tmp_path):
    notebook = tmp_path / "tiny.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('x' * 100)")]
    nbformat.write(nb, notebook)
    session = KernelSession("python3", tmp_path, kernel_env(tmp_path), ["json"], start_timeout=60)
    try:
        session.wait_until_warm()
        for number in range(2):
            run_notebook(notebook, tmp_path / f"out-{number}.ipynb", {},
                         {"kernel": "python3", "cell_timeout_seconds": 60}, session, tmp_path, progress=False)
        assert session.alive  # lent, not shut down: the next notebook reuses it
        assert open_clients(session) == []
    finally:
        session.shutdown()
