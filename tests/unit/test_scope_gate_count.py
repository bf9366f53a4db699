"""The gate's first read counts a file's records without DuckDB (`keytrail.scope.gate.search`).

The count is the manifest's ``records`` of every file the gate never opens (chain of custody),
and a file it cannot count is opened. simdjson's count (:func:`~keytrail.scope.gate.records_count`)
must be exactly what DuckDB's ``json_array_length(doc, '$.Records')`` states, or not be used:
on hostile documents (invalid JSON that DuckDB reads or refuses, a byte-order mark, other
shapes, duplicate and nested ``Records`` keys, huge strings, a size past simdjson's saturation)
the gate's answers (hit, count, escapes) equal those of today's DuckDB query.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import pytest
import simdjson

from keytrail.ingest.cloudtrail.adapter import as_document, read_bytes
from keytrail.scope import gate as gt
from keytrail.scope.gate import Held, records_count, search

NEEDLE = "AKIAEXAMPLE000000001"

#: Documents DuckDB reads to a count, reads to none, or refuses; simdjson must agree or pass.
HOSTILE: dict[str, bytes] = {
    "plain": b'{"Records":[{"a":1},{"k":"AKIAEXAMPLE000000001"}]}',
    "pretty": b' \r\n\t{\n  "Records": [\n    {"a": 1}\n  ]\n}\r\n ',
    "empty Records": b'{"Records":[]}',
    "duplicate Records, longer first": b'{"Records":[1,2],"Records":[1]}',
    "duplicate Records, shorter first": b'{"Records":[1],"Records":[1,2,3]}',
    "duplicate Records, object first": b'{"Records":{"a":1},"Records":[1,2]}',
    "Records an object": b'{"Records":{"a":1,"b":2}}',
    "Records a string": b'{"Records":"abc"}',
    "Records null": b'{"Records":null}',
    "no Records": b'{"records":[1]}',
    "top-level array": b'[{"Records":[1]}]',
    "top-level scalar": b"42",
    "nested Records": b'{"x":{"Records":[1,2,3]},"Records":[{"Records":[1,2]}]}',
    "escaped key": b'{"Rec\\u006frds":[1,2]}',
    "trailing commas": b'{"Records":[1,2,],}',
    "NaN and Infinity": b'{"Records":[NaN, Infinity, -Infinity]}',
    "comment": b'{"Records":[1] /* c */}',
    "number past a double": b'{"Records":[1e400, 2]}',
    "integer past 64 bits": b'{"Records":[123456789012345678901234567890]}',
    "tiny number": b'{"Records":[1e-400]}',
    "largest u64": b'{"Records":[18446744073709551615]}',
    "raw tab in a string": b'{"Records":["a\tb"]}',
    "raw DEL in a string": b'{"Records":["a\x7fb"]}',
    "lone surrogate escape": b'{"Records":["\\ud800"]}',
    "escaped NUL": b'{"Records":["\\u0000", "a\\/b"]}',
    "nesting 1100 deep": b'{"Records":[' + b"[" * 1100 + b"]" * 1100 + b"]}",
    "nesting 1000 deep": b'{"Records":[' + b"[" * 1000 + b"]" * 1000 + b"]}",
    "garbage after": b'{"Records":[1]} xyz',
    "two documents": b'{"Records":[1]} {"Records":[1,2]}',
    "NUL after": b'{"Records":[1]}\x00',
    "form feed": b'\x0c{"Records":[1]}',
    "byte-order mark": b'\xef\xbb\xbf{"Records":[{"k":"AKIAEXAMPLE000000001"}]}',
    "empty": b"",
    "unclosed": b'{"Records":[1,2]',
    "invalid UTF-8": b'{"Records":["\xff"]}',
    "UTF-8 surrogate": b'{"Records":["\xed\xa0\x80"]}',
    "non-ASCII": '{"Records":["müller-ops", "\u2028", "\ufffe"]}'.encode(),
    "huge string": b'{"Records":["' + b"a" * 3_000_000 + b'", 1]}',
    "many records": b'{"Records":[' + b",".join([b'{"n":1}'] * 50_000) + b"]}",
}


def _held(tmp: Path, texts: dict[str, bytes]) -> list[Held]:
    """Each text as a plain and a gzip file."""
    held = []
    for i, text in enumerate(texts.values()):
        for gz in (False, True):
            path = tmp / (f"f{i:03d}.json" + (".gz" if gz else ""))
            path.write_bytes(gzip.compress(text) if gz else text)
            held.append(Held(len(held) + 1, path, "cloudtrail-records", gz, 1 << 24))
    return held


def _duckdb(con: duckdb.DuckDBPyConnection, h: Held, needle: str) -> tuple[Any, ...]:
    """Today's first read of ``h``: one DuckDB query counts, checks escapes and searches."""
    ctx, limit = gt._context(con, h)
    data = read_bytes(ctx, limit)
    doc = None if data is None else as_document(data, share=True)
    if doc is None:
        h.records = None
        hit = True
    else:
        hit = gt._query(con, h, doc, "contains(doc, $n0)", {"n0": needle}, first=True)
    return hit, h.records, h.escaped, h.slashed


def _answers(held: list[Held], hits: list[bool]) -> list[tuple[Any, ...]]:
    return [(hit, h.records, h.escaped, h.slashed) for h, hit in zip(held, hits, strict=True)]


def _same_as_duckdb(held: list[Held], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The gate's answers for ``held`` equal today's; returns the paths DuckDB was asked for."""
    con = duckdb.connect()
    asked: list[str] = []
    query = gt._query

    def counted(cur: duckdb.DuckDBPyConnection, h: Held, *a: Any, **k: Any) -> bool:
        asked.append(h.path.name)
        return query(cur, h, *a, **k)

    try:
        expected = [
            _duckdb(con, Held(h.file_id, h.path, h.format, h.gzipped, 1 << 24), NEEDLE)
            for h in held
        ]
        monkeypatch.setattr(gt, "_query", counted)
        assert _answers(held, search(con, held, [NEEDLE])) == expected
    finally:
        con.close()
    return asked


def test_the_count_is_duckdb_s_on_hostile_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _held(tmp_path, HOSTILE)
    asked = _same_as_duckdb(held, monkeypatch)
    # simdjson counted the valid documents it reads alike; DuckDB was asked about the rest
    names = list(HOSTILE)
    by_duckdb = {names[int(p[1:4])] for p in asked}
    assert "plain" not in by_duckdb and "many records" not in by_duckdb
    assert {"trailing commas", "byte-order mark", "Records an object"} <= by_duckdb
    plain = held[0]
    assert (plain.records, plain.escaped, plain.slashed) == (2, False, False)


def test_the_shared_fixtures_count_as_duckdb_counts(
    tmp_path: Path, shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every CloudTrail fixture (three are invalid JSON), plain and gzip."""
    texts = {
        str(p): p.read_bytes()
        for p in sorted((shared_fixtures / "cloudtrail").rglob("*.json*"))
        if p.is_file()
    }
    assert len(texts) > 50
    _same_as_duckdb(_held(tmp_path, texts), monkeypatch)


def test_a_count_past_simdjson_s_saturation_is_duckdb_s(tmp_path: Path) -> None:
    """simdjson's array size stops at 0xFFFFFF: such a count is asked of DuckDB."""
    n = gt._SATURATED + 3
    text = b'{"Records":[' + b",".join([b"0"] * n) + b"]}"
    assert records_count(simdjson.Parser(), text) is None
    assert records_count(simdjson.Parser(), text[: 2 * (n - 5) + 11] + b"]}") == n - 5
    held = _held(tmp_path, {"big": text})[:1]
    con = duckdb.connect()
    try:
        assert search(con, held, [NEEDLE]) == [False]
    finally:
        con.close()
    assert held[0].records == n


def test_the_parser_counts_again_after_a_document_it_refused(tmp_path: Path) -> None:
    """A refused or shapeless document leaves the parser free for the next one (its proxies
    gone): the count after it is still simdjson's."""
    parser = simdjson.Parser()
    for bad in (b'{"records":[1]}', b"[1]", b'{"Records":{"a":1}}', b"{", b"\xff", b"42"):
        assert records_count(parser, bad) is None
        assert records_count(parser, b'{"Records":[1,2,3]}') == 3
