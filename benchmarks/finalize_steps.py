"""Where the end of an ingest goes: every statement of ``finalize``, its wall and CPU seconds.

The finalize (de-duplication, counts, the graph derive, the commit) runs as one transaction of
about a hundred statements; a profile of the whole ingest shows it only as one block. This copies
a finished case, empties its derived tables (committed and checkpointed, as a fresh ingest finds
them) and forgets that it was derived, so ``finalize`` derives in full, then runs it with every
``execute`` of the case's connection timed:

    python benchmarks/finalize_steps.py CASE.duckdb COPY.duckdb [--top 30]

CPU seconds are this process's (user + system, DuckDB's worker threads included). The
de-duplication finds nothing to remove in a finished case (a fresh ingest's copies were removed
by its own finalize); on ``scripts/gen_scale.py`` data there are none either way.
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from keytrail.ingest import finalize as fin
from keytrail.store.case import CaseStore

DERIVED = ("links", "credentials", "principals", "principal_classes", "credential_facts")


class _Timed:
    """The case connection with each ``execute`` timed (everything else passed through)."""

    def __init__(self, con: Any, rows: list[tuple[float, float, str]]) -> None:
        self._con, self._rows = con, rows

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            text = " ".join(str(sql).split())
            self._rows.append((time.process_time() - c, time.perf_counter() - t, text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def prepare(src: str, dst: str) -> None:
    """``dst``: a copy of ``src`` as a fresh ingest leaves it before ``finalize``."""
    shutil.copyfile(src, dst)
    with CaseStore.open(dst, read_only=False) as store:
        for table in DERIVED:
            store.con.execute(f"DELETE FROM {table}")
        store.con.execute(
            "DELETE FROM case_meta WHERE key IN (?, ?, ?)",
            [fin.THROUGH_KEY, fin.CODE_KEY, fin.RESOURCE_ROWS_KEY],
        )
        store.con.execute("CHECKPOINT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("copy")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    prepare(args.case, args.copy)
    rows: list[tuple[float, float, str]] = []
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    with CaseStore.open(args.copy, read_only=False) as store:
        real = store.con
        store.con = _Timed(real, rows)  # type: ignore[assignment]
        t, c = time.perf_counter(), time.process_time()
        try:
            fin.finalize(store)
        finally:
            store.con = real
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"finalize {wall:.2f} s wall {cpu:.2f} s CPU, {len(rows)} statements, load {load}")
    for cpu_s, wall_s, text in sorted(rows, reverse=True)[: args.top]:
        print(f"{cpu_s:6.2f} {wall_s:6.2f}  {text[:140]}")


if __name__ == "__main__":
    main()
