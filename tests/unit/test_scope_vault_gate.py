"""The Vault gate of ``keytrail scope`` (:mod:`keytrail.scope.vault_gate`) against the whole path.

A gated scope must cut exactly what the same scope without the gate cuts (``gate=False``: every
Vault line built): the same closure with the same why, the same outputs byte for byte and the
same inputs with the same ``records``, ``rejected`` and notes. Each case is built so that a gate
missing one of its rules would miss a line, and checks the gate held lines back (or fell back,
where it must), else it proves nothing.

``test_the_rounds_in_one_pass_cut_the_same`` replays four of these cases with another gate
setting; their whole side (``gate=False``: no gate runs) is the one the case's own test made,
so it is taken from :func:`_whole` (the same trail bytes, seeds and folder layout: the manifest
moved to the new folder, the output files copied) instead of scoped again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest.runner import ingest
from keytrail.scope import vault_gate as vg
from keytrail.scope.vault_gate import HeldVault, count, split_lines
from tests.cloudtrail_records import api_call
from tests.unit.test_scope_gate import _both as _both_scopes
from tests.unit.test_scope_gate import _whole as _scope_whole
from tests.unit.test_scope_gate import _write

ACCT = "111122223333"
T0 = "hmac-sha256:" + "0" * 64  # the seed token's accessor (HMAC'd as logged)
T1 = "hmac-sha256:" + "1" * 64
T2 = "hmac-sha256:" + "2" * 64
OTHER = "hmac-sha256:" + "f" * 64
SID = "hmac-sha256:" + "5" * 64  # an AppRole secret id, as both sides log it
KEY = "ASIAVAULTMADE0000001"  # an STS key Vault's AWS engine made (HMAC'd in the Vault log)


#: The whole path's manifest (as JSON) and folder, by what it read: see :func:`_whole`.
_WHOLE: dict[tuple[Any, ...], tuple[Path, str]] = {}


def _read(tmp: Path, path: Path) -> tuple[Any, ...] | None:
    """``path`` (under ``tmp``) by its place there and its files' places and bytes."""
    if not path.is_relative_to(tmp):
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return (str(path.relative_to(tmp)), *((str(f.relative_to(tmp)), f.read_bytes()) for f in files))


def _whole(tmp: Path, paths: list[Path], seeds: list[str], inv: list[Path]) -> dict[str, Any]:
    """The scope without the gate, made once per trail: a trail of the same bytes at the same
    places under another test's folder gets that scope's manifest with the folder replaced and
    its output files copied (the whole path reads no gate setting)."""
    read = [_read(tmp, p) for p in [*paths, *inv]]
    if None in read:
        return _scope_whole(tmp, paths, seeds, inv)
    key = (*read, *seeds)
    if key in _WHOLE:
        old, doc = _WHOLE[key]
        shutil.copytree(old / "whole", tmp / "whole")
        moved: dict[str, Any] = json.loads(doc.replace(f"{old}/", f"{tmp}/"))
        return moved
    whole = _scope_whole(tmp, paths, seeds, inv)
    _WHOLE[key] = (tmp, json.dumps(whole))
    return whole


def _both(tmp: Path, paths: list[Path], seeds: list[str]) -> dict[str, Any]:
    return _both_scopes(tmp, paths, seeds, whole_of=_whole)


def _entry(
    typ: str,
    rid: str | None,
    sec: int,
    path: str,
    accessor: str | None,
    response: dict[str, Any] | None = None,
    **request: Any,
) -> dict[str, Any]:
    req: dict[str, Any] = {
        **({"id": rid} if rid else {}),
        "operation": "update",
        "path": path,
        "remote_address": "10.0.0.7",
        "namespace": {"id": "root"},
        **request,
    }
    if accessor:
        req["client_token_accessor"] = accessor
    out: dict[str, Any] = {
        "time": f"2026-03-01T10:00:{sec:02d}Z",
        "type": typ,
        "auth": {"accessor": accessor, "display_name": "token-agent"} if accessor else {},
        "request": req,
    }
    if response is not None:
        out["response"] = response
    return out


def _pair(rid: str, sec: int, path: str, accessor: str | None, **response: Any) -> list[str]:
    return [
        json.dumps(_entry("request", rid, sec, path, accessor)),
        json.dumps(_entry("response", rid, sec, path, accessor, response)),
    ]


def _create(rid: str, sec: int, parent: str, child: str) -> list[str]:
    return _pair(rid, sec, "auth/token/create", parent, auth={"accessor": child})


def _noise(n: int) -> list[str]:
    return [x for i in range(n) for x in _pair(f"noise-{i}", 50, "secret/data/x", OTHER)]


def _vault(tmp: Path, lines: list[str], name: str = "audit.log") -> Path:
    path = tmp / "trail" / "vault" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return tmp / "trail"


def _gated(doc: dict[str, Any]) -> dict[str, Any]:
    vault: dict[str, Any] = doc["gate"]["vault"]
    return vault


def _held_some(doc: dict[str, Any]) -> None:
    v = _gated(doc)
    assert v["files_held"] and v["fallback"] is None
    assert 0 < v["lines_loaded"] < v["lines_held"]


def _ids(doc: dict[str, Any]) -> set[str]:
    return {c["credential_id"] for c in doc["closure"]}


def test_a_pair_split_across_the_gate(tmp_path: Path) -> None:
    """The seed's response names it, its request does not: the pair (the request's time and
    position, copied out with it) needs the request line too, taken by its ``request.id``."""
    req = _entry("request", "split", 1, "secret/data/app", None)
    resp = _entry("response", "split", 2, "secret/data/app", T0, {"data": {}})
    trail = _vault(tmp_path, [json.dumps(req), *_noise(3), json.dumps(resp)])
    doc = _both(tmp_path, [trail], [T0])
    _held_some(doc)
    assert doc["counts"]["vault"]["events_out"] == 1
    assert _gated(doc)["lines_loaded"] == 2


def test_a_pair_split_across_two_files(tmp_path: Path) -> None:
    """The request in one file, its response (naming the seed) in another: the adapter pairs
    them across files (its ``finalize``); the gate takes the request by its id in any file."""
    req = _entry("request", "across", 1, "secret/data/app", None)
    resp = _entry("response", "across", 2, "secret/data/app", T0, {"data": {}})
    _vault(tmp_path, [json.dumps(req), *_noise(2)], "a.log")
    trail = _vault(tmp_path, [*_noise(2), json.dumps(resp)], "b.log")
    doc = _both(tmp_path, [trail], [T0])
    _held_some(doc)
    assert _gated(doc)["lines_loaded"] == 2


def test_a_needle_behind_an_escape(tmp_path: Path) -> None:
    """A use of the seed with its accessor written with a ``\\u`` escape: no substring test
    finds it, only the escape rule takes the line."""
    hidden = json.dumps(_entry("response", "esc", 3, "secret/data/app", T0, {"data": {}}))
    hidden = hidden.replace(T0, "\\u0068" + T0[1:])
    assert T0 not in hidden
    trail = _vault(tmp_path, [*_pair("use", 1, "secret/data/app", T0), *_noise(3), hidden])
    doc = _both(tmp_path, [trail], [T0])
    _held_some(doc)
    assert doc["counts"]["vault"]["events_out"] == 2


def test_a_child_token_two_levels_down(tmp_path: Path) -> None:
    """T0 creates T1, T1 creates T2, T2 reads a secret: only the rounds find T2's read (its line
    names T2 alone)."""
    lines = [
        *_create("c1", 1, T0, T1),
        *_noise(2),
        *_create("c2", 2, T1, T2),
        *_noise(2),
        *_pair("read", 3, "secret/data/app", T2, data={}),
    ]
    doc = _both(tmp_path, [_vault(tmp_path, lines)], [T0])
    _held_some(doc)
    assert _ids(doc) == {T0, T1, T2}
    assert _gated(doc)["rounds"] >= 3
    assert doc["counts"]["vault"]["events_out"] == 3


def test_an_approle_secret_id_links_up(tmp_path: Path) -> None:
    """T1 logged in with a secret id T0 made: the secret-id response names neither T1 nor its
    login, only the secret id the login sent (the AppRole rule's join)."""
    sid = _pair("sid", 1, "auth/approle/role/r1/secret-id", T0, data={"secret_id": SID, "ttl": 0})
    login = _entry("response", "login", 2, "auth/approle/login", None, {"auth": {"accessor": T1}})
    login["request"]["data"] = {"secret_id": SID}
    lines = [*sid, *_noise(3), json.dumps(login), *_pair("use", 3, "secret/data/app", T1)]
    doc = _both(tmp_path, [_vault(tmp_path, lines)], [T1])
    _held_some(doc)
    assert _ids(doc) == {T0, SID, T1}


def test_a_cloudtrail_name_links_up_to_vault(tmp_path: Path) -> None:
    """The seed is an AWS key seen only in CloudTrail, named by Vault's AWS engine template
    (``vault-<display>-<role>-<unix>-<random>``): the Vault response that made it (its key HMAC'd)
    names neither the key nor the name, only its role in its path."""
    made = _pair(
        "sts",
        5,
        "aws/sts/deployer",
        T0,
        secret={"lease_id": "aws/sts/deployer/L1"},
        data={"access_key": "hmac-sha256:" + "a" * 64, "security_token": "hmac-sha256:x"},
    )
    made = [x.replace('"remote_address"', '"mount_type": "aws", "remote_address"') for x in made]
    lines = [*_create("c0", 1, T1, T0), *_noise(3), *made, *_noise(2)]
    trail = _vault(tmp_path, lines)
    unix = 1772359205  # 2026-03-01T10:00:05Z
    session = f"vault-token-agent-deployer-{unix}-Xy12"
    identity = {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/deployer/{session}",
        "accountId": ACCT,
        "accessKeyId": KEY,
    }
    _write(trail, "uses", [api_call(1, "2026-03-01T10:01:00Z", ACCT, identity)])
    doc = _both(tmp_path, [trail], [KEY])
    _held_some(doc)
    assert {T0, T1, "aws/sts/deployer/L1"} <= _ids(doc)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (
            "<134>Mar  1 10:00:09 host vault[1]: " + json.dumps(_entry("request", "x", 9, "p", T0)),
            "not a bare JSON object",
        ),
        (json.dumps(_entry("kmip-request", "k", 9, "kmip/scope/s/op", None)), "KMIP"),
        ("", "not a bare JSON object"),  # a blank line
    ],
)
def test_a_file_the_gate_cannot_read_is_loaded_whole(tmp_path: Path, extra: str, why: str) -> None:
    lines = [*_create("c1", 1, T0, T1), *_noise(3), extra, *_pair("u", 4, "secret/x", T1)]
    doc = _both(tmp_path, [_vault(tmp_path, lines)], [T0])
    v = _gated(doc)
    assert v["files_held"] == 0 and v["files_whole"] == 1


def test_a_file_loaded_whole_takes_the_held_ones_with_it(tmp_path: Path) -> None:
    _vault(tmp_path, ["{"] + _create("c1", 1, T0, T1), "a.log")  # a lone "{": not bare lines
    trail = _vault(tmp_path, [*_noise(3), *_pair("u", 4, "secret/x", T1)], "b.log")
    doc = _both(tmp_path, [trail], [T0])
    v = _gated(doc)
    assert v["files_held"] == 1 and v["files_whole"] == 1 and v["fallback"]
    assert v["lines_loaded"] == v["lines_held"]


def test_a_seed_the_gate_cannot_stand_for_loads_every_line(tmp_path: Path) -> None:
    """A human (the classifier's rules need every credential): the whole path."""
    login = _entry(
        "response",
        "login",
        1,
        "auth/userpass/login/ana",
        None,
        {"auth": {"accessor": T1, "display_name": "userpass-ana", "metadata": {"username": "ana"}}},
    )
    lines = [json.dumps(login), *_noise(3), *_pair("u", 4, "secret/x", T1)]
    doc = _both(tmp_path, [_vault(tmp_path, lines)], ["ana"])
    v = _gated(doc)
    assert v["fallback"] and v["lines_loaded"] == v["lines_held"]


#: Lines of every kind the adapter counts apart, and the ones simdjson cannot state as orjson.
_ODD = [
    *_pair("p", 1, "secret/x", T0),
    json.dumps(_entry("request", "rep", 2, "secret/x", T0)),
    json.dumps(_entry("request", "rep", 2, "secret/x", T0)),  # repeated
    json.dumps(_entry("response", "late", 3, "secret/x", T0, {})),
    json.dumps(_entry("request", "late", 3, "secret/x", T0)),  # late
    json.dumps(_entry("response", "alone", 3, "secret/x", T0, {})),
    json.dumps(_entry("request", "open", 3, "secret/x", T0)),  # never answered
    json.dumps(_entry("request", None, 3, "sys/health", None)),  # no request.id
    json.dumps(_entry("custom-type", "p", 3, "secret/x", T0)),
    '{"@level":"info","@message":"expiration: revoked lease lease_id=aws/creds/r/1"}',
    '{"a":1}',
    "{}",
    '{"type":"request"}',
    '{"type":"","request":{}}',
    '{"type":"request","request":{"id":"x"},}',  # not JSON
    '{"type":"response","auth":{"accessor":"x"}}',  # an entry by its auth alone
    '{"type":"request","request":{"id":"big"},"n":123456789012345678901234567890}',
    '{"type":"response","request":{"id":"big"},"n":18446744073709551616}',
    '{"type":"request","type":"response","request":{"id":"dup"}}',  # the last key wins
    '{"type":"response","request":{"id":"a","id":"dup"}}',
    '{"type":"response","request":"x","request":{"id":"dup2"}}',
    '{"type":"request","request":{"id":"d\\u0031"}}',
    '{"type":"response","request":{"id":"d1"}}',
    '{"type":"request","request":{"id":"\u00e9t\u00e9"}}',
    '{"type":"response","request":{"id":"\u00e9t\u00e9"}}',
    '{"type" :"response" , "request" : {"id" :"sp"}}',
]


@pytest.mark.parametrize("lines", [_ODD, _ODD[::-1], _ODD[5:] + _ODD[:5]])
def test_the_count_is_the_adapters(tmp_path: Path, lines: list[str]) -> None:
    """``records``, ``rejected``, skipped entries and notes of a file of bare JSON lines, as the
    gate states them without building a row, equal the adapter's (its whole load)."""
    path = tmp_path / "vault" / "audit.log"
    path.parent.mkdir(parents=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    spans = split_lines(data, 1 << 20)
    assert not isinstance(spans, str)
    counted = count(data, *spans)
    assert not isinstance(counted, str)
    summary = ingest(tmp_path / "case.duckdb", [path], graph=False)
    (f,) = summary.files
    assert f.source == "vault" and f.format == "vault-audit-jsonl"
    assert (counted.records, counted.rejected, counted.skipped) == (
        f.records,
        f.rejected,
        f.skipped,
    )
    assert "; ".join(counted.notes) == (f.note or "")


def test_the_count_on_the_shared_fixtures(shared_fixtures: Path, tmp_path: Path) -> None:
    n = 0
    for path in sorted((shared_fixtures / "vault").rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        spans = split_lines(data, 1 << 24) if data else "empty"
        counted = count(data, *spans) if not isinstance(spans, str) else spans
        if isinstance(counted, str):
            continue
        (f,) = ingest(tmp_path / f"{n}.duckdb", [path], graph=False).files
        assert (counted.records, counted.rejected, counted.skipped) == (
            f.records,
            f.rejected,
            f.skipped,
        )
        assert "; ".join(counted.notes) == (f.note or "")
        n += 1
    assert n >= 2


@pytest.mark.parametrize(
    "case",
    [
        test_a_needle_behind_an_escape,
        test_a_child_token_two_levels_down,
        test_an_approle_secret_id_links_up,
        test_a_cloudtrail_name_links_up_to_vault,
    ],
)
def test_the_rounds_in_one_pass_cut_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Any
) -> None:
    """Every round's needles searched at once (one Aho-Corasick pass), as a principal's hundreds
    are: the same cut as the whole path (the cases above, each needing its rule)."""
    monkeypatch.setattr(vg, "ONE_PASS_FROM", 1)
    case(tmp_path)


def test_one_pass_takes_the_lines_one_search_per_needle_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lines holding every string of a needle, whether its first string is searched alone or
    with all the others at once: heads that are prefixes of each other or overlap in a line
    (every occurrence counts), a needle with a second string, the empty string (every line)."""
    lines = [
        b'{"path":"aws/creds/deployer-prod","x":"aaaa"}',
        b'{"path":"aws/sts/deployer","secret_id":"S1","p":"auth/approle/role/r/secret-id"}',
        b'{"login":"S1","path":"auth/approle/login"}',
        b'{"k":"ASIAB1ASIAB2","n":"vault-token-a-b-1700000000"}',
        b'{"k":"xASIAB","m":"aaa"}',
        b"{}",
    ]
    data = b"\n".join(lines) + b"\n"
    spans = split_lines(data, 1 << 20)
    assert not isinstance(spans, str)
    starts, ends = spans
    n = len(starts)
    f = HeldVault(
        1, Path("v"), "vault-audit-jsonl", 1 << 20, data, starts, ends, [None] * n, [], []
    )
    cases: list[list[tuple[str, ...]]] = [
        [("/creds/",), ("/creds/deployer",), ("/sts/deployer",), ("/creds/nope",)],
        [("S1", "secret-id"), ("S1", "nothing")],
        [("ASIAB1",), ("B1ASIAB2",), ("ASIAB",), ("aaa",), ("aa",)],
        [("",), ("zzz",)],
        [("", "secret-id")],
    ]
    for needles in cases:
        want = {
            i
            for i, line in enumerate(lines)
            if any(all(s.encode() in line for s in needle) for needle in needles)
        }
        got = []
        for one_pass_from in (1, 1000):
            monkeypatch.setattr(vg, "ONE_PASS_FROM", one_pass_from)
            got.append(vg._holding(f, needles))
        assert got == [want, want], needles
