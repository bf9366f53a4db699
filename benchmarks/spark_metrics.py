"""Per-stage metrics of a Spark run, measured, from its event log: ``spark_metrics.py EVENTLOG``.

Run the Spark engine with the event log on, e.g.::

    PYSPARK_SUBMIT_ARGS="--conf spark.eventLog.enabled=true \\
      --conf spark.eventLog.dir=file:///tmp/events pyspark-shell" \\
      keytrail scope OUT PATH --seed ID --engine spark --spark-master 'local[2]'
    python benchmarks/spark_metrics.py /tmp/events/eventlog_v2_local-*     # or one events file

and this prints one row per completed stage (tasks, wall, summed task run and CPU time, input
bytes and records, shuffle bytes and records written and read, memory and disk spill) and their
totals, read from each ``SparkListenerStageCompleted`` event's accumulables: the numbers Spark's
UI shows, not estimates. ``--json`` prints the rows and totals as JSON. Spark 4 compresses event
logs with zstd by default: ``.zstd`` files are read through the ``zstd`` command (or run with
``--conf spark.eventLog.compress=false``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Output column -> the accumulable(s) summed into it (Spark's internal task metrics).
METRICS: dict[str, tuple[str, ...]] = {
    "run_ms": ("internal.metrics.executorRunTime",),
    "cpu_ns": ("internal.metrics.executorCpuTime",),
    "input_bytes": ("internal.metrics.input.bytesRead",),
    "input_records": ("internal.metrics.input.recordsRead",),
    "shuffle_write_bytes": ("internal.metrics.shuffle.write.bytesWritten",),
    "shuffle_write_records": ("internal.metrics.shuffle.write.recordsWritten",),
    "shuffle_read_bytes": (
        "internal.metrics.shuffle.read.remoteBytesRead",
        "internal.metrics.shuffle.read.localBytesRead",
    ),
    "shuffle_read_records": ("internal.metrics.shuffle.read.recordsRead",),
    "memory_spill_bytes": ("internal.metrics.memoryBytesSpilled",),
    "disk_spill_bytes": ("internal.metrics.diskBytesSpilled",),
    "result_bytes": ("internal.metrics.resultSize",),
}


def _files(path: Path) -> list[Path]:
    """An event log file, or a rolling log's folder (``eventlog_v2_*``: its ``events_*`` parts
    in order), or a folder of such logs (every log in it)."""
    if path.is_file():
        return [path]
    parts = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    if parts:
        return parts
    return [f for sub in sorted(path.iterdir()) for f in _files(sub)]


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".zstd":
        if shutil.which("zstd") is None:
            raise SystemExit(f"{path}: zstd-compressed; install zstd or log uncompressed")
        text = subprocess.run(
            ["zstd", "-dc", str(path)], check=True, capture_output=True
        ).stdout.decode()
        yield from text.splitlines()
    elif path.suffix in ("", ".inprogress") or path.suffix == ".json":
        with path.open(encoding="utf-8") as fh:
            yield from fh
    else:
        raise SystemExit(f"{path}: codec {path.suffix} not read here; log uncompressed")


def _short(name: str) -> str:
    """``collect at /x/engine_spark.py:253`` -> ``collect at engine_spark.py:253`` (PySpark
    names a stage by the Python line that ran the action)."""
    what, _, where = name.partition(" at ")
    return f"{what} at {where.rsplit('/', 1)[-1]}" if where else what


def stages(path: Path) -> list[dict[str, Any]]:
    """One row per completed stage attempt of the log(s) at ``path``, in stage id order."""
    rows = []
    for f in _files(path):
        for line in _lines(f):
            if '"SparkListenerStageCompleted"' not in line:
                continue
            info = json.loads(line)["Stage Info"]
            acc: dict[str, int] = {}
            for a in info.get("Accumulables", []):
                try:
                    acc[a["Name"]] = acc.get(a["Name"], 0) + int(a["Value"])
                except (KeyError, TypeError, ValueError):
                    continue
            row: dict[str, Any] = {
                "stage": info["Stage ID"],
                "attempt": info.get("Stage Attempt ID", 0),
                "name": _short(str(info.get("Stage Name", ""))),
                "tasks": info.get("Number of Tasks", 0),
                "wall_ms": (info.get("Completion Time") or 0) - (info.get("Submission Time") or 0),
            }
            for col, names in METRICS.items():
                row[col] = sum(acc.get(n, 0) for n in names)
            rows.append(row)
    return sorted(rows, key=lambda r: (r["stage"], r["attempt"]))


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Sums over every stage (wall: the stages' own durations added, overlaps counted twice)."""
    keys = ["tasks", "wall_ms", *METRICS]
    return {k: sum(int(r[k]) for r in rows) for k in keys}


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "stage | name | tasks | wall s | task run s | task cpu s | input MB | input rec | "
        "shuffle w MB | shuffle w rec | shuffle r MB | shuffle r rec | spill mem MB | "
        "spill disk MB"
    )
    out = [head, "|".join("---" for _ in head.split("|"))]
    shown = [*rows, {"stage": "total", "name": "", **totals(rows)}]
    for r in shown:
        out.append(
            " | ".join(
                [
                    str(r["stage"]),
                    r["name"],
                    str(r["tasks"]),
                    f"{r['wall_ms'] / 1000:.1f}",
                    f"{r['run_ms'] / 1000:.1f}",
                    f"{r['cpu_ns'] / 1e9:.1f}",
                    _mb(r["input_bytes"]),
                    str(r["input_records"]),
                    _mb(r["shuffle_write_bytes"]),
                    str(r["shuffle_write_records"]),
                    _mb(r["shuffle_read_bytes"]),
                    str(r["shuffle_read_records"]),
                    _mb(r["memory_spill_bytes"]),
                    _mb(r["disk_spill_bytes"]),
                ]
            )
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("eventlog", type=Path, help="event log file or eventlog_v2_* folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = stages(args.eventlog)
    if not rows:
        print(f"{args.eventlog}: no completed stage in the log", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"stages": rows, "totals": totals(rows)}, indent=1))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
