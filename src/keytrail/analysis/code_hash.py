"""The hash of the analysis code, which every answer stored in a case is keyed by.

Its own module so that both the snapshot (:mod:`keytrail.analysis.snapshot`) and the raw pass's
cache (:mod:`keytrail.analysis.findings.rawcache`), which the snapshot's findings run uses, can
import it without importing each other.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from keytrail import __version__
from keytrail.fingerprint import source_fingerprint


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code whose answers the snapshot stores (analysis package, graph model)."""
    root = Path(__file__).resolve().parent
    files = sorted(root.rglob("*.py")) + [root.parent / "graph" / "model.py"]
    return source_fingerprint(
        __version__, ((f.relative_to(root.parent).as_posix(), f) for f in files)
    )
