"""The Vault adapter writes its rejects in batches (``LoadContext.reject_many``): the rows must be
those that one ``LoadContext.reject`` per bad record writes, masking and the 512-character excerpt
included (docs/performance.md, "Vault audit entries per CPU second": 16 ms a reject before)."""

from __future__ import annotations

from pathlib import Path

import pytest

import keytrail.ingest.vault.adapter as vault_adapter
from keytrail.ingest.base import LoadContext
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


@pytest.mark.parametrize("batch", [3, vault_adapter.BATCH_EVENTS])
def test_batched_rejects_equal_one_reject_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(vault_adapter, "BATCH_EVENTS", batch)  # flushed mid-file too
    lines = []
    for i in range(12):
        lines += [_GOOD % i, _BAD[i % len(_BAD)]]
    data = b"\n".join(lines) + b"\n"
    log = tmp_path / "audit.log"
    log.write_bytes(data)

    got = CaseStore.open(tmp_path / "got.duckdb", read_only=False, create=True)
    ctx = LoadContext(got.con, log, 1, "vault-audit-jsonl", False)
    VaultAdapter().load(ctx)

    want = CaseStore.open(tmp_path / "want.duckdb", read_only=False, create=True)
    ref = LoadContext(want.con, log, 1, "vault-audit-jsonl", False)
    for rec in iter_records(data):
        if rec.kind == "bad":
            ref.reject(
                rec.reason or "", record_no=rec.line_no, byte_offset=rec.offset, excerpt=rec.raw
            )

    rows = _rows(got.con)
    assert rows == _rows(want.con)
    assert ctx.rejected == ref.rejected == len(rows) == 12
    assert [r[1] for r in rows] == list(range(2, 25, 2))  # every bad line, where it was
    text = " ".join(str(r[4]) for r in rows)
    assert "hunter2" not in text and "CAESIJ1xyz" not in text and "s3cr3t" not in text
    assert max(len(str(r[4])) for r in rows) == 512
    got.con.close()
    want.con.close()
