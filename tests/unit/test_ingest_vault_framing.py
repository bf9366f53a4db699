"""Every framing Vault audit output arrives in, built in tmp from real fixture lines.

Prefix, syslog (RFC 3164 local and relayed, RFC 5424), pretty-printed objects back to
back, gz, truncated gz, server log lines mixed in, garbage lines, and pairs split over
two files (paired by ``VaultAdapter.finalize``).
"""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.runner import IngestSummary, ingest

LEARN = "vault/hashicorp-education_learn-vault-monitoring/vault-audit.log"
N = 60  # lines 2-61 of learn-vault-monitoring: 30 request/response pairs (line 1 is a lone response)


@pytest.fixture()
def lines(shared_fixtures: Path) -> list[str]:
    out = (shared_fixtures / LEARN).read_text().splitlines()[1 : N + 1]
    types = [json.loads(x)["type"] for x in out]
    assert types == ["request", "response"] * (N // 2)
    return out


def _ids(lines: list[str]) -> set[str]:
    return {json.loads(x)["request"]["id"] for x in lines}


def _case(case: Path, *files: Path) -> tuple[IngestSummary, duckdb.DuckDBPyConnection]:
    summary = ingest(case, list(files))
    return summary, duckdb.connect(str(case), read_only=True)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _check_learn(con: duckdb.DuckDBPyConnection, lines: list[str], fmt: str) -> None:
    assert _rows(con, "SELECT format, records, events, rejected, skipped FROM evidence") == [
        (fmt, N, N // 2, 0, N // 2)
    ]
    assert {r[0] for r in _rows(con, "SELECT source_event_id FROM events")} == _ids(lines)
    # 1 token create + 7 AppRole and 7 userpass logins + 1 AppRole SecretID
    assert _rows(con, "SELECT kind, count(*) FROM credential_issues GROUP BY ALL ORDER BY 1") == [
        ("vault-secret-id", 1),
        ("vault-token", 15),
    ]


def test_prefix(lines: list[str], tmp_path: Path) -> None:
    f = tmp_path / "audit.log"
    f.write_text("".join(f"vault-audit-prod: {x}\n" for x in lines))
    _, con = _case(tmp_path / "c.duckdb", f)
    _check_learn(con, lines, "vault-audit-prefixed")
    raw = _rows(con, "SELECT raw FROM events ORDER BY record_no LIMIT 1")[0][0]
    assert raw.startswith("vault-audit-prod: {"), "raw keeps the original line, framing included"
    con.close()


@pytest.mark.parametrize(
    "header",
    [
        "<110>Apr 30 14:27:11 vault[4242]: ",  # what Vault's syslog device writes locally
        "Apr 30 14:27:11 vault-1 vault[4242]: ",  # as rsyslog files it
        "<110>1 2020-04-30T14:27:11.123Z vault-1 vault 4242 - - ",  # RFC 5424
        '<110>1 2020-04-30T14:27:11Z vault-1 vault 4242 audit [meta sequenceId="1"] ',  # RFC 5424 with SD
        "2020-04-30T14:27:11.123456+00:00 vault-1 vault[4242]: ",  # rsyslog RFC 3339 template
    ],
)
def test_syslog(lines: list[str], tmp_path: Path, header: str) -> None:
    f = tmp_path / "messages"
    f.write_text("".join(f"{header}{x}\n" for x in lines))
    _, con = _case(tmp_path / "c.duckdb", f)
    _check_learn(con, lines, "vault-audit-syslog")
    con.close()


def test_pretty_printed_back_to_back(lines: list[str], tmp_path: Path) -> None:
    objs = [json.dumps(json.loads(x), indent=2) for x in lines]
    # Mostly one object after another; a few glued "}{" with no separator at all.
    text = "\n".join(objs[:20]) + "".join(objs[20:30]) + "\n" + "\n\n".join(objs[30:]) + "\n"
    f = tmp_path / "export.json"
    f.write_text(text)
    _, con = _case(tmp_path / "c.duckdb", f)
    _check_learn(con, lines, "vault-audit-pretty")
    first = _rows(con, "SELECT record_no, byte_offset, raw FROM events ORDER BY record_no LIMIT 1")[
        0
    ]
    assert first[0] == objs[0].count("\n") + 2  # the response is the second object
    assert json.loads(first[2]) == json.loads(lines[1])
    con.close()


def test_datadog_pretty_sample_with_server_log_lines(shared_fixtures: Path, tmp_path: Path) -> None:
    """The Datadog test file's samples, taken out of their YAML: 3 server log lines and a pretty entry."""
    yaml_text = (shared_fixtures / "vault/datadog_integrations-core/vault_tests.yaml").read_text()
    logs = [
        line.split('"', 1)[1].rsplit('"', 1)[0]
        for line in yaml_text.splitlines()
        if line.strip().startswith('sample: "')
    ]
    block = yaml_text.split("sample: |-\n", 1)[1].split("  result:", 1)[0]
    entry = textwrap.dedent(block)
    f = tmp_path / "vault.log"
    f.write_text("\n".join(logs[:2]) + "\n" + entry + logs[2] + "\n")
    _, con = _case(tmp_path / "c.duckdb", f)
    assert _rows(con, "SELECT format, records, events, rejected FROM evidence") == [
        ("vault-audit-pretty", 4, 4, 0)
    ]
    assert _rows(con, "SELECT count(*) FROM events WHERE action = 'vault:server-log'") == [(3,)]
    ev = _rows(
        con,
        "SELECT source_event_id, target, outcome, credential_id FROM events WHERE action = 'vault:update'",
    )
    assert ev == [
        (
            "9adb5544-637f-3d42-9459-3684f5d21996",
            "sys/policies/acl/admin",
            "unknown",
            "hmac-sha256:2630a7b8e996b0c451db4924f32cec8793d0eb69609f777d89a5c8188a742f52",
        )
    ]
    con.close()


def test_server_log_lines_are_events_not_rejects(lines: list[str], tmp_path: Path) -> None:
    text = [
        "2024-01-01T00:00:00.000Z [INFO]  core: post-unseal setup complete",
        "2024-01-01T00:00:01.500Z [DEBUG] expiration: revoked lease: lease_id=aws/creds/deploy/AbCdEf123",
        '{"@level":"info","@message":"core: vault is unsealed","@module":"core","@timestamp":"2024-01-01T00:00:02.000000Z"}',
        "Jan  1 00:00:03 vault-1 vault[7]: 2024-01-01T00:00:03.000Z [WARN]  core: something",
    ]
    f = tmp_path / "mixed.log"
    f.write_text("\n".join(lines[:10] + text + lines[10:20]) + "\n")
    _, con = _case(tmp_path / "c.duckdb", f)
    assert _rows(con, "SELECT records, events, rejected, skipped FROM evidence") == [
        (24, 14, 0, 10)
    ]
    logs = _rows(
        con,
        "SELECT time_raw, target, json_extract_string(details, '$.level') FROM events"
        " WHERE action = 'vault:server-log' ORDER BY record_no",
    )
    assert [r[0] for r in logs] == [
        "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:01.500Z",
        "2024-01-01T00:00:02.000000Z",
        "2024-01-01T00:00:03.000Z",
    ]
    assert logs[1][1] == "aws/creds/deploy/AbCdEf123" and logs[1][2] == "DEBUG"
    note = _rows(con, "SELECT note FROM evidence")[0][0]
    assert "4 Vault server log lines" in note
    con.close()


def test_garbage_lines_rejected_with_position_rest_loads(lines: list[str], tmp_path: Path) -> None:
    body = lines[:4] + ["this is not json", lines[4][:200]] + lines[5:]
    text = "\n".join(body) + "\n"
    f = tmp_path / "audit.log"
    f.write_text(text)
    _, con = _case(tmp_path / "c.duckdb", f)
    rejects = _rows(
        con, "SELECT record_no, byte_offset, reason, excerpt FROM rejects ORDER BY record_no"
    )
    offset5 = len("\n".join(body[:4]).encode()) + 1
    assert [r[:2] for r in rejects] == [(5, offset5), (6, offset5 + len("this is not json") + 1)]
    assert "no JSON object" in rejects[0][2] and "invalid JSON" in rejects[1][2]
    assert rejects[1][3] == lines[4][:200]
    # Line 6's request was cut: its response (line 7) stands alone; everything else pairs.
    assert _rows(con, "SELECT records, events, rejected, skipped FROM evidence") == [
        (N + 1, N // 2, 2, N // 2 - 1)
    ]
    lone = _rows(
        con,
        "SELECT record_no, json_extract_string(details, '$.entry') FROM events"
        f" WHERE source_event_id = '{json.loads(lines[5])['request']['id']}'",
    )
    assert lone == [(7, "response")]
    con.close()


def test_gz_and_truncated_gz(lines: list[str], tmp_path: Path) -> None:
    data = ("\n".join(lines) + "\n").encode()
    whole = tmp_path / "audit.log.gz"
    whole.write_bytes(gzip.compress(data))
    _, con = _case(tmp_path / "whole.duckdb", whole)
    _check_learn(con, lines, "vault-audit-jsonl")
    con.close()

    blob = gzip.compress(data)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(blob[: len(blob) * 2 // 3])
    summary, con = _case(tmp_path / "cut.duckdb", cut)
    assert summary.files[0].status == "partial"
    status, records, events, rejected, skipped, note = _rows(
        con, "SELECT status, records, events, rejected, skipped, note FROM evidence"
    )[0]
    assert status == "partial" and "truncated" in note
    assert (
        events + skipped + rejected == records + 1
    )  # + 1: the break itself is recorded as a reject
    kept = _rows(con, "SELECT max(record_no) FROM events")[0][0]
    assert 10 < kept < N
    # Every whole line before the break is an event (or merged into one); the cut line is a reject.
    complete_ids = _ids(lines[: records - 1])
    assert complete_ids <= {r[0] for r in _rows(con, "SELECT source_event_id FROM events")}
    assert _rows(
        con, "SELECT count(*) FROM rejects WHERE record_no = ?".replace("?", str(records))
    ) == [(1,)]
    con.close()


def test_pairs_split_over_two_files_are_paired_at_finalize(
    lines: list[str], tmp_path: Path
) -> None:
    reqs = tmp_path / "a-requests.log"
    resps = tmp_path / "b-responses.log"
    reqs.write_text("\n".join(lines[0::2]) + "\n")
    resps.write_text("\n".join(lines[1::2]) + "\n")
    for order in ((reqs, resps), (resps, reqs)):
        case = tmp_path / f"{order[0].stem}.duckdb"
        ingest(case, [order[0]])
        _, con = _case(case, order[1])  # a second ingest into the same case
        assert _rows(
            con,
            "SELECT count(*), count(*) FILTER (json_extract_string(details, '$.entry') = 'pair')"
            " FROM events",
        ) == [(N // 2, N // 2)]
        ev = _rows(
            con,
            "SELECT e.time_raw, json_extract(e.details, '$.request_file_id')::INT, f.path FROM events e"
            " JOIN evidence f USING (file_id) ORDER BY e.record_no LIMIT 1",
        )[0]
        assert ev[0] == json.loads(lines[0])["time"] and ev[2] == str(resps)
        req_file = _rows(
            con, f"SELECT file_id, skipped, events FROM evidence WHERE path = '{reqs}'"
        )[0]
        assert ev[1] == req_file[0] and req_file[1:] == (N // 2, 0)
        assert _rows(
            con,
            "SELECT sum(events) + sum(skipped) + sum(duplicates) + sum(rejected), sum(records)"
            " FROM evidence",
        ) == [(N, N)]
        con.close()


def test_same_entries_from_two_devices_stored_once(lines: list[str], tmp_path: Path) -> None:
    a, b = tmp_path / "device-a.log", tmp_path / "device-b.log"
    a.write_text("\n".join(lines) + "\n")
    b.write_text("\n".join(lines[:20]) + "\n\n")  # different bytes, same entries
    _, con = _case(tmp_path / "c.duckdb", a, b)
    assert _rows(con, "SELECT count(*), count(DISTINCT event_uid) FROM events") == [
        (N // 2, N // 2)
    ]
    assert _rows(con, "SELECT events, duplicates FROM evidence ORDER BY file_id") == [
        (N // 2, 0),
        (0, 10),
    ]
    con.close()


def test_first_entry_longer_than_the_sniff_sample(lines: list[str], tmp_path: Path) -> None:
    """A multi-megabyte list response first in the file: the sniffer sees only part of one line."""
    big = json.loads(lines[1])
    big["response"] = {"data": {"keys": [f"hmac-sha256:{i:064x}" for i in range(6000)]}}
    f = tmp_path / "audit.log"
    f.write_text(json.dumps(big) + "\n" + "\n".join(lines[2:]) + "\n")
    assert f.stat().st_size > 300 * 1024
    _, con = _case(tmp_path / "c.duckdb", f)
    assert _rows(con, "SELECT format, records, events, rejected FROM evidence") == [
        ("vault-audit-jsonl", N - 1, N // 2, 0)
    ]
    keys = _rows(
        con,
        f"SELECT json_array_length(raw::JSON -> '$.response.data.keys') FROM events"
        f" WHERE source_event_id = '{big['request']['id']}'",
    )
    assert keys == [(6000,)]
    con.close()


def test_lone_brace_line_in_jsonl_is_one_reject_and_spares_its_neighbours(
    lines: list[str], tmp_path: Path
) -> None:
    body = (
        lines[:2] + ["{", "\x00" + lines[3][1:]] + lines[4:]
    )  # a line cut to "{", then a damaged line
    f = tmp_path / "audit.log"
    f.write_text("\n".join(body) + "\n")
    _, con = _case(tmp_path / "c.duckdb", f)
    assert _rows(con, "SELECT record_no FROM rejects ORDER BY 1") == [(3,), (4,)]
    assert _rows(con, "SELECT records, rejected FROM evidence") == [(N, 2)]
    con.close()
