"""Adapter registry: names to classes, discovered through ``keytrail.sources`` entry points.

Listing adapters imports none of them; :func:`load_adapter` imports one on demand.
The built-in adapters are declared in ``pyproject.toml`` like any plugin, and also
listed here so a source checkout works before it is installed.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keytrail.ingest.base import Sample, SourceAdapter

BUILTIN: dict[str, str] = {
    "cloudtrail_digest": "keytrail.ingest.cloudtrail.digest:CloudTrailDigestAdapter",
    "cloudtrail": "keytrail.ingest.cloudtrail.adapter:CloudTrailAdapter",
    "vault": "keytrail.ingest.vault.adapter:VaultAdapter",
    "otlp": "keytrail.ingest.agent.otlp:OtlpAdapter",
    "mcp": "keytrail.ingest.agent.mcp:McpAdapter",
    "agent_jsonl": "keytrail.ingest.agent.native:NativeAgentAdapter",
    "policies": "keytrail.ingest.policies:PolicyAdapter",
}


@cache
def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group="keytrail.sources"):
        found.setdefault(ep.name, ep.value)
    return found


def adapter_names() -> list[str]:
    """Names of every registered adapter (imports nothing)."""
    return sorted(_targets())


@cache
def load_adapter(name: str) -> type[SourceAdapter]:
    """Import and return the adapter class registered as ``name``."""
    target = _targets()[name]
    module_name, _, attr = target.partition(":")
    cls: type[SourceAdapter] = getattr(importlib.import_module(module_name), attr)
    return cls


def sniff(sample: Sample) -> tuple[type[SourceAdapter], str] | None:
    """The first adapter (by ``PRIORITY``) that recognises the sample, with its format label."""
    classes = sorted((load_adapter(n) for n in adapter_names()), key=lambda c: (c.PRIORITY, c.NAME))
    for cls in classes:
        try:
            label = cls.sniff(sample)
        except Exception:  # noqa: BLE001 - a sniffer bug must not stop the ingest of other files
            label = None
        if label:
            return cls, label
    return None
