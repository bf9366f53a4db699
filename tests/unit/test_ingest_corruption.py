"""Property: corrupting a valid line-oriented log never crashes ingest and never loses a record.

Valid files are built from real fixture lines (Vault audit JSON lines from
learn-vault-monitoring, CloudTrail JSON lines from panther-analysis); hypothesis then
truncates lines, flips bytes, inserts garbage lines and duplicates lines, at most one
damage per three lines so the file is still recognisably what it was. Each example is
ingested through the real runner into its own case, and:

- ingest does not raise and the file is ``loaded`` (or ``partial`` when the adapter says the
  data ended inside a record), never ``failed`` or ``skipped``;
- every line left intact is present as an event, found by its own id;
- nothing is lost: ``records`` equals the non-blank lines, and every record is an event,
  a duplicate of one, a reject, or counted in ``skipped`` (with the reason in the note).

Damage never writes ``\\n`` or ``\\r``: a new line break makes a new record, which is a
different (and covered) case from a damaged one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytrail.ingest.base import Sample
from keytrail.ingest.runner import ingest

FIXTURES = Path(
    os.environ.get(
        "KEYTRAIL_SHARED_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures"
    )
)
VAULT = FIXTURES / "vault/hashicorp-education_learn-vault-monitoring/vault-audit.log"
CLOUDTRAIL = FIXTURES / "cloudtrail/panther-analysis/panther_cloudtrail_test_events.ndjson"
TMP_BASE = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
SETTINGS = settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NO_BREAK = st.integers(0, 255).filter(lambda b: b not in (10, 13))
#: A garbage line has at least one visible ASCII character, so no reader can call it blank
#: (readers disagree on whether b"\x1c" or b"\x85" alone is whitespace).
VISIBLE = st.integers(0x21, 0x7E)


@dataclass(frozen=True)
class Line:
    data: bytes
    #: Index of the original line this is an unaltered copy of; None when damaged or inserted.
    intact: int | None


def _vault_lines() -> list[bytes]:
    # Lines 2-41: 20 request/response pairs (line 1 is a response whose request was never logged).
    return VAULT.read_bytes().splitlines()[1:41]


def _cloudtrail_lines() -> list[bytes]:
    seen: set[str] = set()
    out = []
    for raw in CLOUDTRAIL.read_bytes().splitlines():
        event_id = json.loads(raw).get("eventID")
        if event_id and event_id not in seen:
            seen.add(event_id)
            out.append(raw)
    return out[:40]


@st.composite
def corrupted(draw: st.DrawFn, lines: list[bytes], keep_first: int = 0) -> list[Line]:
    """The lines with at most one damage per three lines, and where they came from."""
    n = len(lines)
    budget = draw(st.integers(1, n // 3))
    targets = draw(
        st.lists(st.integers(keep_first, n - 1), min_size=1, max_size=budget, unique=True)
    )
    out = [Line(line, i) for i, line in enumerate(lines)]
    for i in sorted(targets, reverse=True):
        op = draw(st.sampled_from(["truncate", "flip", "garbage", "duplicate"]))
        line = lines[i]
        if op == "truncate":
            out[i] = Line(line[: draw(st.integers(1, len(line) - 1))], None)
        elif op == "flip":
            pos = draw(st.integers(0, len(line) - 1))
            out[i] = Line(line[:pos] + bytes([draw(NO_BREAK)]) + line[pos + 1 :], None)
        elif op == "garbage":
            junk = bytes([draw(VISIBLE), *draw(st.lists(NO_BREAK, max_size=80))])
            out.insert(i, Line(junk, None))
        else:
            out.insert(i, Line(line, i))
    return out


def _check(lines: list[Line], uid_of: list[str], *, one_record_per_line: bool = True) -> None:
    with tempfile.TemporaryDirectory(dir=TMP_BASE) as tmp:
        path = Path(tmp) / "log.jsonl"
        path.write_bytes(b"\n".join(x.data for x in lines) + b"\n")
        summary = ingest(Path(tmp) / "case.duckdb", [path])
        # "partial": the adapter reports that the data ended inside a record (a cut last line);
        # how an adapter records that break differs (see the accounting below).
        assert [f.status for f in summary.files] in (["loaded"], ["partial"]), summary.files
        con = duckdb.connect(str(Path(tmp) / "case.duckdb"), read_only=True)
        try:
            uids = {r[0] for r in con.execute("SELECT event_uid FROM events").fetchall()}
            missing = {uid_of[x.intact] for x in lines if x.intact is not None} - uids
            assert not missing, f"intact lines lost: {sorted(missing)[:5]}"
            records, events, dups, rejected, skipped = (
                con.execute(
                    "SELECT records, events, duplicates, rejected, coalesce(skipped, 0) FROM evidence"
                ).fetchone()
                or ()
            )
            non_blank = sum(1 for x in lines if x.data.strip())
            if one_record_per_line:
                # Rejects without a record number are notes about the file (a gzip break), not records.
                notes = (
                    con.execute("SELECT count(*) FROM rejects WHERE record_no IS NULL").fetchone()
                    or (0,)
                )[0]
                assert records == non_blank
                assert events + dups + rejected - notes + skipped == records, (
                    events,
                    dups,
                    rejected,
                    skipped,
                    records,
                )
            else:
                assert 0 < records <= non_blank
                assert events + dups + rejected + skipped >= records, (
                    events,
                    dups,
                    rejected,
                    skipped,
                    records,
                )
            assert con.execute(
                "SELECT count(*) FROM rejects WHERE coalesce(reason, '') = ''"
            ).fetchone() == (0,)
        finally:
            con.close()


@pytest.mark.skipif(not VAULT.is_file(), reason=f"shared fixtures not found at {FIXTURES}")
@SETTINGS
@given(data=st.data())
def test_corrupted_vault_audit_log(data: st.DataObject) -> None:
    lines = _vault_lines()
    uid_of = [f"vault:{json.loads(x)['request']['id']}" for x in lines]
    _check(data.draw(corrupted(lines)), uid_of)


def _cloudtrail_adapter_reads_jsonl() -> str | None:
    """Why the CloudTrail part must wait, or None when the CloudTrail adapter sniffs a JSONL line."""
    if not CLOUDTRAIL.is_file():
        return f"shared fixtures not found at {FIXTURES}"
    from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter

    head = b"\n".join(_cloudtrail_lines()[:5]) + b"\n"
    if not CloudTrailAdapter.sniff(Sample(CLOUDTRAIL, head, False)):
        return "the CloudTrail adapter does not read JSON lines yet (branch ct); this part runs once it lands"
    return None


_CLOUDTRAIL_WAIT = _cloudtrail_adapter_reads_jsonl()


@pytest.mark.skipif(_CLOUDTRAIL_WAIT is not None, reason=_CLOUDTRAIL_WAIT or "")
@SETTINGS
@given(data=st.data())
def test_corrupted_cloudtrail_jsonl(data: st.DataObject) -> None:
    lines = _cloudtrail_lines()
    uid_of = [f"cloudtrail:{json.loads(x)['eventID']}" for x in lines]
    # The first two lines stay whole: which adapter a file belongs to, and that it is JSON
    # lines (one record per line, so a damaged line costs exactly itself), is decided from its head.
    _check(data.draw(corrupted(lines, keep_first=2)), uid_of)
