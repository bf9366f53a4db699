"""Agent-log ingest speed against DuckDB ``read_json`` of the same files, in CPU seconds, same run.

    PYTHONPATH=src python benchmarks/agent_bench.py --records 1000000 [--src /tmp/base/src]

Builds (once, under ``--workdir``) an agent-only set of about N records by repeating the agent
files of ``scripts/gen_scale.py --events 1000000 --seed 7`` (``--base DIR`` reuses an existing
output: 20,589 OTLP spans on 6,863 lines, 11,024 wrapped MCP lines, 7,660 native lines) with
the ids rewritten per copy (OTLP ``traceId``, MCP ``session``, native ``event_id``), so traces
stay traces, requests still pair with their responses and nothing is a duplicate. Each kind is
split over ``--files`` files, as a collector rotates them. Then, each in its own child process
(``getrusage(RUSAGE_CHILDREN)``: user + system CPU of the child and its DuckDB threads),
alternating ``--runs`` times:

- ``read_json``: bare DuckDB ``CREATE TABLE AS SELECT * FROM read_json(files)`` per kind
  (schema inferred; what "a DuckDB read of the same files" costs);
- ``adapter``: the kind's adapter ``load`` of every file into one fresh case, one transaction
  per file as the runner does (the adapters alone: ``time.process_time`` around them), for
  each ``--src`` code tree;
- ``ingest``: ``keytrail ingest --no-snapshot`` of the whole set (sniffing, hashing,
  de-duplication and the graph derive included), child CPU, for each ``--src``.

Prints markdown tables: records, CPU seconds (median), records per CPU second, ratio to
``read_json``. No assertion about speed: it measures and prints.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: kind -> (file under the gen_scale agents/ folder, adapter class, format label, id pattern)
KINDS = {
    "otlp": ("otel/traces.jsonl", "otlp.OtlpAdapter", "otlp-traces", b'"traceId":"'),
    "mcp": ("mcp/aws-tools.jsonl", "mcp.McpAdapter", "mcp-jsonrpc-wrapped", b'"session":"'),
    "native": ("native.jsonl", "native.NativeAgentAdapter", "agent-jsonl", b'"event_id":"'),
}

_READ_JSON = """
import sys, time, duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
files = sys.argv[1:]
t, w = time.process_time(), time.perf_counter()
con.execute(f"CREATE TABLE v AS SELECT * FROM read_json({files!r}, format='newline_delimited')")
t, w = time.process_time() - t, time.perf_counter() - w
print(con.execute("SELECT count(*) FROM v").fetchone()[0], t, w)
"""

_ADAPTER = """
import sys, tempfile, time
from pathlib import Path
from keytrail.ingest.base import LoadContext
from keytrail.ingest.agent import {module} as m
from keytrail.store.case import CaseStore
spent, records = 0.0, 0
with tempfile.TemporaryDirectory() as d:
    st = CaseStore.open(Path(d) / "c.duckdb", read_only=False, create=True)
    st.con.execute("SET enable_progress_bar = false")
    for i, f in enumerate(sys.argv[1:], start=1):
        ctx = LoadContext(st.con, Path(f), i, "{fmt}", False)
        st.con.execute("BEGIN")  # as the runner does: one transaction per file
        t = time.process_time()
        m.{cls}().load(ctx)
        spent += time.process_time() - t
        st.con.execute("COMMIT")
        records += ctx.records
    st.con.close()
print(records, spent, 0)
"""

_INGEST = """
import sys, tempfile, time
from pathlib import Path
from keytrail.ingest.runner import ingest
with tempfile.TemporaryDirectory() as d:
    t = time.process_time()
    ingest(Path(d) / "case.duckdb", [sys.argv[1]])  # no snapshot: the CLI adds it
    print(0, time.process_time() - t, 0)
"""


def build_set(workdir: Path, records: int, files: int, base: Path | None) -> tuple[Path, int]:
    """An agent-only folder of about ``records`` records (see the module docstring)."""
    if base is None:
        base = workdir / "gen1m"
        if not (base / "agents" / "native.jsonl").exists():
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "gen_scale.py"), "--events", "1000000"]
                + ["--seed", "7", "--out", str(base)],
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            )
    src = {k: (base / "agents" / v[0]).read_bytes() for k, v in KINDS.items()}
    copies = max(1, round(records / _count(src)))
    out = workdir / f"agents_x{copies}_f{files}"
    if out.exists():
        return out, copies
    tmp = out.with_name(out.name + ".tmp")
    for kind, data in src.items():
        (tmp / kind).mkdir(parents=True, exist_ok=True)
        prefix = KINDS[kind][3]
        pattern = re.compile(re.escape(prefix) + b"....")  # the id's first 4 characters
        handles = [(tmp / kind / f"part-{i:03d}.jsonl").open("wb") for i in range(files)]
        for copy in range(copies):
            chunk = data if copy == 0 else pattern.sub(prefix + b"%04x" % copy, data)
            handles[copy % files].write(chunk)
        for fh in handles:
            fh.close()
    tmp.rename(out)
    return out, copies


def _count(src: dict[str, bytes]) -> int:
    return sum(v.count(b'"spanId"') if k == "otlp" else v.count(b"\n") for k, v in src.items())


def _child(code: str, args: list[str], src: str | None) -> tuple[float, float, int, list[str]]:
    """CPU seconds, wall seconds and peak RSS (bytes) of one child, and its stdout words."""
    env = {**os.environ, "PYTHONPATH": src} if src else dict(os.environ)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    out = proc.stdout.read().split() if proc.stdout else []
    _, status, use = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"child failed ({status})")
    return use.ru_utime + use.ru_stime, time.perf_counter() - t, use.ru_maxrss * 1024, out


Row = tuple[str, int, float, float, int]  # what, records, CPU s (read/load), child CPU s, RSS


def measure(folder: Path, srcs: list[str], runs: int, whole: bool) -> list[Row]:
    """Median CPU seconds per (kind, reader) and per whole ingest."""
    got: dict[tuple[str, str], list[tuple[int, float, float, int]]] = {}
    for _ in range(runs):
        for kind, (_, dotted, fmt, _) in KINDS.items():
            files = sorted(str(p) for p in (folder / kind).glob("*.jsonl"))
            cpu, _, rss, out = _child(_READ_JSON, files, None)
            got.setdefault((kind, "read_json"), []).append((int(out[0]), float(out[1]), cpu, rss))
            module, cls = dotted.split(".")
            code = _ADAPTER.format(module=module, cls=cls, fmt=fmt)
            for src in srcs:
                cpu, _, rss, out = _child(code, files, src)
                got.setdefault((kind, src), []).append((int(out[0]), float(out[1]), cpu, rss))
        for src in srcs if whole else []:
            cpu, _, rss, out = _child(_INGEST, [str(folder)], src)
            got.setdefault(("all", f"ingest {src}"), []).append((0, cpu, cpu, rss))
    return [
        (
            f"{kind} {what}",
            rows[0][0],
            statistics.median(r[1] for r in rows),
            statistics.median(r[2] for r in rows),
            max(r[3] for r in rows),
        )
        for (kind, what), rows in got.items()
    ]


def table(rows: list[Row]) -> list[str]:
    base = {r[0].split()[0]: r[2] for r in rows if r[0].endswith("read_json")}
    base["all"] = sum(base.values())
    lines = [
        (
            "| kind, reader | records (read_json: lines) | CPU s (read) | records per CPU s "
            "| CPU / read_json | CPU s (whole child) | peak RSS |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for what, n, cpu, child, rss in rows:
        ratio = cpu / base[what.split()[0]]
        per = f"{n / cpu:,.0f}" if n else ""
        lines.append(
            f"| {what} | {n:,} | {cpu:.2f} | {per} | {ratio:.2f}x | {child:.2f} "
            f"| {rss / (1 << 20):,.0f} MiB |"
        )
    totals: dict[str, list[float]] = {}
    for what, _, cpu, _, _ in rows:
        kind, reader = what.split(" ", 1)
        if kind != "all":
            totals.setdefault(reader, []).append(cpu)
    for reader, cpus in totals.items():
        lines.append(
            f"| all three, {reader} | | {sum(cpus):.2f} | | {sum(cpus) / base['all']:.2f}x | | |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="about this many records")
    ap.add_argument("--files", type=int, default=8, help="files per kind")
    ap.add_argument("--src", action="append", default=[], help="code tree on PYTHONPATH (repeat)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--base", type=Path, default=None, help="an existing gen_scale.py output")
    ap.add_argument("--no-ingest", action="store_true", help="skip the whole keytrail ingest")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/keytrail-agent-bench"))
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder, copies = build_set(args.workdir, args.records, args.files, args.base)
    print(f"{folder} ({copies} copies)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = measure(folder, args.src or [str(ROOT / "src")], args.runs, not args.no_ingest)
    print("\n".join(table(rows)))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
