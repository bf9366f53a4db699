"""JSON written as UTF-8 with a BOM, UTF-16 or UTF-32 (a PowerShell redirect) loads like UTF-8.

The same CloudTrail record and Vault audit line are written in each encoding with Python's
own codecs, so the expected events are known independently of keytrail's reading.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import duckdb
import pytest

from keytrail.ingest.encoding import text_codec
from keytrail.ingest.reveal import Revealer
from keytrail.ingest.runner import ingest

RECORD = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": "arn:aws:iam::111122223333:user/zoë",
        "accountId": "111122223333",
        "accessKeyId": "AKIAENCODING00000001",
        "userName": "zoë",
    },
    "eventTime": "2026-01-05T11:00:00Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "ListBuckets",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "aws-cli/2.15.0",
    "requestID": "req-enc",
    "eventID": "ev-enc-1",
    "eventType": "AwsApiCall",
    "recipientAccountId": "111122223333",
}
VAULT = {
    "time": "2026-01-05T10:00:00.000Z",
    "type": "response",
    "auth": {
        "accessor": "hmac-sha256:acc-enc",
        "display_name": "approle",
        "metadata": {"role_name": "r"},
        "policies": ["default"],
        "token_type": "service",
    },
    "request": {
        "id": "req-enc-v",
        "operation": "update",
        "path": "auth/approle/login",
        "namespace": {"id": "root"},
        "remote_address": "10.0.0.5",
    },
    "response": {
        "auth": {
            "accessor": "hmac-sha256:acc-enc",
            "display_name": "approle",
            "metadata": {"role_name": "r"},
            "policies": ["default"],
        }
    },
}

ENCODINGS = [
    ("utf-8-sig", codecs.BOM_UTF8, "utf-8"),
    ("utf-16-le-bom", codecs.BOM_UTF16_LE, "utf-16-le"),
    ("utf-16-be", b"", "utf-16-be"),
    ("utf-16-le", b"", "utf-16-le"),
    ("utf-32-le-bom", codecs.BOM_UTF32_LE, "utf-32-le"),
]


@pytest.mark.parametrize(("label", "bom", "codec"), ENCODINGS)
def test_json_formats_in_other_encodings(
    tmp_path: Path, label: str, bom: bytes, codec: str
) -> None:
    ct = tmp_path / f"ct-{label}.json"
    ct.write_bytes(bom + json.dumps({"Records": [RECORD]}, ensure_ascii=False).encode(codec))
    vault = tmp_path / f"vault-{label}.log"
    vault.write_bytes(bom + (json.dumps(VAULT) + "\r\n").encode(codec))
    assert text_codec(ct.read_bytes()[:8]) is not None
    summary = ingest(tmp_path / "case.duckdb", [ct, vault])
    assert [f.status for f in summary.files] == ["loaded", "loaded"], [
        f.note for f in summary.files
    ]
    with duckdb.connect(str(tmp_path / "case.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT event_uid, actor_name FROM events ORDER BY 1").fetchall()
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
        notes = [r[0] for r in con.execute("SELECT note FROM evidence ORDER BY file_id").fetchall()]
        # --reveal reads the original back through the same conversion (offsets count in the
        # converted text)
        revealer = Revealer(con)
        revealed = [json.loads(revealer.original(uid)) for uid, _ in rows]
    assert rows == [("cloudtrail:ev-enc-1", "zoë"), ("vault:req-enc-v", "approle")]
    assert rejects == (0,)
    assert all(n and "converted to UTF-8" in n for n in notes)
    assert revealed == [RECORD, VAULT]


def test_plain_utf8_is_not_converted() -> None:
    assert text_codec(b'{"Records"') is None
    assert text_codec(b"\x1f\x8b\x08\x00") is None
