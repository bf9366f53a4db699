"""keytrail's declarative rule files: strict validation, tuning by a file of one's own, and the
``findings`` flags that pick rules (--rule, --exclude-rule) and Sigma folders (--sigma)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.analysis.rulefiles import load_rule_files, parse_rule
from keytrail.cli.main import main
from keytrail.errors import ConfigError

GOOD = """id = "my-rule"
title = "T"
level = "high"
description = "{who}"
[match]
actions = ["s3:*"]
"""


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 1\n" + GOOD, "unknown key"),
        (GOOD.replace('level = "high"', 'level = "severe"'), "not a level"),
        (GOOD.replace('id = "my-rule"', 'id = "My Rule"'), "id"),
        ('sql = "SELECT 1"\n' + GOOD, "exactly one of"),
        (
            (
                'id = "my-rule"\ntitle = "T"\nlevel = "low"\ndescription = "d"\n'
                'sql = "SELECT {nope}"\n'
            ),
            "nope",
        ),
        ("id = [", "not valid TOML"),
    ],
)
def test_bad_rule_files_are_errors_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rule(text, "rule.toml")


def test_shipped_rules_load_and_params_become_literals() -> None:
    rules = {r.id: r for r in load_rule_files()}
    assert len(rules) >= 15 and all(
        r.id.startswith("nhi-") or r.config != "nhi_attack" for r in rules.values()
    )
    q = rules["nhi-denied-burst-one-action"].query()
    assert "{min_denied}" not in q and ">= 10" in q


def _burst(tmp_path: Path) -> str:
    ident = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::123456789012:assumed-role/r/s",
        "accountId": "123456789012",
        "accessKeyId": "ASIAEXAMPLEBURST0001",
        "principalId": "AROA:s",
    }
    recs = [
        {
            "eventVersion": "1.09",
            "userIdentity": ident,
            "eventTime": f"2025-01-10T10:00:0{i // 4}Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "GetPasswordData",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.4",
            "userAgent": "boto3",
            "errorCode": "Client.UnauthorizedOperation",
            "errorMessage": "You are not authorized",
            "requestParameters": {"instanceId": "i-0123456789abcdef0"},
            "responseElements": None,
            "eventID": f"00000000-0000-4000-8000-{i:012d}",
            "eventType": "AwsApiCall",
            "recipientAccountId": "123456789012",
        }
        for i in range(12)
    ]
    (tmp_path / "ct.json").write_text(json.dumps({"Records": recs}), encoding="utf-8")
    case = str(tmp_path / "case.duckdb")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ingest", case, str(tmp_path / "ct.json"), "-q"]) == 0
    return case


def _findings(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["findings", *args, "--json"]) == 0
    return dict(json.loads(out.getvalue()))


def test_one_action_burst_and_rule_selection(tmp_path: Path) -> None:
    case = _burst(tmp_path)
    doc = _findings(case)
    [f] = [f for f in doc["findings"] if f["rule"] == "nhi-denied-burst-one-action"]
    assert f["evidence_count"] == 12 and "ec2:GetPasswordData 12 times" in f["description"]
    assert f["subjects"][0] == "ASIAEXAMPLEBURST0001"
    assert not [
        f for f in doc["findings"] if f["rule"] == "denied-burst"
    ]  # one action: not probing
    assert doc["sigma"]["converted"] == 57 and doc["sigma"]["failed"] == []
    only = _findings(case, "--rule", "nhi-*")
    assert only["findings"] and all(f["rule"].startswith("nhi-") for f in only["findings"])
    rest = _findings(case, "--exclude-rule", "nhi-denied-burst-one-action")
    assert not [f for f in rest["findings"] if f["rule"] == "nhi-denied-burst-one-action"]


def test_a_users_rule_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    case = _burst(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    shipped = next(r for r in load_rule_files() if r.id == "nhi-denied-burst-one-action")
    text = (
        Path(shipped.path).read_text(encoding="utf-8").replace("min_denied = 10", "min_denied = 50")
    )
    (rules / "burst.toml").write_text(text, encoding="utf-8")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[nhi_attack]\nrules_dir = "{rules}"\n', encoding="utf-8")
    doc = _findings(case, "--config", str(cfg))
    assert not [f for f in doc["findings"] if f["rule"] == "nhi-denied-burst-one-action"]


def test_sigma_folder_flag_lists_rules_that_did_not_convert(tmp_path: Path) -> None:
    case = _burst(tmp_path)
    d = tmp_path / "sigma"
    d.mkdir()
    (d / "bad.yml").write_text(
        "title: x\nlogsource:\n  product: aws\n  service: cloudtrail\n", encoding="utf-8"
    )
    doc = _findings(case, "--sigma", str(d))
    assert doc["sigma"]["converted"] == 0 and [
        Path(f["file"]).name for f in doc["sigma"]["failed"]
    ] == ["bad.yml"]


def test_snapshot_fingerprint_follows_the_rule_files(tmp_path: Path) -> None:
    """A stored snapshot is not served once a Sigma or rule-file folder's content changed."""
    from dataclasses import replace

    from keytrail.analysis.snapshot import findings_fingerprint
    from keytrail.config import load_config

    sigma, own = tmp_path / "sigma", tmp_path / "own"
    sigma.mkdir()
    own.mkdir()
    base = load_config(None)
    cfg = replace(
        base,
        sigma=replace(base.sigma, rules_dir=str(sigma)),
        nhi_attack=replace(base.nhi_attack, rules_dir=str(own)),
    )
    before = findings_fingerprint(cfg)
    (sigma / "r.yml").write_text("title: r\n", encoding="utf-8")
    after_sigma = findings_fingerprint(cfg)
    (own / "r.toml").write_text(GOOD, encoding="utf-8")
    assert len({before, after_sigma, findings_fingerprint(cfg), findings_fingerprint(base)}) == 4


def test_rules_moved_from_python_keep_their_catalog_entry() -> None:
    """A rule moved to a file keeps the id, title, level and frameworks that [levels], the
    docs and the front ends know it by (its outputs are pinned by test_findings_sample and
    test_findings_rules)."""
    from keytrail.analysis.findings.catalog import RULES

    moved = [r for r in load_rule_files() if r.id in RULES]
    assert sorted(r.id for r in moved) == [
        "agent-actions-without-human",
        "agent-active-after-retirement",
        "credential-shared-by-agents",
        "credential-used-across-sessions",
        "credential-used-after-agent-retired",
        "credential-used-from-many-hosts",
        "denied-burst",
        "long-term-key-used-by-agent",
        "orphan-credential",
        "secret-sprawl",
        "unattributed-actions",
        "unregistered-agent",
    ]
    for r in moved:
        info = RULES[r.id]
        assert (r.title, r.level, r.frameworks, r.config) == (
            info.title,
            info.level,
            info.frameworks,
            info.family,
        )
