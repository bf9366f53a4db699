"""The report: hostile log text yields no executable HTML, no network reference, inert Markdown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from keytrail.errors import NotFoundError, UsageError
from keytrail.report.content import build_report
from keytrail.report.html import render_html
from keytrail.report.markdown import _containment, c, prose, render_markdown, t
from keytrail.store.case import CaseStore
from tests.golden.case_fixture import (
    AGENT_KEY,
    SESSION_KEY,
    SESSION_TOKEN,
    XSS_KEY,
    XSS_UA,
    build_case,
)

CREDS = ["AKIAEXAMPLEALICE0001", AGENT_KEY, SESSION_KEY]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_case(tmp_path_factory.mktemp("report") / "case.duckdb")


@pytest.fixture(scope="module")
def doc(case: Path) -> dict[str, object]:
    with CaseStore.open(case) as store:
        return build_report(store, credentials=CREDS, generated_at=datetime(2026, 3, 3, 9, 0))


class _Audit(HTMLParser):
    """Collects everything in a page that could run code or fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.urls: list[str] = []
        self.csp: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in (
                "src",
                "href",
                "xlink:href",
                "action",
                "formaction",
                "data",
                "poster",
                "background",
            ):
                self.urls.append(value or "")
            if tag == "meta" and name == "http-equiv" and value == "Content-Security-Policy":
                self.csp.append(dict(attrs).get("content") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_has_no_executable_content(doc: dict[str, object]) -> None:
    page = render_html(doc)
    audit = _Audit()
    audit.feed(page)
    assert "script" not in audit.tags and "iframe" not in audit.tags and "object" not in audit.tags
    assert audit.handlers == []
    assert not [
        u
        for u in audit.urls
        if u.strip().lower().startswith(("javascript:", "http", "//", "data:"))
    ]
    assert "javascript:" not in page.lower()
    # The hostile strings are shown as text, not parsed as markup.
    shown = "".join(audit.text)
    assert XSS_UA in shown and XSS_KEY[:20] in shown
    assert "<script>alert(1)" not in page and "<img src=x" not in page


def test_html_has_csp_and_no_network_reference(doc: dict[str, object]) -> None:
    page = render_html(doc)
    audit = _Audit()
    audit.feed(page)
    assert audit.csp and audit.csp[0].startswith("default-src 'none'")
    assert re.search(r"https?:", page, re.IGNORECASE) is None
    assert (
        re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//|javascript:)", page, re.IGNORECASE)
        is None
    )
    assert "@import" not in page
    assert (
        re.findall(r"url\(\s*(?!#)", page) == []
    )  # only in-document references such as url(#marker)


def test_secrets_are_masked_everywhere(doc: dict[str, object]) -> None:
    for text in (json.dumps(doc), render_html(doc), render_markdown(doc)):
        assert SESSION_TOKEN not in text


def test_report_sections_for_selected_credential(doc: dict[str, object]) -> None:
    sections = {s["credential"]: s for s in doc["credentials"]}  # type: ignore[attr-defined,index]
    session = sections[SESSION_KEY]
    actions = {(r["action"], r["denied"]) for r in session["resources"]}
    assert ("s3:GetObject", 0) in actions and ("s3:PutObject", 1) in actions
    assert session["activity"]["events"] == 3 and session["activity"]["denied"] == 1
    assert [e["source_event_id"][:8] for e in session["timeline"]] == [
        "00000004",
        "00000005",
        "00000006",
    ]
    header = doc["header"]  # type: ignore[index]
    assert [e["sha256"][0] for e in header["evidence"]] == ["a", "b", "c", "d"]
    assert {g["kind"] for g in header["coverage_gaps"]} >= {"skipped-file", "integrity-no-digest"}
    assert doc["appendix"]["queries"] and doc["appendix"]["keytrail_version"]  # type: ignore[index]
    targets = {i["target"] for i in doc["containment"]}  # type: ignore[attr-defined]
    assert "AKIAEXAMPLEALICE0001" in targets


def test_time_window_filters_events(case: Path) -> None:
    with CaseStore.open(case) as store:
        doc = build_report(
            store,
            credentials=[SESSION_KEY],
            since="2026-03-02T10:06:30Z",
            generated_at=datetime(2026, 3, 3),
        )
        assert doc["credentials"][0]["activity"]["events"] == 2
        with pytest.raises(UsageError):
            build_report(store, since="yesterday-ish")
        with pytest.raises(NotFoundError):
            build_report(store, credentials=["AKIADOESNOTEXIST000"])


def test_markdown_escapes_log_text() -> None:
    assert t("a|b") == "a\\|b"
    assert t("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert t("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert t("http://evil.example/x") == "http:\\/\\/evil.example/x"
    assert c("q3|tampered") == "`q3\\|tampered`"
    assert c("a`b") == "``a`b``"


def test_markdown_tables_stay_intact(doc: dict[str, object]) -> None:
    md = render_markdown(doc)
    # Outside code spans (where GitHub shows text literally) no "<" from a log survives.
    outside = re.sub(r"(`+)(?:(?!\1).)+?\1", "", md.split("## 6. Appendix")[0])
    assert "<" not in outside
    # Every unescaped pipe is a cell border: a logged "|" never adds a cell to a row.
    width = None
    for line in md.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        width = width or cells
        assert cells == width, line
    assert "exports/q3\\|tampered.csv" in md


def test_cli_report_refuses_overwrite_and_writes_each_format(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    base = [
        sys.executable,
        "-m",
        "keytrail",
        "report",
        str(case),
        "-o",
        str(out),
        "--credential",
        SESSION_KEY,
    ]
    env_run = {"env": {**__import__("os").environ, "SOURCE_DATE_EPOCH": "1772528400"}}
    refused = subprocess.run(base, check=False, capture_output=True, text=True, **env_run)  # type: ignore[call-overload]
    assert refused.returncode == 2 and "--force" in refused.stderr and out.read_text() == "old"
    done = subprocess.run(
        base + ["--force"], check=False, capture_output=True, text=True, **env_run
    )  # type: ignore[call-overload]
    assert done.returncode == 0, done.stderr
    assert "2026-03-03T09:00:00Z" in out.read_text()
    target = tmp_path / "r.json"  # the format follows the extension
    ok = subprocess.run(
        base[:6] + [str(target)] + base[7:], check=False, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(target.read_text())["credentials"][0]["credential"] == SESSION_KEY
    missing = subprocess.run(
        base[:8] + ["NOPE", "--force"], check=False, capture_output=True, text=True
    )
    assert missing.returncode == 1


def test_key_events_are_not_all_one_kind(tmp_path: Path) -> None:
    """A burst of denied reads must not crowd the minting call and the write out of the traced key events."""
    from tests.unit.graph_case import SESSION, CaseBuilder

    key, child = "AKIAROOT000000000001", "ASIACHILD00000000001"
    b = CaseBuilder(tmp_path / "c.duckdb")
    for i in range(6):
        b.event(
            "cloudtrail",
            f"ct-denied-{i}",
            i,
            "iam:ListUsers",
            cred=key,
            cred_kind="aws-access-key",
            outcome="denied",
        )
    mint = b.event(
        "cloudtrail", "ct-assume", 10, "sts:AssumeRole", cred=key, cred_kind="aws-access-key"
    )
    b.issue(child, "aws-temporary-key", key, mint, 10, principal=SESSION)
    b.event(
        "cloudtrail",
        "ct-put",
        20,
        "s3:PutObject",
        cred=child,
        cred_kind="aws-temporary-key",
        actor=SESSION,
        resources=("arn:aws:s3:::b/k",),
    )
    b.finalize().close()
    with CaseStore.open(tmp_path / "c.duckdb") as store:
        doc = build_report(store, credentials=[key], generated_at=datetime(2026, 3, 3))
    traced = [t["event_uid"] for t in doc["credentials"][0]["traces"]]  # type: ignore[index]
    assert len(traced) == 5
    assert traced[:3] == ["cloudtrail:ct-assume", "cloudtrail:ct-put", "cloudtrail:ct-denied-0"]


def test_containment_invalidates_each_role_once(tmp_path: Path) -> None:
    """Nine daily sessions of one role need one AWSRevokeOlderSessions policy, not nine identical commands."""
    from tests.unit.graph_case import ACCT, CaseBuilder

    key = "AKIAROOT000000000001"
    b = CaseBuilder(tmp_path / "c.duckdb")
    for i in range(3):
        ev = b.event(
            "cloudtrail",
            f"ct-assume-{i}",
            i * 60,
            "sts:AssumeRole",
            cred=key,
            cred_kind="aws-access-key",
        )
        b.issue(
            f"ASIADAY{i:013d}",
            "aws-temporary-key",
            key,
            ev,
            i * 60,
            principal=f"arn:aws:sts::{ACCT}:assumed-role/reconciler/day-{i}",
        )
    b.finalize().close()
    with CaseStore.open(tmp_path / "c.duckdb") as store:
        doc = build_report(store, credentials=[key], generated_at=datetime(2026, 3, 3))
    sessions = [i for i in doc["containment"] if i["category"] == "Invalidate AWS sessions"]  # type: ignore[attr-defined]
    assert len(sessions) == 1
    assert sessions[0]["target"] == f"arn:aws:sts::{ACCT}:assumed-role/reconciler/*"
    assert all(f"ASIADAY{i:013d}" in sessions[0]["why"] for i in range(3))
    assert sessions[0]["evidence"] == [
        "cloudtrail:ct-assume-0",
        "cloudtrail:ct-assume-1",
        "cloudtrail:ct-assume-2",
    ]


def test_markdown_containment_commands_are_code_spans_escaped_once() -> None:
    """Backticked commands in a recommendation showed as \\`…&lt;accessor&gt;…\\` (escaped twice)."""
    rec = (
        "list accessors with `vault list auth/token/accessors`, then "
        "`vault token revoke -accessor <accessor>` for role <the role> `a|b`"
    )
    assert prose(rec) == (
        "list accessors with `vault list auth/token/accessors`, then "
        "`vault token revoke -accessor <accessor>` for role &lt;the role&gt; `a|b`"
    )
    assert prose("no code <b>*x*</b>") == t("no code <b>*x*</b>")
    assert prose("odd ` tick <i>") == t("odd ` tick <i>")
    doc = {
        "containment": [
            {
                "category": "Revoke Vault tokens",
                "target": "hmac-sha256:ab",
                "why": "in the blast radius",
                "evidence": [],
                "command": None,
                "recommendation": rec,
            },
            {
                "category": "Revoke Vault tokens",
                "target": "x",
                "why": "y",
                "evidence": [],
                "command": "vault token revoke -accessor <a> | tee log",
            },
        ]
    }
    md = "\n".join(_containment(doc))
    assert "\\`" not in md and "&lt;accessor&gt;" not in md
    assert "`vault token revoke -accessor <accessor>`" in md
    assert "`vault token revoke -accessor <a> | tee log`" in md  # no \\| outside a table
