"""The gate's reads ahead (:mod:`keytrail.scope.gate`, ``Gate(..., ahead=True)``).

Reading the held files beside the runner, and searching them there for the needles known before
any row is loaded, must open the same files in the same rounds for the same reasons as the
rounds alone; and a round must not search again a needle read ahead (that is the time saved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.adapter import read_document
from keytrail.scope import gate as gate_mod
from keytrail.scope.gate import ALTERNATION_FROM, Gate
from keytrail.scope.needles import early
from keytrail.scope.project import project
from tests.unit.test_scope_gate import (
    ACCT,
    LEAF,
    MID,
    OTHER,
    ROOT,
    _chain_trail,
    _rec,
    _write,
)

BOB = f"arn:aws:iam::{ACCT}:user/bob"


def _trail(tmp: Path) -> Path:
    """The chain trail, with a file that names the IAM user ``bob`` by name only."""
    trail = _chain_trail(tmp)
    create = _rec(
        61,
        ROOT,
        "CreateAccessKey",
        source="iam.amazonaws.com",
        params={"userName": "bob"},
        response={"accessKey": {"accessKeyId": "AKIABOBUNUSED0000001", "userName": "bob"}},
    )
    used = _rec(60, "AKIABOBUSED000000001")
    used["userIdentity"] |= {"arn": BOB, "userName": "bob"}
    _write(trail, "i-bob-uses", [used])
    _write(trail, "j-bob-key", [create, _rec(62, OTHER)])
    return trail


def _gated(
    tmp: Path, trail: Path, seeds: list[str], ahead: bool
) -> tuple[dict[str, Any], list[tuple[Any, ...]], Gate]:
    gate = Gate(seeds, ahead=ahead)
    proj = project(tmp / f"scratch-{ahead}.duckdb", [trail], gate=gate)
    proj.store.close()
    files = [
        (h.file_id, h.path.name, h.records, h.escaped, h.slashed, h.opened, h.why)
        for h in gate.held
    ]
    return gate.as_dict(), files, gate


@pytest.mark.parametrize("seeds", [[LEAF], [MID], [ROOT, OTHER], [BOB]])
def test_reading_ahead_opens_what_the_rounds_alone_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeds: list[str]
) -> None:
    trail = _trail(tmp_path)
    searched: list[list[str]] = []
    search = gate_mod.search

    def spy(con: Any, files: Any, new: list[str], workers: int = 2) -> list[bool]:
        searched.append(list(new))
        return search(con, files, new, workers)

    monkeypatch.setattr(gate_mod, "search", spy)
    alone = _gated(tmp_path, trail, seeds, False)
    searched.clear()
    ahead = _gated(tmp_path, trail, seeds, True)
    assert ahead[:2] == alone[:2]
    assert alone[0]["files_opened"] < alone[0]["files_gated"]  # the gate held files back
    read_ahead = early(seeds, ALTERNATION_FROM)
    assert read_ahead >= set(seeds)
    # the rounds searched none of the needles read ahead
    assert not any(read_ahead.intersection(s) for s in searched)
    gate = ahead[2]
    con = duckdb.connect()
    for h in gate.held:  # the hits read ahead are the files' own
        text = read_document(LoadContext(con, h.path, 0, h.format, h.gzipped), 1 << 30)
        assert text is not None
        assert h.hits == {n for n in read_ahead if n in text[0].as_py()}


def test_the_needles_read_ahead() -> None:
    assert early([LEAF], ALTERNATION_FROM) == {LEAF}
    assert early([BOB, ""], ALTERNATION_FROM) == {BOB, "bob"}
    assert early([BOB, 'a"b'], ALTERNATION_FROM) == set()  # escaped in JSON: the whole path
    many = [f"AKIAMANY{i:012d}" for i in range(ALTERNATION_FROM)]
    assert early(many, ALTERNATION_FROM) == set()  # the rounds' one alternation is cheaper


def test_the_reads_ahead_end_with_the_runner(tmp_path: Path) -> None:
    """Every held file is read by the time :meth:`Gate.stop_ahead` returns (the rounds need
    its count and hits), and stopping twice is harmless."""
    trail = _chain_trail(tmp_path)
    gate = Gate([LEAF], ahead=True)
    con = duckdb.connect()
    paths = sorted((trail / "AWSLogs" / ACCT).iterdir())
    for i, p in enumerate(paths):
        gate.hold(LoadContext(con, p, i + 1, "cloudtrail-records", True))
    gate.stop_ahead()
    gate.stop_ahead()
    assert [h.records for h in gate.held] == [2] * len(paths)
    held = {h.path.name for h in gate.held if h.hits}
    assert held == {"c-leaf-issued.json.gz", "d-leaf-uses.json.gz"}
