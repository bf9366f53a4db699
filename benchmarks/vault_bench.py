"""Vault ingest speed against DuckDB ``read_json`` of the same file, in CPU seconds, same run.

    PYTHONPATH=src python benchmarks/vault_bench.py --entries 100000 1000000 [--src /tmp/base/src]

Builds (once, under ``--workdir``) a Vault-only audit file of N entries by repeating the Vault
file of ``scripts/gen_scale.py --events 200000 --seed 3`` (12,000 entries: AppRole logins, token
creations, AWS STS reads and KV reads; ~83% of responses mint a credential) with every
``request.id`` rewritten per copy, so pairs stay pairs and nothing is a duplicate. Then, each in
its own child process (``getrusage(RUSAGE_CHILDREN)``: user + system CPU of the child and its
DuckDB threads), alternating ``--runs`` times:

- ``read_json``: bare DuckDB ``CREATE TABLE AS SELECT * FROM read_json(file)`` (schema inferred);
- ``adapter``: ``VaultAdapter.load`` of the file into a fresh case (the adapter alone:
  ``time.process_time`` around it), for each ``--src`` code tree.

Prints a markdown table: entries, CPU seconds (median), entries per CPU second, ratio to
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

_READ_JSON = """
import sys, time, duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t, w = time.process_time(), time.perf_counter()
con.execute(f"CREATE TABLE v AS SELECT * FROM read_json('{sys.argv[1]}', format='newline_delimited')")
t, w = time.process_time() - t, time.perf_counter() - w
print(con.execute("SELECT count(*) FROM v").fetchone()[0], t, w)
"""

_ADAPTER = """
import sys, tempfile, time
from pathlib import Path
from keytrail.ingest.base import LoadContext
from keytrail.ingest.vault.adapter import VaultAdapter
from keytrail.store.case import CaseStore
with tempfile.TemporaryDirectory() as d:
    st = CaseStore.open(Path(d) / "c.duckdb", read_only=False, create=True)
    st.con.execute("SET enable_progress_bar = false")
    ctx = LoadContext(st.con, Path(sys.argv[1]), 1, "vault-audit-jsonl", False)
    st.con.execute("BEGIN")  # as the runner does: one transaction per file
    t, w = time.process_time(), time.perf_counter()
    VaultAdapter().load(ctx)
    t, w = time.process_time() - t, time.perf_counter() - w
    st.con.execute("COMMIT")
    st.con.close()
print(ctx.records, t, w)
"""

_RID = re.compile(rb'"request":\{"id":"')


def build_file(workdir: Path, entries: int) -> Path:
    """A Vault-only audit file of ``entries`` lines (see the module docstring)."""
    out = workdir / f"vault_{entries}.log"
    if out.exists():
        return out
    gen = workdir / "gen200k"
    if not (gen / "vault" / "vault_audit.log").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "gen_scale.py"), "--events", "200000"]
            + ["--seed", "3", "--out", str(gen)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    base = (gen / "vault" / "vault_audit.log").read_bytes().splitlines(keepends=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        written, copy = 0, 0
        while written < entries:
            take = base[: entries - written]
            chunk = b"".join(take)
            if copy:
                chunk = _RID.sub(b'"request":{"id":"c%d-' % copy, chunk)
            fh.write(chunk)
            written += len(take)
            copy += 1
    tmp.rename(out)
    return out


def _child(code: str, path: Path, src: str | None) -> tuple[float, float, int, list[str]]:
    """CPU seconds, wall seconds and peak RSS (bytes) of one child, and its stdout words."""
    env = {**os.environ, "PYTHONPATH": src} if src else dict(os.environ)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    out = proc.stdout.read().split() if proc.stdout else []
    _, status, use = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode})")
    wall = time.perf_counter() - t
    return use.ru_utime + use.ru_stime, wall, use.ru_maxrss * 1024, out


Result = tuple[str, int, float, float, float, float, int]


def measure(path: Path, srcs: list[str], runs: int) -> list[Result]:
    """Per reader: (what, entries, median CPU s of the child, median CPU s of the read itself,
    median wall s of the read, median wall s of the child, peak RSS)."""
    got: dict[str, list[tuple[float, float, float, float, int, int]]] = {"read_json": []}
    got |= {s: [] for s in srcs}
    for _ in range(runs):
        cpu, wall, rss, out = _child(_READ_JSON, path, None)
        got["read_json"].append((cpu, float(out[-2]), float(out[-1]), wall, rss, int(out[-3])))
        for src in srcs:
            cpu, wall, rss, out = _child(_ADAPTER, path, src)
            got[src].append((cpu, float(out[-2]), float(out[-1]), wall, rss, int(out[-3])))
    return [
        (
            what,
            rows[0][5],
            statistics.median(r[0] for r in rows),
            statistics.median(r[1] for r in rows),
            statistics.median(r[2] for r in rows),
            statistics.median(r[3] for r in rows),
            max(r[4] for r in rows),
        )
        for what, rows in got.items()
    ]


def table(path: Path, results: list[Result]) -> list[str]:
    base = results[0][3]
    lines = [
        f"`{path.name}` ({path.stat().st_size / 1e6:,.0f} MB)",
        "",
        (
            "| reader | entries | CPU s (read) | entries per CPU s | CPU / read_json "
            "| wall s (read) | CPU s, wall s (whole child) | peak RSS |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for what, n, child, load, wall, child_wall, rss in results:
        name = "DuckDB read_json" if what == "read_json" else f"VaultAdapter.load ({what})"
        lines.append(
            f"| {name} | {n:,} | {load:.2f} | {n / load:,.0f} | {load / base:.2f}x | {wall:.2f} "
            f"| {child:.2f}, {child_wall:.2f} | {rss / (1 << 20):,.0f} MiB |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, nargs="+", default=[100_000])
    ap.add_argument("--src", action="append", default=[], help="code tree on PYTHONPATH (repeat)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/keytrail-vault-bench"))
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for n in args.entries:
        path = build_file(args.workdir, n)
        results = measure(path, args.src or [str(ROOT / "src")], args.runs)
        print("\n".join(table(path, results)))
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
