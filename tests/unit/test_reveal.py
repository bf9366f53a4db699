"""``--reveal`` reads the original record back from the evidence file, checked by path and SHA-256."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from keytrail.cli.main import main
from keytrail.errors import CaseError
from keytrail.ingest.reveal import Revealer, RevealError
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore
from tests.conftest import SAMPLE_DATA, case_rows

TOKEN = "IQoJb3JpZ2luX2VjERevealMeFromEvidenceOnly0123456789"
VAULT = "hvs.CAESIRevealMeFromTheVaultAuditLogOnly0123"


def _evidence(root: Path) -> None:
    rec = {
        "eventVersion": "1.08",
        "eventID": "ev-sts",
        "eventTime": "2026-03-02T11:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/u"},
        "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLE1", "sessionToken": TOKEN}},
    }
    with gzip.open(root / "trail.json.gz", "wt") as fh:
        json.dump({"Records": [dict(rec, eventID="ev-other", responseElements=None), rec]}, fh)
    (root / "export.jsonl").write_text(
        json.dumps(dict(rec, eventID="ev-jsonl"))
        + "\n"
        + json.dumps(dict(rec, eventID="ev-jsonl-2"))
        + "\n"
    )
    entry = {
        "time": "2026-03-02T09:00:00.000Z",
        "type": "response",
        "auth": {"client_token": VAULT, "accessor": "acc-1", "display_name": "approle"},
        "request": {"id": "req-v1", "operation": "read", "path": "secret/data/x"},
    }
    (root / "vault.log").write_text(
        "\n"
        + json.dumps(dict(entry, request=dict(entry["request"], id="req-v0")))
        + "\n"
        + json.dumps(entry)
        + "\n"
    )


@pytest.fixture()
def revealed_case(tmp_path: Path) -> tuple[Path, Path]:
    ev = tmp_path / "evidence"
    ev.mkdir()
    _evidence(ev)
    case = tmp_path / "c.duckdb"
    ingest(case, [ev])
    return case, ev


def test_the_case_holds_no_secret_and_reveal_reads_each_original(
    revealed_case: tuple[Path, Path],
) -> None:
    case, _ = revealed_case
    raws = " ".join(r["raw"] for r in case_rows(case, "SELECT raw FROM events"))
    assert TOKEN not in raws and VAULT not in raws
    with CaseStore.open(case) as store:
        rev = Revealer(store.con, case)
        for uid, secret in (
            ("cloudtrail:ev-sts", TOKEN),
            ("cloudtrail:ev-jsonl-2", TOKEN),
            ("vault:req-v1", VAULT),
        ):
            original = rev.original(uid)
            assert secret in original
            assert json.loads(original)  # the whole record, not a fragment
        assert json.loads(rev.original("vault:req-v1"))["request"]["id"] == "req-v1"
        assert (
            json.loads(rev.original("ev-sts"))["eventID"] == "ev-sts"
        )  # by the source's own id too


def test_every_sample_event_reveals_its_own_record(tmp_path: Path) -> None:
    """All sources and shapes of the sample incident: each original names the event's own id."""
    ev = tmp_path / "incident"
    shutil.copytree(SAMPLE_DATA / "incident", ev)
    case = tmp_path / "s.duckdb"
    ingest(case, [ev])
    with CaseStore.open(case) as store:
        rows = store.con.execute("SELECT event_uid, source_event_id FROM events").fetchall()
        rev = Revealer(store.con, case)
        for uid, sid in rows:
            original = rev.original(uid)
            assert original.strip(), uid
            if sid and not uid.startswith(("otlp:", "vault:log:", "vault:kmip:", "vault:noid:")):
                assert sid in original, uid
    assert len(rows) > 100


def test_sql_reveal_replaces_raw_and_needs_event_uid(
    revealed_case: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    case, _ = revealed_case
    assert (
        main(
            [
                "sql",
                str(case),
                "SELECT event_uid FROM events WHERE source_event_id = 'ev-sts'",
                "--reveal",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert TOKEN in out[0]["raw"]
    assert main(["sql", str(case), "SELECT raw FROM events", "--json"]) == 0
    assert TOKEN not in capsys.readouterr().out
    assert main(["sql", str(case), "SELECT raw FROM events", "--reveal"]) == 2
    assert "event_uid column" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_reveal_refuses_a_changed_or_missing_evidence_file(
    revealed_case: tuple[Path, Path], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case, ev = revealed_case
    log = ev / "vault.log"
    if damage == "changed":
        log.write_text(log.read_text().replace("req-v1", "req-vX"))
    else:
        log.unlink()
    rc = main(
        [
            "sql",
            str(case),
            "SELECT event_uid FROM events WHERE event_uid = 'vault:req-v1'",
            "--reveal",
        ]
    )
    err = capsys.readouterr()
    assert rc == 2 and VAULT not in err.out + err.err
    expected = "has changed since it was ingested" if damage == "changed" else "is missing"
    assert expected in err.err and str(log) in err.err


def _make_old(case: Path) -> None:
    con = duckdb.connect(str(case))
    con.execute("UPDATE case_meta SET value = '1' WHERE key = 'schema_version'")
    con.execute("DELETE FROM case_meta WHERE key = 'secrets'")
    con.close()


def test_an_older_case_asks_for_a_re_ingest(revealed_case: tuple[Path, Path]) -> None:
    case, ev = revealed_case
    _make_old(case)
    with CaseStore.open(case) as store, pytest.raises(RevealError, match="Re-ingest the evidence"):
        Revealer(store.con, case)
    with pytest.raises(CaseError, match="older keytrail"):
        ingest(case, [ev])
