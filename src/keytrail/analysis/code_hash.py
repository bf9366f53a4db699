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


def fingerprinted() -> list[Path]:
    """The files :func:`code_fingerprint` hashes: the analysis package and the graph modules
    whose rules its SQL embeds (the model's confidences, the classifier's holder and decision
    SQL), so an upgrade that changes either is met by a fresh snapshot."""
    root = Path(__file__).resolve().parent
    graph = root.parent / "graph"
    return sorted(root.rglob("*.py")) + [graph / "model.py", graph / "principal_class.py"]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code whose answers the snapshot stores (:func:`fingerprinted`)."""
    package = Path(__file__).resolve().parents[1]
    return source_fingerprint(
        __version__, ((f.relative_to(package).as_posix(), f) for f in fingerprinted())
    )
