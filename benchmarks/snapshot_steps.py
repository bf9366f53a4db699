"""Where a snapshot's time goes: every findings family, then the ranking query, one at a time.

``keytrail snapshot`` runs the ranking on a second thread beside the findings, so its own time
does not say which step costs what. This runs the same steps one after another on one cursor
(the analysis code as installed) and prints wall and CPU seconds of this process for each:

    python benchmarks/snapshot_steps.py CASE.duckdb

CPU seconds include DuckDB's worker threads (they run inside this process). The case is opened
read-only; a raw-pass cache in it is read when valid (a case whose snapshot is current measures a
repeat snapshot; a fresh ``--no-snapshot`` case the first one).
"""

from __future__ import annotations

import sys
import time

from keytrail.analysis.findings.catalog import RULES
from keytrail.analysis.findings.context import Context
from keytrail.analysis.findings.run import RULE_FAMILIES
from keytrail.analysis.ranking import rank_query_rows
from keytrail.config import load_config
from keytrail.store.case import CaseStore


def main(path: str) -> None:
    with CaseStore.open(path) as store:
        cfg = load_config(None, rule_ids=RULES)
        steps: list[tuple[str, float, float]] = []

        def timed(name: str, step: object) -> object:
            t, c = time.perf_counter(), time.process_time()
            out = step()  # type: ignore[operator]
            steps.append((name, time.perf_counter() - t, time.process_time() - c))
            return out

        ctx = timed("context", lambda: Context(store.cursor(), cfg, None))
        for family, run in RULE_FAMILIES:
            timed(family, lambda run=run: run(ctx))
        found = timed("finish", ctx.finish)  # type: ignore[attr-defined]
        timed("ranking query", lambda: rank_query_rows(store))
        for name, wall, cpu in steps:
            print(f"{name:<24} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        wall, cpu = sum(s[1] for s in steps), sum(s[2] for s in steps)
        print(f"{'total':<24} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        print(f"{len(found):,} findings")  # type: ignore[arg-type]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/snapshot_steps.py CASE.duckdb")
    main(sys.argv[1])
