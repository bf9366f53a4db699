"""The needle gate of ``keytrail scope`` (:mod:`keytrail.scope.gate`) against the whole path.

A gated scope must cut exactly what the same scope without the gate cuts (``gate=False``: every
CloudTrail file parsed): the same closure, seeds, outputs and every output file's bytes, the
same inputs and record counts; only ``rejected`` of the files it did not open (``null``) and its
``gate`` object differ. Each hostile case is built so that a gate that trusted the wrong thing
would miss a record, and each checks the gate really held files back (else it proves nothing).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main as cli
from keytrail.scope.engine_duckdb import scope_duckdb
from keytrail.store.case import CaseStore
from tests.cloudtrail_records import api_call

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"
INVENTORY = SAMPLE / "inventory.toml"
TOKEN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
HUMAN = "maria.chen@finco.example"
ACCT = "111122223333"
ROOT = "AKIAROOT000000000001"  # a user's long-term key
MID = "ASIAMID0000000000001"  # minted by ROOT (AssumeRole)
LEAF = "ASIALEAF000000000001"  # minted by MID (AssumeRole)
OTHER = "AKIAOTHER00000000001"  # unrelated: its files must stay shut


Whole = Callable[[Path, list[Path], list[str], list[Path]], dict[str, Any]]


def _whole(tmp: Path, paths: list[Path], seeds: list[str], inv: list[Path]) -> dict[str, Any]:
    """The scope without the gate into ``tmp / "whole"``: its manifest."""
    return scope_duckdb(tmp / "whole", paths, seeds, inventory=inv, gate=False).manifest


def _both(
    tmp: Path, paths: list[Path], seeds: list[str], inv: list[Path] = (), whole_of: Whole = _whole
) -> dict[str, Any]:
    """Scope with and without the gate; assert the same cut; return the gated manifest."""
    gated = scope_duckdb(tmp / "gated", paths, seeds, inventory=inv).manifest
    whole = whole_of(tmp, paths, seeds, list(inv))
    assert "gate" not in whole and gated["outputs"]
    unread = {i["path"] for i in gated["inputs"] if i["rejected"] is None}
    for doc in (gated, whole):
        for i in doc["inputs"]:
            if i["path"] in unread:
                assert i["source"] == "cloudtrail" and i["status"] == "loaded"
                i["rejected"] = None
    drop = {"created_at", "gate"}
    assert {k: v for k, v in gated.items() if k not in drop} == {
        k: v for k, v in whole.items() if k not in drop
    }
    for o in gated["outputs"]:
        assert (tmp / "gated" / o["path"]).read_bytes() == (tmp / "whole" / o["path"]).read_bytes()
    return gated


def _rec(i: int, key: str, name: str = "GetObject", **extra: Any) -> dict[str, Any]:
    identity = {
        "type": "AssumedRole" if key.startswith("ASIA") else "IAMUser",
        "principalId": f"AIDA{key[4:]}",
        "arn": f"arn:aws:iam::{ACCT}:user/u-{key.lower()}",
        "accountId": ACCT,
        "accessKeyId": key,
    }
    return api_call(i, f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z", ACCT, identity, name, **extra)


def _assume(i: int, signer: str, child: str, role: str) -> dict[str, Any]:
    """An AssumeRole signed by ``signer`` whose response alone names ``child``."""
    return _rec(
        i,
        signer,
        "AssumeRole",
        source="sts.amazonaws.com",
        params={"roleArn": f"arn:aws:iam::{ACCT}:role/{role}", "roleSessionName": role},
        response={
            "credentials": {"accessKeyId": child, "expiration": "Mar 1, 2026, 11:00:00 PM"},
            "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCT}:assumed-role/{role}/{role}"},
        },
    )


def _write(trail: Path, name: str, recs: list[dict[str, Any]], text: str | None = None) -> Path:
    path = trail / "AWSLogs" / ACCT / f"{name}.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress((text or json.dumps({"Records": recs})).encode(), mtime=0))
    return path


def _chain_trail(tmp: Path) -> Path:
    """ROOT -> MID -> LEAF, each hop in its own file, their uses in others, and unrelated
    files of OTHER. Scoping from LEAF needs three rounds: LEAF's issuance names MID only as its
    signer, MID's issuance names ROOT only as its signer."""
    trail = tmp / "trail"
    _write(trail, "a-root-uses", [_rec(1, ROOT), _rec(2, ROOT, "ListBuckets")])
    _write(trail, "b-mid-issued", [_rec(3, OTHER), _assume(4, ROOT, MID, "mid")])
    _write(trail, "c-leaf-issued", [_assume(5, MID, LEAF, "leaf"), _rec(6, OTHER)])
    _write(trail, "d-leaf-uses", [_rec(7, LEAF), _rec(8, LEAF, "PutObject")])
    for n in range(3):
        _write(trail, f"e-other-{n}", [_rec(20 + 2 * n, OTHER), _rec(21 + 2 * n, OTHER)])
    return trail


def test_the_gate_cuts_what_the_whole_path_cuts_on_the_sample(tmp_path: Path) -> None:
    doc = _both(tmp_path, [SAMPLE], [TOKEN], [INVENTORY])
    gate = doc["gate"]
    assert gate["fallback"] is None and 0 < gate["files_opened"] < gate["files_gated"]
    assert any(i["rejected"] is None for i in doc["inputs"])


@pytest.mark.parametrize("seed", ["ASIADKKHC6DWJIFTZP4G", "AKIACGKP7XY67AEMFYZE"])
def test_the_gate_on_the_samples_aws_keys(tmp_path: Path, seed: str) -> None:
    gate = _both(tmp_path, [SAMPLE], [seed], [INVENTORY])["gate"]
    assert gate["fallback"] is None and gate["files_opened"] < gate["files_gated"]


def test_a_human_seed_takes_the_whole_path(tmp_path: Path) -> None:
    doc = _both(tmp_path, [SAMPLE], [HUMAN], [INVENTORY])
    gate = doc["gate"]
    assert gate["fallback"] and "human" in gate["fallback"]
    assert gate["files_opened"] == gate["files_gated"]
    assert all(i["rejected"] is not None for i in doc["inputs"])


def test_a_chain_over_three_rounds(tmp_path: Path) -> None:
    doc = _both(tmp_path, [_chain_trail(tmp_path)], [LEAF])
    assert {c["credential_id"] for c in doc["closure"]} == {ROOT, MID, LEAF}
    gate = doc["gate"]
    assert gate["rounds"] >= 3 and gate["files_opened"] == 4 and gate["files_gated"] == 7
    assert doc["counts"]["cloudtrail"]["events_in"] == 14  # every record, counted unopened


def test_a_needle_inside_an_escape_opens_the_file(tmp_path: Path) -> None:
    """A use of ROOT (an ancestor of the seed) written with its key escaped (``\\u0041`` for
    ``A``) in a file of its own: no substring test finds ROOT there, so only the escape can open
    the file, and the whole path keeps that event."""
    trail = _chain_trail(tmp_path)
    text = json.dumps({"Records": [_rec(50, OTHER), _rec(51, ROOT, "DeleteObject")]})
    text = text.replace(f'"accessKeyId": "{ROOT}"', f'"accessKeyId": "\\u0041{ROOT[1:]}"')
    assert ROOT not in text and "\\u0041" in text
    _write(trail, "h-root-escaped", [], text)
    doc = _both(tmp_path, [trail], [MID])
    assert ROOT in {c["credential_id"] for c in doc["closure"]}
    assert any(o["input"].endswith("h-root-escaped.json.gz") for o in doc["outputs"])


def test_the_same_record_in_two_files(tmp_path: Path) -> None:
    """A record delivered twice (two files) is kept from the earlier file whichever round opens
    each: the one that holds only the copy is opened in a later round."""
    trail = _chain_trail(tmp_path)
    # the LEAF issuance again, in a file that sorts first, with nothing else of the chain
    _write(trail, "0-copy", [_rec(30, OTHER), _assume(5, MID, LEAF, "leaf")])
    doc = _both(tmp_path, [trail], [MID])
    assert any(o["input"].endswith("0-copy.json.gz") for o in doc["outputs"])


def test_a_file_the_count_cannot_read_is_opened(tmp_path: Path) -> None:
    """Two documents in one file (not one JSON value) and a truncated gzip: opened whatever
    they hold, their rejects counted as without the gate."""
    trail = _chain_trail(tmp_path)
    two = json.dumps({"Records": [_rec(40, OTHER)]}) + json.dumps({"Records": [_rec(41, OTHER)]})
    _write(trail, "f-two-docs", [], two)
    cut = _write(trail, "g-cut", [_rec(42, OTHER), _rec(43, OTHER)])
    cut.write_bytes(cut.read_bytes()[:-20])
    doc = _both(tmp_path, [trail], [LEAF])
    rows = {Path(i["path"]).name: i for i in doc["inputs"]}
    assert rows["f-two-docs.json.gz"]["rejected"] is not None
    assert rows["g-cut.json.gz"]["rejected"] is not None
    assert rows["e-other-0.json.gz"]["rejected"] is None


def test_a_seed_that_matches_nothing_lists_the_closest(tmp_path: Path) -> None:
    from keytrail.errors import NotFoundError

    with pytest.raises(NotFoundError) as err:
        scope_duckdb(tmp_path / "o", [_chain_trail(tmp_path)], ["ASIALEAF000000000002"])
    assert LEAF in str(err.value.suggestions)


def test_a_gated_scope_ingests_with_its_manifest(tmp_path: Path) -> None:
    """``keytrail ingest`` of a gated scope folder loads its records and keeps the manifest
    (``rejected: null``, the ``gate`` object) as provenance; ``keytrail info`` shows it."""
    trail = _chain_trail(tmp_path)
    doc = scope_duckdb(tmp_path / "cut", [trail], [LEAF]).manifest
    assert any(i["rejected"] is None for i in doc["inputs"])
    case = tmp_path / "case.duckdb"
    assert cli(["ingest", str(case), str(tmp_path / "cut"), "-q"]) == 0
    store = CaseStore.open(case)
    try:
        n = store.scalar("SELECT count(*) FROM events WHERE source = 'cloudtrail'")
        status = store.con.execute(
            "SELECT status FROM evidence WHERE path LIKE '%manifest.json'"
        ).fetchall()
    finally:
        store.close()
    assert n == doc["counts"]["cloudtrail"]["events_out"] and status == [("provenance",)]


def test_an_iam_user_seed_needs_its_name(tmp_path: Path) -> None:
    """An IAM user seed stands for every key issued for it; the issuance of a user's key
    (``CreateAccessKey``, signed by an admin) names the user by name only, never by the ARN
    given as the seed, and a key never used is in no other record: the gate searches the name."""
    bob = f"arn:aws:iam::{ACCT}:user/bob"
    used = _rec(60, "AKIABOBUSED000000001")
    used["userIdentity"] |= {"arn": bob, "userName": "bob"}
    create = _rec(
        61,
        "AKIAADMIN00000000001",
        "CreateAccessKey",
        source="iam.amazonaws.com",
        params={"userName": "bob"},
        response={"accessKey": {"accessKeyId": "AKIABOBUNUSED0000001", "userName": "bob"}},
    )
    trail = _chain_trail(tmp_path)
    _write(trail, "i-bob-uses", [used])
    _write(trail, "j-bob-key", [create, _rec(62, OTHER)])
    doc = _both(tmp_path, [trail], [bob])
    assert doc["seeds"][0]["credentials"] == ["AKIABOBUNUSED0000001", "AKIABOBUSED000000001"]
    assert doc["gate"]["fallback"] is None and doc["gate"]["files_opened"] == 2


def test_an_agent_seed_takes_the_whole_path(tmp_path: Path) -> None:
    doc = _both(tmp_path, [SAMPLE], ["Ledger Reconciler"], [INVENTORY])
    assert doc["gate"]["fallback"] and "agent" in doc["gate"]["fallback"]
