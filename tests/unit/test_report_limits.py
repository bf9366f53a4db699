"""A report of a big case stays readable: long lists are cut with their totals stated.

The limits are lowered on the sample incident (monkeypatched module constants, the real
case and queries) so every cut shows up on a small case; at 1M events the top credential
has 11,279 minted keys and the uncut report was 233 MB of HTML.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main
from keytrail.report import _common, content
from keytrail.report.html import render_html
from keytrail.report.markdown import render_markdown
from keytrail.store.case import CaseStore

INCIDENT = Path(__file__).resolve().parents[2] / "sample_data" / "incident"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not INCIDENT.is_dir():
        pytest.skip("sample incident not present")
    path = tmp_path_factory.mktemp("limits") / "case.duckdb"
    with contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(
                [
                    "ingest",
                    str(path),
                    str(INCIDENT / "AWSLogs"),
                    str(INCIDENT / "vault"),
                    str(INCIDENT / "agents"),
                    "-q",
                ]
            )
            == 0
        )
    return path


def _build(case: Path) -> dict[str, Any]:
    with CaseStore.open(case) as store:
        return content.build_report(store, top=2)


def test_uncut_report_lists_everything(case: Path) -> None:
    doc = _build(case)
    assert doc["ranking"]["total"] == len(doc["ranking"]["credentials"])
    for sec in doc["credentials"]:
        assert sec["resources_total"] == len({r["resource_id"] for r in sec["resources"]})
        assert sec["lineage"]["credentials_omitted"] == 0
    assert "the JSON report lists the top" not in render_html(doc)


def test_long_lists_are_cut_and_say_how_much(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = _build(case)
    monkeypatch.setattr(content, "RANKED_LIMIT", 3)
    monkeypatch.setattr(content, "RESOURCE_LIMIT", 2)
    monkeypatch.setattr(content, "DRAWN_CREDENTIALS", 1)
    monkeypatch.setattr(content, "DERIVED_LISTED", 1)
    doc = _build(case)
    rank = doc["ranking"]
    assert rank["total"] == full["ranking"]["total"] > 3 and len(rank["credentials"]) == 3
    assert all(len(r["derived_credentials"]) <= 1 for r in rank["credentials"])
    assert [r["derived_count"] for r in rank["credentials"]] == [
        r["derived_count"] for r in full["ranking"]["credentials"][:3]
    ]
    assert doc["summary"]["credentials_ranked"] == rank["total"]
    # the first examined credential with minted ones (the top one, the backdoor key, minted none)
    i = next(i for i, c in enumerate(full["credentials"]) if len(c["derived_credentials"]) > 1)
    top, top_full = doc["credentials"][i], full["credentials"][i]
    listed = {r["resource_id"] for r in top["resources"]}
    assert len(listed) == 2 and top["resources_total"] == top_full["resources_total"] > 2
    # The kept resources are the busiest ones, with every action they saw.
    events: dict[str, int] = {}
    for r in top_full["resources"]:
        events[r["resource_id"]] = events.get(r["resource_id"], 0) + r["events"]
    assert min(events[r] for r in listed) >= max(v for k, v in events.items() if k not in listed)
    assert [r for r in top_full["resources"] if r["resource_id"] in listed] == top["resources"]
    drawn = [n for n in top["lineage"]["nodes"] if n["kind"] == "credential"]
    assert [n["label"] for n in drawn] == [top["credential"]]
    assert top["lineage"]["credentials_omitted"] == len(top["derived_credentials"]) - 1 > 0
    # Containment still revokes every derived credential: only the display is cut.
    assert top["derived_credentials"] == top_full["derived_credentials"]
    html, md = render_html(doc), render_markdown(doc)
    assert (
        f"{rank['total'] - 3} more credentials (the JSON report lists the top 3; "
        "`keytrail credentials CASE --json` lists all)."
    ) in html  # the table shows the 3 listed
    assert f"The 2 resources with the most events of {top['resources_total']} are listed" in html
    assert f"The 2 resources with the most events of {top['resources_total']} are listed" in md
    assert "credentials are not drawn" in html or "less-used credentials" in html


def test_derived_table_is_cut_in_renderings(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _build(case)
    sec = next(c for c in doc["credentials"] if len(c["derived_credentials"]) > 1)
    n = len(sec["derived_credentials"])
    monkeypatch.setattr(_common, "DERIVED_SHOWN", 1)
    import keytrail.report.html as html_mod
    import keytrail.report.markdown as md_mod

    monkeypatch.setattr(html_mod, "DERIVED_SHOWN", 1)
    monkeypatch.setattr(md_mod, "DERIVED_SHOWN", 1)
    assert f"{n - 1} more derived credentials in the JSON report." in render_html(doc)
    assert f"{n - 1} more derived credentials in the JSON report." in render_markdown(doc)


def test_requested_credential_below_the_cut_keeps_its_score(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CaseStore.open(case) as store:
        from keytrail.analysis.answers import rank_credentials

        last = rank_credentials(store)[-1]
        monkeypatch.setattr(content, "RANKED_LIMIT", 1)
        doc = content.build_report(store, credentials=[last.credential])
    sec = doc["credentials"][0]
    assert sec["credential"] == last.credential and sec["score"] == last.score
    assert [t["name"] for t in sec["terms"]] == [t.name for t in last.score_terms]
