"""CloudTrail digest files (placeholder until the CloudTrail adapter lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.ingest.base import Sample, SourceAdapter

if TYPE_CHECKING:
    import duckdb

    from keytrail.ingest.base import LoadContext


class CloudTrailDigestAdapter(SourceAdapter):
    NAME = "cloudtrail_digest"
    SOURCE = "digest"
    PRIORITY = 10

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return None

    def load(self, ctx: LoadContext) -> None:
        raise NotImplementedError


def verify_integrity(con: duckdb.DuckDBPyConnection) -> None:
    """Mark CloudTrail files verified/failed/no-digest from the digests in the case."""
