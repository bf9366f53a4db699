"""The case store: DuckDB schema, opening rules, ingest bookkeeping and finalisation."""

from __future__ import annotations
