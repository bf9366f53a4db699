"""A hash of source files: how stored results know which code made them.

The analysis snapshot (:func:`keytrail.analysis.code_hash.code_fingerprint`) and the derived graph
tables (:func:`keytrail.graph.derive_incr.derive_fingerprint`) are kept in the case only while the
code that made them is the code running; each stores this hash of its files in ``case_meta`` and
recomputes when the hash differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def source_fingerprint(seed: str, files: Iterable[tuple[str, Path]]) -> str:
    """24 hex digits of SHA-256 over ``seed``, then each file's name and bytes, in order."""
    h = hashlib.sha256(seed.encode())
    for name, path in files:
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:24]
