"""The report's first screen: attack path and the first actions, worst first, one per target."""

from __future__ import annotations

import pytest

from keytrail.report.content import build_report
from keytrail.report.html import render_html
from keytrail.report.story import top_actions
from keytrail.report.svg_path import render_attack_path
from keytrail.store.case import CaseStore
from tests.unit.graph_case import incident


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("story") / "case.duckdb"
    incident(path).close()
    with CaseStore.open(path) as store:
        return build_report(store)


def test_checklist_is_worst_first_and_actions_one_per_target(doc: dict) -> None:  # type: ignore[type-arg]
    ranks = [{"critical": 0, "high": 1}.get(i.get("level") or "", 2) for i in doc["containment"]]
    assert ranks == sorted(ranks)
    actions = doc["summary"]["actions"]
    assert actions and len({a["target"] for a in actions}) == len(actions)
    assert actions[0]["level"] == doc["containment"][0]["level"]


def test_top_actions_fold_other_reasons_for_the_same_target() -> None:
    items = [
        {
            "target": "AKIA1",
            "level": "high",
            "category": "Deactivate AWS access keys",
            "why": "a",
            "command": "x",
        },
        {
            "target": "AKIA1, bot",
            "level": "critical",
            "category": "Act on findings",
            "why": "critical: b",
        },
        {"target": "AKIA2", "level": None, "category": "Deactivate AWS access keys", "why": "c"},
    ]
    acts = top_actions(items)
    assert [a["target"] for a in acts] == ["AKIA1", "AKIA2"]
    assert acts[0]["level"] == "critical" and acts[0]["also"] == ["a"]


def test_attack_path_picture_fits_and_links_to_sections(doc: dict) -> None:  # type: ignore[type-arg]
    path = doc["summary"]["attack_path"]
    assert (
        path
        and path["chain"]
        and path["chain"][0]["credential"] == doc["credentials"][0]["credential"]
    )
    svg = render_attack_path(path)
    assert 'viewBox="0 0 900 ' in svg and 'href="#cred-1"' in svg and "<script" not in svg
    page = render_html(doc)
    assert (
        page.index('id="summary"')
        < page.index('id="do-now"')
        < page.index('id="blast"')
        < page.index('id="findings"')
        < page.index('id="case"')
    )
    hostile = render_attack_path(
        {
            "chain": [{"credential": "<b>x</b>", "kind": "k", "principal": "p"}],
            "humans": ['"><script>'],
            "agents": [],
            "resources": [],
        }
    )
    assert "<script>" not in hostile and "&lt;b&gt;" in hostile
