"""Pass 2's writer (:mod:`keytrail.scope.output`): one document at a time, in a fixed order.

Documents are rendered only as :func:`write` asks for them (a closure that keeps most of a trail
held every kept record's text twice when they were rendered first), so their order is the
generator's: by source, then input path, which is what numbers the output files. A list handed
in any other order would renumber them silently; it raises instead.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from keytrail.scope import output


def _inputs(tmp: Path) -> list[output.Piece]:
    vault = tmp / "b-audit.log"
    vault.write_bytes(b'{"type":"request","n":1}\n{"type":"response","n":2}\n')
    agent = tmp / "a-agent.jsonl"
    agent.write_bytes(b'{"agent":"x","n":1}\r\n{"agent":"x","n":2}\n')
    return [
        output.Piece(str(vault), "vault", 25),
        output.Piece(str(tmp / "z.json.gz"), "cloudtrail", 2, '{"eventID":"2"}'),
        output.Piece(str(agent), "agent", 0),
        output.Piece(str(tmp / "z.json.gz"), "cloudtrail", 1, '{"eventID":"1"}'),
        output.Piece(str(vault), "vault", 0),
    ]


def test_documents_come_one_at_a_time_by_source_then_path(tmp_path: Path) -> None:
    read: list[str] = []

    def reader(path: str) -> bytes:
        read.append(path)
        return Path(path).read_bytes()

    docs = output.documents(_inputs(tmp_path), reader)
    assert read == []  # nothing read or rendered before it is asked for
    first = next(docs)
    assert first[:3] == ("agent", str(tmp_path / "a-agent.jsonl"), 1)
    assert first[3] == b'{"agent":"x","n":1}\n'  # the line at offset 0, its CR dropped
    assert read == [str(tmp_path / "a-agent.jsonl")]
    rest = list(docs)
    assert [(s, Path(p).name, n) for s, p, n, _ in rest] == [
        ("cloudtrail", "z.json.gz", 2),
        ("vault", "b-audit.log", 2),
    ]
    assert json.loads(rest[0][3]) == {"Records": [{"eventID": "1"}, {"eventID": "2"}]}


def test_write_names_files_in_that_order_and_refuses_another(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = output.write(out, output.documents(_inputs(tmp_path), lambda p: Path(p).read_bytes()))
    assert [r["path"] for r in rows] == [
        "agent/00000-a-agent.jsonl.gz",
        "cloudtrail/00001-z.json.gz",
        "vault/00002-b-audit.log.gz",
    ]
    assert gzip.decompress((out / rows[2]["path"]).read_bytes()) == (
        b'{"type":"request","n":1}\n{"type":"response","n":2}\n'
    )
    docs = list(output.documents(_inputs(tmp_path), lambda p: Path(p).read_bytes()))
    with pytest.raises(ValueError, match="out of order"):
        output.write(tmp_path / "other", [docs[1], docs[0], docs[2]])
    assert output.write(tmp_path / "sorted", sorted([docs[2], docs[0], docs[1]])) == rows
