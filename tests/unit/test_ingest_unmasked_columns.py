"""``LoadContext.insert`` leaves the masking out only for columns it cannot change.

``unchanged_by_masking`` lets a batch's text column skip ``mask_stored_sql`` (and its per-statement
cost) when no value holds ``:``, ``=`` or a Vault token's dot: the stored rows must be exactly what
the masking would have stored, for any text (docs/performance.md, "Vault audit entries per CPU
second").
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail.ingest.base import LoadContext, unchanged_by_masking
from keytrail.store.case import CaseStore
from keytrail.store.sqltext import mask_stored_sql

VAULT_TOKEN = "hvs.CAESIJ1xyzABCDEFGHIJKLMNOPQRSTUV"
_PIECES = st.sampled_from(
    [
        "token",
        "PASSWORD",
        "client_token",
        '"',
        "\\",
        ":",
        "=",
        ".",
        " ",
        "auth/approle/login",
        "hmac-sha256:",
        "s.",
        "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "€",
        VAULT_TOKEN,
    ]
)
_TEXTS = st.lists(st.one_of(st.none(), st.lists(_PIECES, max_size=8).map("".join)), max_size=6)
_CON = duckdb.connect()


def _masked(texts: list[str | None]) -> list[str | None]:
    rows = _CON.execute(
        f"SELECT i, {mask_stored_sql('t')} FROM (SELECT unnest($v) AS t, "
        "generate_subscripts($v, 1) AS i) ORDER BY i",
        {"v": texts},
    ).fetchall()
    return [r[1] for r in rows]


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_a_column_said_unchanged_is_unchanged_by_the_masking(texts: list[str | None]) -> None:
    table = pa.table({"target": pa.array(texts, pa.string())})
    if "target" in unchanged_by_masking("events", table):
        assert _masked(texts) == texts
    if any(t is not None and (":" in t or "=" in t or VAULT_TOKEN in t) for t in texts):
        assert not unchanged_by_masking("events", table)  # the test is not simply "never"


def test_paths_skip_the_masking_and_secrets_do_not(tmp_path: Path) -> None:
    """Through a real case: what is stored is what the masking stores, whichever way it went."""
    st = CaseStore.open(tmp_path / "c.duckdb", read_only=False, create=True)
    ctx = LoadContext(st.con, tmp_path / "f.log", 1, "vault-audit-jsonl", False)
    clean = ["auth/approle/login", None, "secret/data/app"]
    dirty = ["x password=hunter2", VAULT_TOKEN, None]
    rows = pa.table(
        {
            "event_uid": pa.array(["a", "b", "c"]),
            "source": pa.array(["vault"] * 3),
            "target": pa.array(clean),
            "user_agent": pa.array(dirty),
            "details": pa.array(['{"token":"abc"}', '{"a":1}', None]),
        }
    )
    assert unchanged_by_masking("events", rows) == frozenset({"target"})
    ctx.insert("events", rows)
    got = st.con.execute(
        "SELECT target, user_agent, CAST(details AS VARCHAR) FROM events ORDER BY event_uid"
    ).fetchall()
    assert [g[0] for g in got] == clean
    assert [g[1] for g in got] == _masked(dirty) == ["x password=****", "****", None]
    assert [g[2] for g in got] == _masked(['{"token":"abc"}', '{"a":1}', None])
    assert got[0][2] == '{"token":"****"}'
    st.con.close()
