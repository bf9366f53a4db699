"""The two streams of a CloudTrail load: what the reader and the writer each spend, per batch.

``keytrail ingest`` reads batch N+1 on a worker thread while it writes batch N (docs/
architecture.md, ``ingest/cloudtrail/ahead.py``), both with DuckDB on one thread per query, so
the load phase lasts about the longer stream plus what the writer waits for. This ingests
PATH into a fresh CASE in process (``--no-snapshot``, no derive: the load only) and prints each
read-ahead's and each batch write's CPU seconds *of its own thread* (``time.thread_time``: with
one DuckDB thread the queries run on the calling thread), and how long the writer waited for a
read it needed:

    python benchmarks/ingest_streams.py CASE.duckdb /work/bench/d300k/AWSLogs

Thread CPU is a fairer reading than wall on a shared machine, but contention inflates it too:
compare runs made in the same minutes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from keytrail.ingest import runner
from keytrail.ingest.cloudtrail import ahead


def main(case: str, path: str) -> None:
    if Path(case).exists():
        sys.exit(f"{case} exists: give a new case path")
    reads: list[float] = []
    writes: list[float] = []
    waits: list[float] = []
    run, staged, load_batch = ahead.ReadAhead._run, ahead.ReadAhead.staged, runner.load_batch

    def timed_run(self: ahead.ReadAhead, ctxs: Any) -> Any:
        c0 = time.thread_time()
        try:
            return run(self, ctxs)
        finally:
            reads.append(time.thread_time() - c0)

    def timed_staged(self: ahead.ReadAhead) -> Any:
        t0 = time.perf_counter()
        try:
            return staged(self)
        finally:
            waits.append(time.perf_counter() - t0)

    def timed_load(*args: Any) -> Any:
        c0 = time.thread_time()
        try:
            return load_batch(*args)
        finally:
            writes.append(time.thread_time() - c0)

    ahead.ReadAhead._run = timed_run  # type: ignore[method-assign]
    ahead.ReadAhead.staged = timed_staged  # type: ignore[method-assign]
    runner.load_batch = timed_load  # type: ignore[assignment]
    t0 = time.perf_counter()
    runner.ingest(case, [path], graph=False)
    wall = time.perf_counter() - t0

    def line(values: list[float]) -> str:
        return f"{sum(values):6.2f}  [{', '.join(f'{v:.2f}' for v in values)}]"

    print(f"reader CPU-s (per read-ahead)   {line(reads)}")
    print(f"writer CPU-s (per batch write)  {line(writes)}")
    print(f"writer waited for reads, s      {line(waits)}")
    print(f"load wall {wall:.2f} s")
    print(f"critical path CPU-s (two free cores) {critical_path(reads, writes):.2f}")


def critical_path(reads: list[float], writes: list[float]) -> float:
    """What the load phase would last on two free cores, from the per-thread CPU: the first batch's
    read (in two halves, side by side, when there are more reads than writes), then per batch the
    longer of its write and the read of the next (they start together), then the last write.
    The loaded machine inflates both streams alike, so two codes compare by this, not by wall."""
    if not writes:
        return max(reads, default=0.0)
    first = len(reads) - len(writes) + 1  # the reads of the first batch (two halves: 2)
    nexts = reads[first:] + [0.0] * len(writes)
    return (
        max(reads[:first], default=0.0)
        + sum(max(w, r) for w, r in zip(writes[:-1], nexts, strict=False))
        + writes[-1]
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
