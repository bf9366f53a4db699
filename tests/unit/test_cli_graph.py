"""``keytrail credentials|blast|trace``: JSON contract, exit codes, terminal-safe text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main
from tests.unit.graph_case import SESSION, CaseBuilder, incident


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "case.duckdb"
    incident(path).close()
    return path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_credentials_json(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = _json(capsys, ["credentials", str(case), "--json", "--limit", "3"])
    assert isinstance(items, list) and len(items) == 3
    for it in items:
        assert set(it) >= {
            "credential",
            "kind",
            "score",
            "agents",
            "humans",
            "events",
            "first_seen",
            "last_seen",
        }
    assert items[0]["score"] >= items[1]["score"] >= items[2]["score"]


def test_blast_and_trace_json(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = _json(
        capsys,
        [
            "blast",
            str(case),
            "AKIANEWKEY0000000001",
            "--json",
            "--min-confidence",
            "proven",
            "--since",
            "2024-03-01T12:00:00Z",
        ],
    )
    assert b["derived_credentials"] == ["ASIACHAIN00000000001"]
    assert b["resources"][0]["last_seen"].endswith("Z")
    t = _json(capsys, ["trace", str(case), "ct-stolen", "--json"])
    assert set(t) >= {"event", "chain", "gaps"}
    assert set(t["chain"][0]) >= {"kind", "id", "label", "reason", "confidence", "evidence"}
    assert t["event"]["event_uid"] == "cloudtrail:ct-stolen"


def test_unknown_ids_exit_1_with_matches(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["blast", str(case), "AKIANEWKEY0000000009"]) == 1
    )  # a typo (a unique prefix would resolve)
    err = capsys.readouterr().err
    assert "closest matches" in err and "AKIANEWKEY0000000001" in err
    assert main(["trace", str(case), "nope-nothing"]) == 1
    assert main(["credentials", str(case), "--since", "yesterday-ish"]) == 2


def test_text_output_is_readable(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blast", str(case), "acc-app"]) == 0
    out = capsys.readouterr().out
    assert "└── lease-aws-1" in out and "    └── AKIANEWKEY0000000001" in out
    assert "arn:aws:s3:::ledger/q1.csv" in out and "score terms" in out
    assert main(["trace", str(case), "ct-get"]) == 0
    out = capsys.readouterr().out
    assert (
        out.index("[human] bob@example.com")
        < out.index("[agent] ledger-bot")
        < out.index("[event]")
    )
    assert (
        out.splitlines()[1] == f"by {SESSION}"
    )  # who (and from where, when logged), before the chain
    assert main(["credentials", str(case)]) == 0
    assert "ASIASTOLEN0000000001" in capsys.readouterr().out


def test_hostile_log_text_is_neutralised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    evil = "x\x1b]8;;http://evil\x07click\x1b[31mRED\u202e"
    b.event(
        "cloudtrail",
        "evil",
        0,
        "s3:GetObject",
        cred="ASIAEVIL000000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        resources=(f"arn:aws:s3:::b/{evil}",),
        target=evil,
    )
    b.finalize().close()
    for argv in (
        ["blast", str(tmp_path / "c.duckdb"), "ASIAEVIL000000000001"],
        ["trace", str(tmp_path / "c.duckdb"), "evil"],
    ):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "RED" in out


def test_text_output_keeps_full_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ids a responder greps for (a 76-character Vault accessor HMAC, an S3 object key) are never cut."""
    acc = "hmac-sha256:" + "4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
    child = "hmac-sha256:" + "6532b96ba16013f9f2db3671a1fd891e48e6590689b3a547851e9f21fecf71ab"
    obj = "arn:aws:s3:::finco-analytics-exports/customers/2026-03/part-00001.snappy.parquet"
    b = CaseBuilder(tmp_path / "c.duckdb")
    login = b.event("vault", "v-login", 0, "vault:update", actor="ent-app")
    b.issue(acc, "vault-token", None, login, 0, principal="ent-app", name="approle")
    mint = b.event(
        "vault", "v-create", 5, "vault:update", cred=acc, cred_kind="vault-token", actor="ent-app"
    )
    why = "Vault AWS secrets engine issued a key named vault-token-ledger-batch-reconciler-1773047002-WzznNHLzEL4Mo7JHZ"
    b.issue(child, "vault-token", acc, mint, 5, principal="ent-app", name="token", reason=why)
    b.event(
        "vault",
        "v-read",
        10,
        "vault:read",
        cred=child,
        cred_kind="vault-token",
        actor="ent-app",
        resources=(obj,),
        target=obj,
    )
    b.finalize().close()
    case = str(tmp_path / "c.duckdb")
    assert main(["blast", case, acc]) == 0
    out = capsys.readouterr().out
    lineage = out.split("lineage")[1].split("resources")[0]
    assert acc in lineage and child in lineage and why in lineage
    assert obj in out and "…" not in out.split("resources")[1].split("secrets read")[0]
    assert main(["credentials", case]) == 0
    out = capsys.readouterr().out
    assert acc in out and child in out
    assert main(["trace", case, "v-read"]) == 0
    out = capsys.readouterr().out
    assert acc in out and child in out and obj in out.split("[event]")[1]
