"""docs/schema.md is generated from store/schema.py and must match it."""

from __future__ import annotations

from keytrail.store.schema import render_markdown

from ..conftest import REPO


def test_schema_doc_is_current() -> None:
    doc = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert doc == render_markdown(), "run: python -m keytrail.store.schema > docs/schema.md"
