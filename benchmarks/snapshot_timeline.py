"""When each part of a real snapshot refresh runs, on which thread: the overlap that
``benchmarks/snapshot_steps.py`` (every step one after another) cannot show.

    python benchmarks/snapshot_timeline.py CASE_COPY.duckdb

Refreshes the snapshot of CASE_COPY (it is rewritten: use a copy) the way ``keytrail snapshot``
does and prints, for every findings family, the pool's tasks and the steps after the findings,
its start and end (seconds from the start of this script), its thread and the CPU seconds of
that thread while it ran (DuckDB runs a query on the calling thread when the snapshot has
halved its threads to one, the 2-core case: then that is the step's own CPU, which the load
does not change as it does the wall), then the process's wall and CPU seconds. The families
are wrapped by name in ``RULE_FAMILIES``; nothing else changes.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

T0, C0 = time.perf_counter(), time.process_time()

from keytrail.analysis import snapshot
from keytrail.analysis.findings import context, run

LOG: list[tuple[float, float, float, str, str]] = []


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        start, cpu = time.perf_counter() - T0, time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            thread = threading.current_thread().name
            LOG.append((start, time.perf_counter() - T0, time.thread_time() - cpu, thread, name))

    return wrapped


def main(path: str) -> None:
    run.RULE_FAMILIES = [(f, timed(f, r)) for f, r in run.RULE_FAMILIES]
    for name in ("prefill", "rank_query_table", "term_inputs", "reach_points", "_rank_table"):
        setattr(snapshot, name, timed(name, getattr(snapshot, name)))
    for owner, name, label in (
        (snapshot, "_finding_table", "finding table"),
        (context.Context, "_build", "context tables"),
        (context.Context, "resolve", "resolve drafts"),
    ):
        setattr(owner, name, timed(label, getattr(owner, name)))
    summary = snapshot.refresh_case(path)
    for start, end, cpu, thread, name in sorted(LOG):
        print(f"{start:6.2f} {end:6.2f} {end - start:6.2f} s {cpu:6.2f} CPU-s  {thread:<16} {name}")
    wall, cpu = time.perf_counter() - T0, time.process_time() - C0
    print(f"process: {wall:.2f} s wall, {cpu:.2f} s CPU; {summary}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/snapshot_timeline.py CASE_COPY.duckdb")
    main(sys.argv[1])
