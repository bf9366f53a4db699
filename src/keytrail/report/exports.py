"""``keytrail export``: one entry point for every interoperable export.

``export(store, path, fmt, force=, table=)`` writes one file and returns the number of
rows (or nodes + edges) written. It never overwrites an existing file unless ``force``
is given, and it writes to a temporary file beside the target and renames it into place,
so an interrupted export never leaves a half-written file under the requested name.

| format | content | module |
|---|---|---|
| `timesketch` | events as Timesketch JSONL | :mod:`keytrail.report.timesketch` |
| `ocsf` | every event (CloudTrail, Vault, agents) as OCSF 1.1.0 JSON lines | :mod:`keytrail.report.ocsf` |
| `opengraph` | identity graph as BloodHound CE OpenGraph JSON | :mod:`keytrail.report.opengraph` |
| `graphml` | identity graph as GraphML | :mod:`keytrail.report.graphml` |
| `csv`, `parquet` | one table: events, credentials, links or findings | :mod:`keytrail.report.tabular` |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from keytrail.store.case import CaseStore

FORMATS = ("timesketch", "opengraph", "graphml", "csv", "parquet", "ocsf")
TABLE_FORMATS = ("csv", "parquet")
#: Exports that can keep only the events one view shows.
SCOPED_FORMATS = ("csv", "parquet", "timesketch")
#: An events filter: an SQL condition over the ``events`` columns and its parameters.
EventsWhere = tuple[str, list[Any]]
#: What an export's file extension says about its format (an explicit format wins).
SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".graphml": "graphml",
    ".jsonl": "timesketch",
    ".ocsf.jsonl": "ocsf",
    ".opengraph.json": "opengraph",
}


def export_format(output: str, given: str | None) -> str:
    """The export format: ``given``, else the one the extension names (longest suffix first).

    Raises:
        UsageError: neither (exit 2, naming the extensions understood).
    """
    if given:
        return given
    name = output.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise UsageError(
        f"cannot tell the export format from {output!r}: give --format "
        f"({', '.join(FORMATS)}) or name the file " + ", ".join(f"*{k}" for k in SUFFIXES)
    )


def extension(fmt: str) -> str:
    """The file extension an export of ``fmt`` is written with (``.ocsf.jsonl`` for ocsf)."""
    return next(s for s, f in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])) if f == fmt)


def check_target(path: str | Path, *, force: bool) -> Path:
    """The output path, refusing to overwrite an existing file unless ``force``.

    Raises:
        UsageError: the file exists and ``force`` is false, or the path is a directory.
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target} is a directory; give a file name with -o")
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; choose another name with -o or add --force to overwrite it"
        )
    if not target.parent.exists():
        raise UsageError(f"directory {target.parent} does not exist; create it first")
    return target


def write_atomically(target: Path, write: Callable[[Path], int], *, overwrite: bool = True) -> int:
    """Run ``write(tmp_path) -> int`` on a temporary file beside ``target``, then move it into place.

    With ``overwrite=False`` the move is a hard link, which fails when ``target`` exists:
    a file that appeared since :func:`check_target` (another export, another explorer) is
    never replaced. Where hard links are not supported the exists check is repeated.

    Raises:
        UsageError: ``overwrite`` is false and ``target`` exists.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        count = write(tmp)
        if overwrite:
            os.replace(tmp, target)
            return count
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise UsageError(f"{target} already exists; choose another name") from None
        except OSError:  # no hard links on this file system
            if target.exists():
                raise UsageError(f"{target} already exists; choose another name") from None
            os.replace(tmp, target)
        return count
    finally:
        if tmp.exists():
            tmp.unlink()


def escape_json_lines(path: Path, count: int) -> int:
    """Rewrite a JSON-lines file with C1, DEL and bidi characters as ``\\uXXXX`` (returns ``count``).

    DuckDB's JSON writer escapes C0 controls only; a responder who pages through the export
    must not have the rest obeyed by the terminal (:func:`keytrail.safetext.json_text`). Files
    without such a character are left as written (one read, no second write).
    """
    from keytrail.safetext import has_json_raw, json_text

    with open(path, encoding="utf-8", newline="") as src:
        if not any(has_json_raw(line) for line in src):
            return count
    fixed = path.with_name(path.name + ".esc")
    try:
        with (
            open(path, encoding="utf-8", newline="") as src,
            open(fixed, "w", encoding="utf-8", newline="") as out,
        ):
            out.writelines(json_text(line) for line in src)
        os.replace(fixed, path)
    finally:
        if fixed.exists():
            fixed.unlink()
    return count


def export(
    store: CaseStore,
    path: str | Path,
    fmt: str,
    *,
    force: bool = False,
    table: str | None = None,
    events_where: EventsWhere | None = None,
) -> int:
    """Write ``fmt`` to ``path``; returns the rows (or graph nodes + edges) written.

    ``table`` selects the table for ``csv``/``parquet`` (default ``events``) and is refused
    for the other formats. ``events_where`` keeps only the events of one view (the
    explorer's timeline filter or a credential's family) in a ``csv``, ``parquet`` or
    ``timesketch`` export of the events.

    Raises:
        UsageError: unknown format or table, an events filter on another export, or the
            file exists without ``force``.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if table is not None and fmt not in TABLE_FORMATS:
        raise UsageError(f"--table applies to csv and parquet exports only, not {fmt}")
    if events_where is not None and (fmt not in SCOPED_FORMATS or (table or "events") != "events"):
        raise UsageError(f"an events filter applies to {', '.join(SCOPED_FORMATS)} of events only")
    target = check_target(path, force=force)

    def write(tmp: Path) -> int:
        if fmt in TABLE_FORMATS:
            from keytrail.report.tabular import export_table

            return export_table(store, tmp, fmt, table or "events", events_where)
        if fmt == "timesketch":
            from keytrail.report.timesketch import export_timesketch

            return escape_json_lines(tmp, export_timesketch(store, tmp, events_where))
        if fmt == "ocsf":
            from keytrail.report.ocsf import export_ocsf

            return escape_json_lines(tmp, export_ocsf(store, tmp))
        if fmt == "opengraph":
            from keytrail.report.opengraph import export_opengraph

            return export_opengraph(store, tmp)
        from keytrail.report.graphml import export_graphml

        return export_graphml(store, tmp)

    return write_atomically(target, write, overwrite=force)
