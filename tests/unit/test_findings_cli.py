"""``keytrail findings`` / ``keytrail baseline`` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keytrail.cli.main import main
from tests.unit.test_findings_support import Case, at


@pytest.fixture()
def case_file(tmp_path: Path) -> Path:
    case = Case(tmp_path / "case.duckdb")
    for agent in ("agent-a", "agent-b"):
        case.event(
            time=at(0),
            action="tool:s3_get_object",
            source="agent",
            agent=agent,
            credential="ref-1",
            kind="agent-credential-ref",
            human="alice@example.com",
        )
    # Hostile text in a logged id: must reach the terminal neutralised.
    case.event(
        time=at(1),
        action="tool:x",
        source="agent",
        agent="evil\x1b[31mred",
        credential="ref-1",
        kind="agent-credential-ref",
        human="alice@example.com",
    )
    return case.close()


def test_json_document(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(case_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"findings", "counts", "sigma"} and doc["sigma"]["converted"] == 57
    assert doc["counts"]["high"] == 1 and list(doc["counts"]) == [
        "critical",
        "high",
        "medium",
        "low",
        "informational",
    ]
    [shared] = [f for f in doc["findings"] if f["rule"] == "credential-shared-by-agents"]
    assert (
        shared["evidence"] == ["ev-0001", "ev-0002", "ev-0003"]
        and shared["first_seen"] == "2024-05-01T09:00:00Z"
    )


def test_text_output_grouped_and_plain(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(case_file)]) == 0
    out = capsys.readouterr().out
    assert "== HIGH (1)" in out and "credential-shared-by-agents" in out
    assert "\x1b" not in out and "evil\\x1b[31mred" in out  # shown escaped, not obeyed


def test_fail_on_gate(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(case_file), "--fail-on", "high"]) == 1
    assert main(["findings", str(case_file), "--fail-on", "critical"]) == 0
    assert main(["findings", str(case_file), "--min-level", "critical", "--json"]) == 0
    capsys.readouterr()


def test_bad_config_exits_2_with_key(
    case_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[reconnaissance]\nmin_denid = 3\n")
    assert main(["findings", str(case_file), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "reconnaissance.min_denid" in err and "min_denied" in err


def test_bad_level_exits_2(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(case_file), "--fail-on", "severe"]) == 2
    assert "allowed values" in capsys.readouterr().err


def test_baseline_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = Case(tmp_path / "b.duckdb")
    for d in range(6):
        for h in range(2):
            case.event(
                time=at(0, days=d, hours=h),
                action="s3:GetObject",
                credential="AKIAEXAMPLEKEY000001",
                src_ip="198.51.100.7",
            )
    new = case.event(
        time=at(0, days=9),
        action="iam:CreateUser",
        credential="AKIAEXAMPLEKEY000001",
        src_ip="198.51.100.8",
    )
    path = case.close()
    assert main(["baseline", str(path), "AKIAEXAMPLEKEY000001", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "credential" and doc["window"]["events"] == 12
    assert doc["window"]["end"] == "2024-05-08T09:00:00Z"
    assert doc["services"] == [{"value": "s3", "events": 12}]
    assert doc["source_networks"] == [{"value": "198.51.100.0/24", "events": 12}]
    [dep] = doc["departures"]["actions"]
    assert (
        dep["value"] == "iam:CreateUser"
        and dep["evidence_uids"] == [new]
        and dep["evidence"] == ["ev-0013"]
    )
    assert doc["departures"]["source_networks"] == []
    assert (
        main(
            [
                "baseline",
                str(path),
                "AKIAEXAMPLEKEY000001",
                "--baseline-until",
                "2024-06-01T00:00:00Z",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["departures"]["actions"] == []
    assert main(["baseline", str(path), "AKIAEXAMPLEKEY000001"]) == 0
    assert "iam:CreateUser" in capsys.readouterr().out


def test_baseline_unknown_id_exits_1_with_suggestions(
    case_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", str(case_file), "agent-aa"]) == 1
    err = capsys.readouterr().err
    assert "agent-aa" in err and "agent-a" in err


def test_bad_baseline_until_exits_2(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(case_file), "--baseline-until", "yesterday"]) == 2
    assert "ISO 8601" in capsys.readouterr().err
