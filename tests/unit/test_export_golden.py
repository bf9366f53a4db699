"""Byte-exact golden files for every export format and report rendering of the fixed case.

Regenerate after an intended change with ``KEYTRAIL_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from keytrail.report.content import build_report
from keytrail.report.exports import export
from keytrail.report.html import render_html
from keytrail.report.markdown import render_markdown
from keytrail.store.case import CaseStore
from tests.golden.case_fixture import SESSION_KEY, build_case

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "expected"
UPDATE = os.environ.get("KEYTRAIL_UPDATE_GOLDEN") == "1"
GENERATED_AT = datetime(2026, 3, 3, 9, 0, 0)

EXPORTS = [
    ("timesketch", None, "timeline.timesketch.jsonl"),
    ("ocsf", None, "events.ocsf.jsonl"),
    ("opengraph", None, "graph.opengraph.json"),
    ("graphml", None, "graph.graphml"),
    ("csv", "events", "events.csv"),
    ("csv", "credentials", "credentials.csv"),
    ("csv", "links", "links.csv"),
    ("csv", "findings", "findings.csv"),
    ("parquet", "events", "events.parquet"),
    ("parquet", "links", "links.parquet"),
]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_case(tmp_path_factory.mktemp("golden") / "golden-case.duckdb")


def _check(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(data)
    assert path.exists(), f"missing golden file {path}; run with KEYTRAIL_UPDATE_GOLDEN=1"
    assert data == path.read_bytes(), (
        f"{name} differs from its golden file (KEYTRAIL_UPDATE_GOLDEN=1 to accept)"
    )


@pytest.mark.parametrize(("fmt", "table", "name"), EXPORTS, ids=[e[2] for e in EXPORTS])
def test_export_matches_golden(
    case: Path, tmp_path: Path, fmt: str, table: str | None, name: str
) -> None:
    if table == "findings":
        pytest.importorskip("keytrail.analysis.findings")
    out = tmp_path / name
    with CaseStore.open(case) as store:
        export(store, out, fmt, table=table)
    _check(name, out.read_bytes())


def _report(case: Path) -> dict[str, object]:
    with CaseStore.open(case) as store:
        return build_report(
            store, credentials=["AKIAEXAMPLEALICE0001", SESSION_KEY], generated_at=GENERATED_AT
        )


def test_report_renderings_match_golden(case: Path) -> None:
    doc = _report(case)
    _check("report.json", (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    _check("report.html", render_html(doc).encode())
    _check("report.md", render_markdown(doc).encode())
