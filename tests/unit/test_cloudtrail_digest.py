"""Digest files: recognised, stored as evidence, and used to verify log file hashes."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import duckdb

from keytrail.ingest.base import read_sample
from keytrail.ingest.cloudtrail.digest import CloudTrailDigestAdapter
from keytrail.ingest.runner import ingest

NAME = "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz"
LOGS = "AWSLogs/111111111111/CloudTrail/eu-central-1/2017/12/11"
DIGESTS = "AWSLogs/111111111111/CloudTrail-Digest/eu-central-1/2017/12/11"


def _digest(
    path: Path, files: list[tuple[str, str]], previous: tuple[str, str] | None = None
) -> None:
    doc: dict[str, object] = {
        "awsAccountId": "111111111111",
        "digestStartTime": "2017-12-11T15:00:00Z",
        "digestEndTime": "2017-12-11T16:00:00Z",
        "digestS3Bucket": "bucket",
        "digestS3Object": f"{DIGESTS}/{path.name}",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "previousDigestS3Object": previous[0] if previous else None,
        "previousDigestHashValue": previous[1] if previous else None,
        "logFiles": [
            {"s3Bucket": "bucket", "s3Object": key, "hashValue": h, "hashAlgorithm": "SHA-256"}
            for key, h in files
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_digest_fixture_is_recognised_not_loaded(tmp_path: Path, shared_fixtures: Path) -> None:
    f = shared_fixtures / "cloudtrail/elastic-integrations/test-cloudtrail-digest-json.log"
    assert CloudTrailDigestAdapter.sniff(read_sample(f)) == "cloudtrail-digest"
    summary = ingest(tmp_path / "c.duckdb", [f])
    assert [(r.status, r.source, r.format) for r in summary.files] == [
        ("digest", "digest", "cloudtrail-digest")
    ]
    assert summary.events_in_case == 0


def test_verified_failed_and_no_digest(tmp_path: Path, shared_fixtures: Path) -> None:
    root = tmp_path / "bucket"
    (root / LOGS).mkdir(parents=True)
    good = root / LOGS / NAME
    shutil.copy(shared_fixtures / "cloudtrail/trailscraper" / NAME, good)
    content_sha = hashlib.sha256(gzip.decompress(good.read_bytes())).hexdigest()

    records = json.loads(gzip.decompress(good.read_bytes()))["Records"]
    as_delivered = (
        root / LOGS / "111111111111_CloudTrail_eu-central-1_20171211T1510Z_bytes00000000000.json.gz"
    )
    as_delivered.write_bytes(gzip.compress(json.dumps({"Records": records[:1]}).encode()))
    bytes_sha = hashlib.sha256(as_delivered.read_bytes()).hexdigest()

    tampered = (
        root / LOGS / "111111111111_CloudTrail_eu-central-1_20171211T1515Z_tampered00000000.json.gz"
    )
    tampered.write_bytes(gzip.compress(json.dumps({"Records": records[:1]}).encode()))
    tampered_sha = hashlib.sha256(gzip.decompress(tampered.read_bytes())).hexdigest()
    record = dict(records[0], sourceIPAddress="203.0.113.66")  # edited after delivery
    tampered.write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))

    loose = (
        root / LOGS / "111111111111_CloudTrail_eu-central-1_20171211T1520Z_nodigest00000000.json.gz"
    )
    loose.write_bytes(gzip.compress(json.dumps({"Records": records[1:]}).encode()))

    first = (
        root
        / DIGESTS
        / "111111111111_CloudTrail-Digest_eu-central-1_t_eu-central-1_20171211T150000Z.json.gz"
    )
    _digest(first, [])
    first_sha = hashlib.sha256(gzip.decompress(first.read_bytes())).hexdigest()
    digest = (
        root
        / DIGESTS
        / "111111111111_CloudTrail-Digest_eu-central-1_t_eu-central-1_20171211T160000Z.json.gz"
    )
    _digest(
        digest,
        [
            (f"{LOGS}/{good.name}", content_sha),
            (f"{LOGS}/{as_delivered.name}", bytes_sha),
            (f"{LOGS}/{tampered.name}", tampered_sha),
        ],
        previous=(f"{DIGESTS}/{first.name}", first_sha),
    )

    ingest(tmp_path / "c.duckdb", [root])
    con = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    got = {
        Path(p).name: (i, d)
        for p, i, d in con.execute(
            "SELECT path, integrity, integrity_detail FROM evidence"
        ).fetchall()
    }
    assert got[good.name][0] == "verified" and "uncompressed content" in got[good.name][1]
    assert got[as_delivered.name][0] == "verified" and "file bytes" in got[as_delivered.name][1]
    assert got[tampered.name][0] == "failed" and tampered_sha in got[tampered.name][1]
    assert got[loose.name][0] == "no-digest"
    for name in (good.name, as_delivered.name, tampered.name):
        assert digest.name in got[name][1]
    assert got[first.name][0] == "verified"  # previousDigestHashValue chain
    assert got[digest.name][0] == "not-applicable"  # nothing later names it


def test_digest_ingested_later_verifies_earlier_files(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    root = tmp_path / "bucket"
    (root / LOGS).mkdir(parents=True)
    good = root / LOGS / NAME
    shutil.copy(shared_fixtures / "cloudtrail/trailscraper" / NAME, good)
    case = tmp_path / "c.duckdb"
    ingest(case, [good])
    digest = tmp_path / "later" / "digest.json.gz"
    _digest(
        digest, [(f"{LOGS}/{NAME}", hashlib.sha256(gzip.decompress(good.read_bytes())).hexdigest())]
    )
    ingest(case, [digest])
    con = duckdb.connect(str(case), read_only=True)
    assert con.execute("SELECT integrity FROM evidence WHERE source = 'cloudtrail'").fetchall() == [
        ("verified",)
    ]
