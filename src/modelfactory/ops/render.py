"""Each executed notebook as two HTML pages, and what notebooks show: tables of facts, captioned plots.

``<stage>.html`` is the whole executed notebook (code, logs, outputs), for whoever debugs it.
``<stage>-report.html`` is for readers: the notebook's text, tables and plots, without code, logs
(stderr: warnings, MLflow's log lines) or test markers, with a link to the whole notebook. Both need
no network: the template drops JupyterLab's CDN scripts.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
REPORT_SUFFIX = "-report.html"
EMPTY_TABLE = re.compile(r"<tbody>\s*</tbody>")  # how pandas writes a table with columns and no rows
HEADING = re.compile(r"^(#{1,6})\s")
TABLE = re.compile(r"<table\b.*?</table>", re.S)
TABLE_HEAD = re.compile(r"<thead>(.*?)</thead>", re.S)
TABLE_BODY = re.compile(r"<tbody>(.*?)</tbody>", re.S)
ROW_NUMBER = re.compile(r"(<tr[^>]*>\s*)<th>(\d+)</th>\s*")
BLANK_CORNER = re.compile(r"(<tr[^>]*>\s*)<th></th>\s*")
# Every notebook opens with a table of its parameters (tests/unit/test_notebooks_static.py): how to
# run it by hand, which is for whoever opens the notebook, not for a reader of its results.
PARAMETER_TABLE = re.compile(r"^\| parameter \|.*?(?=^[^|]|\Z)", re.M | re.S)


def report_page(notebook: Path) -> Path:
    """Where the readers' page of an executed notebook goes: ``<stage>-report.html`` beside it."""
    return notebook.with_name(notebook.stem + REPORT_SUFFIX)


def render_notebook(notebook: Path) -> Path:
    """Write ``<notebook>.html`` (the whole notebook) and ``<stage>-report.html`` (no code, no logs)
    beside the executed notebook; return the path of the first."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    full = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])
    target = notebook.with_suffix(".html")
    target.write_text(full.from_notebook_node(nb)[0], encoding="utf-8")
    readers = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                           exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = readers.from_notebook_node(readers_notebook(nb, target.name))
    report_page(notebook).write_text(body, encoding="utf-8")
    return target


def readers_notebook(nb, full_html: str):
    """A copy of the notebook for readers: code cells keep only what they show (tables, plots, printed
    text, errors), never their logs; a link back to the index and to the whole notebook comes first.

    Nor the notebook's table of parameters (how to run it by hand). Nothing empty is shown: not a
    table without rows (explore's list of contract failures when
    there are none), and not a heading whose section has nothing left to show (explore's "Raw
    data", whose only output is the data's shape)."""
    import copy

    import nbformat

    shown = copy.deepcopy(nb)
    cells = [nbformat.v4.new_markdown_cell(
        f"[← run index](index.html) · [the whole notebook, with code and logs]({full_html})")]
    for cell in shown.cells:
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.get("outputs", []) if _for_readers(out)]
            if not cell.outputs:
                continue
            for out in cell.outputs:
                if "text/html" in out.get("data", {}):
                    out["data"]["text/html"] = drop_row_numbers(out["data"]["text/html"])
        elif cell.cell_type == "markdown":
            cell.source = PARAMETER_TABLE.sub("", cell.source).rstrip()
        cells.append(cell)
    shown.cells = [cell for i, cell in enumerate(cells) if not _empty_section(cell, cells[i + 1:])]
    return shown


def drop_row_numbers(page: str) -> str:
    """Tables whose row labels only count the rows (0, 1, 2, ...: a DataFrame's default index) lose
    that column: a reader sees "0" beside "rows >= 400" and wonders what it stands for. Tables with
    named rows (a metric, a column name) keep theirs."""
    def without_numbers(found):
        table = found.group(0)
        head, body = TABLE_HEAD.search(table), TABLE_BODY.search(table)
        if not head or not body or head.group(1).count("<tr") != 1 or not BLANK_CORNER.search(head.group(1)):
            return table
        numbers = [int(number) for _, number in ROW_NUMBER.findall(body.group(1))]
        if not numbers or numbers != list(range(body.group(1).count("<tr"))):
            return table
        return (table.replace(head.group(0), BLANK_CORNER.sub(r"\1", head.group(0), count=1), 1)
                .replace(body.group(0), ROW_NUMBER.sub(r"\1", body.group(0)), 1))

    return TABLE.sub(without_numbers, page)


def _heading_level(cell) -> int | None:
    """The level of a markdown cell's first line when it is a heading (``## Checks``: 2), else None."""
    if cell.cell_type != "markdown":
        return None
    found = HEADING.match(cell.source.lstrip())
    return len(found.group(1)) if found else None


def _empty_section(cell, following) -> bool:
    """A markdown cell that is only a heading, with nothing shown before the next heading of its level
    or above (or the end)."""
    level = _heading_level(cell)
    if level is None or len(cell.source.strip().splitlines()) != 1:
        return False
    upcoming = next(iter(following), None)
    if upcoming is None:
        return True
    below = _heading_level(upcoming)
    return below is not None and below <= level


def _for_readers(output) -> bool:
    """Tables, plots, printed text and errors; not stderr (logs, warnings), not a bare value's repr
    (``'1'``, ``(442, 11)``), which means nothing without the code that produced it."""
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("name") == "stdout"
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        if EMPTY_TABLE.search(data.get("text/html", "")):
            return False  # a table with no rows says nothing; the stage's verdict line says "none failed"
        return any(m != "text/plain" for m in data)
    return True  # errors: a failed stage's report shows what went wrong


class Facts(dict):
    """A dict (a gate decision, a promotion, metrics) that a notebook shows as a two-column table,
    so that a long reason wraps instead of running off the page as one line of JSON."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fact(v))}</td></tr>"
                       for k, v in self.items() if not isinstance(v, (list, dict)))
        return f'<table class="facts">{rows}</table>'


def _fact(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def figure_caption(fig) -> str:
    """A figure's own words for its caption: its title, else its panels' titles."""
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if title:
        return title
    return " · ".join(t for t in (ax.get_title() for ax in fig.axes) if t)


def png_caption(path: Path) -> str:
    """The caption a PNG carries (its ``Title`` text chunk, written by Stage.save_figure), else its
    file name in words."""
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    position = 8  # after the PNG signature: chunks of length, type, data, CRC
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, _, rest = body.partition(b"\0")
            if key == b"Title":  # tEXt and zTXt hold Latin-1; iTXt (what matplotlib writes beyond it) UTF-8
                if kind == b"tEXt":
                    return rest.decode("latin-1")
                if kind == b"zTXt":
                    return zlib.decompress(rest[1:]).decode("latin-1")
                flag, rest = rest[0], rest[2:]  # compression flag, method, language\0, translated key\0, text
                rest = rest.split(b"\0", 2)[2]
                return (zlib.decompress(rest) if flag else rest).decode("utf-8", "replace")
        if kind == b"IDAT":  # matplotlib writes its text chunks before the image data
            break
        position += 12 + length
    return path.stem.replace("_", " ").capitalize()
