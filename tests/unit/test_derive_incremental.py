"""A second ingest of CloudTrail files derives only what changed, with the rows of a full rebuild.

The oracle, for every data set: the case after ingest A then ingest B holds exactly the rows
(every column, evidence lists in order) of the same case derived in full from scratch, and of
one ingest of A and B together (same file order, so the same file ids). Sets: the sample
incident split by day, two generated sets of other seeds, one generated set split by day (the
same long-lived credentials on both sides), and new files that repeat old records (duplicates,
also inside one file).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.graph import derive_incr
from keytrail.graph.derive import derive
from keytrail.ingest import finalize as finalize_mod
from keytrail.ingest.runner import ingest

from ..conftest import REPO

GEN = REPO / "scripts" / "gen_scale.py"
SAMPLE = REPO / "sample_data" / "incident"
DERIVED = (
    "credentials",
    "principals",
    "links",
    "principal_classes",
    "event_links",
    "credential_facts",
)
INGESTED = ("events", "event_resources", "credential_issues", "rejects", "inventory_agents")


def _gen(root: Path, seed: int, events: int) -> Path:
    out = root / f"gen-{seed}-{events}"
    if not out.exists():
        subprocess.run(
            [sys.executable, str(GEN), "--events", str(events), "--out", str(out)]
            + ["--seed", str(seed)],
            check=True,
            capture_output=True,
        )
    return out


@pytest.fixture(scope="module")
def gen_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gen")


def _trail(root: Path) -> list[Path]:
    return sorted((root / "AWSLogs").rglob("*.json.gz"))


def _others(root: Path) -> list[Path]:
    return sorted(p for d in ("agents", "vault") for p in (root / d).rglob("*") if p.is_file())


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
        if not (table == "evidence" and r[0] == "ingested_at")
    ]
    return sorted(repr(r) for r in con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall())


def _dump(case: Path, tables: tuple[str, ...]) -> dict[str, list[str]]:
    con = duckdb.connect(str(case), read_only=True)
    try:
        return {t: _rows(con, t) for t in tables}
    finally:
        con.close()


def _full_rederive(case: Path, tmp: Path) -> dict[str, list[str]]:
    copy = tmp / f"full-{case.name}"
    shutil.copyfile(case, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("BEGIN TRANSACTION")
        derive(con)
        con.execute("COMMIT")
        return {t: _rows(con, t) for t in DERIVED}
    finally:
        con.close()


def _assert_same(got: dict[str, list[str]], want: dict[str, list[str]]) -> None:
    for table, rows in want.items():
        extra = sorted(set(got[table]) - set(rows))[:3]
        missing = sorted(set(rows) - set(got[table]))[:3]
        assert got[table] == rows, f"{table}: extra {extra} missing {missing}"


@pytest.fixture()
def incremental(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Small sets: any share of new events derives incrementally; counts the full derives."""
    monkeypatch.setattr(derive_incr, "MAX_NEW_SHARE", 1.0)
    monkeypatch.setattr(derive_incr, "MAX_TOUCHED_SHARE", 1.0)
    full: list[int] = []
    real = finalize_mod.derive

    def counted(con: duckdb.DuckDBPyConnection) -> None:
        full.append(1)
        real(con)

    monkeypatch.setattr(finalize_mod, "derive", counted)
    yield full


def _check(
    tmp: Path, first: list[Path], second: list[Path], full: list[int], inventory: Path | None
) -> Path:
    """Ingest ``first`` then ``second`` (CloudTrail) and compare with both oracles."""
    inv = [inventory] if inventory else []
    case = tmp / "grown.duckdb"
    ingest(case, first, inventory=inv)
    assert full == [1]
    ingest(case, second)
    assert full == [1], "the second ingest rebuilt the graph in full"
    got = _dump(case, DERIVED)
    assert sum(len(v) for v in got.values()) > 0
    _assert_same(got, _full_rederive(case, tmp))
    if inventory is None:  # an inventory is loaded last: file ids line up only without one
        once = tmp / "once.duckdb"
        ingest(once, first + second)
        _assert_same(  # the grown case's derived tables as dumped above (not read twice)
            got | _dump(case, (*INGESTED, "evidence")),
            _dump(once, (*DERIVED, *INGESTED, "evidence")),
        )
    return case


def test_sample_incident_split_by_day(tmp_path: Path, incremental: list[int]) -> None:
    trail = _trail(SAMPLE)
    late = [p for p in trail if "/03/08/" in p.as_posix() or "/03/09/" in p.as_posix()]
    assert late and len(late) < len(trail)
    early = [p for p in trail if p not in late]
    _check(tmp_path, early + _others(SAMPLE), late, incremental, SAMPLE / "inventory.toml")


def test_sample_incident_split_without_inventory(tmp_path: Path, incremental: list[int]) -> None:
    trail = _trail(SAMPLE)
    _check(
        tmp_path,
        trail[: len(trail) // 2] + _others(SAMPLE),
        trail[len(trail) // 2 :],
        incremental,
        None,
    )


def test_generated_sets_of_two_seeds(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    a, b = _gen(gen_root, 3, 4000), _gen(gen_root, 4, 2000)
    _check(tmp_path, _trail(a) + _others(a), _trail(b), incremental, a / "inventory.toml")


def test_generated_set_split_by_day_shares_credentials(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    a = _gen(gen_root, 5, 6000)
    trail = _trail(a)
    assert len(trail) >= 3
    case = _check(tmp_path, trail[:-2] + _others(a), trail[-2:], incremental, None)
    con = duckdb.connect(str(case), read_only=True)
    try:  # the late files' events are signed with credentials the early ones used too
        shared = con.execute(
            "SELECT count(DISTINCT credential_id) FROM events WHERE file_id > 2 AND credential_id "
            "IN (SELECT credential_id FROM events WHERE file_id <= 2)"
        ).fetchone()
    finally:
        con.close()
    assert shared and shared[0] > 0


def _vault_named_copies(trail: list[Path], out: Path) -> Path:
    """A new CloudTrail file: copies (new event ids) of the calls signed under ``vault-...``
    names on the days the Vault log covers, for half of their keys (the others stay untouched);
    every other copy with a new key id, one per old key (a key the Vault AWS engine made that
    only the new file shows)."""
    records: list[dict[str, Any]] = []
    for src in trail:
        with gzip.open(src, "rt") as f:
            recs = json.load(f)["Records"]
        records += [r for r in recs if "vault-" in json.dumps(r.get("userIdentity", {}))]
    records = [r for r in records if str(r["eventTime"]) < "2026-03-04"]
    keys = sorted({str(r["userIdentity"]["accessKeyId"]) for r in records})
    half = set(keys[: len(keys) // 2])
    copies = []
    for n, rec in enumerate(r for r in records if r["userIdentity"]["accessKeyId"] in half):
        ident = dict(rec["userIdentity"])
        if n % 2:
            # one new key per old key: a key of two Vault issues would tie the parent choice
            ident["accessKeyId"] = f"ASIANEWVAULTKEY{keys.index(ident['accessKeyId']):05d}"
        copies.append(
            {**rec, "eventID": f"00000000-0000-4000-8000-{n:012d}", "userIdentity": ident}
        )
    assert copies
    return _write_records(out, "vault-named.json.gz", copies)


def test_new_cloudtrail_names_of_old_vault_issues(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """A new file whose calls are signed under names the Vault AWS engine gave (Vault issues all
    in the first ingest), by old keys and by keys only the new file shows: the name rule is
    matched again for the keys the new events use, and the walks read the other keys' Vault
    pairs from their unchanged MINTED links; every derived row equals both oracles'."""
    a = _gen(gen_root, 5, 6000)
    trail = _trail(a)
    late = _vault_named_copies(trail, tmp_path / "late")
    case = _check(tmp_path, trail + _others(a), [late], incremental, None)
    con = duckdb.connect(str(case), read_only=True)
    try:
        named = con.execute(
            """WITH late AS (
                 SELECT DISTINCT credential_id FROM events
                 WHERE file_id = (SELECT max(file_id) FROM evidence))
               SELECT count(*) FILTER (WHERE dst IN (SELECT * FROM late)),
                      count(*) FILTER (WHERE dst IN (SELECT * FROM late)
                                       AND starts_with(dst, 'ASIANEWVAULTKEY')),
                      count(*) FILTER (WHERE dst NOT IN (SELECT * FROM late))
               FROM links WHERE kind = 'MINTED'
                 AND starts_with(reason, 'Vault AWS secrets engine issued a key named')"""
        ).fetchone()
    finally:
        con.close()
    assert named and named[0] > named[1] > 0 and named[2] > 0, named


def _repack(out: Path, sources: list[Path], name: str) -> Path:
    """A new CloudTrail file repeating records of ``sources`` (half of each, the first twice)."""
    records: list[object] = []
    for src in sources:
        with gzip.open(src, "rt") as f:
            recs = json.load(f)["Records"]
        records += recs[: len(recs) // 2]
    records.append(records[0])
    return _write_records(out, name, records)


def _write_records(out: Path, name: str, records: list[object]) -> Path:
    """``records`` as one gzipped ``Records`` file in an S3 delivery path under ``out``."""
    path = out / "AWSLogs" / "418295730164" / "CloudTrail" / "us-east-1" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        json.dump({"Records": records}, f)
    return path


def test_new_files_repeating_old_records_are_deduplicated(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    a, b = _gen(gen_root, 3, 4000), _gen(gen_root, 4, 2000)
    trail = _trail(a)
    again = _repack(tmp_path / "repack", [trail[0], _trail(b)[0]], "repacked.json.gz")
    case = _check(tmp_path, trail + _others(a), [again, *_trail(b)], incremental, None)
    dups = _dump(case, ("evidence",))["evidence"]
    assert any("repacked.json.gz" in r for r in dups)
    con = duckdb.connect(str(case), read_only=True)
    try:
        row = con.execute(
            "SELECT duplicates FROM evidence WHERE ends_with(path, 'repacked.json.gz')"
        ).fetchone()
    finally:
        con.close()
    assert row and row[0] > 0


def test_a_second_ingest_of_the_same_files_changes_nothing(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    a = _gen(gen_root, 3, 4000)
    case = tmp_path / "case.duckdb"
    ingest(case, _trail(a) + _others(a), inventory=[a / "inventory.toml"])
    before = _dump(case, (*DERIVED, *INGESTED))
    ingest(case, _trail(a))
    assert incremental == [1]
    assert _dump(case, (*DERIVED, *INGESTED)) == before


def test_policy_files_or_a_large_share_rebuild_in_full(
    tmp_path: Path, gen_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full: list[int] = []
    real = finalize_mod.derive
    monkeypatch.setattr(finalize_mod, "derive", lambda con: (full.append(1), real(con)))
    a = _gen(gen_root, 3, 4000)
    trail = _trail(a)
    case = tmp_path / "case.duckdb"
    ingest(case, trail[:1])
    ingest(case, trail[1:])  # about as many new events as old: over MAX_NEW_SHARE
    assert full == [1, 1]
    ingest(case, _others(a))  # Vault and agent files: a small share, incremental
    assert full == [1, 1]
    ingest(case, [], inventory=[a / "inventory.toml"])  # inventory rows: incremental too
    assert full == [1, 1]
    ingest(case, [REPO / "sample_data" / "policies"])  # a policy file: the full rebuild
    assert full == [1, 1, 1]
    b = _gen(gen_root, 4, 2000)
    monkeypatch.setattr(derive_incr, "MAX_NEW_SHARE", 1.0)
    monkeypatch.setattr(derive_incr, "MAX_TOUCHED_SHARE", 0.0)
    ingest(case, _trail(b)[:1])  # its credentials sign more than no share of the case
    assert full == [1, 1, 1, 1]


def test_an_ingest_stopped_before_its_finalize_is_derived_by_the_next(
    tmp_path: Path, gen_root: Path, incremental: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files committed by an ingest that died in its end-of-ingest steps (as after a kill -9
    there) are still new to the next ingest, which finds them already loaded and derives them."""
    a, b = _gen(gen_root, 3, 4000), _gen(gen_root, 4, 2000)
    case = tmp_path / "case.duckdb"
    ingest(case, _trail(a) + _others(a))
    real = finalize_mod.derive_since

    def dies(con: duckdb.DuckDBPyConnection, since: int) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(finalize_mod, "derive_since", dies)
    with pytest.raises(KeyboardInterrupt):
        ingest(case, _trail(b))
    con = duckdb.connect(str(case), read_only=True)
    try:
        fin = con.execute("SELECT value FROM case_meta WHERE key = 'finalized'").fetchone()
    finally:
        con.close()
    assert fin == ("false",)
    monkeypatch.setattr(finalize_mod, "derive_since", real)
    summary = ingest(case, _trail(b))
    assert {f.status for f in summary.files} == {"already-ingested"}
    assert incremental == [1]
    got = _dump(case, DERIVED)
    _assert_same(got, _full_rederive(case, tmp_path))
    once = tmp_path / "once.duckdb"
    ingest(once, _trail(a) + _others(a) + _trail(b))
    _assert_same(got | _dump(case, INGESTED), _dump(once, (*DERIVED, *INGESTED)))


def _facts(case: Path, key: str) -> tuple[Any, ...] | None:
    con = duckdb.connect(str(case), read_only=True)
    try:
        return con.execute(
            "SELECT * FROM credential_facts WHERE credential_id = ?", [key]
        ).fetchone()
    finally:
        con.close()


def test_new_events_change_the_stored_facts_of_old_and_new_keys(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """``credential_facts`` is kept between ingests: a new MFA console call of an old key changes
    that key's stored facts (and its decision), and a key only the new file shows gets a row;
    every other key's row is read as stored. Both oracles see the same rows."""
    a = _gen(gen_root, 5, 6000)
    trail = _trail(a)
    with gzip.open(trail[0], "rt") as f:
        old = json.load(f)["Records"][0]
    key = str(old["userIdentity"]["accessKeyId"])
    first = tmp_path / "first.duckdb"
    ingest(first, trail + _others(a))
    before = _facts(first, key)
    assert before is not None and before[2] is None  # no console event yet
    incremental.clear()  # that ingest was only to read the facts before
    ident = dict(old["userIdentity"])
    ident["sessionContext"] = {"attributes": {"mfaAuthenticated": "true"}}
    console = {
        **old,
        "eventID": "00000000-0000-4000-8000-00000000c001",
        "userIdentity": ident,
        "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com",
    }
    fresh = {
        **console,
        "eventID": "00000000-0000-4000-8000-00000000c002",
        "userIdentity": {**ident, "accessKeyId": "ASIAFIRSTSEENKEY0001"},
    }
    late = _write_records(tmp_path / "late", "console.json.gz", [console, fresh])
    case = _check(tmp_path, trail + _others(a), [late], incremental, None)
    after = _facts(case, key)
    assert (
        after is not None
        and after != before
        and after[2] == after[3] == ["cloudtrail:" + console["eventID"]]
    )
    new_key = _facts(case, "ASIAFIRSTSEENKEY0001")
    assert new_key is not None and new_key[2] == ["cloudtrail:" + fresh["eventID"]]
    con = duckdb.connect(str(case), read_only=True)
    try:
        cls = con.execute(
            "SELECT class, detail FROM principal_classes WHERE subject = ?", [key]
        ).fetchone()
    finally:
        con.close()
    assert cls == ("person", "console")


def test_an_ingest_killed_after_refreshing_the_facts_leaves_them_as_before(
    tmp_path: Path, gen_root: Path, incremental: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``credential_facts`` is state kept between ingests: an ingest that dies after refreshing
    the new keys' rows (in its finalize transaction) leaves the stored rows as they were, and
    the next ingest derives its files with the rows of both oracles."""
    from keytrail.graph import principal_class

    a = _gen(gen_root, 5, 6000)
    trail = _trail(a)
    case = tmp_path / "case.duckdb"
    ingest(case, trail[:-2] + _others(a))
    before = _dump(case, ("credential_facts",))
    real = principal_class.classify_credentials
    refreshed: list[int] = []

    def dies(con: duckdb.DuckDBPyConnection, scope: str = "", write: str = "") -> None:
        refreshed.append(len(con.execute("SELECT * FROM credential_facts").fetchall()))
        raise KeyboardInterrupt

    monkeypatch.setattr(principal_class, "classify_credentials", dies)
    with pytest.raises(KeyboardInterrupt):
        ingest(case, trail[-2:])
    assert refreshed and refreshed[0] > len(before["credential_facts"])  # new keys' rows written
    assert _dump(case, ("credential_facts",)) == before
    monkeypatch.setattr(principal_class, "classify_credentials", real)
    ingest(case, trail[-2:])
    assert incremental == [1]  # the first ingest only: both later ones derive incrementally
    got = _dump(case, DERIVED)
    _assert_same(got, _full_rederive(case, tmp_path))
    once = tmp_path / "once.duckdb"
    ingest(once, trail[:-2] + _others(a) + trail[-2:])
    _assert_same(got | _dump(case, INGESTED), _dump(once, (*DERIVED, *INGESTED)))
