"""Reading the YAML that users write: safe, UTF-8, no aliases, and one line per mistake.

Every error starts with the file (and line) or the flag the text came from, and is a ParamsError
(exit code 2); no traceback, and no echo of the text itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfactory import paths
from modelfactory.errors import ParamsError

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, root: Path | None = None) -> Any:
    """A YAML file's content, with one-line errors for an unreadable, non-UTF-8 or bad file."""
    shown = paths.relative_to_root(path, root)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParamsError(f"{shown}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ParamsError(f"{shown}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save the file as UTF-8") from None
    return parse_yaml(text, shown)


def parse_yaml(text: str, shown: str, lines: bool = True) -> Any:
    """Parse YAML safely, refusing aliases.

    Args:
        text: the YAML.
        shown: where it came from (a file, or a flag such as ``--set a.b``); starts every error.
        lines: add the line number to errors (for files; a flag's value has no lines worth naming).
    """
    try:
        refuse_aliases(text, shown, lines)
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) if lines else None
        problem = str(getattr(exc, "problem", None) or exc).strip()
        raise ParamsError(f"{_where(shown, mark)}: YAML does not parse: {problem}") from None
    except RecursionError:
        raise ParamsError(f"{shown}: YAML nests too deeply") from None


def refuse_aliases(text: str, shown: str, lines: bool = True) -> None:
    """Raise ParamsError at the first alias (``*name``).

    A few lines of nested aliases (a "billion laughs") expand to billions of values in whatever
    walks the result. Params never need them (layering shares values between files), so they are
    refused outright; parsing events builds nothing, so even a bomb costs no time or memory here.
    """
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise ParamsError(f"{_where(shown, event.start_mark if lines else None)}: YAML aliases "
                              f"(*{event.anchor}) are not allowed in this project's YAML; write the value out")


def _where(shown: str, mark) -> str:
    return f"{shown}:{mark.line + 1}" if mark is not None else shown
