"""Rejects are held by ``LoadContext.reject`` and written many to a statement (a statement with
the masking costs about 16 ms before its first row: a hostile file of bad lines took half an hour
of CPU per 100k lines written one by one). The rows must be those one statement per bad record
writes, masking and the 512-character excerpt included, flushed mid-file and at the end, inside
the file's transaction, by every adapter (docs/performance.md, "Vault audit entries per CPU
second")."""

from __future__ import annotations

from pathlib import Path

import pytest

import keytrail.ingest.base as ingest_base
from keytrail.ingest.base import LoadContext
from keytrail.ingest.runner import ingest
from keytrail.ingest.vault.adapter import VaultAdapter
from keytrail.ingest.vault.framing import iter_records
from keytrail.store.case import CaseStore

_GOOD = (
    b'{"time":"2024-01-01T00:00:00Z","type":"request","request":{"id":"r%d","path":"kv/a",'
    b'"operation":"read"}}'
)
_BAD = [
    b"garbage password=hunter2 {",
    b'{"type":"response","auth":{"client_token":"hvs.CAESIJ1xyzABCDEFGHIJKLMNOPQRSTUV"',
    b"prefix " + b"x" * 900 + b' {"token":"s3cr3t-' + b"y" * 700,
    b"bad \xff\xfe utf-8 {",
    b'{"a":1}',
    b"[1,2]",
    b"no json here at all",
]


def _rows(con: object) -> list[tuple[object, ...]]:
    return con.execute(  # type: ignore[attr-defined, no-any-return]
        "SELECT file_id, record_no, byte_offset, reason, excerpt FROM rejects "
        "ORDER BY record_no, byte_offset"
    ).fetchall()


@pytest.mark.parametrize("batch", [3, ingest_base.REJECT_BATCH])
def test_batched_rejects_equal_one_reject_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(ingest_base, "REJECT_BATCH", batch)  # flushed mid-file too
    lines = []
    for i in range(12):
        lines += [_GOOD % i, _BAD[i % len(_BAD)]]
    data = b"\n".join(lines) + b"\n"
    log = tmp_path / "audit.log"
    log.write_bytes(data)

    got = CaseStore.open(tmp_path / "got.duckdb", read_only=False, create=True)
    ctx = LoadContext(got.con, log, 1, "vault-audit-jsonl", False)
    VaultAdapter().load(ctx)
    ctx.flush_rejects()  # the runner's step before it records the file's counts

    want = CaseStore.open(tmp_path / "want.duckdb", read_only=False, create=True)
    ref = LoadContext(want.con, log, 1, "vault-audit-jsonl", False)
    for rec in iter_records(data):
        if rec.kind == "bad":
            ref.reject(
                rec.reason or "", record_no=rec.line_no, byte_offset=rec.offset, excerpt=rec.raw
            )
            ref.flush_rejects()  # one statement per record, as rejects were written before

    rows = _rows(got.con)
    assert rows == _rows(want.con)
    assert ctx.rejected == ref.rejected == len(rows) == 12
    assert [r[1] for r in rows] == list(range(2, 25, 2))  # every bad line, where it was
    text = " ".join(str(r[4]) for r in rows)
    assert "hunter2" not in text and "CAESIJ1xyz" not in text and "s3cr3t" not in text
    assert max(len(str(r[4])) for r in rows) == 512
    got.con.close()
    want.con.close()


def test_held_rejects_are_written_in_order_and_counted_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_base, "REJECT_BATCH", 3)
    store = CaseStore.open(tmp_path / "c.duckdb", read_only=False, create=True)
    ctx = LoadContext(store.con, tmp_path / "x.log", 1, "agent-jsonl", False)
    for i in range(1, 8):
        ctx.reject(f"bad {i}", record_no=i, byte_offset=10 * i, excerpt=b"password=hunter2")
    assert ctx.rejected == 7
    assert [r[1] for r in _rows(store.con)] == [1, 2, 3, 4, 5, 6]  # two statements of three
    ctx.reject("many", record_no=8, byte_offset=80, excerpt="x")
    assert len(_rows(store.con)) == 6  # 7 and 8 held
    ctx.reject("many", record_no=9, byte_offset=90, excerpt=None)  # three held: written in order
    rows = _rows(store.con)
    assert [r[1] for r in rows] == list(range(1, 10)) and ctx.rejected == 9
    assert [r[3] for r in rows] == [f"bad {i}" for i in range(1, 8)] + ["many", "many"]
    assert {r[4] for r in rows[:7]} == {"password=****"} and rows[-1][4] == ""
    ctx.flush_rejects()  # nothing held: nothing written twice
    assert len(_rows(store.con)) == 9
    store.con.close()


def test_a_file_of_bad_lines_loads_with_every_reject(tmp_path: Path) -> None:
    """Through the runner (each adapter's ``load``, then the file's counts and commit): 5,000 bad
    lines in a native agent log, more than one statement's worth, all in
    ``rejects`` with their line numbers, masked, and counted in ``evidence``."""
    n = ingest_base.REJECT_BATCH + 904
    bad = [b'{"event_id": "e%d", "password": "hunter2", ' % i for i in range(n)]
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "agent.jsonl").write_bytes(
        b'{"event_id":"ok","time":"2024-01-01T00:00:00Z","agent_id":"a1","operation":"x"}\n'
        + b"\n".join(bad)
        + b"\n"
    )
    case = tmp_path / "case.duckdb"
    ingest(case, [tmp_path / "ev"])
    store = CaseStore.open(case)
    got = store.con.execute(
        "SELECT e.rejected, count(r.record_no), min(r.record_no), max(r.record_no), "
        "count(DISTINCT r.record_no), bool_or(r.excerpt LIKE '%hunter2%') "
        "FROM evidence e JOIN rejects r USING (file_id) GROUP BY e.rejected"
    ).fetchall()
    assert got == [(n, n, 2, n + 1, n, False)]
    store.con.close()


def test_a_scope_context_copy_writes_its_held_rejects_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope's pass 1 loads through copies of the runner's contexts (``load_through``): what a
    copy holds is written when its load returns, once, and the counts go back."""
    from keytrail.scope.no_raw import NoRawContext, load_through

    monkeypatch.setattr(ingest_base, "REJECT_BATCH", 2)
    store = CaseStore.open(tmp_path / "c.duckdb", read_only=False, create=True)
    ctx = LoadContext(store.con, tmp_path / "x.log", 1, "agent-jsonl", False)

    def load(copies: list[LoadContext]) -> None:
        assert copies[0] is not ctx and copies[0]._pending is not ctx._pending
        for i in range(1, 6):
            copies[0].reject(f"bad {i}", record_no=i, excerpt="e")

    load_through(NoRawContext, [ctx], load)
    assert [r[1] for r in _rows(store.con)] == [1, 2, 3, 4, 5] and ctx.rejected == 5
    ctx.flush_rejects()
    assert len(_rows(store.con)) == 5
    store.con.close()
