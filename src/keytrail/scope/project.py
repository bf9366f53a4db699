"""The per-record projection both engines walk: the trail loaded by the ingest adapters themselves.

A scratch case (a DuckDB file in a temporary directory) receives the files through
:func:`keytrail.ingest.runner.ingest` with ``graph=False``: the same sniffing, the same adapters
(CloudTrail's bulk SQL, Vault's request/response pairing and minting code, the agent readers),
the same de-duplication, the same skipped/failed bookkeeping, and no graph. Then
:func:`keytrail.graph.derive.mint_facts` states what minted what. Whatever keytrail learns to
read, scope reads too, and a credential means the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keytrail.graph.agent_identity import merge_agents
from keytrail.graph.derive import mint_facts
from keytrail.ingest.runner import IngestSummary, ingest
from keytrail.store.case import CaseStore

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

#: Where each selected record sits: enough to copy its original bytes out of the input file.
LOCATIONS = """
SELECT e.event_uid, e.source, e.time, v.path, v.format, e.record_no, e.byte_offset,
       CASE WHEN e.source = 'cloudtrail' THEN e.raw END AS raw,
       rv.path AS request_path,
       TRY_CAST(e.details->>'request_byte_offset' AS BIGINT) AS request_offset
FROM events e JOIN evidence v ON v.file_id = e.file_id
LEFT JOIN evidence rv
  ON rv.file_id = coalesce(TRY_CAST(e.details->>'request_file_id' AS INTEGER), e.file_id)
                     AND e.source = 'vault' AND e.details->>'entry' = 'pair'
WHERE e.event_uid IN ({selection})
"""


def file_rows(summary: IngestSummary) -> list[dict[str, Any]]:
    """The manifest's ``inputs`` rows: each file as the ingest saw it (skipped: with the reason)."""
    return [
        {
            "path": f.path,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "status": f.status,
            "source": f.source,
            "format": f.format,
            "records": f.records,
            "rejected": f.rejected,
            "note": f.note,
        }
        for f in summary.files
    ]


@dataclass
class Projection:
    """A scratch case holding the trail's rows (no graph) and the ingest's per-file results."""

    store: CaseStore
    summary: IngestSummary

    def inputs(self) -> list[dict[str, Any]]:
        return file_rows(self.summary)

    def counts_in(self) -> dict[str, int]:
        rows = self.store.con.execute("SELECT source, count(*) FROM events GROUP BY 1").fetchall()
        return {str(s): int(n) for s, n in rows}


def project(
    scratch: Path, paths: Iterable[str | Path], *, inventory: Iterable[str | Path] = ()
) -> Projection:
    """Load ``paths`` into a scratch case at ``scratch`` and derive the issuance facts there."""
    summary = ingest(scratch, paths, inventory=inventory, graph=False)
    store = CaseStore.open(scratch, read_only=False)
    merge_agents(store.con)  # as the derive does first: one id per agent for the USES rules
    mint_facts(store.con)
    return Projection(store, summary)
