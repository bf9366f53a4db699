"""Vault and agent adapters for a scope's pass 1: the same rows, but no record text.

A scope reads the Vault and agent rows' ids, times, ``details`` (where a Vault pair's request
sits) and issuance rows; it copies the kept records out of their files by byte offset
(:mod:`keytrail.scope.output`), never from ``events.raw``, and no rule a scope runs (the MINTED
facts, the closure, the agents' merge, the classifier, which reads CloudTrail text only) reads
their ``raw`` or their ``event_resources``. Writing them cost the masking of every line's text
and its compression into the scratch case (86 MB of Vault lines at 1M events). So each adapter
runs unchanged, and its context leaves those out of the inserts: every other value is the
adapter's own.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from keytrail.ingest.base import LoadContext, SourceAdapter, rows_to_arrow

if TYPE_CHECKING:
    from collections.abc import Callable


class NoRawContext(LoadContext):
    """A load context whose ``events`` rows have no ``raw``, and no ``event_resources`` rows."""

    def insert(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> int:
        if table == "event_resources":
            return 0
        if table == "events":
            rows = rows_to_arrow(table, rows) if isinstance(rows, list) else rows
            if "raw" in rows.column_names:
                rows = rows.drop_columns(["raw"])
        return super().insert(table, rows)


def load_through(
    kind: type[LoadContext],
    ctxs: list[LoadContext],
    load: Callable[[list[LoadContext]], None],
) -> None:
    """``load`` over copies of ``ctxs`` of the context class ``kind`` (what a scope's pass 1
    writes); the counts and notes go back to the originals, and the rejects a copy holds are
    written when ``load`` returns (a copy holds its own: :meth:`LoadContext.reject`)."""
    narrow: list[LoadContext] = [
        c
        if isinstance(c, kind)
        else kind(**{f.name: getattr(c, f.name) for f in fields(c) if f.init})
        for c in ctxs
    ]
    try:
        load(narrow)
        for n in narrow:
            n.flush_rejects()
    finally:
        for c, n in zip(ctxs, narrow, strict=True):
            c.records, c.rejected, c.skipped_records = n.records, n.rejected, n.skipped_records
            c.break_note, c.notes = n.break_note, n.notes


def without_raw(cls: type[SourceAdapter]) -> type[SourceAdapter]:
    """``cls`` loading through :class:`NoRawContext` (substituted for it in a scope)."""

    class NoRaw(cls):  # type: ignore[valid-type,misc]
        def load(self, ctx: LoadContext) -> None:
            load_through(NoRawContext, [ctx], lambda cs: super(NoRaw, self).load(cs[0]))

        def load_batch(self, ctxs: list[LoadContext]) -> None:
            load_through(NoRawContext, ctxs, lambda cs: super(NoRaw, self).load_batch(cs))

    NoRaw.__name__ = NoRaw.__qualname__ = f"NoRaw{cls.__name__}"
    return NoRaw
