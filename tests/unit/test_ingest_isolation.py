"""One bad record, file or path costs exactly itself; a failing disk stops the ingest cleanly.

Attacks from issue 12: a record the SQL mapping cannot parse (a lone UTF-16 surrogate escape) used
to fail its whole CloudTrail file and abort the transaction for every later file; a self-referential
symlink stopped the walk with a traceback; a FIFO would block the read forever; a full disk showed a
raw ``TransactionException``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest import batch_load
from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter
from keytrail.ingest.cloudtrail.ahead import Staged
from keytrail.ingest.runner import ingest
from tests.conftest import case_rows


def _rec(i: int, agent: str = "ua") -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "eventID": f"ev-{i}",
        "eventTime": "2026-03-02T11:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "userAgent": agent,
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/u"},
    }


def _records_file(path: Path, ids: list[int], bad_at: int | None = None) -> None:
    text = json.dumps(
        {"Records": [_rec(i, "BAD" if k == bad_at else "ua") for k, i in enumerate(ids)]}
    )
    path.write_bytes(text.replace('"BAD"', '"\\ud800"').encode())


@pytest.mark.parametrize("shape", ["records", "jsonl"])
def test_a_record_sql_cannot_parse_is_a_reject_and_later_files_load(
    tmp_path: Path, case_path: Path, shape: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    if shape == "records":
        _records_file(logs / "a.json", [1, 2, 3], bad_at=1)
    else:
        lines = [json.dumps(_rec(i)) for i in (1, 2, 3)]
        lines[1] = lines[1].replace('"ua"', '"\\ud800"')
        (logs / "a.jsonl").write_text("\n".join(lines) + "\n")
    _records_file(logs / "b.json", [4, 5])
    summary = ingest(case_path, [logs])
    assert [f.status for f in summary.files] == ["loaded", "loaded"]
    uids = {
        r["source_event_id"] for r in case_rows(case_path, "SELECT source_event_id FROM events")
    }
    assert uids == {"ev-1", "ev-3", "ev-4", "ev-5"}
    rej = case_rows(case_path, "SELECT record_no, byte_offset, reason FROM rejects")
    assert len(rej) == 1 and rej[0]["record_no"] == 2 and rej[0]["byte_offset"] is not None
    assert "lone UTF-16 surrogate" in rej[0]["reason"]


def test_a_file_that_breaks_its_adapter_fails_alone(
    tmp_path: Path, case_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is rolled back and loaded again one file per transaction: only the culprit fails."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for n, name in enumerate(["a", "b", "c", "d"]):
        _records_file(logs / f"{name}.json", [10 * n + 1, 10 * n + 2])
    real = CloudTrailAdapter.load_batch

    def load_batch(
        self: CloudTrailAdapter, ctxs: list[LoadContext], ahead: Staged | None = None
    ) -> None:
        real(self, ctxs, ahead)
        if any(c.path.name == "b.json" for c in ctxs):
            ctxs[0].con.execute(
                "SELECT json_transform('\"\\ud800\"', '\"VARCHAR\"')"
            )  # aborts the transaction

    monkeypatch.setattr(CloudTrailAdapter, "load_batch", load_batch)
    summary = ingest(case_path, [logs])
    status = {Path(f.path).name: f.status for f in summary.files}
    assert status == {
        "a.json": "loaded",
        "b.json": "failed",
        "c.json": "loaded",
        "d.json": "loaded",
    }
    assert summary.events_in_case == 6


def test_unusable_paths_are_skipped_with_a_reason(tmp_path: Path, case_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    _records_file(logs / "ok.json", [1])
    (logs / "self").symlink_to("self")
    (logs / "dangling").symlink_to("nowhere")
    (logs / "sub" / "up").symlink_to("..")
    os.mkfifo(logs / "fifo")
    summary = ingest(case_path, [logs, logs / "self"])
    notes = {Path(f.path).name: (f.status, f.note) for f in summary.files}
    assert notes["ok.json"][0] == "loaded"
    assert notes["self"] == ("skipped", "symbolic link loop")
    assert notes["fifo"] == ("skipped", "not a regular file: FIFO (named pipe)")
    assert notes["dangling"][0] == "skipped" and "dangling" in (notes["dangling"][1] or "")
    assert notes["up"][0] == "skipped" and "not followed" in (notes["up"][1] or "")
    ev = case_rows(case_path, "SELECT count(*) AS n FROM evidence WHERE status = 'skipped'")
    assert ev[0]["n"] == 5  # self twice: once walked, once given


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root reads a chmod 000 file; the same path (open fails -> "
    "skipped with the reason) is covered by the dangling-link case",
)
def test_an_unreadable_file_is_skipped(tmp_path: Path, case_path: Path) -> None:
    _records_file(tmp_path / "ok.json", [1])
    locked = tmp_path / "locked.json"
    _records_file(locked, [2])
    locked.chmod(0)
    summary = ingest(case_path, [tmp_path])
    notes = {Path(f.path).name: (f.status, f.note) for f in summary.files}
    assert notes["locked.json"] == ("skipped", "cannot read: permission denied")


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_failing_disk_stops_with_one_line_and_exit_4_and_the_case_recovers(
    tmp_path: Path, case_path: Path
) -> None:
    """The file-size limit makes every write past 1 MiB fail, as a full disk does (``ulimit -f``)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(3):
        _records_file(logs / f"f{n}.json", list(range(n * 4000, n * 4000 + 4000)))
    cmd = [
        sys.executable,
        "-m",
        "keytrail",
        "ingest",
        str(case_path),
        str(logs),
        "-q",
        "--no-snapshot",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300, check=False
    )
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("keytrail: writing the case")
        and "Traceback" not in proc.stderr
    )
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    rows = case_rows(
        case_path,
        "SELECT (SELECT count(*) FROM events) AS n, "
        "(SELECT value FROM case_meta WHERE key = 'finalized') AS fin",
    )
    assert rows == [{"n": 12000, "fin": "true"}]


def test_write_failures_are_told_apart_from_adapter_failures() -> None:
    import duckdb

    assert batch_load.is_write_failure(OSError(28, "No space left on device"))
    assert batch_load.is_write_failure(duckdb.IOException("Could not write file x"))
    assert not batch_load.is_write_failure(duckdb.InvalidInputException("Malformed JSON"))
    assert not batch_load.is_write_failure(duckdb.IOException("Could not read from file x.json.gz"))
    assert not batch_load.is_write_failure(ValueError("bad record"))


def _bomb(path: Path, blanks: int) -> None:
    """A valid CloudTrail Records gzip whose 2nd record holds ``blanks`` spaces in one string, written
    streaming (the test never holds it)."""
    import gzip

    head, tail = json.dumps(_rec(2, "X")).encode().split(b'"X"')
    with gzip.open(path, "wb", compresslevel=6) as fh:
        fh.write(b'{"Records":[' + json.dumps(_rec(1)).encode() + b"," + head + b'"')
        block = b" " * (1 << 20)
        for _ in range(blanks >> 20):
            fh.write(block)
        fh.write(b'"' + tail + b"," + json.dumps(_rec(3)).encode() + b"]}")


def _ingest_peak_rss_kib(case: Path, path: Path, *extra: str) -> tuple[int, str]:
    code = (
        "import resource, sys; from keytrail.cli.main import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "ingest", str(case), str(path), "-q", "--no-snapshot", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]), proc.stderr


def test_a_gzip_bomb_in_one_string_is_bounded_by_max_record_bytes(
    tmp_path: Path, case_path: Path
) -> None:
    """256 MiB of blanks in one string, cap 64K (whole-document bound 256K): the ingest never holds
    the string (read unbounded it needs >= 512 MiB: bytes plus text), the record before loads and
    the cut record is a reject with its position."""
    small = tmp_path / "small.json"
    _records_file(small, [7])
    base_kib, _ = _ingest_peak_rss_kib(tmp_path / "base.duckdb", small, "--max-record-bytes", "64K")
    bomb = tmp_path / "bomb.json.gz"
    _bomb(bomb, 256 << 20)
    peak_kib, err = _ingest_peak_rss_kib(case_path, bomb, "--max-record-bytes", "64K")
    assert peak_kib - base_kib < 160 * 1024, (
        f"peak RSS {peak_kib} KiB, {base_kib} KiB for a one-record file"
    )
    assert "partial" in err and "4 x --max-record-bytes" in err
    assert [
        r["source_event_id"] for r in case_rows(case_path, "SELECT source_event_id FROM events")
    ] == ["ev-1"]
    rej = case_rows(
        case_path, "SELECT record_no, reason FROM rejects ORDER BY record_no NULLS FIRST"
    )
    assert rej[0]["record_no"] is None and "262144 bytes" in rej[0]["reason"]
    assert rej[1]["record_no"] == 2 and "truncated" in rej[1]["reason"]


def test_an_oversized_line_is_a_reject_and_the_lines_after_it_load(
    tmp_path: Path, case_path: Path
) -> None:
    """Line formats stream: a Vault audit line over the cap is skipped, never held."""
    sample = (
        Path(__file__).resolve().parents[2]
        / "sample_data"
        / "incident"
        / "vault"
        / "vault_audit.log"
    )
    lines = sample.read_bytes().splitlines(keepends=True)[:6]
    huge = lines[2][:-2] + b" " * (3 << 20) + lines[2][-2:]  # 3 MiB inside the JSON object
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(lines[:2] + [huge] + lines[3:]))
    ingest(case_path, [log], max_record_bytes=1 << 20)
    rej = case_rows(case_path, "SELECT record_no, byte_offset, reason FROM rejects")
    assert rej == [
        {
            "record_no": 3,
            "byte_offset": len(lines[0]) + len(lines[1]),
            "reason": f"record longer than --max-record-bytes (1048576 bytes): {len(huge)} bytes skipped",
        }
    ]
    n = case_rows(case_path, "SELECT count(*) AS n FROM events WHERE record_no > 3")
    assert n[0]["n"] >= 1


def test_max_record_bytes_flag_parses_sizes() -> None:
    from keytrail.cli.ingest_cmd import _size

    assert _size("64M") == 64 << 20 and _size("1G") == 1 << 30 and _size("65536") == 65536
    with pytest.raises(Exception, match="byte count"):
        _size("lots")


def test_a_batch_s_evidence_rows_are_each_file_s_own(tmp_path: Path, case_path: Path) -> None:
    """The runner writes a batch's ``evidence`` rows in one statement and their counts in
    another (:mod:`keytrail.ingest.batch_load`): each row keeps its file's id (plan order),
    path, hash, size, status, counts and note."""
    import gzip

    logs = tmp_path / "logs"
    logs.mkdir()
    _records_file(logs / "a.json", [1, 2, 3], bad_at=1)  # one reject
    whole = gzip.compress(json.dumps({"Records": [_rec(i) for i in range(10, 40)]}).encode())
    (logs / "b.json.gz").write_bytes(whole[: len(whole) // 2])  # breaks: partial
    _records_file(logs / "c.json", [4, 5])
    summary = ingest(case_path, [logs])
    rows = [
        tuple(r.values())
        for r in case_rows(
            case_path,
            "SELECT file_id, path, sha256, bytes, status, records, rejected, skipped, note,"
            " ingested_at IS NOT NULL AS at FROM evidence ORDER BY file_id",
        )
    ]
    by_path = {f.path: f for f in summary.files}
    assert [Path(r[1]).name for r in rows] == ["a.json", "b.json.gz", "c.json"]
    assert [r[0] for r in rows] == [1, 2, 3]
    for r in rows:
        f = by_path[r[1]]
        assert (r[2], r[3]) == (f.sha256, Path(r[1]).stat().st_size)
        assert (r[4], r[5], r[6], r[7], r[8]) == (
            f.status,
            f.records,
            f.rejected,
            f.skipped,
            f.note,
        )
        assert r[9]
    assert [(r[4], r[6]) for r in rows] == [("loaded", 1), ("partial", 2), ("loaded", 0)]
    assert rows[0][5] == 3 and rows[2][5] == 2 and rows[1][8] and not rows[0][8]
