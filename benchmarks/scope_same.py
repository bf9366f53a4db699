"""Whether two ``keytrail scope`` folders hold the same cut: the manifests equal but for
``created_at``, the same output files, each byte-equal.

    python benchmarks/scope_same.py OLD_OUT NEW_OUT

Prints ``SAME`` or ``DIFFERENT`` with the closure size and the records kept per source; exits 1
when they differ. Used to show that a faster scope cuts exactly what the old code cut (run the
old code from a worktree of main: ``PYTHONPATH=WORKTREE/src python -m keytrail scope ...``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def same(a: Path, b: Path) -> tuple[bool, str]:
    docs = []
    for d in (a, b):
        doc = json.loads((d / "manifest.json").read_text())
        doc.pop("created_at", None)
        docs.append(doc)
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
    kept = {s: c.get("events_out") for s, c in docs[0]["counts"].items()}
    return ok, f"files {len(files[0])} closure {len(docs[0]['closure'])} kept {kept}"


def main(argv: list[str]) -> int:
    a, b = Path(argv[0]), Path(argv[1])
    ok, what = same(a, b)
    print("SAME" if ok else "DIFFERENT", a, b, what)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
