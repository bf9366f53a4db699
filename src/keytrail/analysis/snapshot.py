"""The analysis snapshot: the credential ranking and the findings, stored in the case at ingest.

Ranking every credential and running every finding rule take seconds on a million-event
case, and the explorer's first screen needs both (top credentials, findings per level).
The answers only change when the evidence does, so ``keytrail ingest`` computes them
once, right after the ingest committed, into ``rank_cache`` and ``finding_cache``.
:func:`keytrail.analysis.answers.rank_credentials` and
:func:`keytrail.analysis.answers.run_findings` read them back when asked the default
question (no time window, default confidence, default configuration) and compute live
otherwise, so every front end gets the same answer either way.

A snapshot is used only when its fingerprint matches: a hash of the analysis code
(every module of ``keytrail.analysis`` and the graph model) and, for findings, of the
effective configuration. A new keytrail version, a changed ``findings.toml`` or
``KEYTRAIL_CONFIG`` therefore never serves stale results; an old case without a
snapshot is analysed live. The fingerprint is cleared before the tables are rebuilt, so
an interrupted refresh leaves the case on the live path, never half-cached.

The findings' read of every CloudTrail record's JSON is kept apart, in ``raw_pass_cache``
(:mod:`keytrail.analysis.findings.rawcache`): it outlives an ingest, so the refresh after a
second ingest reads only the new files' records.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from keytrail.analysis.code_hash import code_fingerprint
from keytrail.analysis.finding_score import Graph, finding_values
from keytrail.analysis.findings import Finding, zero_counts
from keytrail.analysis.findings.catalog import RULES
from keytrail.analysis.findings.rawpass import prefill
from keytrail.analysis.findings.run import live_findings
from keytrail.analysis.rank_score import findings_scores, reach_points
from keytrail.analysis.ranking import rank_query_columns, rank_query_table, term_inputs
from keytrail.config import load_config
from keytrail.errors import KeytrailError
from keytrail.levels import Level

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore

RANK_KEY = "snapshot.rank"
FINDINGS_KEY = "snapshot.findings"

_FINDING_COLUMNS = (
    "rule",
    "title",
    "level",
    "frameworks",
    "subjects",
    "evidence",
    "evidence_uids",
    "evidence_count",
    "description",
    "recommendation",
    "impact",
    "first_seen",
    "last_seen",
    "details",
)


def findings_fingerprint(cfg: FindingsConfig) -> str:
    """The code fingerprint plus the effective configuration (where it came from does not matter)
    and the content of the rule files it loads (Sigma and keytrail rule folders)."""
    from keytrail.analysis.rulefiles import rules_fingerprint
    from keytrail.analysis.sigma.rules import dir_fingerprint

    text = repr(dataclasses.replace(cfg, source="")) + dir_fingerprint(cfg.sigma.rules_dir or None)
    text += rules_fingerprint(cfg.nhi_attack.rules_dir or None)
    return hashlib.sha256((code_fingerprint() + text).encode()).hexdigest()[:24]


def _valid(store: CaseStore, key: str, fingerprint: str) -> bool:
    return bool(store.scalar("SELECT value FROM case_meta WHERE key = ?", [key]) == fingerprint)


def status(store: CaseStore) -> str:
    """``current`` (both parts match this keytrail), ``stale`` (written by other analysis code
    or another configuration: answers are computed live until ``keytrail snapshot CASE``) or
    ``none`` (never stored, or dropped by an ingest that did not rebuild it)."""
    rank = store.scalar("SELECT value FROM case_meta WHERE key = ?", [RANK_KEY])
    found = store.scalar("SELECT value FROM case_meta WHERE key = ?", [FINDINGS_KEY])
    if rank is None and found is None:
        return "none"
    try:
        cfg = load_config(None, rule_ids=RULES)
    except (
        KeytrailError
    ):  # an invalid KEYTRAIL_CONFIG: `keytrail findings` says why; info must not fail
        return "stale"
    ok = rank == code_fingerprint() and found == findings_fingerprint(cfg)
    return "current" if ok else "stale"


# -- reading -------------------------------------------------------------------------------


#: What a ranking filter searches in a stored row, lower-cased: the credential's id, kind,
#: holder class, origin, principal, agents and humans, the non-empty ones joined by a space
#: (lists by ``", "``). The explorer's in-memory filter joins the same fields the same way.
RANK_HAYSTACK = (
    "lower(concat_ws(' ', nullif(credential_id, ''), nullif(kind, ''), nullif(holder, ''), "
    "nullif(origin, ''), nullif(principal_uid, ''), nullif(array_to_string(agents, ', '), ''), "
    "nullif(array_to_string(humans, ', '), '')))"
)


_RANK_ROWS = "SELECT * EXCLUDE (score) FROM rank_cache"
_RANK_ORDER = " ORDER BY score DESC, events DESC, credential_id"


def rank_rows(store: CaseStore, limit: int | None = None) -> list[dict[str, Any]] | None:
    """Stored ranking rows, highest score first, or ``None`` when there is no valid snapshot."""
    if not _valid(store, RANK_KEY, code_fingerprint()):
        return None
    sql = _RANK_ROWS + _RANK_ORDER
    return store.query(sql + (f" LIMIT {int(limit)}" if limit is not None else ""))


def rank_page(
    store: CaseStore, *, offset: int, limit: int, contains: str | None = None
) -> tuple[list[dict[str, Any]], int] | None:
    """Rows ``offset`` to ``offset + limit`` of :func:`rank_rows`, only those whose
    :data:`RANK_HAYSTACK` holds ``contains`` (any case, taken literally), and how many such rows
    there are; ``None`` when there is no valid snapshot.

    A filtered page and its count are one query (the count a window over the kept rows: a
    third less than two scans that each build every row's haystack, measured at 1M)."""
    if not _valid(store, RANK_KEY, code_fingerprint()):
        return None
    page = f" LIMIT {int(limit)} OFFSET {int(offset)}"
    if not contains:
        total = int(store.scalar("SELECT count(*) FROM rank_cache") or 0)
        return store.query(_RANK_ROWS + _RANK_ORDER + page), total
    where = f" WHERE contains({RANK_HAYSTACK}, lower(?))"
    rows = store.query(
        "SELECT * EXCLUDE (score), count(*) OVER () AS _kt_matched FROM rank_cache"
        + where
        + _RANK_ORDER
        + page,
        [contains],
    )
    if not rows:  # none kept, or a page past the last: count them alone
        return [], int(store.scalar("SELECT count(*) FROM rank_cache" + where, [contains]) or 0)
    total = int(rows[0]["_kt_matched"])
    for r in rows:
        del r["_kt_matched"]
    return rows, total


def rank_row(store: CaseStore, credential_id: str) -> dict[str, Any] | None:
    """One credential's stored ranking row (``None``: no valid snapshot or not in it)."""
    if not _valid(store, RANK_KEY, code_fingerprint()):
        return None
    rows = store.query(
        "SELECT * EXCLUDE (score) FROM rank_cache WHERE credential_id = ?", [credential_id]
    )
    return rows[0] if rows else None


def findings(store: CaseStore, cfg: FindingsConfig) -> list[Finding] | None:
    """Stored findings in their stored order, or ``None`` when no snapshot matches ``cfg``."""
    if not _valid(store, FINDINGS_KEY, findings_fingerprint(cfg)):
        return None
    rows = store.query(f"SELECT {', '.join(_FINDING_COLUMNS)} FROM finding_cache ORDER BY ord")
    return [
        Finding(
            rule=r["rule"],
            title=r["title"],
            level=Level(r["level"]),
            frameworks=tuple(r["frameworks"]),
            subjects=tuple(r["subjects"]),
            evidence=tuple(r["evidence"]),
            description=r["description"],
            recommendation=r["recommendation"],
            impact=r["impact"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            evidence_uids=tuple(r["evidence_uids"]),
            evidence_count=int(r["evidence_count"]),
            details=json.loads(r["details"]) if r["details"] else {},
        )
        for r in rows
    ]


def level_counts(store: CaseStore, cfg: FindingsConfig) -> dict[str, int] | None:
    """``{level: n}`` from the stored findings, highest level first, or ``None`` without a snapshot."""
    if not _valid(store, FINDINGS_KEY, findings_fingerprint(cfg)):
        return None
    counts = zero_counts()
    for r in store.query("SELECT level, count(*) AS n FROM finding_cache GROUP BY level"):
        counts[Level(r["level"]).label] = int(r["n"])
    return counts


# -- writing -------------------------------------------------------------------------------


@dataclass
class SnapshotSummary:
    credentials: int
    findings: int
    seconds: float
    #: True when the stored snapshot was current and kept as it was (nothing recomputed)
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "credentials": self.credentials,
            "findings": self.findings,
            "seconds": round(self.seconds, 2),
            "kept": self.kept,
        }


def refresh_case(
    path: str | Path, keep_current: bool = False, computing: Callable[[], None] | None = None
) -> SnapshotSummary | None:
    """Open the case for writing and :func:`refresh` it; ``None`` when its last ingest did not finish.

    With ``keep_current`` a snapshot whose status is ``current`` is kept as stored: every ingest
    that changes the case drops the snapshot's fingerprints (the graph derive does), so a current
    one after an ingest means the ingest added nothing (the files were all in the case already),
    and recomputing it would cost the whole case's ranking and findings (15 s at 1M) for the same
    rows. ``computing`` is called when the snapshot is about to be recomputed (a progress line).
    """
    from keytrail.store.case import CaseStore

    start = time.monotonic()
    with CaseStore.open(path, read_only=False) as store:
        if store.meta("finalized") != "true":
            return None
        if keep_current and status(store) == "current":
            return SnapshotSummary(
                int(store.scalar("SELECT count(*) FROM rank_cache")),
                int(store.scalar("SELECT count(*) FROM finding_cache")),
                time.monotonic() - start,
                kept=True,
            )
        if computing is not None:
            computing()
        return refresh(store)


def refresh(store: CaseStore) -> SnapshotSummary:
    """Recompute and store the ranking and the default findings (``store`` opened for writing).

    Runs within the writer's DuckDB memory limit: at 1M events it takes the same time under
    1 GB as under 2 GB (34 s), and peaks at 1.3 GiB RSS instead of 2.3 GiB.

    With half of DuckDB's threads per query (:func:`_fewer_threads`): the snapshot runs its
    queries on several cursors at once, so the cores are kept busy by queries side by side,
    not by splitting each query (which costs a query's parallel work more CPU in all)."""
    with _fewer_threads(store.con), _no_cycle_collector():
        return _refresh(store)


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Python's cycle collector off for the block (as it was after it). The refresh makes
    millions of short-lived objects (rows fetched, findings, score columns) and no cycles that
    matter: at 1M events the collector ran 965 times for 0.43 CPU-s, each time holding the GIL
    that the other threads' Python waits for; everything is freed by reference counting, and
    what is left for the collector once it is on again is collected then."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def _fewer_threads(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB's ``threads`` (one setting for every cursor of the case) halved, at least 1, for
    the block; restored after it. At 1M events on 2 cores, one thread per query beside each
    other took 10.2-11.1 CPU-s for a later snapshot against 12.0-12.8 with two (in-process
    pairs, same rows)."""
    row = con.execute("SELECT current_setting('threads')").fetchone()
    threads = int(row[0]) if row else 1
    con.execute(f"SET threads = {max(1, threads // 2)}")
    try:
        yield
    finally:
        con.execute(f"SET threads = {threads}")


def _refresh(store: CaseStore) -> SnapshotSummary:
    start = time.monotonic()
    con = store.con
    unchanged = _ranking_unchanged(store)  # before the fingerprints are deleted
    con.execute("DELETE FROM case_meta WHERE key IN (?, ?)", [RANK_KEY, FINDINGS_KEY])
    con.execute("DELETE FROM finding_cache")  # rank_cache's rows: in the write (read back first)

    # The ranking's findings term reads the findings (the findings never read the ranking), but
    # its query does not: it runs on its own cursor beside them, as do the reads of the graph the
    # findings term and the holder classes need (ranking.term_inputs), every score term's points
    # but the findings term's (rank_score.reach_points), and the conversion of the Sigma rules
    # followed by the raw pass's cache brought up to date (rawpass.prefill: the read of every
    # record's JSON on a first snapshot; the two families that read it run last). The families
    # themselves run on two cursors at once (findings.run: beside). Each side's answer is what
    # it is alone. The pool is left (every task done) before the write.
    cfg = load_config(None, rule_ids=RULES)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="kt-snapshot") as pool:
        raw = pool.submit(prefill, store, cfg)  # an error: met again by the Sigma family
        ranked = pool.submit(_ranking, store, unchanged)
        read = pool.submit(term_inputs, store)

        def _reach() -> dict[str, list[float]]:
            _arrow_ready()
            return reach_points(ranked.result())

        reach = pool.submit(_reach)
        found = live_findings(
            store, cfg, keep_raw_pass=True, raw_ready=raw.result, beside=True, raw_done=raw.done
        )
        table = _rank_table(store, ranked.result(), reach.result(), found, read.result())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM rank_cache")
        if table.num_rows:
            con.register("_kt_rank_arrow", table)
            con.execute("INSERT INTO rank_cache BY NAME SELECT * FROM _kt_rank_arrow")
            con.unregister("_kt_rank_arrow")
        if found:
            con.register("_kt_finding_arrow", _finding_table(found))
            con.execute("INSERT INTO finding_cache BY NAME SELECT * FROM _kt_finding_arrow")
            con.unregister("_kt_finding_arrow")
        store.set_meta(RANK_KEY, code_fingerprint())
        store.set_meta(FINDINGS_KEY, findings_fingerprint(cfg))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return SnapshotSummary(table.num_rows, len(found), time.monotonic() - start)


def _ranking(store: CaseStore, unchanged: bool) -> pa.Table:
    """The ranking query's table: read back from ``rank_cache`` when :func:`_ranking_unchanged`
    said the query would return its rows again, else the query's own."""
    table = _stored_ranking(store) if unchanged else None
    return rank_query_table(store) if table is None else table


def _ranking_unchanged(store: CaseStore) -> bool:
    """Whether the ranking query would return the stored ``rank_cache`` rows again: the stored
    ranking is current (``snapshot.rank``: this analysis code) and no file came into the case
    since (the derive of every ingest drops the snapshot's fingerprints; an ingest without one
    drops ``derived.through_file_id``, so that it equals the last file means the last derive,
    before this snapshot, covered every file). The same trust :func:`rank_rows` puts in the rows
    when it answers from them. A repeat on an unchanged case (a responder re-running ``keytrail
    snapshot``), or the refresh after a configuration change, so skips the ranking query (1.5
    CPU-s at 1M); the findings, and every score term, are computed again."""
    from keytrail.ingest.finalize import THROUGH_KEY  # the derive modules: only when writing

    if not _valid(store, RANK_KEY, code_fingerprint()):
        return False
    last = store.scalar("SELECT coalesce(max(file_id), 0) FROM evidence")
    return store.meta(THROUGH_KEY) == str(last)


def _stored_ranking(store: CaseStore) -> pa.Table | None:
    """The ranking query's columns of ``rank_cache`` as the query's types (``None``: the table of
    an older case lacks one). Read on the pool beside the context tables; the refresh deletes
    the rows only in its write."""
    cur = store.cursor()  # one cursor binds the query and reads the rows
    try:  # in any order, as the query's: the table is aligned with columns made from its own
        cols = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in rank_query_columns(cur))
        table: pa.Table = cur.sql(f"SELECT {cols} FROM rank_cache").to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        cur.close()
    return table


def _arrow_ready() -> None:
    """Make one Arrow array from a Python list: pyarrow imports pandas (when installed) the
    first time it does (0.2-0.3 CPU-s of imports holding the GIL). Done on the thread that waits
    for the ranking query, beside the queries, not where it fell before: in the drafts' resolve
    (``Context.register_ids``) at the end of the families, the snapshot's serial tail."""
    pa.array([0.0], pa.float64())


def _rank_table(
    store: CaseStore,
    ranked: pa.Table,
    reach: dict[str, list[float]],
    found: list[Finding],
    read: tuple[Graph, dict[str, str]],
) -> pa.Table:
    """The ranking query's table with the columns :func:`with_findings` adds to its rows
    (``findings``, ``holder``) and the score, built a column at a time: every term's points but
    the findings term's were worked out beside the findings run (``reach``)."""
    graph, held = read
    values = finding_values(store, found, graph)
    ids = ranked.column("credential_id").to_pylist()
    points = [values.get(c, 0.0) for c in ids]
    table = ranked.append_column("findings", pa.array(points, pa.float64())).append_column(
        "holder", pa.array([held.get(c) for c in ids], pa.string())
    )
    return table.append_column("score", pa.array(findings_scores(reach, points), pa.float64()))


def _finding_table(found: list[Finding]) -> pa.Table:
    """The ``finding_cache`` rows of ``found`` in its order, a column at a time (13k findings at
    1M events, after every family is done: the snapshot's last Python step before its write)."""
    lists = ("frameworks", "subjects", "evidence", "evidence_uids")
    cols: dict[str, pa.Array] = {"ord": pa.array(list(range(len(found))))}
    for c in _FINDING_COLUMNS:
        if c in lists:
            continue
        if c == "level":
            cols[c] = pa.array([int(f.level) for f in found])
        elif c == "details":
            cols[c] = pa.array([json.dumps(f.details, sort_keys=True) for f in found])
        else:
            cols[c] = pa.array([getattr(f, c) for f in found])
    for c in lists:
        cols[c] = pa.array([getattr(f, c) for f in found], type=pa.list_(pa.string()))
    return pa.table(cols)
