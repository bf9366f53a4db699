"""The agent inventory: TOML, JSON and CSV give identical rows; bad entries are rejected clearly."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest.base import read_sample
from keytrail.ingest.inventory import InventoryAdapter
from keytrail.ingest.runner import ingest

from ..conftest import case_rows as rows

TOML = """\
# NHI register, exported 2026-03-01
[[agents]]
id = "ledger-reconciler"
name = "Ledger reconciler"
owner = "alice@example.com"
purpose = "Reconciles the ledger nightly"
created = 2025-01-10
environment = "prod"
identities = [
  "arn:aws:iam::123456789012:role/ledger-reconciler",
  "AKIAEXAMPLE000000005",
  "vault:approle/ledger-reconciler",
]

[[agents]]
id = "report-writer"
owner = "team-finance"
created = 2024-06-01T08:30:00Z
retired = 2026-03-01T12:00:00+01:00
identities = ["arn:aws:iam::123456789012:user/report-writer", "vault:kubernetes/prod-cluster/report-writer"]
"""

JSON_DOC = [
    {
        "id": "ledger-reconciler",
        "name": "Ledger reconciler",
        "owner": "alice@example.com",
        "purpose": "Reconciles the ledger nightly",
        "created": "2025-01-10",
        "environment": "prod",
        "identities": [
            "arn:aws:iam::123456789012:role/ledger-reconciler",
            "AKIAEXAMPLE000000005",
            "vault:approle/ledger-reconciler",
        ],
    },
    {
        "id": "report-writer",
        "owner": "team-finance",
        "created": "2024-06-01T08:30:00Z",
        "retired": "2026-03-01T12:00:00+01:00",
        "identities": [
            "arn:aws:iam::123456789012:user/report-writer",
            "vault:kubernetes/prod-cluster/report-writer",
        ],
    },
]

CSV = """\
id,name,owner,purpose,created,retired,environment,identities
ledger-reconciler,Ledger reconciler,alice@example.com,Reconciles the ledger nightly,2025-01-10,,prod,\
arn:aws:iam::123456789012:role/ledger-reconciler; AKIAEXAMPLE000000005 ;vault:approle/ledger-reconciler
report-writer,,team-finance,,2024-06-01T08:30:00Z,2026-03-01T12:00:00+01:00,,\
arn:aws:iam::123456789012:user/report-writer;vault:kubernetes/prod-cluster/report-writer
"""


def load(tmp_path: Path, name: str, text: str) -> tuple[Path, Any]:
    path = tmp_path / name
    path.write_text(text)
    case = tmp_path / f"{name}.duckdb"
    summary = ingest(case, [], inventory=[path])
    return case, summary


def agents(case: Path) -> list[dict[str, Any]]:
    return rows(
        case, "SELECT * EXCLUDE (file_id, record_no) FROM inventory_agents ORDER BY agent_id"
    )


def test_three_encodings_give_identical_rows(tmp_path: Path) -> None:
    results = {}
    for name, text, fmt in (
        ("inv.toml", TOML, "inventory-toml"),
        ("inv.json", json.dumps(JSON_DOC), "inventory-json"),
        ("inv.csv", CSV, "inventory-csv"),
    ):
        case, summary = load(tmp_path, name, text)
        (f,) = summary.files
        assert (f.status, f.source, f.format, f.records, f.rejected) == (
            "loaded",
            "inventory",
            fmt,
            2,
            0,
        ), name
        results[name] = agents(case)
    assert results["inv.toml"] == results["inv.json"] == results["inv.csv"]
    ledger, writer = results["inv.toml"]
    assert ledger["identities"] == [
        "arn:aws:iam::123456789012:role/ledger-reconciler",
        "AKIAEXAMPLE000000005",
        "vault:approle/ledger-reconciler",
    ]
    assert ledger["created"] == datetime(2025, 1, 10) and ledger["retired"] is None
    assert (ledger["owner"], ledger["environment"]) == ("alice@example.com", "prod")
    assert writer["retired"] == datetime(2026, 3, 1, 11, 0)  # +01:00 stored as UTC
    assert writer["name"] is None and writer["purpose"] is None
    assert json.loads(writer["raw"])["retired"] == "2026-03-01T11:00:00Z"


def test_json_object_form_and_csv_record_numbers(tmp_path: Path) -> None:
    case, _ = load(tmp_path, "inv.json", json.dumps({"agents": JSON_DOC}))
    assert [
        r["record_no"] for r in rows(case, "SELECT record_no FROM inventory_agents ORDER BY 1")
    ] == [1, 2]
    case, _ = load(tmp_path, "inv.csv", CSV)
    assert [
        r["record_no"] for r in rows(case, "SELECT record_no FROM inventory_agents ORDER BY 1")
    ] == [2, 3]


BAD = [
    ({"name": "no id"}, "'id' is required"),
    (
        {"id": "a1", "created": "01/02/2025"},
        "'created' is '01/02/2025': expected a date (YYYY-MM-DD)",
    ),
    (
        {"id": "a2", "identities": ["root"]},
        "'identities' item 'root' has no known shape; allowed: an IAM role",
    ),
    ({"id": "a3", "identities": ["arn:aws:s3:::bucket"]}, "has no known shape"),
    ({"id": "a4", "retried": "2026-01-01"}, "unknown key 'retried'; allowed keys: id, name, owner"),
    (
        {"id": "a5", "created": "2026-02-01", "retired": "2026-01-01"},
        "'retired' (2026-01-01) is before 'created'",
    ),
    (
        {"id": "a6", "identities": "AKIAEXAMPLE000000005;sometoken"},
        "'sometoken' has no known shape",
    ),
    ({"id": "ledger-reconciler"}, "duplicate id 'ledger-reconciler' (first defined in record 1)"),
    ({"id": "a7", "owner": 42}, "'owner' must be a string, not int"),
]


def test_bad_entries_are_rejected_with_record_number_and_the_rest_load(tmp_path: Path) -> None:
    doc = [JSON_DOC[0]] + [entry for entry, _ in BAD] + [JSON_DOC[1]]
    case, summary = load(tmp_path, "inv.json", json.dumps(doc))
    (f,) = summary.files
    assert (f.status, f.records, f.rejected) == ("loaded", len(doc), len(BAD))
    assert [r["agent_id"] for r in agents(case)] == ["ledger-reconciler", "report-writer"]
    rej = rows(case, "SELECT record_no, reason FROM rejects ORDER BY record_no")
    assert [r["record_no"] for r in rej] == list(range(2, 2 + len(BAD)))
    for r, (_, message) in zip(rej, BAD):
        assert r["reason"].startswith(f"agent record {r['record_no']}: ")
        assert message in r["reason"], r["reason"]


def test_unreadable_and_partly_odd_files(tmp_path: Path) -> None:
    case, summary = load(tmp_path, "broken.toml", "[[agents]]\nid = \n")
    assert summary.files[0].rejected == 1
    assert "inventory TOML does not parse" in rows(case, "SELECT reason FROM rejects")[0]["reason"]
    case, summary = load(tmp_path, "notes.txt", "just some notes\n")
    assert summary.files[0].rejected == 1
    assert "not an agent inventory" in rows(case, "SELECT reason FROM rejects")[0]["reason"]
    case, summary = load(tmp_path, "stray.toml", "version = 2\n" + TOML)
    assert (summary.files[0].records, summary.files[0].rejected) == (3, 1)
    assert len(agents(case)) == 2
    assert (
        "top-level key 'version' ignored" in rows(case, "SELECT reason FROM rejects")[0]["reason"]
    )
    case, summary = load(tmp_path, "wide.csv", CSV + "x,,,,,,,,extra\n")
    assert (summary.files[0].records, summary.files[0].rejected) == (3, 1)
    assert rows(case, "SELECT record_no, reason FROM rejects")[0] == {
        "record_no": 4,
        "reason": "agent record 4: row has 1 more cells than the header",
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"Records": [{"eventVersion": "1.08", "eventID": "x"}]}',
        '[{"eventId": "x", "eventName": "GetObject"}]',
        '{"time": "2026-03-01T12:00:00Z", "agent_id": "a", "operation": "login"}\n',
        '{"resourceSpans": []}',
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
        '{"type": "request", "time": "2026-03-01T12:00:00Z", "auth": {"accessor": "x"}}\n',
        "eventTime,eventName,id\n2026-01-01,GetObject,1\n",
        "",
    ],
)
def test_sniff_never_claims_log_files(tmp_path: Path, text: str) -> None:
    p = tmp_path / "log"
    p.write_text(text)
    assert InventoryAdapter.sniff(read_sample(p)) is None
    assert InventoryAdapter.PRIORITY >= 1000


@pytest.mark.parametrize(
    "text,label",
    [
        (TOML, "inventory-toml"),
        (json.dumps(JSON_DOC), "inventory-json"),
        (json.dumps({"agents": []}), "inventory-json"),
        (CSV, "inventory-csv"),
    ],
)
def test_sniff_labels(tmp_path: Path, text: str, label: str) -> None:
    p = tmp_path / "inv"
    p.write_text(text)
    assert InventoryAdapter.sniff(read_sample(p)) == label


def test_documented_examples_load(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs/formats/inventory.md").read_text()
    for lang, n in (("toml", 2), ("json", 1), ("csv", 1)):
        block = doc.split(f"```{lang}\n", 1)[1].split("```", 1)[0]
        case, summary = load(tmp_path, f"doc.{lang}", block)
        assert (summary.files[0].records, summary.files[0].rejected) == (n, 0), lang
        assert agents(case)[0]["agent_id"] == "ledger-reconciler"
