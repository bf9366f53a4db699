"""The table Sigma rules are evaluated on: one row per CloudTrail event, one text column per
Sigma field name the loaded rules use.

The columns come from each event's original record (``events.raw``), not from keytrail's
normalised columns, because Sigma rules are written against CloudTrail's own JSON: a field
keeps its logged spelling, an object field (``requestParameters``) is its JSON text (what
``|contains`` searches), and a scalar is its value as text (``true``, ``42``). All paths are
extracted in one ``json_extract_string`` call per record, so the JSON is parsed once.

Where a path crosses a JSON array (``requestParameters.containerDefinitions.command``: the
definitions are a list), the values of every element are joined with newlines, so
``|contains`` finds a value in any element.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from keytrail.analysis.sigma.backend import RAW_COLUMN, lower_column
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    import duckdb

TABLE = "_kt_sigma_ct"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path(parts: list[str]) -> str:
    return "$." + ".".join(_ident(p) for p in parts)


def build(
    cur: duckdb.DuckDBPyConnection,
    fields: tuple[str, ...] | list[str],
    lower: tuple[str, ...] | list[str] = (),
) -> int:
    """Create ``_kt_sigma_ct(event_uid, <field>..., "lc:<field>"...)`` over the case's CloudTrail
    events (the ``lower`` fields also lower-cased); returns the row count."""
    names = [f for f in dict.fromkeys(fields) if f != RAW_COLUMN]
    paths: list[str] = []
    cols: list[str] = []
    for name in names:
        parts = name.split(".")
        paths.append(_path(parts))
        direct = f"v[{len(paths)}]"
        alts = []
        for i in range(1, len(parts) - 1):  # an array somewhere in the middle of the path
            # Only records whose text has `"<segment>": [` can hold one, so the second JSON
            # parse runs on those alone.
            seg = re.escape(parts[i]).replace("'", "''")
            lit = parts[i].replace("'", "''")
            wild = quote_literal(
                _path(parts[: i + 1]) + "[*]." + ".".join(_ident(p) for p in parts[i + 1 :])
            )
            alts.append(
                f"CASE WHEN contains(raw, '\"{lit}\"') "
                f"AND regexp_matches(raw, '\"{seg}\"\\s*:\\s*\\[') "
                f"THEN nullif(array_to_string("
                f"json_extract_string(raw, {wild}), chr(10)), '') END"
            )
        cols.append(
            f"coalesce({direct}, {', '.join(alts)}) AS {_ident(name)}"
            if alts
            else f"{direct} AS {_ident(name)}"
        )
    raw = f", raw AS {_ident(RAW_COLUMN)}" if RAW_COLUMN in fields else ""
    plist = "[" + ", ".join(quote_literal(p) for p in paths) + "]::VARCHAR[]"
    select = ", ".join(["event_uid", *cols]) if cols else "event_uid"
    extract = f"json_extract_string(raw, {plist})" if paths else "NULL"
    lc = "".join(f", lower({_ident(f)}) AS {_ident(lower_column(f))}" for f in dict.fromkeys(lower))
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE {TABLE} AS
            SELECT *{lc} FROM (SELECT {select}{raw} FROM (
              SELECT event_uid, raw, {extract} AS v
              FROM events WHERE source = 'cloudtrail' AND raw IS NOT NULL))"""
    )
    rows = cur.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
    return int(rows[0][0]) if rows else 0
