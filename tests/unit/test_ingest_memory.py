"""Memory bounds of the load path that no row count shows.

Why: a Vault audit log is one file of many GB, loaded in one transaction (the runner's unit of
kill -9 safety). Two things made the peak RSS grow with the file: DuckDB kept every Arrow table
registered for an INSERT alive until the transaction ended (with the record text it borrows
zero-copy), and orjson hands back each JSON text in a buffer of at least 4 KiB. These tests pin
both with exact counts (reference counts, traced bytes), not timings or RSS.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa

from keytrail.ingest.base import LoadContext
from keytrail.ingest.vault.mint import dumps
from keytrail.store.case import CaseStore


def test_insert_releases_the_batch_inside_the_transaction(tmp_path: Path) -> None:
    st = CaseStore.open(tmp_path / "c.duckdb", read_only=False, create=True)
    ctx = LoadContext(st.con, tmp_path / "x.log", 1, "vault-audit-jsonl", False)
    texts = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 100) for i in range(1000)]
    data = b"".join(texts)
    offsets = pa.array([sum(map(len, texts[:i])) for i in range(len(texts) + 1)], pa.int32())
    before = sys.getrefcount(data)
    st.con.execute("BEGIN")
    raw = pa.StringArray.from_buffers(len(texts), offsets.buffers()[1], pa.py_buffer(data))
    uids = pa.array([f"e{i}" for i in range(len(texts))], pa.string())
    batch = pa.table({"event_uid": uids, "source": pa.array(["vault"] * len(texts)), "raw": raw})
    assert ctx.insert("events", batch) == len(texts)
    del batch, raw
    # DuckDB holds no reference to the appended batch (and so to the text it borrowed) while the
    # transaction is still open: a file of any size holds one batch at a time, not all of them.
    assert sys.getrefcount(data) == before
    st.con.execute("COMMIT")
    got = st.con.execute("SELECT count(*), max(raw) FROM events").fetchone()
    assert got == (len(texts), texts[-1].decode())
    st.con.close()


def test_vault_json_is_held_at_its_own_size() -> None:
    obj = {"entry": "pair", "mount_type": "approle", "policies": ["default", "ci"]}
    text = dumps(obj)
    assert text == b'{"entry":"pair","mount_type":"approle","policies":["default","ci"]}'
    tracemalloc.start()
    try:
        held = [dumps(obj) for _ in range(1000)]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(held) == 1000
    # ~100 bytes each (object header + text) plus the list; orjson's own buffers are >= 4 KiB
    assert size < 1000 * 400
