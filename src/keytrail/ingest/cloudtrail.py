"""Placeholder: this adapter is being written (see the issue tracker)."""

from __future__ import annotations

from keytrail.ingest.base import LoadContext, Sample, SourceAdapter


class CloudTrailAdapter(SourceAdapter):
    NAME = "cloudtrail"
    SOURCE = "cloudtrail"

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return None

    def load(self, ctx: LoadContext) -> None:
        raise NotImplementedError
