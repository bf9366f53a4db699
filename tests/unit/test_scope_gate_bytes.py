"""The gate's later rounds search a file's bytes, not a DuckDB query (`keytrail.scope.gate.search`).

A file read once (counted, escapes checked) is searched in a later round for the new needles
over its inflated bytes (``Finder``), not by a DuckDB query: it must find exactly what
DuckDB's ``contains`` finds (ASCII and non-ASCII text and needles, gzip and plain files), and
a file that became unreadable between rounds is still opened, as the DuckDB path opens it.
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail.scope import gate as gt
from keytrail.scope.gate import ALTERNATION_FROM, Held, search

NEEDLES = ["ASIAHIT0000000000001", "müller-ops", "AKIANEVER00000000001", "ünused"]


def _doc(user: str, key: str) -> bytes:
    rec = {"eventName": "GetObject", "userAgent": user, "userIdentity": {"accessKeyId": key}}
    return json.dumps({"Records": [rec, rec]}, ensure_ascii=False).encode()


def _files(tmp: Path) -> list[Held]:
    """Four files: each needle that is anywhere is in one gzip and one plain file."""
    texts = {
        "a.json.gz": _doc("aws-cli", "ASIAHIT0000000000001"),
        "b.json": _doc("aws-cli", "ASIAHIT0000000000001"),
        "c.json.gz": _doc("müller-ops/1.0", "AKIAOTHER0000000001"),
        "d.json": _doc("boto3 ä", "AKIAOTHER0000000001"),
    }
    held = []
    for i, (name, text) in enumerate(texts.items()):
        path = tmp / name
        path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
        held.append(Held(i + 1, path, "cloudtrail-records", name.endswith(".gz"), 1 << 20))
    return held


def _round_one(held: list[Held]) -> None:
    con = duckdb.connect()
    try:
        assert search(con, held, ["not-in-any-file"]) == [False] * len(held)
    finally:
        con.close()
    assert all(h.searched and h.records == 2 for h in held)


@pytest.mark.parametrize("needle", NEEDLES)
def test_a_later_round_finds_what_duckdb_finds(tmp_path: Path, needle: str) -> None:
    held = _files(tmp_path)
    _round_one(held)
    fresh = [copy.copy(h) for h in held]
    for h in fresh:  # never read: DuckDB's query decides
        h.searched = False
    con = duckdb.connect()
    try:
        later, first = search(con, held, [needle]), search(con, fresh, [needle])
    finally:
        con.close()
    assert later == first
    expected = {
        "ASIAHIT0000000000001": [True, True, False, False],
        "müller-ops": [False, False, True, False],
    }
    assert later == expected.get(needle, [False] * 4)


def test_a_later_round_does_not_query_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read before is searched without DuckDB: a few needles one by one, from
    ``ALTERNATION_FROM`` on all in one Aho-Corasick pass (no longer RE2's pass, a DuckDB query);
    a file read the first time for as many is counted by simdjson, not by DuckDB either."""
    held = _files(tmp_path)
    _round_one(held)
    queried: list[Path] = []
    query = gt._query

    def counted(cur: duckdb.DuckDBPyConnection, h: Held, *a: Any, **k: Any) -> bool:
        queried.append(h.path)
        return query(cur, h, *a, **k)

    monkeypatch.setattr(gt, "_query", counted)
    con = duckdb.connect()
    try:
        assert search(con, held, NEEDLES[:2]) == [True, True, True, False]
        assert queried == []
        many = NEEDLES[:2] + [f"AKIAFILL{i:012d}" for i in range(ALTERNATION_FROM)]
        assert search(con, held, many) == [True, True, True, False]
        fresh = [copy.copy(h) for h in held]
        for h in fresh:
            h.searched = False
        assert search(con, fresh, many) == [True, True, True, False]
        assert queried == []
        assert len(gt.Finder(many).automata) == 1 and len(gt.Finder(NEEDLES).automata) == 4
    finally:
        con.close()


@pytest.mark.parametrize("change", ["not utf-8", "gone", "truncated gzip"])
def test_a_file_unreadable_in_a_later_round_is_opened(tmp_path: Path, change: str) -> None:
    """As the DuckDB path: the round cannot read it, so it is opened (``records`` unknown)."""
    held = _files(tmp_path)
    _round_one(held)
    target = held[2] if change == "truncated gzip" else held[3]
    if change == "not utf-8":
        target.path.write_bytes(_doc("boto3 \xe4", "AKIAOTHER0000000001").replace(b"\xc3", b"\xff"))
    elif change == "gone":
        target.path.unlink()
    else:
        target.path.write_bytes(target.path.read_bytes()[:-20])
    con = duckdb.connect()
    try:
        hits = search(con, held, ["AKIANEVER00000000001"])
    finally:
        con.close()
    assert hits == [h is target for h in held]
    assert target.records is None
    assert gt.why_open(target, True, slash=False) == "the Records count cannot read it"


_ALPHABET = "ab/\\uüA-"


@settings(max_examples=300, deadline=None)
@given(
    st.text(_ALPHABET, max_size=60),
    st.lists(st.text(_ALPHABET, max_size=4), max_size=2 * ALTERNATION_FROM),
)
def test_the_finder_finds_what_bytes_in_finds(text: str, needles: list[str]) -> None:
    """:class:`~keytrail.scope.gate.Finder` (a SIMD search per needle, or one Aho-Corasick pass
    from ``ALTERNATION_FROM`` needles on) holds where any needle's UTF-8 bytes are in the text's,
    ``contains``' rule: overlapping needles, needles at either end, multi-byte characters, the
    empty needle (in every text)."""
    data = text.encode()
    assert gt.Finder(needles)(data) == any(n.encode() in data for n in needles)
    assert gt.Finder(needles)(data[1:]) == any(n.encode() in data[1:] for n in needles)
