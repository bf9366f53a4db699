"""The per-record projection both engines walk: the trail loaded by the ingest adapters themselves.

A scratch case (a DuckDB file in a temporary directory) receives the files through
:func:`keytrail.ingest.runner.ingest` with ``graph=False``: the same sniffing, the same adapters
(CloudTrail's bulk SQL, Vault's request/response pairing and minting code, the agent readers),
the same de-duplication, the same skipped/failed bookkeeping, and no graph. Then
:func:`keytrail.graph.derive.mint_facts` states what minted what. Whatever keytrail learns to
read, scope reads too, and a credential means the same in both.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import pyarrow as pa

from keytrail.errors import InputError
from keytrail.graph.agent_identity import merge_agents
from keytrail.graph.derive import mint_facts
from keytrail.ingest import load_adapter
from keytrail.ingest.base import LoadContext, read_sample
from keytrail.ingest.cloudtrail.adapter import (
    CloudTrailAdapter,
    bulk_limit,
    bulk_read,
    read_document,
)
from keytrail.ingest.runner import IngestSummary, ingest
from keytrail.scope.beside import AGENTS, Beside
from keytrail.scope.gate import Gate
from keytrail.scope.narrow import NarrowCloudTrail
from keytrail.scope.no_raw import without_raw
from keytrail.store.case import CaseStore
from keytrail.store.sqltext import mask_stored_sql

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Set as AbstractSet

    from keytrail.ingest.base import SourceAdapter

#: The adapters whose rows a narrow projection writes without their text (:mod:`.no_raw`).
_NO_RAW = ("vault", "otlp", "jaeger", "mcp", "agent_jsonl")

#: Where each selected record sits: enough to copy its original bytes out of the input file.
LOCATIONS = """
SELECT e.event_uid, e.source, e.time, e.file_id, v.path, v.format, e.record_no, e.byte_offset,
       CASE WHEN e.source = 'cloudtrail' THEN e.raw END AS raw,
       rv.path AS request_path,
       TRY_CAST(e.details->>'request_byte_offset' AS BIGINT) AS request_offset
FROM events e JOIN evidence v ON v.file_id = e.file_id
LEFT JOIN evidence rv
  ON rv.file_id = coalesce(TRY_CAST(e.details->>'request_file_id' AS INTEGER), e.file_id)
                     AND e.source = 'vault' AND e.details->>'entry' = 'pair'
WHERE e.event_uid IN ({selection})
"""


def file_rows(
    summary: IngestSummary, unread: AbstractSet[str] = frozenset()
) -> list[dict[str, Any]]:
    """The manifest's ``inputs`` rows: each file as the ingest saw it (skipped: with the reason).

    ``unread``: paths the scope's gate counted but never parsed (``rejected`` not examined)."""
    return [
        {
            "path": f.path,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "status": f.status,
            "source": f.source,
            "format": f.format,
            "records": f.records,
            "rejected": None if f.path in unread else f.rejected,
            "note": f.note,
        }
        for f in summary.files
    ]


@dataclass
class Projection:
    """A scratch case holding the trail's rows (no graph) and the ingest's per-file results."""

    store: CaseStore
    summary: IngestSummary
    gate: Gate | None = None

    def inputs(self) -> list[dict[str, Any]]:
        return file_rows(self.summary, self.gate.not_examined() if self.gate else set())


def project(
    scratch: Path,
    paths: Iterable[str | Path],
    *,
    inventory: Iterable[str | Path] = (),
    narrow: bool = True,
    gate: Gate | None = None,
    beside: bool = False,
) -> Projection:
    """Load ``paths`` into a scratch case at ``scratch`` and derive the issuance facts there.

    ``narrow``: CloudTrail through :class:`keytrail.scope.narrow.NarrowCloudTrail` (no record
    text but for the classifier's samples: :func:`with_raw` fetches the kept records' text);
    Vault and agent rows without their text (:mod:`keytrail.scope.no_raw`). ``False``: the
    ingest exactly, as the record copy needs it. (Loading the Vault and agent files on a worker
    thread beside the CloudTrail files was built and measured: 0-5 CPU-s more at 1M events and
    no wall gain on 2 cores, docs/performance.md, scope7; removed.)

    The case is a file, not an in-memory database: one was tried (no WAL, commits or
    checkpoints) and cost the same CPU at 1M events with 0.05-0.1 GiB more peak RSS
    (docs/performance.md, scope6).

    ``beside`` (narrow only): the agent logs are loaded in a child process while the runner
    loads the Vault log (:mod:`keytrail.scope.beside`; the DuckDB engine's scope), started
    before the runner's plan; the files it has not started when the runner is done are loaded
    by the runner.

    ``gate`` (narrow only): the CloudTrail ``Records`` files are held back by the runner and
    opened by the gate's rounds, only those that can matter to the seeds' closure
    (:mod:`keytrail.scope.gate`).
    """
    subs: dict[str, type[SourceAdapter]] = {}
    child = (
        Beside(scratch.with_name(f"{scratch.stem}-agents.duckdb")) if narrow and beside else None
    )
    try:
        if narrow:
            subs = {name: without_raw(load_adapter(name)) for name in _NO_RAW}
            subs["cloudtrail"] = gate.adapter() if gate is not None else NarrowCloudTrail
            if gate is not None and gate.vault is not None:
                subs["vault"] = gate.vault.adapter()
        if child is not None:
            subs.update({name: child.adapter(name) for name in AGENTS})
            # Started before the runner hashes and sniffs the trail: the child's imports and its
            # DuckDB file (0.3-0.5 s) are ready by the first agent file (docs/performance.md,
            # scope16).
            child.start()
        summary = ingest(
            scratch,
            paths,
            inventory=inventory,
            graph=False,
            substitutes=subs,
            loaded=child.join if child is not None else None,
            loading=child.loading if child is not None else None,
        )
    finally:
        if child is not None:
            child.close()
    store = CaseStore.open(scratch, read_only=False)
    merge_agents(store.con)  # as the derive does first: one id per agent for the USES rules
    mint_facts(store.con)
    if narrow and gate is not None:
        gate.run(store, summary, lambda: mint_facts(store.con))
    return Projection(store, summary, gate if narrow else None)


def with_raw(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (:data:`LOCATIONS` of a narrow projection) with each CloudTrail record's text as
    the unchanged adapter stores it (masked like ``events.raw``), set in place.

    ``Records`` files the adapter's bulk scan reads give the texts that scan gives
    (:func:`keytrail.ingest.cloudtrail.adapter.bulk_read`: no mapping, no writes), the kept
    records picked by its own parse (:func:`_scanned`); any other shape, or a file the scan
    refuses, is loaded again whole, in the projection's load order (a record delivered twice
    comes from the same file)."""
    ct = sorted((r for r in rows if r["source"] == "cloudtrail"), key=_load_order)
    if not ct:
        return rows
    texts = _scanned(ct)
    rest = list(dict.fromkeys(r["path"] for r in ct if (r["path"], r["record_no"]) not in texts))
    if rest:
        texts.update(_reloaded(rest, [r for r in ct if r["path"] in set(rest)]))
    lost = sorted({r["path"] for r in ct if (r["path"], r["record_no"]) not in texts})
    if lost:
        raise InputError(f"{lost[0]}: changed while the scope read it (a kept record is gone)")
    for r in ct:  # in place: a copy of every kept row would be held beside the texts (RSS)
        r["raw"] = texts[(r["path"], r["record_no"])]
    return rows


def _scanned(ct: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Record texts of the bulk-readable ``Records`` files among ``ct``'s.

    Each file's kept records are picked out of it (:func:`_picked`): its document parsed by the
    bulk scan's own ``json_extract``, for the kept records' paths only; their texts are masked a
    few MiB at a time (:class:`_Masked`). A file that cannot be taken so is scanned
    (:func:`_scan_batch`) as before, in batches by the ingest's rule
    (``SourceAdapter.batch_full``), of a sixteenth of its bytes (:class:`_Rescan`): a batch's
    scan holds its documents, staged records and kept texts at once (a closure keeping 270k of
    300k records peaked at 1.8 GiB with the ingest's 16 MiB batches, 1.5 at 2 MiB, 1.3 at 1 MiB).

    All share one in-memory database, each file or batch on its own cursor: a database per
    batch cost about 37 ms of CPU per batch to make and fill (a principal seed's 233 files at 1M
    events, 182 batches: 16.2 against 9.4 CPU-s; every record of 120 files kept, 371k: 23.3
    against 14.6, the peak 1.34 against 1.44 GiB)."""
    by_path: dict[str, set[int]] = {}
    for r in ct:
        if r["format"] == "cloudtrail-records":
            by_path.setdefault(r["path"], set()).add(int(r["record_no"]))
    con = duckdb.connect()
    masked = _Masked(con)
    try:
        rows = con.execute("SELECT current_setting('threads')").fetchall()
        workers = max(1, min(_PICK_WORKERS, int(rows[0][0]) if rows else 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            picked = pool.map(lambda p: _picked(con, p, sorted(by_path[p])), by_path)
            rest = [p for p, texts in zip(by_path, picked, strict=True) if not masked.add(p, texts)]
        out = masked.done()
        batch: list[str] = []
        size = 0
        for path in rest:
            n = Path(path).stat().st_size
            if batch and _Rescan.batch_full(len(batch), size, n):
                out.update(_scan_batch(con, batch, by_path))
                batch, size = [], 0
            batch.append(path)
            size += n
        if batch:
            out.update(_scan_batch(con, batch, by_path))
    finally:
        con.close()
    return out


#: Files picked from at once (inflate and DuckDB release the GIL; one document each in memory).
_PICK_WORKERS = 2

#: The records of one document at ``$paths``, in their order, by the bulk scan's parse and
#: serialization (:data:`keytrail.ingest.cloudtrail.adapter._DOC_ROWS`' ``json_extract``).
_PICK = """
SELECT unnest(recs)::VARCHAR FROM (SELECT json_extract(doc, $paths) AS recs FROM _kt_scope_doc)
"""


def _picked(
    db: duckdb.DuckDBPyConnection, path: str, nos: list[int]
) -> list[tuple[int, str]] | None:
    """Records ``nos`` of ``path`` (their texts not masked yet), as :func:`_scan_batch` reads
    them, from one ``json_extract`` of their paths in the document: the same parse of the same
    text, and the same serialization of each record (an element of ``$.Records[*]`` is
    ``$.Records[i]``), without serializing and staging every other record of the file (a
    principal seed's 14,691 kept records of 228 files at 1M events: 9.1-9.6 against 3.6 CPU-s,
    of which reading and inflating 1.2 and DuckDB's parse about 1.5). ``None``
    where the scan might not read them so, and it is asked: a file the bulk read refuses (over
    its bound, not UTF-8, a BOM or UTF-16, not JSON), or a kept record that is not there (no
    ``Records`` array, or a shorter one)."""
    cur = db.cursor()
    try:
        sample = read_sample(Path(path), 8)
        if sample.codec is not None:
            return None
        ctx = LoadContext(cur, Path(path), 0, "cloudtrail-records", sample.gzipped)
        doc = read_document(ctx, bulk_limit(ctx), share=True)
        if doc is None:
            return None
        cur.register("_kt_scope_doc", pa.table({"doc": doc}))
        got = cur.execute(_PICK, {"paths": [f"$.Records[{n - 1}]" for n in nos]}).fetchall()
    except duckdb.Error:
        return None
    finally:
        cur.close()
    if len(got) != len(nos) or any(t is None for (t,) in got):
        return None
    return [(n, str(t)) for n, (t,) in zip(nos, got, strict=True)]


class _Masked:
    """Picked texts masked as :func:`_scan_batch` masks them, :data:`MASK_BYTES` at a time: one
    query per file cost about as much again as the picking (the mask's patterns are compiled
    per query), one for all of them would hold every kept text three times."""

    MASK_BYTES: ClassVar[int] = 8 << 20

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.out: dict[tuple[str, int], str] = {}
        self.keys: list[tuple[str, int]] = []
        self.texts: list[str] = []
        self.size = 0

    def add(self, path: str, picked: list[tuple[int, str]] | None) -> bool:
        """Take ``path``'s picked texts (``False``: none, the file is to be scanned)."""
        if picked is None:
            return False
        for n, t in picked:
            self.keys.append((path, n))
            self.texts.append(t)
            self.size += len(t)
        if self.size >= self.MASK_BYTES:
            self._flush()
        return True

    def done(self) -> dict[tuple[str, int], str]:
        self._flush()
        return self.out

    def _flush(self) -> None:
        if not self.texts:
            return
        cur = self.con.cursor()
        try:
            texts = pa.array(self.texts, pa.string())
            cur.register("_kt_scope_picked", pa.table({"i": range(len(texts)), "rec": texts}))
            got = cur.execute(
                f"SELECT {mask_stored_sql('rec')} FROM _kt_scope_picked ORDER BY i"
            ).fetchall()
        finally:
            cur.close()
        self.out.update((k, str(t)) for k, (t,) in zip(self.keys, got, strict=True))
        self.keys, self.texts, self.size = [], [], 0


class _Rescan(CloudTrailAdapter):
    """The batches :func:`_scanned` re-reads kept records' texts in (never loads a file)."""

    BATCH_BYTES: ClassVar[int] = CloudTrailAdapter.BATCH_BYTES // 16


def _scan_batch(
    db: duckdb.DuckDBPyConnection, paths: list[str], by_path: dict[str, set[int]]
) -> dict[tuple[str, int], str]:
    # A cursor per batch of ``db``: what it registers goes with it.
    con = db.cursor()
    try:
        ctxs = []
        for i, path in enumerate(paths):
            sample = read_sample(Path(path), 8)
            if sample.codec is None:  # a BOM / UTF-16 file is read from a converted copy: reload
                ctxs.append(LoadContext(con, Path(path), i, "cloudtrail-records", sample.gzipped))
        if not ctxs:
            return {}
        table, _refused = bulk_read(con, ctxs)
        if table is None:
            return {}
        names = {c.file_id: str(c.path) for c in ctxs}
        con.register("_kt_scope_staged", table)
        got = con.execute(
            f"SELECT file_id, record_no, {mask_stored_sql('rec')} FROM _kt_scope_staged"
            " WHERE list_contains($want[file_id + 1], record_no)",
            # indexed by file_id (the position in ``paths``, converted files included)
            {"want": [sorted(by_path[p]) for p in paths]},
        ).fetchall()
    finally:
        con.close()
    return {(names[f], int(n)): str(t) for f, n, t in got}


def _reloaded(files: list[str], ct: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Record texts of ``files`` loaded whole by the unchanged adapters."""
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-raw-") as tmp:
        full = project(Path(tmp) / "raw.duckdb", files, narrow=False)
        try:
            con = full.store.con
            con.execute("CREATE TEMP TABLE _kt_scope_want (uid VARCHAR, path VARCHAR)")
            con.executemany(
                "INSERT INTO _kt_scope_want VALUES (?, ?)",
                [[r["event_uid"], r["path"]] for r in ct],
            )
            got = con.execute(
                """SELECT e.event_uid, e.raw FROM events e JOIN evidence v ON v.file_id = e.file_id
                   JOIN _kt_scope_want w ON w.uid = e.event_uid AND w.path = v.path"""
            ).fetchall()
        finally:
            full.store.close()
    raw = dict(got)
    return {(r["path"], r["record_no"]): raw[r["event_uid"]] for r in ct if r["event_uid"] in raw}


def _load_order(row: dict[str, Any]) -> tuple[int, int]:
    return (int(row.get("file_id") or 0), int(row.get("record_no") or 0))


def locate(f: Path, uids: list[str]) -> list[dict[str, Any]]:
    """:data:`LOCATIONS` of ``uids`` in one file loaded by the unchanged adapters (a scratch case
    next to it): what a Spark task copies out of a file it holds."""
    proj = project(f.parent / "scratch.duckdb", [f], narrow=False)
    try:
        proj.store.con.execute("CREATE TABLE _kt_scope_want (event_uid VARCHAR)")
        proj.store.con.executemany("INSERT INTO _kt_scope_want VALUES (?)", [[u] for u in uids])
        sql = LOCATIONS.format(selection="SELECT event_uid FROM _kt_scope_want")
        cur = proj.store.con.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        proj.store.close()
