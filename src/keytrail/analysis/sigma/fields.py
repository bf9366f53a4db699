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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytrail.analysis.sigma.backend import RAW_COLUMN, lower_column
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    import duckdb

TABLE = "_kt_sigma_ct"
#: Whether a record's ``eventName`` is one a rule that names its events allows (not a Sigma
#: field name: those are plain dotted names).
SEL = '"kt:sel"'


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path(parts: list[str]) -> str:
    return "$." + ".".join(_ident(p) for p in parts)


def build(
    cur: duckdb.DuckDBPyConnection,
    fields: tuple[str, ...] | list[str],
    lower: tuple[str, ...] | list[str] = (),
    everywhere: tuple[str, ...] | list[str] | None = None,
    names: tuple[str, ...] | list[str] = (),
) -> int:
    """Create ``_kt_sigma_ct`` (:func:`select_sql`'s rows) over the case's CloudTrail events;
    returns the row count."""
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE {TABLE} AS {select_sql(fields, lower, everywhere, names)}"
    )
    rows = cur.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
    return int(rows[0][0]) if rows else 0


def select_sql(
    fields: tuple[str, ...] | list[str],
    lower: tuple[str, ...] | list[str] = (),
    everywhere: tuple[str, ...] | list[str] | None = None,
    names: tuple[str, ...] | list[str] = (),
    where: str | None = None,
    flag: str | None = None,
    carried: bool = False,
    parse_names: tuple[str, ...] | list[str] | None = None,
) -> str:
    """``SELECT event_uid, "kt:sel", <field>..., "lc:<field>"...`` over the case's CloudTrail
    events (those ``where`` holds for, SQL over ``events``; the ``lower`` fields also
    lower-cased): the rows rules are evaluated on, whether stored as a table (:func:`build`) or
    read once by the query that evaluates every rule
    (:func:`keytrail.analysis.findings.rawpass.one_pass_sql`).

    ``everywhere`` (None: all of ``fields``) are the fields extracted from every record; the
    others only from records whose ``eventName`` fits one of ``names`` (lower-case LIKE
    patterns, :mod:`.prefilter`; column ``SEL`` says which, TRUE everywhere without ``names``),
    NULL elsewhere. The rules that use them cannot match elsewhere, and the request and response
    objects they mostly name are the costly part.

    ``flag``: a top-level key; column ``FLAG`` says whether the record's text holds it and its
    value reads ``true``. ``carried`` (the case has :mod:`keytrail.store.carried`'s columns):
    where a record's fields are kept there (``ct_plain``) and the record needs nothing else
    (every field extracted everywhere is kept, and it is not selected by name), they are read
    from the columns instead of parsing ``raw`` (:func:`_carried_rows`): the same values.
    ``parse_names`` (None: all of ``names``): the ``eventName`` patterns of the rules that read a
    field not extracted everywhere (:attr:`~.rules.RuleSet.parsed_names`); a record selected by
    another name is read from the columns too, its other fields NULL: the rules that allow its
    name read only the kept fields, and the others cannot match it whatever it holds
    (:mod:`.prefilter`)."""
    from keytrail.analysis.sigma.prefilter import FIELD, name_sql

    wanted = [f for f in dict.fromkeys(fields) if f != RAW_COLUMN]
    light = list(wanted) if everywhere is None else [f for f in wanted if f in set(everywhere)]
    heavy = [f for f in wanted if f not in set(light)]
    if names and FIELD not in light:
        light.append(FIELD)
    if flag is not None and flag not in light:
        light.append(flag)
    cols: list[str] = []
    for group, var, guard in ((light, "v", ""), (heavy, "w", f"{SEL} AND ")):
        for i, name in enumerate(group, start=1):
            if name in wanted:
                cols.append(_column(name, f"{var}[{i}]", guard))
    sel = name_sql(f"v[{light.index(FIELD) + 1}]", list(names)) if names else "TRUE"
    raw = ""
    light_raw = RAW_COLUMN in fields and (everywhere is None or RAW_COLUMN in set(everywhere))
    if RAW_COLUMN in fields:
        raw = f", {'raw' if light_raw else f'CASE WHEN {SEL} THEN raw END'} AS {_ident(RAW_COLUMN)}"
    if flag is not None:
        key = flag.replace("'", "''")
        raw += (
            f", CASE WHEN v[{light.index(flag) + 1}] = 'true' THEN contains(raw, '{key}') END"
            f" AS {FLAG}"
        )
    select = ", ".join(["event_uid", SEL, *cols])
    also = f" AND ({where})" if where else ""
    lc = "".join(f", lower({_ident(f)}) AS {_ident(lower_column(f))}" for f in dict.fromkeys(lower))
    base = f"FROM events WHERE source = 'cloudtrail' AND raw IS NOT NULL{also}"
    # Records that need something besides the fields extracted everywhere: those selected by
    # name when a rule reads more of them (or the whole text) there.
    by_name = bool(heavy) or (RAW_COLUMN in fields and not light_raw)
    branches: list[str] = []
    parse_where = [base]
    if carried and not light_raw and _carriable(light, flag):
        from keytrail.store.carried import FIELDS, PLAIN

        named = name_sql(FIELDS[FIELD], list(names)) if names else "TRUE"
        # The records whose own parse gives a rule more than the columns: named by a rule
        # that reads other fields (or the whole text).
        need = named if parse_names is None or not names else name_sql(FIELDS[FIELD], parse_names)
        skip = f"{PLAIN} AND ({need}) IS NOT TRUE" if by_name else PLAIN
        order = [f for f in light if f in wanted] + heavy  # the parsed rows' column order
        spec = _CarriedSpec(order, heavy, names, named, flag, RAW_COLUMN in fields)
        branches = _carried_rows(spec, f"{base} AND {skip}")
        # The other records, `({skip}) IS NOT TRUE`, as two filters on one column each: DuckDB
        # pushes those into the scan, which then reads `raw` only where a row is kept.
        parse_where = [f"{base} AND {PLAIN} IS NOT TRUE"]
        if by_name and need != "FALSE":
            parse_where.append(f"{base} AND {PLAIN} AND {need}")
    parsed = [
        f"""SELECT {select}{raw} FROM (
              SELECT *, CASE WHEN {SEL} THEN {_extract(heavy)} END AS w FROM (
                SELECT *, {sel} AS {SEL} FROM (
                  SELECT event_uid, raw, {_extract(light)} AS v
                  {b})))"""
        for b in parse_where
    ]
    union = " UNION ALL ".join([*parsed, *branches])
    return f"SELECT *{lc} FROM ({union})"


#: The column :func:`select_sql` gives for its ``flag``.
FLAG = '"kt:flag"'


def _carriable(light: list[str], flag: str | None) -> bool:
    """Whether every field read from every record (and the flag) is kept by the ingest."""
    from keytrail.store.carried import CONSOLE_KEY, FIELDS

    return all(f in FIELDS or f == flag for f in light) and flag in (None, CONSOLE_KEY)


@dataclass(frozen=True)
class _CarriedSpec:
    order: list[str]
    """The fields, in the order of the parsed rows' columns."""
    heavy: list[str]
    names: tuple[str, ...] | list[str]
    named: str
    flag: str | None
    raw_field: bool


def _carried_rows(spec: _CarriedSpec, base: str) -> list[str]:
    """The rows of :func:`select_sql` for the records ``base`` (SQL ``FROM events WHERE ...``)
    keeps, read from the ingest's columns, in the same column order.

    A field whose path has a middle part (``a.b.c``) is read, where the direct path gives NULL,
    from every element of an array there (:func:`_column`): the ingest's parse gives only the
    direct path. So the records where such a field is NULL read ``raw`` for that alternative
    (a search of the text; the JSON is parsed only where an array may be): the others never
    read ``raw``."""
    from keytrail.store.carried import CONSOLE, FIELDS

    deep = [f for f in spec.order if f not in spec.heavy and len(f.split(".")) > 2]
    known = " AND ".join(f"{FIELDS[f]} IS NOT NULL" for f in deep) or "TRUE"
    out = []
    for with_raw, cond in ((False, known), (True, f"({known}) IS NOT TRUE")):
        if with_raw and not deep:
            continue
        cols = ["event_uid", f"{spec.named if spec.names else 'TRUE'} AS {SEL}"]
        for f in spec.order:
            if f in spec.heavy:
                cols.append(f"NULL::VARCHAR AS {_ident(f)}")
            elif with_raw and f in deep:
                cols.append(_column(f, FIELDS[f], ""))
            else:
                cols.append(f"{FIELDS[f]} AS {_ident(f)}")
        if spec.raw_field:
            cols.append(f"NULL::VARCHAR AS {_ident(RAW_COLUMN)}")
        if spec.flag is not None:
            cols.append(f"{CONSOLE} AS {FLAG}")
        out.append(f"SELECT {', '.join(cols)} {base} AND {cond}")
    return out


def _extract(names: list[str]) -> str:
    """One ``json_extract_string`` of every path (the record is parsed once), or NULL."""
    if not names:
        return "NULL::VARCHAR[]"
    plist = ", ".join(quote_literal(_path(n.split("."))) for n in names)
    return f"json_extract_string(raw, [{plist}]::VARCHAR[])"


def _column(name: str, direct: str, guard: str) -> str:
    """The field's column: the path's value, or where the path crosses a JSON array the values
    of every element joined with newlines; ``guard`` limits the array read to selected rows."""
    parts = name.split(".")
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
            f"CASE WHEN {guard}contains(raw, '\"{lit}\"') "
            f"AND regexp_matches(raw, '\"{seg}\"\\s*:\\s*\\[') "
            f"THEN nullif(array_to_string("
            f"json_extract_string(raw, {wild}), chr(10)), '') END"
        )
    return (
        f"coalesce({direct}, {', '.join(alts)}) AS {_ident(name)}"
        if alts
        else f"{direct} AS {_ident(name)}"
    )
