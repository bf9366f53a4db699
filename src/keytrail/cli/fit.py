"""Tables and text that fit the terminal: the CLI's text output at 80 columns and up.

``credentials`` printed ~210 columns whatever the terminal (each row wrapped onto three
lines at 80), ``info`` printed 200-character absolute paths. Here a table is fitted to
the width: under :data:`NARROW` columns the less important columns are dropped, then the
widest columns are shortened, ids with an ellipsis in the middle (the start and the end
of an id are what tell ids apart, and :func:`keytrail.analysis.lookup.expand_prefix`
accepts the start back). ``--wide`` prints everything. Output to a pipe or a file is not
fitted (a script gets whole ids) unless ``COLUMNS`` is set.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from keytrail.idfmt import HMAC_PREFIX, HMAC_SHORT, middle

#: Below this many columns, the columns a table marks optional are left out.
NARROW = 100
#: A shortened column keeps at least this many characters (or its header's length).
MIN_COLUMN = 8
#: An id column keeps at least this many characters: an AWS key id (20) whole.
ID_MIN = 20
#: Text columns keep this many characters until ids have been shortened too.
TEXT_KEEP = 18


def width_of(out: TextIO | None = None, *, wide: bool = False) -> int | None:
    """The width to fit, or ``None`` for no fitting (``--wide``, or a pipe without ``COLUMNS``)."""
    if wide:
        return None
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    stream = out or sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return shutil.get_terminal_size((120, 24)).columns
    return None


def fit_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    *,
    optional: Sequence[str] = (),
    ids: Sequence[str] = (),
) -> tuple[list[str], list[list[str]]]:
    """``headers``/``rows`` fitted to ``width`` (see the module docstring); ``None`` leaves them whole.

    ``optional`` names the columns dropped under :data:`NARROW` columns, least important
    first; ``ids`` the columns cut in the middle (others are cut at the end).
    """
    heads, body = list(headers), [list(r) for r in rows]
    if width is None:
        return heads, body
    if width < NARROW:
        keep = [i for i, h in enumerate(heads) if h not in optional]
        heads, body = [heads[i] for i in keep], [[r[i] for i in keep] for r in body]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(heads)]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    # Long text columns give way first (down to TEXT_KEEP), then ids (never below ID_MIN: an
    # AKIA key id whole), then text columns down to MIN_COLUMN.
    text_floor = [max(MIN_COLUMN, len(h)) for h in heads]
    id_floor = [
        max(min(ID_MIN, w), len(h)) if h in ids else min(w, max(TEXT_KEEP, f))
        for h, w, f in zip(heads, widths, text_floor)
    ]
    for floor in (
        [
            w if h in ids else min(w, max(TEXT_KEEP, f))
            for h, w, f in zip(heads, widths, text_floor)
        ],
        id_floor,
        [i if h in ids else f for h, i, f in zip(heads, id_floor, text_floor)],
    ):
        while excess > 0:
            i = max(range(len(widths)), key=lambda k: widths[k] - floor[k], default=None)
            if i is None or widths[i] <= floor[i]:
                break
            cut = min(excess, widths[i] - floor[i], max(1, widths[i] // 4))
            widths[i] -= cut
            excess -= cut
    for r in body:
        for i, w in enumerate(widths):
            if len(r[i]) > w:
                r[i] = cut_id(r[i], w) if heads[i] in ids else r[i][: w - 1] + "…"
    return heads, body


def cut_id(ident: str, width: int) -> str:
    """An id in ``width`` characters, cut in the middle; a Vault HMAC as ``hmac:<hex start>…``.

    The HMAC's hex start is a prefix every command accepts back; its end tells nothing more.
    """
    if ident.startswith(HMAC_PREFIX):
        ident = HMAC_SHORT + ident[len(HMAC_PREFIX) :]
        return ident if len(ident) <= width else ident[: width - 1] + "…"
    return middle(ident, width)


def write_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    width: int | None = None,
    **fit: Any,
) -> None:
    """An aligned table with a rule under the header, fitted to ``width`` (see :func:`fit_table`)."""
    heads, body = fit_table(headers, rows, width, **fit)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(heads)]
    out.write("  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip() + "\n")
    out.write("  ".join("─" * w for w in widths) + "\n")
    out.writelines("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in body)


def wrap(line: str, width: int | None, indent: int = 4) -> list[str]:
    """``line`` wrapped at ``width`` with continuation lines indented under the value (``None``: whole)."""
    if width is None or len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip())
    label_end = line.find(":", lead)
    value_at = len(line) - len(line[label_end + 1 :].lstrip()) if 0 < label_end < 24 else -1
    hang = value_at if 0 < value_at < width // 2 else lead + indent
    return textwrap.wrap(
        line,
        width=width,
        subsequent_indent=" " * hang,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [line]


def relative_paths(paths: Sequence[str]) -> tuple[str, list[str]]:
    """(the common directory, each path relative to it); ``("", paths)`` when they share none."""
    real = [p for p in paths if p]
    if len(real) < 2:
        root = os.path.dirname(real[0]) if real else ""
    else:
        try:
            root = os.path.commonpath(real)
        except ValueError:  # mixed absolute and relative paths
            return "", list(paths)
        if root in real:  # one path is the common root itself (a single file): use its directory
            root = os.path.dirname(root)
    if not root or root == os.sep:
        return "", list(paths)
    return root, [os.path.relpath(p, root) if p else p for p in paths]
