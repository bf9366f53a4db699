"""Reading CloudTrail batches ahead (``ingest.cloudtrail.ahead``) changes when work is done, never
what is loaded: the same rows, rejects and file statuses as the one-batch-at-a-time path, with
refused files still salvaged by the tolerant reader, and a read-ahead that fails falling back."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail import ahead as ahead_mod
from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter, bulk_read
from keytrail.ingest.runner import ingest


def _record(n: int, file_no: int) -> dict[str, Any]:
    if n == 1:  # an issuing call: a credential_issues row
        return {
            "eventVersion": "1.08",
            "eventID": f"id-{file_no}-{n}",
            "eventTime": f"2026-03-02T00:{file_no:02d}:01Z",
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRole",
            "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLEKEY000001"},
            "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/r"},
            "responseElements": {"credentials": {"accessKeyId": f"ASIAEXAMPLE{file_no:09d}"}},
            "recipientAccountId": "111122223333",
        }
    return {
        "eventVersion": "1.08",
        "eventID": f"id-{file_no}-{n}",
        "eventTime": f"2026-03-02T00:{file_no:02d}:{n % 60:02d}Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111122223333:user/ci",
            "accessKeyId": "AKIAEXAMPLEKEY000001",
        },
        "requestParameters": {"bucketName": "b", "key": f"k{n}"},
        "recipientAccountId": "111122223333",
    }


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """Nine ``Records`` files, a truncated one, one with two documents (refused by the bulk read,
    salvaged by the tolerant reader) and one holding a record that is no event (a reject)."""
    root = tmp_path / "AWSLogs"
    root.mkdir()
    for f in range(9):
        doc = {"Records": [_record(n, f) for n in range(5 + f)]}
        (root / f"f{f:02d}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    two = (
        json.dumps({"Records": [_record(1, 20)]}) + "\n" + json.dumps({"Records": [_record(2, 20)]})
    )
    (root / "f03b.json").write_text(two)
    whole = gzip.compress(json.dumps({"Records": [_record(n, 21) for n in range(40)]}).encode())
    (root / "f05b.json.gz").write_bytes(whole[: len(whole) // 2])
    odd = {"Records": [_record(1, 22), {"note": "no event here"}]}
    (root / "f07b.json.gz").write_bytes(gzip.compress(json.dumps(odd).encode()))
    return root


def _rows(case: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(case), read_only=True)
    try:
        return {
            "events": con.execute("SELECT * FROM events ORDER BY event_uid").fetchall(),
            "rejects": con.execute(
                "SELECT * FROM rejects ORDER BY file_id, record_no, byte_offset"
            ).fetchall(),
            "evidence": con.execute(
                "SELECT file_id, path, status, records, rejected, note FROM evidence"
                " ORDER BY file_id"
            ).fetchall(),
            "resources": con.execute(
                "SELECT * FROM event_resources ORDER BY event_uid, resource_id"
            ).fetchall(),
            "issues": con.execute(
                "SELECT * FROM credential_issues ORDER BY credential_id, event_uid"
            ).fetchall(),
        }
    finally:
        con.close()


def _ingest_without_read_ahead(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The oracle case: the same trail ingested one batch at a time, nothing read ahead."""
    plain = tmp_path / "plain.duckdb"
    with monkeypatch.context() as m:
        m.setattr(CloudTrailAdapter, "read_ahead", classmethod(lambda cls, *a: None))
        ingest(plain, [trail], graph=False)
    return plain


def _spy_on_staged(monkeypatch: pytest.MonkeyPatch) -> list[ahead_mod.Staged | None]:
    """Every batch the writer takes from a read-ahead, in order (``ReadAhead.staged`` wrapped)."""
    used: list[ahead_mod.Staged | None] = []
    staged = ahead_mod.ReadAhead.staged

    def spy(self: ahead_mod.ReadAhead) -> ahead_mod.Staged | None:
        used.append(staged(self))
        return used[-1]

    monkeypatch.setattr(ahead_mod.ReadAhead, "staged", spy)
    return used


def test_read_ahead_loads_what_the_plain_path_loads(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 3)
    plain = _ingest_without_read_ahead(trail, tmp_path, monkeypatch)
    used = _spy_on_staged(monkeypatch)
    read = tmp_path / "ahead.duckdb"
    summary = ingest(read, [trail], graph=False)
    # 12 files, 3 a batch, the first read as two (the writer has nothing to do beside it); each
    # staged with its resource and issue rows
    assert len(used) == 5 and all(s and s.table and s.resources and s.issues for s in used)
    first = [len(s.paths) for s in used[:2] if s]
    assert len(first) == 2 and min(first) >= 1 and sum(first) == 3
    assert {Path(p).name for s in used if s for p in s.refused} == {"f03b.json", "f05b.json.gz"}
    got, want = _rows(read), _rows(plain)
    assert got == want
    assert len(got["issues"]) == 11  # the AssumeRole of f00-f08, f03b and f07b
    whole = sum(5 + f for f in range(9)) + 2 + 1  # the truncated file adds what inflates
    assert whole < len(got["events"]) < whole + 40
    assert [r[3] for r in got["rejects"]].count(
        "not a CloudTrail event: no eventSource or eventName"
    ) == 1
    assert {f.status for f in summary.files} == {"loaded", "partial"}


def test_a_failed_read_ahead_falls_back_to_reading_in_the_transaction(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 4)
    plain = _ingest_without_read_ahead(trail, tmp_path, monkeypatch)

    def broken(self: ahead_mod.ReadAhead, ctxs: object) -> ahead_mod.Staged:
        raise duckdb.IOException("disk went away while reading ahead")

    monkeypatch.setattr(ahead_mod.ReadAhead, "_run", broken)
    read = tmp_path / "fallback.duckdb"
    ingest(read, [trail], graph=False)
    assert _rows(read) == _rows(plain)


def test_a_half_of_the_first_batch_that_fails_to_read_ahead_is_read_in_the_transaction(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch is read in two halves; the one whose read fails is read with the batch's
    load, the other half's staged rows are used, and the case is the same."""
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 6)
    plain = _ingest_without_read_ahead(trail, tmp_path, monkeypatch)
    run = ahead_mod.ReadAhead._run
    failed: list[str] = []

    def half_broken(self: ahead_mod.ReadAhead, ctxs: list[LoadContext]) -> ahead_mod.Staged:
        if ctxs[0].path.name == "f00.json.gz":
            failed.append(ctxs[0].path.name)
            raise duckdb.IOException("disk went away while reading ahead")
        return run(self, ctxs)

    monkeypatch.setattr(ahead_mod.ReadAhead, "_run", half_broken)
    read = tmp_path / "half.duckdb"
    written: list[int] = []  # files done after each batch's transaction
    ingest(read, [trail], graph=False, progress=lambda p: p.current or written.append(p.files_done))
    assert failed == ["f00.json.gz"]
    assert written[:2] == [6, 12]  # the two halves were written as one batch
    assert _rows(read) == _rows(plain)


def test_bulk_read_takes_and_refuses_the_files_the_duckdb_scan_did(tmp_path: Path) -> None:
    """The one-parse read keeps ``read_json_objects``' routing (checked against it on 21 odd files
    when it replaced it): compression by the ``.gz`` name in any case, one document, records."""
    good = json.dumps({"Records": [_record(n, 30) for n in range(3)]}).encode()
    files = {
        "upper.JSON.GZ": gzip.compress(good),
        "plain.json": good,
        "gz_named_plain.json.gz": good,
        "plain_named_gz.json": gzip.compress(good),
        "two_members.json.gz": gzip.compress(good) + gzip.compress(good),
        "truncated.json.gz": gzip.compress(good)[:-12],
        "empty_records.json.gz": gzip.compress(b'{"Records": []}'),
        "bomb.json.gz": gzip.compress(b'{"Records": ["' + b"a" * (40 << 20) + b'"]}'),
    }
    con = duckdb.connect()
    ctxs = []
    for i, (name, data) in enumerate(files.items()):
        (tmp_path / name).write_bytes(data)
        ctx = LoadContext(con, tmp_path / name, i, "cloudtrail-records", False)
        ctx.max_record_bytes = 1 << 20  # documents bound: 2 x max(4 MiB, 16 MiB)
        ctxs.append(ctx)
    table, refused = bulk_read(con, ctxs)
    assert table is not None
    taken = {ctxs[i].path.name for i in set(table["file_id"].to_pylist())}
    assert taken == {"upper.JSON.GZ", "plain.json"}
    assert {c.path.name for c in refused} == set(files) - taken
    assert table.num_rows == 6


def test_an_ingest_stopped_with_a_batch_read_ahead_stops_the_read_and_reruns_whole(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (here: from the progress callback) after the first batch is written, while the
    next is read ahead: no worker thread is left, and running the ingest again completes it."""
    import threading

    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 3)
    plain = tmp_path / "plain.duckdb"
    ingest(plain, [trail], graph=False)
    case = tmp_path / "stopped.duckdb"

    def stop(p: Any) -> None:
        if p.current is None and p.files_done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(case, [trail], graph=False, progress=stop)
    assert not [t for t in threading.enumerate() if t.name.startswith("keytrail-read-ahead")]
    half = _rows(case)
    assert 0 < len(half["evidence"]) < len(_rows(plain)["evidence"])
    ingest(case, [trail], graph=False)
    assert _rows(case) == _rows(plain)


def test_halves_cuts_a_batch_by_bytes_into_two_non_empty_runs(tmp_path: Path) -> None:
    """The batch read with the writer idle is read as two batches, one per core: each at least one
    file, together every file once and in plan order; one file stays one batch."""
    from keytrail.ingest.base import Sample
    from keytrail.ingest.batch_load import Planned
    from keytrail.ingest.runner import halves

    def planned(sizes: list[int]) -> list[Planned]:
        sample = Sample(tmp_path, b"", False)
        return [
            Planned(tmp_path / f"f{i}", str(i), s, CloudTrailAdapter, "cloudtrail-records", sample)
            for i, s in enumerate(sizes)
        ]

    for sizes, cut in (
        ([10, 10, 10, 10], 2),
        ([1, 1, 1, 97], 3),  # the big last file alone
        ([97, 1, 1, 1], 1),
        ([5, 5], 1),
        ([7, 3, 1], 1),
    ):
        items = planned(sizes)
        got = halves(items)
        assert [len(h) for h in got] == [cut, len(items) - cut], sizes
        assert [p for h in got for p in h] == items
    one = planned([42])
    assert halves(one) == [one]


def _secret_trail(root: Path) -> Path:
    """Records whose text holds secrets the stored masking removes (a password in the request, a
    session token in the response, a key in an escaped string), and a reject holding one."""
    root.mkdir()
    for f in range(6):
        records = [_record(n, f) for n in range(4)]
        records[2]["requestParameters"] = {"password": f"hunter{f}-Pa55", "bucketName": "b"}
        records[1]["responseElements"]["credentials"]["sessionToken"] = f"FwoGZXIvYXdzE{f}" * 4
        records[3]["additionalEventData"] = {"note": json.dumps({"api_key": f"s3cr3t-{f}"})}
        if f == 4:
            records.append({"password": "rejected-Pa55", "note": "no event here"})
        doc = {"Records": records}
        (root / f"s{f:02d}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    return root


def test_raw_masked_by_the_read_ahead_is_stored_as_the_writer_masks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch read ahead with ``raw`` masked there (``spare``): the case is the one the
    writer's masking gives, no secret value reaches it, and the reject keeps its masked excerpt."""
    trail = _secret_trail(tmp_path / "AWSLogs")
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 2)
    plain = _ingest_without_read_ahead(trail, tmp_path, monkeypatch)
    used = _spy_on_staged(monkeypatch)
    monkeypatch.setattr(ahead_mod.ReadAhead, "ready", lambda self: True)  # always spare
    case = tmp_path / "premasked.duckdb"
    ingest(case, [trail], graph=False)
    # the first batch is read in halves while the writer waits, the next two with time to spare
    assert [sorted(s.premasked) if s else None for s in used] == [["raw"]] * 4
    got = _rows(case)
    assert got == _rows(plain)
    text = json.dumps([list(map(str, r)) for rows in got.values() for r in rows])
    for secret in ("hunter", "FwoGZXIvYXdzE", "s3cr3t-", "rejected-Pa55"):
        assert secret not in text
    con = duckdb.connect(str(case), read_only=True)
    masked = con.execute("SELECT count(*) FROM events WHERE contains(raw, '****')").fetchone()
    con.close()
    assert masked is not None and masked[0] >= 18  # raw of 3 records a file
    assert len(got["rejects"]) == 1 and "****" in got["rejects"][0][4]


def test_the_runner_premasks_only_after_a_read_that_was_ready_in_time(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spare`` follows the last read-ahead: ready when the writer came for it (the reader had
    time to spare) moves the masking to the next read, not ready keeps it on the writer. The
    halves of the first batch (the writer only waits for them) and the last batch (its write
    runs alone) always take it."""
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 3)
    for ready in (True, False):
        premasks: list[bool] = []
        init = ahead_mod.ReadAhead.__init__

        def spy(
            self: ahead_mod.ReadAhead,
            *a: Any,
            premask: bool = False,
            seen: list[bool] = premasks,
            init: Callable[..., None] = init,
        ) -> None:
            seen.append(premask)
            init(self, *a, premask=premask)

        with monkeypatch.context() as m:
            m.setattr(ahead_mod.ReadAhead, "__init__", spy)
            m.setattr(ahead_mod.ReadAhead, "ready", lambda self, r=ready: r)
            ingest(tmp_path / f"spare-{ready}.duckdb", [trail], graph=False)
        # two halves of the first batch, one read per batch, the last one before the flush
        assert premasks == [True, True] + [ready] * 2 + [True]
