"""The CloudTrail adapter with narrow reads and writes: what ``scope`` needs of every record.

A full ingest spends most of its CloudTrail time on what an investigation reads later: each
record's text cut out of its file and parsed again with every field, ``raw``, ``details``,
the target and the resources computed, masked and committed to disk. A scope only needs the ids
the closure walks. :class:`NarrowCloudTrail` is
:class:`keytrail.ingest.cloudtrail.adapter.CloudTrailAdapter` with these changes, and every value
a scope reads is computed by the adapter's own expressions
(:func:`~keytrail.ingest.cloudtrail.sql.stage_columns`,
:func:`~keytrail.ingest.cloudtrail.sql.event_columns`,
:func:`~keytrail.ingest.cloudtrail.sql.issues_sql`):

- ``Records`` files are parsed once per file (one ``json_transform`` of the whole document)
  instead of cutting out and re-parsing each record, and with only the fields those expressions
  read (:mod:`keytrail.scope.narrow_spec`: found in their SQL; the JSON subtrees cut to the paths
  read, as structs, and the reads rewritten to struct paths, which give the same values). The
  staging columns are computed in the same query, on DuckDB's threads, one file per query.
  Anything that path cannot take as is (a file the scan refuses, a record without ``eventID``,
  whose id is a hash of its text, another shape) goes through the unchanged adapter.
- writes keep only :data:`EVENT_COLUMNS` of ``events``, no ``event_resources`` and no rejects
  (the counts stay right: they are the manifest's); ``credential_issues`` rows are whole.

``raw`` holds, only for the records the person/workload classifier reads
(:mod:`keytrail.graph.principal_class`: issuing calls, and its sample, the first two events of
each (credential, identity) by time, which are among the first two of any batch that holds
them), the fields it reads, as a small JSON object. The records a scope keeps are copied from
their files by the unchanged adapter (:func:`keytrail.scope.project.with_raw`), never from here.
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from keytrail.ingest.base import LoadContext, masked_select
from keytrail.ingest.cloudtrail import sql as ct_sql
from keytrail.ingest.cloudtrail.adapter import (
    MAX_OBJECT_BYTES,
    CloudTrailAdapter,
    fetch_arrow,
    read_document,
)
from keytrail.scope.narrow_spec import as_struct, json_reads, merge, struct_reads
from keytrail.scope.no_raw import load_through
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from keytrail.ingest.cloudtrail.ahead import Staged

#: The ``events`` columns a scope reads: the closure, the issuance facts (``mint_facts``), the
#: person/workload classifier, de-duplication, the Spark engine's rows, and where each record sits.
EVENT_COLUMNS = (
    "event_uid",
    "source",
    "format",
    "time",
    "action",
    "actor_uid",
    "actor_type",
    "actor_name",
    "credential_id",
    "credential_kind",
    "human_id",
    "src_ip",
    "user_agent",
    "shared_event_id",
    "request_id",
    "file_id",
    "record_no",
    "byte_offset",
)
_ISSUERS = ", ".join(quote_literal(n) for n in (*ct_sql.STS_ISSUERS, "CreateAccessKey"))


def _keep_raw(select_sql: str, text: str, drop: str) -> str:
    """``select_sql`` (``events``' names) with ``raw`` = ``text`` only for the records the
    classifier may read: issuing calls, and the first two distinct ``(time, event_uid)`` of each
    (credential, identity), the classifier's own sample (:mod:`keytrail.graph.principal_class`),
    which are among the first two of any batch that holds them (distinct: copies of one event in
    a batch do not push the next one out). ``drop``: the column ``text`` is built from."""
    return f"""
WITH ev AS ({select_sql}), sampled AS (
  SELECT unnest(arg_min(event_uid, (time, event_uid), 2)) AS uid
  FROM (SELECT DISTINCT credential_id, actor_uid, time, event_uid FROM ev
        WHERE credential_id IS NOT NULL)
  GROUP BY credential_id, actor_uid)
SELECT * EXCLUDE ({drop}), CASE WHEN operation IN ({_ISSUERS})
                              OR event_uid IN (SELECT uid FROM sampled) THEN {text} END AS raw
FROM ev
"""


#: What the classifier reads of a record's text, beyond the adapter's spec (JSON paths).
_CLASSIFIER_FIELDS: dict[str, Any] = {
    "sessionCredentialFromConsole": "VARCHAR",
    "userIdentity": {
        "invokedBy": "VARCHAR",
        "identityProvider": "VARCHAR",
        "userName": "VARCHAR",
        "sessionContext": {
            "sourceIdentity": "VARCHAR",
            "ec2RoleDelivery": "VARCHAR",
            "attributes": {"mfaAuthenticated": "VARCHAR"},
            "webIdFederationData": {"federatedProvider": "VARCHAR"},
        },
    },
}
_RESPONSE_FIELDS = ("provider", "subjectFromWebIdentityToken", "subject")


def _slim(prefix: str, spec: dict[str, Any]) -> str:
    """SQL: a JSON object of ``spec``'s paths read from the struct ``prefix``."""
    parts = []
    for k, v in spec.items():
        value = _slim(f"{prefix}.{k}", v) if isinstance(v, dict) else f"{prefix}.{k}"
        parts.append(f"{quote_literal(k)}, {value}")
    return f"json_object({', '.join(parts)})"


#: The slim record text: the classifier's fields (``responseElements`` is JSON, as in the spec).
_SLIM_RAW = (
    "json_object('sessionCredentialFromConsole', r.sessionCredentialFromConsole, "
    "'userIdentity', "
    + _slim("r.userIdentity", _CLASSIFIER_FIELDS["userIdentity"])
    + ", 'responseElements', json_object("
    + ", ".join(
        f"'{k}', json_extract_string(r.responseElements, '$.{k}')" for k in _RESPONSE_FIELDS
    )
    + "))::VARCHAR"
)

#: The parsed path's ``events`` rows: the adapter's expressions for :data:`EVENT_COLUMNS` (and
#: ``operation``, which :func:`_keep_raw` reads), ``raw`` the slim text where it is kept.
_EVENT_EXPRS = ", ".join(
    f"{e} AS {n}" for n, e in ct_sql.event_columns() if n in (*EVENT_COLUMNS, "operation")
)
_EVENTS = _keep_raw(f"SELECT {_EVENT_EXPRS}, r FROM _kt_ct_t WHERE NOT bad", _SLIM_RAW, "r")
#: The staging columns those rows and the issuance rows read (not ``p``, the request parameters
#: naming resources: only the target and the resources read it, and a scope writes neither).
_STAGE = [
    (n, e)
    for n, e in ct_sql.stage_columns()
    if n == "bad"
    or re.search(rf"\b{n}\b", re.sub(r"'(?:[^']|'')*'", "''", _EVENTS + ct_sql.issues_sql()))
]
_BASE = json.loads(ct_sql.SPEC)
_JSON_FIELDS = [k for k, v in _BASE.items() if v == "JSON"]
_READ_SQL = " ".join([*(e for _n, e in _STAGE), _EVENTS, ct_sql.issues_sql()])
#: The fields of the adapter's spec (and the classifier's) that the scope's expressions read,
#: the JSON subtrees (parameters, response, additional data) cut to the paths they read.
_SPEC = struct_reads(_READ_SQL, merge(_BASE, _CLASSIFIER_FIELDS)) | json_reads(
    _READ_SQL, _JSON_FIELDS
)
_DOC_SPEC = json.dumps({"Records": [_SPEC]})
_SPEC_LITERAL = quote_literal(_DOC_SPEC)


#: The staging's expressions (:data:`_STAGE`) over the narrow parse.
_STAGED = ", ".join(f"{as_struct(e)} AS {n}" for n, e in _STAGE)
_EVENTS_NARROW = as_struct(_EVENTS)
_ISSUES_NARROW = as_struct(ct_sql.issues_sql())


def _issuing_names(sql: str) -> list[str]:
    """The ``eventName`` values every branch of the issuance SQL requires (each of its scans of
    ``_kt_ct_t`` has one ``r.eventName IN (...)`` or ``r.eventName = '...'``: else it raises, and
    the issuance rows would need every record)."""
    found = re.findall(r"r\.eventName (?:IN \(([^)]*)\)|= ('[^']*'))", sql)
    if not found or len(found) != sql.count("FROM _kt_ct_t"):
        raise ValueError("the issuance SQL reads records other than named issuing calls")
    return sorted({v.strip().strip("'") for a, b in found for v in (a or b).split(",")})


#: Records whose issuance rows can exist: only these are scanned by the issuance SQL (1-2% of a
#: trail; the scan of the whole batch's parsed records cost about half of that insert).
_ISSUING = pa.array(_issuing_names(ct_sql.issues_sql()))


def _parse_doc(file_id: int, fmt: str) -> str:
    """One file's parsed and staged records (``_kt_scope_doc``: its decompressed text; one
    parse)."""
    return f"""
SELECT *, {_STAGED}
FROM (SELECT {file_id}::INTEGER AS file_id, record_no, NULL::BIGINT AS byte_offset,
             {quote_literal(fmt)} AS format, NULL::VARCHAR AS raw, r
      FROM (SELECT generate_subscripts(recs, 1)::BIGINT AS record_no, unnest(recs) AS r
            FROM (SELECT try(json_transform(doc, {_SPEC_LITERAL})).Records AS recs
                  FROM _kt_scope_doc)))
"""


def _insert_events(
    ctx: LoadContext,
    select_sql: str,
    params: list[Any] | None = None,
    premasked: frozenset[str] = frozenset(),
) -> int:
    cols = [*EVENT_COLUMNS, "raw"]
    row = ctx.con.execute(
        f"INSERT INTO events ({', '.join(cols)}) SELECT {masked_select('events', cols, premasked)} "
        f"FROM ({select_sql})",
        params or [],
    ).fetchone()
    return int(row[0]) if row else 0


class _NarrowContext(LoadContext):
    """A load context whose bulk inserts keep only what a scope reads."""

    def insert_sql(
        self,
        table: str,
        select_sql: str,
        params: list[Any] | None = None,
        *,
        premasked: frozenset[str] = frozenset(),
    ) -> int:
        if table in ("event_resources", "rejects"):
            return 0
        if table != "events":
            return super().insert_sql(table, select_sql, params, premasked=premasked)
        return _insert_events(self, _keep_raw(select_sql, "raw", "raw"), params, premasked)


class NarrowCloudTrail(CloudTrailAdapter):
    """:class:`CloudTrailAdapter` writing through :class:`_NarrowContext`, ``Records`` files
    parsed once (substituted for it by :func:`keytrail.ingest.runner.ingest` in a scope)."""

    READS_AHEAD: ClassVar[bool] = False

    @classmethod
    def read_ahead(cls, *args: Any, **kwargs: Any) -> None:
        """No read-ahead: the one-parse path reads its files itself (:func:`_scan`)."""

    def load_batch(
        self, ctxs: list[LoadContext], ahead: Staged | list[Staged] | None = None
    ) -> None:
        def load(narrow: list[LoadContext]) -> None:
            loaded = _load_parsed([c for c in narrow if c.format == "cloudtrail-records"])
            rest = [c for c in narrow if c.file_id not in loaded]
            if rest:
                super(NarrowCloudTrail, self).load_batch(rest)

        load_through(_NarrowContext, ctxs, load)


def _load_parsed(ctxs: Sequence[LoadContext]) -> set[int]:
    """Load the ``Records`` files the one-parse path takes; returns their file ids."""
    if not ctxs:
        return set()
    table = _scan(ctxs)
    if table is None:
        return set()
    con = ctxs[0].con
    con.register("_kt_ct_t", table)  # the staged rows, named as the adapter's statements read them
    try:
        _insert_events(ctxs[0], _EVENTS_NARROW)
        counts = con.execute(
            "SELECT file_id, count(*), count(*) FILTER (WHERE bad) FROM _kt_ct_t GROUP BY file_id"
        ).fetchall()
        names = pc.struct_field(table["r"], "eventName")
        con.register("_kt_ct_t", table.filter(pc.is_in(names, _ISSUING)))
        ctxs[0].insert_sql("credential_issues", _ISSUES_NARROW)
    finally:
        con.unregister("_kt_ct_t")
    by_id = {c.file_id: c for c in ctxs}
    for f, n, bad in counts:
        by_id[int(f)].records += int(n)
        by_id[int(f)].rejected += int(bad)
    return {int(f) for f, _n, _b in counts}


def _scan(ctxs: Sequence[LoadContext]) -> pa.Table | None:
    """The parsed records of the files that hold exactly one non-empty ``Records`` document and
    whose every record has an ``eventID``; ``None`` when no file does (the exact path then).

    Each file is read and inflated by the adapter's
    :func:`~keytrail.ingest.cloudtrail.adapter.read_document` (the same bound against a file that
    inflates to gigabytes) and parsed once by ``json_transform`` (DuckDB's
    ``read_json_objects`` first parses a file to find its objects, then ``json_transform``
    parses them again: 1.4 of 4.4 CPU-s on 472 MB of records). Files run on DuckDB's threads,
    one file per query on its own cursor (zlib and DuckDB release the GIL), so one file's text
    at a time per thread is in memory. A file the ingest's bulk read would refuse (a ``.gz`` name
    that does not inflate, not UTF-8, over the document bound) or that is not one ``Records``
    document gives no rows: the unchanged adapter reads it."""
    con = ctxs[0].con
    rows = con.execute("SELECT current_setting('threads')").fetchall()
    threads = max(1, int(rows[0][0]) if rows else 1)
    max_bytes = min(MAX_OBJECT_BYTES, ctxs[0].max_document_bytes)
    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []

    def parse(ctx: _NarrowContext) -> pa.Table | None:
        if not hasattr(local, "cur"):
            local.cur = con.cursor()  # a failing parse cannot abort the ingest transaction
            cursors.append(local.cur)
        doc = read_document(ctx, max_bytes)  # bounded inflate, as the ingest's bulk read
        if doc is None:
            return None
        sql = _parse_doc(int(ctx.file_id), ctx.format)
        try:
            local.cur.register("_kt_scope_doc", pa.table({"doc": doc}))
            return fetch_arrow(local.cur.sql(sql))
        except duckdb.Error:
            return None
        finally:
            local.cur.unregister("_kt_scope_doc")

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = [t for t in pool.map(parse, ctxs) if t is not None and t.num_rows]
    finally:
        for cur in cursors:
            cur.close()
    if not parts:
        return None
    table = pa.concat_tables(parts)
    ids = pc.struct_field(table["r"], "eventID")
    stats = (
        table.append_column("no_id", pc.or_kleene(pc.is_null(ids), pc.equal(ids, "")))
        .group_by("file_id")
        .aggregate([("record_no", "count"), ("record_no", "max"), ("no_id", "any")])
    )
    ok = [
        f
        for f, n, m, no_id in zip(
            stats["file_id"].to_pylist(),
            stats["record_no_count"].to_pylist(),
            stats["record_no_max"].to_pylist(),
            stats["no_id_any"].to_pylist(),
            strict=True,
        )
        if n == m and not no_id
    ]
    if len(ok) == stats.num_rows:  # every file (the usual case): no copy of the batch
        return table
    return table.filter(pc.is_in(table["file_id"], pa.array(ok, pa.int32())))
