"""``manifest.json``: the chain of custody of a scope folder.

Written last, next to the record folders. It says which engine cut what from which inputs
(path, size, SHA-256, and why a file was skipped), from which seeds and window, which
credentials the closure holds and why, the counts in and out per source, and the SHA-256 of
every output file, so ``keytrail ingest`` can record it as provenance and check the files
against it (:func:`keytrail.ingest.provenance.verify`).

The counts are what a scope can state without parsing every record (the needle gate of either
engine, :mod:`keytrail.scope.gate`, parses only the CloudTrail files that can matter): ``records``
per input file is exact (for a file the gate did not open, its ``Records`` array's length) and
``rejected`` is ``None`` for such a file (not examined); ``counts.<source>.events_in`` is the
records in, before rejects, pairing and de-duplication (:func:`records_in`); the ``gate`` object
says what was read and when and why it fell back to the whole path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keytrail import __version__
from keytrail.ingest.provenance import MARK

NAME = "manifest.json"
LIMITS = (
    "The closure sees only what the given logs record: a key minted outside them (console, another "
    "account's trail, a Vault without an audit device, an AWS key Vault made with its key HMAC'd "
    "and no CloudTrail name match) has no issuing event, so its lineage stops there; events "
    "signed by "
    "credentials outside the closure are not kept even when they touch the same resources."
)


def build(
    *,
    engine: str,
    seeds: list[dict[str, Any]],
    since: datetime | None,
    until: datetime | None,
    closure: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    counts_out: dict[str, int],
    outputs: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    def t(x: datetime | None) -> str | None:
        return x.strftime("%Y-%m-%dT%H:%M:%SZ") if x else None

    counts_in = records_in(inputs)
    sources = sorted(set(counts_in) | set(counts_out))
    return {
        MARK: 1,
        "keytrail_version": __version__,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": engine,
        **(extra or {}),
        "seeds": seeds,
        "window": {"since": t(since), "until": t(until)},
        "closure": [
            {
                "credential_id": c["credential_id"],
                "relation": c["relation"],
                "why": c["why"],
                "evidence": list(c.get("evidence") or []),
            }
            for c in closure
        ],
        "inputs": sorted(inputs, key=lambda i: str(i.get("path"))),
        "counts": {
            s: {"events_in": counts_in.get(s, 0), "events_out": counts_out.get(s, 0)}
            for s in sources
        },
        "outputs": outputs,
        "limits": LIMITS,
    }


#: The sources whose records are events (``counts``' keys).
EVENT_SOURCES = ("agent", "cloudtrail", "vault")


def records_in(inputs: list[dict[str, Any]]) -> dict[str, int]:
    """``counts.<source>.events_in``: the records of the source's loaded files, before rejects,
    Vault pairing and de-duplication by event id (a scope's gate counts the files it does not
    parse, it cannot de-duplicate them: docs/scale.md)."""
    out: dict[str, int] = {}
    for i in inputs:
        if i.get("status") in ("loaded", "partial") and i.get("source") in EVENT_SOURCES:
            out[str(i["source"])] = out.get(str(i["source"]), 0) + int(i.get("records") or 0)
    return {s: n for s, n in out.items() if n}


def write(out: Path, doc: dict[str, Any]) -> Path:
    path = out / NAME
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path
