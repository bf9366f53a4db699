"""Derived tables (placeholder until the graph layer lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


def derive(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild credentials, principals and links from the ingested tables."""
