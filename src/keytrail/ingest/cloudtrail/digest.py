"""CloudTrail digest files: recognised as evidence, then used to check log file hashes.

A digest (``.../CloudTrail-Digest/...json.gz``) lists the log files CloudTrail delivered in
an hour with a SHA-256 ``hashValue`` each, plus the hash of the previous digest. Digests
are stored as evidence rows only (``source='digest'``, status ``digest``); nothing is
copied out of them, because :func:`verify_integrity` reads them again from
``evidence.path`` at the end of every ingest.

What is checked offline (steps 1-2 of AWS's custom validation; the RSA signature lives in
S3 object metadata, which a file copy does not carry, so it is not checked):

1. each CloudTrail file a digest names (matched on the S3 key as a path suffix, else on
   the file name) is hashed and compared with ``hashValue``. AWS hashes the *uncompressed*
   log content (``aws cloudtrail validate-logs`` does the same); keytrail also accepts a
   match on the bytes as stored, and says which one matched in ``integrity_detail``;
2. a digest named as ``previousDigestS3Object`` by another digest is checked against
   ``previousDigestHashValue`` the same way.

CloudTrail files no digest names are marked ``no-digest``.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from keytrail.ingest.base import Sample, SourceAdapter

if TYPE_CHECKING:
    import duckdb

    from keytrail.ingest.base import LoadContext

_DIGEST_KEYS = (
    re.compile(r'"digestStartTime"\s*:'),
    re.compile(r'"logFiles"\s*:\s*\['),
    re.compile(r'"digestS3Object"\s*:'),
)


class CloudTrailDigestAdapter(SourceAdapter):
    NAME = "cloudtrail_digest"
    SOURCE = "digest"
    PRIORITY = 10

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        text = sample.text.lstrip("\ufeff").lstrip()
        if text.startswith("{") and all(k.search(text) for k in _DIGEST_KEYS):
            return "cloudtrail-digest"
        return None

    def load(self, ctx: LoadContext) -> None:
        data = ctx.read_all()
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            ctx.records += 1
            ctx.reject(
                f"digest file is not valid JSON: {e}",
                record_no=1,
                byte_offset=0,
                excerpt=data[:512],
            )
            return
        ctx.records += 1
        ctx.skipped_records += 1
        files = doc.get("logFiles") if isinstance(doc, dict) else None
        if not isinstance(files, list):
            ctx.reject(
                "digest file has no logFiles list", record_no=1, byte_offset=0, excerpt=data[:512]
            )
            return
        ctx.notes.append(
            f"CloudTrail digest {doc.get('digestStartTime')} to {doc.get('digestEndTime')} "
            f"naming {len(files)} log files; used for integrity checks, not loaded as events"
        )


@dataclass(frozen=True)
class _Claim:
    key: str  # S3 object key the digest names
    hash_value: str
    digest_path: str


def _read(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data


def _content(data: bytes) -> bytes | None:
    """Decompressed bytes of a gzip file (all members), or None when it is not (valid) gzip."""
    if data[:2] != b"\x1f\x8b":
        return data
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += d.decompress(rest)
            if not d.eof:
                return None
            rest = d.unused_data
    except zlib.error:
        return None
    return bytes(out)


def _claims(con: duckdb.DuckDBPyConnection) -> tuple[list[_Claim], list[_Claim]]:
    """(log file claims, previous-digest claims) from every digest in the case."""
    logs: list[_Claim] = []
    prev: list[_Claim] = []
    for (path,) in con.execute(
        "SELECT path FROM evidence WHERE source = 'digest' AND status = 'digest'"
    ).fetchall():
        data = _read(Path(path))
        content = _content(data) if data is not None else None
        try:
            doc: Any = orjson.loads(content) if content is not None else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            continue
        for item in doc.get("logFiles") or []:
            if (
                isinstance(item, dict)
                and isinstance(item.get("s3Object"), str)
                and item.get("hashValue")
            ):
                logs.append(_Claim(item["s3Object"], str(item["hashValue"]).lower(), path))
        if isinstance(doc.get("previousDigestS3Object"), str) and doc.get(
            "previousDigestHashValue"
        ):
            prev.append(
                _Claim(
                    doc["previousDigestS3Object"], str(doc["previousDigestHashValue"]).lower(), path
                )
            )
    return logs, prev


def _match(claims: list[_Claim], rows: list[tuple[int, str, str]]) -> dict[int, list[_Claim]]:
    """Evidence file id -> the claims naming it (S3 key as path suffix, else same file name)."""
    by_name: dict[str, list[tuple[int, str, str]]] = {}
    for row in rows:
        by_name.setdefault(Path(row[1]).name, []).append(row)
    out: dict[int, list[_Claim]] = {}
    for claim in claims:
        candidates = by_name.get(claim.key.rsplit("/", 1)[-1], [])
        suffix = [
            r for r in candidates if r[1].replace("\\", "/").endswith("/" + claim.key.lstrip("/"))
        ]
        for row in suffix or candidates:
            out.setdefault(row[0], []).append(claim)
    return out


def _verdict(path: str, stored_sha: str, claims: list[_Claim]) -> tuple[str, str]:
    data = _read(Path(path))
    if data is None:
        return "failed", f"cannot re-read {path} to check it against {claims[0].digest_path}"
    content = _content(data)
    content_sha = hashlib.sha256(content).hexdigest() if content is not None else None
    problems, oks = [], []
    for c in claims:
        if content_sha == c.hash_value:
            oks.append(f"uncompressed content matches hashValue in {c.digest_path}")
        elif stored_sha == c.hash_value:
            oks.append(f"file bytes match hashValue in {c.digest_path}")
        else:
            got = content_sha or "unreadable gzip"
            problems.append(
                f"SHA-256 {got} does not match hashValue {c.hash_value} in {c.digest_path}"
            )
    if problems:
        return "failed", "; ".join(problems)
    return "verified", "; ".join(oks)


def verify_integrity(con: duckdb.DuckDBPyConnection) -> None:
    """Mark CloudTrail files ``verified`` / ``failed`` / ``no-digest`` from the digests in the case.

    Files already judged ``verified`` or ``failed`` keep their verdict; the rest are checked
    again, so a digest ingested later still verifies files ingested earlier.
    """
    logs, prev = _claims(con)
    todo = [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in con.execute(
            "SELECT file_id, path, sha256 FROM evidence WHERE source = 'cloudtrail' "
            "AND coalesce(integrity, 'no-digest') = 'no-digest'"
        ).fetchall()
    ]
    updates: list[tuple[str, str | None, int]] = []
    matched = _match(logs, todo)
    for file_id, path, sha in todo:
        if file_id in matched:
            updates.append((*_verdict(path, sha, matched[file_id]), file_id))
    # Everything no digest names, in one statement (a case may hold thousands of files).
    con.execute(
        "UPDATE evidence SET integrity = 'no-digest', integrity_detail = 'no digest file in the case names this file' "
        "WHERE source = 'cloudtrail' AND coalesce(integrity, 'no-digest') = 'no-digest' "
        "AND NOT list_contains(?, file_id)",
        [sorted(matched)],
    )
    digests = [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in con.execute(
            "SELECT file_id, path, sha256 FROM evidence WHERE source = 'digest' AND status = 'digest' "
            "AND coalesce(integrity, 'not-applicable') = 'not-applicable'"
        ).fetchall()
    ]
    for file_id, claims in _match(prev, digests).items():
        path, sha = next((p, s) for f, p, s in digests if f == file_id)
        updates.append((*_verdict(path, sha, claims), file_id))
    if updates:
        con.executemany(
            "UPDATE evidence SET integrity = ?, integrity_detail = ? WHERE file_id = ?", updates
        )
