"""Notebook execution: one stage's notebook run by papermill in a given kernel, and rendered.

A cell that raises, a kernel that dies and a cell that runs out of time each become a
StageFailedError carrying the cell's place (``details``); the saved notebook shows the error at that
cell, with papermill's red banner, or ours where papermill adds none. The notebook's metadata keeps
project-relative paths only.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from modelfactory import paths
from modelfactory.errors import CellTimeoutError, KernelDiedError, StageFailedError


def run_notebook(notebook: Path, output: Path, parameters: Mapping, runner: Mapping, kernel, root: Path,
                 progress: bool) -> None:
    """Execute ``notebook`` into ``output`` with ``parameters`` injected, in ``kernel``.

    Args:
        notebook: the pipeline's notebook.
        output: where the executed copy goes (``runs/<id>/<stage>.ipynb``).
        parameters: the values for its ``parameters`` cell.
        runner: the params' ``runner`` section (kernel name, cell timeout).
        kernel: a warm kernels.KernelSession.
        root: the project root, against which recorded paths are made relative.
        progress: show papermill's progress bar.

    Raises:
        StageFailedError: a cell raised (KernelDiedError, CellTimeoutError: the kernel died, a cell ran too long).
    """
    import nbformat
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError as NbTimeout
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    timeout = runner["cell_timeout_seconds"]
    try:
        pm.execute_notebook(
            str(notebook), str(output), parameters=dict(parameters), kernel_name=runner["kernel"],
            progress_bar=progress, log_output=False, execution_timeout=timeout, km=kernel.km,
        )
    except PapermillExecutionError as exc:
        raise _cell_error(StageFailedError, exc.exec_count, exc.cell_index, f"{exc.ename}: {exc.evalue}",
                          exc.ename) from None
    except (DeadKernelError, NbTimeout) as exc:
        nb = nbformat.read(output, as_version=4)
        index, cell = _running_cell(nb)
        if isinstance(exc, NbTimeout):
            kind, line = CellTimeoutError, f"cell ran longer than runner.cell_timeout_seconds={timeout}"
        else:
            kind, line = KernelDiedError, "the kernel died (killed, or out of memory)"
        _add_banner(nb, index, line)
        nbformat.write(nb, output)
        raise _cell_error(kind, cell.get("execution_count") if cell else None, index, line, kind.__name__) from None
    finally:
        kernel.close_clients()  # papermill leaves its client open on a kernel it did not start
        _strip_machine_paths(output, root)


def render(notebook: Path) -> Path | None:
    """The notebook's HTML pages (render.render_notebook); None, with a warning, when it cannot render."""
    if not notebook.exists():
        return None
    from modelfactory.ops.render import render_notebook

    try:
        return render_notebook(notebook)
    except Exception as exc:  # a report that cannot render must not hide the stage's own result
        print(f"  warning: could not render {notebook.name} to HTML: {exc}", file=sys.stderr)
        return None


def _cell_error(kind, exec_count, cell_index, line: str, ename: str) -> StageFailedError:
    error = kind(line)
    error.details = {"summary": line, "ename": ename, "cell_index": cell_index, "execution_count": exec_count}
    return error


def _running_cell(nb) -> tuple[int, dict | None]:
    """The cell that was executing when the kernel died or the clock ran out: the last one started."""
    started = [i for i, c in enumerate(nb.cells)
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return 0, None
    return started[-1], nb.cells[started[-1]]


def _add_banner(nb, index: int, line: str) -> None:
    import nbformat
    from papermill.execute import ERROR_MARKER_TAG

    banner = nbformat.v4.new_markdown_cell(
        f'<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;">'
        f"Execution stopped in the next cell: {line}</span>")
    banner.metadata["tags"] = [ERROR_MARKER_TAG]
    nb.cells.insert(index, banner)


def _strip_machine_paths(output: Path, root: Path) -> None:
    """papermill records absolute input/output paths; keep them relative to the project."""
    import nbformat

    if not output.exists():
        return
    nb = nbformat.read(output, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = paths.relative_to_root(Path(meta[key]), root)
    nbformat.write(nb, output)
