"""Whether two ``keytrail scope`` folders hold the same cut: the manifests equal but for
``created_at``, the same output files, each byte-equal.

    python benchmarks/scope_same.py OLD_OUT NEW_OUT [--gated]

``--gated``: one side may have run the needle gate (:mod:`keytrail.scope.gate`): its ``gate``
object is left out, a file's ``rejected`` is compared only where both sides examined it (the
gate states ``null`` for a file it did not parse), and ``counts`` are compared only when both
sides count records before de-duplication (a scope of main counted events after it).

Prints ``SAME`` or ``DIFFERENT`` with the closure size and the records kept per source; exits 1
when they differ. Used to show that a faster scope cuts exactly what the old code cut (run the
old code from a worktree of main: ``PYTHONPATH=WORKTREE/src python -m keytrail scope ...``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def comparable(docs: list[dict[str, Any]], gated: bool) -> None:
    """``docs`` (two manifests) cut to what the gate does not change on purpose, in place."""
    for doc in docs:
        doc.pop("created_at", None)
    if not gated:
        return
    unread = {i["path"] for doc in docs for i in doc["inputs"] if i.get("rejected") is None}
    for doc in docs:
        doc.pop("gate", None)
        for i in doc["inputs"]:
            if i["path"] in unread:
                i["rejected"] = None
    counted = [d["counts"] for d in docs]
    if counted[0] != counted[1]:  # main's events_in: events after de-duplication
        for d in docs:
            d["counts"] = {s: c["events_out"] for s, c in d["counts"].items() if c["events_out"]}


def same(a: Path, b: Path, gated: bool = False) -> tuple[bool, str]:
    docs = [json.loads((d / "manifest.json").read_text()) for d in (a, b)]
    comparable(docs, gated)
    files = [
        sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) for d in (a, b)
    ]
    ok = (
        docs[0] == docs[1]
        and files[0] == files[1]
        and all(
            (a / f).read_bytes() == (b / f).read_bytes() for f in files[0] if f != "manifest.json"
        )
    )
    kept = {
        s: c.get("events_out") if isinstance(c, dict) else c for s, c in docs[0]["counts"].items()
    }
    return ok, f"files {len(files[0])} closure {len(docs[0]['closure'])} kept {kept}"


def main(argv: list[str]) -> int:
    a, b = Path(argv[0]), Path(argv[1])
    ok, what = same(a, b, "--gated" in argv[2:])
    print("SAME" if ok else "DIFFERENT", a, b, what)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
