"""The texts the gate's read ahead keeps for its rounds (:mod:`keytrail.scope.gate`).

A round reads a file kept ahead from its compressed text instead of inflating the file again:
the text must be the one the file gives, byte for byte (non-ASCII too), the rounds must read it
instead of the file, the keeping stops at its budget, and the texts are freed with the rounds.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.adapter import read_document
from keytrail.scope import gate as gate_mod
from keytrail.scope.gate import Gate, search
from keytrail.scope.project import project
from tests.unit.test_scope_gate import ACCT, LEAF, MID, OTHER, _chain_trail, _rec, _write


def _held(trail: Path, seeds: list[str]) -> Gate:
    gate = Gate(seeds, ahead=True)
    con = duckdb.connect()
    for i, p in enumerate(sorted((trail / "AWSLogs" / ACCT).iterdir())):
        gate.hold(LoadContext(con, p, i + 1, "cloudtrail-records", True))
    gate.stop_ahead()
    return gate


def test_the_rounds_search_the_text_kept_ahead(tmp_path: Path) -> None:
    trail = _chain_trail(tmp_path)
    gate = _held(trail, [LEAF])
    con = duckdb.connect()
    for h in gate.held:
        text = read_document(LoadContext(con, h.path, 0, h.format, h.gzipped), 1 << 30)
        assert text is not None and h.kept is not None
        assert gate_mod._unkept(h.kept, h.kept_size)[0].as_py() == text[0].as_py()
    mid = {h.path.name for h in gate.held if MID in gzip.decompress(h.path.read_bytes()).decode()}
    assert mid == {"b-mid-issued.json.gz", "c-leaf-issued.json.gz"}
    for h in gate.held:  # the files are gone: only the kept texts can answer
        h.path.write_bytes(b"not gzip")
    hits = search(con, gate.held, [MID])
    assert {h.path.name for h, hit in zip(gate.held, hits, strict=True) if hit} == mid
    assert all(h.records == 2 for h in gate.held)  # still counted from the first read


def test_a_non_ascii_text_is_kept_byte_for_byte(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    rec = _rec(1, LEAF, params={"bucketName": "d\u00e9p\u00f4t-\u6570\u636e"})
    text = json.dumps({"Records": [rec, _rec(2, OTHER)]}, ensure_ascii=False)
    _write(trail, "a-utf8", [], text=text)
    gate = _held(trail, [LEAF])
    (h,) = gate.held
    assert h.kept is not None and h.kept_size == len(text.encode())
    assert gate_mod._unkept(h.kept, h.kept_size)[0].as_py() == text
    h.path.write_bytes(b"not gzip")
    assert search(duckdb.connect(), [h], ["t-\u6570", OTHER]) == [True]
    assert search(duckdb.connect(), [h], ["AKIANOTTHERE00000000"]) == [False]


def test_the_keeping_stops_at_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_mod, "KEEP_BYTES", 1)  # the first file's text passes it
    gate = _held(_chain_trail(tmp_path), [LEAF])
    assert [h.kept is not None for h in gate.held] == [True] + [False] * (len(gate.held) - 1)


def test_the_kept_texts_go_with_the_rounds(tmp_path: Path) -> None:
    gate = Gate([LEAF], ahead=True)
    proj = project(tmp_path / "scratch.duckdb", [_chain_trail(tmp_path)], gate=gate)
    proj.store.close()
    assert gate.rounds == 3 and 0 < gate.as_dict()["files_opened"] < len(gate.held)
    assert all(h.kept is None and h.kept_size == 0 for h in gate.held)
