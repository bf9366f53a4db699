"""Scope manifests met during an ingest: recorded as provenance, checked against their files.

``keytrail scope`` writes ``manifest.json`` next to the records it cut (engine, seeds, window,
closure, inputs with SHA-256, outputs with SHA-256). When that folder is ingested, the manifest
is no log: it becomes an ``evidence`` row with status ``provenance`` and its full text goes to
``case_meta`` (``provenance.<sha256>``), so ``keytrail info`` can say where the case came from.
Recognised by content (the ``keytrail_scope`` key), like every other input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

#: The key that marks a scope manifest.
MARK = "keytrail_scope"
META_PREFIX = "provenance."


def is_manifest(head: bytes) -> bool:
    return head.lstrip()[:1] == b"{" and f'"{MARK}"'.encode() in head[:200]


def verify(path: Path, doc: dict[str, Any]) -> list[str]:
    """Problems between a manifest and the files next to it (missing, or SHA-256 differs)."""
    problems = []
    for o in doc.get("outputs") or []:
        f = path.parent / str(o.get("path", ""))
        if not f.is_file():
            problems.append(f"{o.get('path')}: listed in the manifest, missing")
        elif hashlib.sha256(f.read_bytes()).hexdigest() != o.get("sha256"):
            problems.append(f"{o.get('path')}: SHA-256 differs from the manifest")
    return problems


def record(store: CaseStore, path: Path, sha: str) -> str:
    """Store the manifest in ``case_meta``; returns the evidence note (what, whether it checks)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    problems = verify(path, doc)
    store.set_meta(META_PREFIX + sha, json.dumps(doc, sort_keys=True))
    seeds = ", ".join(str(s.get("seed")) for s in doc.get("seeds") or [])
    outs = len(doc.get("outputs") or [])
    state = (
        f"all {outs} output files match their SHA-256"
        if not problems
        else "; ".join(problems[:5])
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
    )
    return f"keytrail scope manifest ({doc.get('engine')} engine, seeds {seeds}): {state}"


def manifests(store: CaseStore) -> list[dict[str, Any]]:
    """Every recorded scope manifest, summarised for ``keytrail info``."""
    out = []
    for key, value in store.con.execute(
        "SELECT key, value FROM case_meta WHERE starts_with(key, ?) ORDER BY key", [META_PREFIX]
    ).fetchall():
        doc = json.loads(value)
        out.append(
            {
                "manifest_sha256": key[len(META_PREFIX) :],
                "engine": doc.get("engine"),
                "created_at": doc.get("created_at"),
                "seeds": doc.get("seeds"),
                "window": doc.get("window"),
                "closure": len(doc.get("closure") or []),
                "inputs": len(doc.get("inputs") or []),
                "counts": doc.get("counts"),
                "outputs": len(doc.get("outputs") or []),
            }
        )
    return out
