"""Copy the selected records out of their input files, byte for byte, into the scope folder.

One output file per input file that holds a selected record, under one folder per source
(``cloudtrail/``, ``vault/``, ``agent/``), gzip JSON, in a shape ``keytrail ingest`` sniffs like
the original: CloudTrail records go back into a ``{"Records":[...]}`` document (each record's
text exactly as it stands in the input: the ingest keeps it as ``events.raw``, a substring of
the file), line-oriented sources (Vault audit, agent logs) keep the whole original line at the
record's byte offset (a Vault pair: its request line and its response line; an OTLP batch: the
whole ``resourceSpans`` line). Gzip headers carry no name and no time, so the same records give
the same bytes and the same SHA-256 whichever engine cut them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


@dataclass(frozen=True, order=True)
class Piece:
    """One record to copy: a CloudTrail record's text, or the line at ``offset`` of ``path``."""

    path: str
    source: str
    order: int  # record_no (CloudTrail) or byte offset (lines)
    raw: str | None = None


def pieces(rows: Iterable[dict[str, Any]]) -> list[Piece]:
    """The records behind the located events (:data:`keytrail.scope.project.LOCATIONS` rows)."""
    out: set[Piece] = set()
    for r in rows:
        if r["source"] == "cloudtrail":
            out.add(Piece(r["path"], "cloudtrail", int(r["record_no"] or 0), r["raw"]))
            continue
        if r["byte_offset"] is not None:
            out.add(Piece(r["path"], r["source"], int(r["byte_offset"])))
        if r.get("request_path") and r.get("request_offset") is not None:
            out.add(Piece(r["request_path"], r["source"], int(r["request_offset"])))
    return sorted(out)


def decompressed(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _line(data: bytes, offset: int) -> bytes:
    end = data.find(b"\n", offset)
    return data[offset:] if end < 0 else data[offset:end]


def render(items: list[Piece], data: bytes) -> bytes:
    """The uncompressed output document for one input file's pieces (``data``: its bytes)."""
    if items[0].source == "cloudtrail":
        recs = [p.raw or "" for p in sorted(items, key=lambda p: p.order)]
        return ('{"Records":[' + ",".join(recs) + "]}\n").encode()
    text = decompressed(data)
    return b"".join(
        _line(text, p.order).rstrip(b"\r") + b"\n" for p in sorted(items, key=lambda p: p.order)
    )


def output_name(index: int, source: str, path: str) -> str:
    base = PurePosixPath(path.replace("\\", "/")).name or "records"
    base = base.removesuffix(".gz")
    return f"{source}/{index:05d}-{base}.gz"


def documents(
    items: list[Piece], read: Callable[[str], bytes]
) -> Iterator[tuple[str, str, int, bytes]]:
    """``(source, input path, records, document)`` per input file (``read``: a file's bytes), in
    the order :func:`write` names them (by source, then path), each rendered only when asked:
    :func:`write` holds one document at a time, not every kept record's text twice (a closure
    that keeps most of a trail would hold it all)."""
    by_file: dict[tuple[str, str], list[Piece]] = {}
    for p in items:
        by_file.setdefault((p.source, p.path), []).append(p)
    for (source, path), group in sorted(by_file.items()):
        yield source, path, len(group), render(group, b"" if source == "cloudtrail" else read(path))


def write(out: Path, docs: Iterable[tuple[str, str, int, bytes]]) -> list[dict[str, Any]]:
    """Write the documents under ``out``; returns the manifest's ``outputs`` rows.

    ``docs`` come sorted by (source, input path), as :func:`documents` gives them (output names
    number them in that order); a list in any other order is a mistake and raises ValueError."""
    rows = []
    last: tuple[str, str] | None = None
    for i, (source, path, n, doc) in enumerate(docs):
        if last is not None and (source, path) <= last:
            raise ValueError(f"output documents out of order: {(source, path)} after {last}")
        last = (source, path)
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(doc)
        blob = buf.getvalue()
        del doc
        name = output_name(i, source, path)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        rows.append(
            {
                "path": name,
                "source": source,
                "input": path,
                "records": n,
                "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
    return rows
