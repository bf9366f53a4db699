"""A scope's Vault and agent files loaded beside its CloudTrail pass (:mod:`keytrail.scope.side`).

The side ingest must give the scratch case the rows, file ids and per-file results the serial
load gives (``side=False``): with Vault and agent files planned between CloudTrail files, a Vault
request and its response in two files (paired by file id), rejected lines, a duplicate file, a
file the Vault adapter fails on; and when the side ingest itself fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.base import LoadContext
from keytrail.ingest.vault.adapter import VaultAdapter
from keytrail.scope import side as side_mod
from keytrail.scope.project import project

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"
INVENTORY = SAMPLE / "inventory.toml"
#: The tables a projection writes, each row as text, in an order that tells rows apart.
_TABLES = {
    "evidence": "SELECT * EXCLUDE (ingested_at) FROM evidence ORDER BY file_id",
    "events": "SELECT * FROM events ORDER BY file_id, record_no, event_uid",
    "credential_issues": "SELECT * FROM credential_issues ORDER BY ALL",
    "rejects": "SELECT * FROM rejects ORDER BY ALL",
    "inventory_agents": "SELECT * FROM inventory_agents ORDER BY ALL",
}


def _interleaved(root: Path) -> Path:
    """The sample trail with Vault and agent folders between CloudTrail folders (name order),
    the Vault log cut in two files (requests in one, some responses in the next), junk lines
    (rejects) and a copy of one agent file (already ingested)."""
    ct = sorted((SAMPLE / "AWSLogs").rglob("*.json.gz"))
    half = len(ct) // 2
    for i, f in enumerate(ct):
        dest = root / ("b_ct" if i < half else "e_ct") / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    lines = (SAMPLE / "vault" / "vault_audit.log").read_bytes().splitlines(keepends=True)
    cut = len(lines) // 2 + 1  # odd: a request whose response is the first line of the next file
    (root / "a_vault").mkdir()
    (root / "a_vault" / "audit-1.log").write_bytes(b"".join(lines[:cut]))
    (root / "c_vault").mkdir()
    (root / "c_vault" / "audit-2.log").write_bytes(
        b"".join(lines[cut:]) + b'{"type": "response", "broken\n' + b"not json at all\n"
    )
    shutil.copytree(SAMPLE / "agents", root / "d_agents")
    (root / "f_dup").mkdir()
    shutil.copy(SAMPLE / "agents" / "otel" / "traces.jsonl", root / "f_dup" / "traces.jsonl")
    (root / "g_vault").mkdir()
    (root / "g_vault" / "broken.log").write_bytes(b"".join(lines[:10]))
    return root


def _rows(tmp: Path, data: Path, name: str, *, side: bool) -> dict[str, Any]:
    proj = project(tmp / f"{name}.duckdb", [data], inventory=[INVENTORY], side=side)
    try:
        con = proj.store.con
        got: dict[str, Any] = {t: con.execute(q).fetchall() for t, q in _TABLES.items()}
    finally:
        proj.store.close()
    got["files"] = proj.inputs()
    return got


@pytest.fixture
def broken_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Vault adapter fails on files named ``broken.log`` (in either ingest, any thread)."""
    load = VaultAdapter.load

    def failing(self: VaultAdapter, ctx: LoadContext) -> None:
        if Path(ctx.path).name == "broken.log":
            raise ValueError("broken on purpose")
        load(self, ctx)

    monkeypatch.setattr(VaultAdapter, "load", failing)


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file ids the main ingest copied from the side case (proves the side path ran)."""
    seen: list[int] = []
    copy = side_mod._copy

    def counted(ctx: LoadContext, read: duckdb.DuckDBPyConnection, name: str) -> None:
        seen.append(ctx.file_id)
        copy(ctx, read, name)

    monkeypatch.setattr(side_mod, "_copy", counted)
    return seen


def test_side_load_gives_the_serial_rows(
    tmp_path: Path, broken_vault: None, copies: list[int]
) -> None:
    data = _interleaved(tmp_path / "trail")
    serial = _rows(tmp_path, data, "serial", side=False)
    assert not copies
    beside = _rows(tmp_path, data, "side", side=True)
    assert copies, "the side case was not used: the comparison would be vacuous"
    by_status = {(Path(f["path"]).name, f["status"]) for f in serial["files"]}
    assert ("broken.log", "failed") in by_status
    assert ("traces.jsonl", "already-ingested") in by_status
    assert serial["rejects"], "no rejected line: the junk lines were not read"
    paired = [e for e in serial["events"] if e[1] == "vault" and "request_file_id" in str(e)]
    assert paired, "no Vault pair across files"
    for table, rows in serial.items():
        assert beside[table] == rows, table
    failed = next(f for f in beside["files"] if f["status"] == "failed")
    assert failed["note"] == "vault adapter failed on this file: ValueError: broken on purpose"


def test_a_failed_side_load_falls_back_to_the_serial_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copies: list[int]
) -> None:
    def fail(self: side_mod.SideLoad) -> None:
        raise OSError("no space left for the side case")

    monkeypatch.setattr(side_mod.SideLoad, "_run", fail)
    serial = _rows(tmp_path, SAMPLE, "serial", side=False)
    beside = _rows(tmp_path, SAMPLE, "side", side=True)
    assert not copies
    assert beside == serial
    assert any(e[1] == "vault" for e in beside["events"])


def test_a_stopped_side_load_ends_at_its_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope that fails or is interrupted stops its side ingest between batches (it does not
    load the rest of the Vault and agent files first); its rows are then not used."""
    import threading

    entered, go = threading.Event(), threading.Event()
    real = side_mod.ingest

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        go.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(side_mod, "ingest", held)
    load = side_mod.SideLoad(tmp_path / "side.duckdb", [SAMPLE], [INVENTORY])
    assert entered.wait(30)
    load._stop.set()  # what close(stop=True) does first, before the ingest's first batch
    go.set()
    assert load.ready() is None
    assert type(load._future.exception()).__name__ == "_Stopped"
    load.close(stop=True)
    with duckdb.connect(str(tmp_path / "side.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_the_worker_and_the_main_ingest_sniff_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keytrail.ingest.runner as runner

    sniffed: list[Path] = []
    real = runner.sniff

    def counted(sample: Any) -> Any:
        sniffed.append(sample.path)
        return real(sample)

    monkeypatch.setattr(runner, "sniff", counted)
    proj = project(tmp_path / "p.duckdb", [SAMPLE], inventory=[INVENTORY], side=True)
    proj.store.close()
    assert sniffed and sorted(sniffed) == sorted(set(sniffed))
    assert len(sniffed) == len(proj.inputs()) - 1  # the inventory is not sniffed
