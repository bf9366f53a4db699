"""Benchmark rows for ``keytrail scope``: full ingest vs scope (DuckDB) vs scope (Spark local[2]).

Each run is a child process (wall time, CPU time and its own peak RSS from ``os.wait4``), one
after the other on the same generated data, with the 1-minute load average before each: the
machine may be shared, and the ratios of one run are the fair measure. The seed is the first
Vault token (by id) that minted a credential, read from the full case, as in
docs/performance.md. Targets: scope DuckDB >= 5x faster than the full ingest and <= 1.5 GiB peak
RSS; scope Spark on local[2] within 3x of scope DuckDB.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from run import GIB, REPO, Child, Row, run_child, verdict, wall_cpu


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _rss(child: Child) -> str:
    return f"{child.max_rss / GIB:.2f} GiB"


def scope_rows(data: Path, workdir: Path, rows: list[Row], spark: bool = True) -> None:
    env = dict(
        os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    kt = [sys.executable, "-m", "keytrail"]
    case = workdir / "scope-full.duckdb"
    for p in (case, case.with_name(case.name + ".wal")):
        p.unlink(missing_ok=True)
    inv = ["--inventory", str(data / "inventory.toml")]
    load = _load()
    full = run_child([*kt, "ingest", str(case), str(data), *inv, "-q", "--json"], env)
    if full.rc != 0:
        rows.append(Row("full keytrail ingest (for scope)", "failed", "", "error"))
        return
    rows.append(
        Row(f"full `keytrail ingest` ({load})", f"{wall_cpu(full)}, {_rss(full)}", "", "baseline")
    )
    import duckdb

    with duckdb.connect(str(case), read_only=True) as con:
        seed = con.execute(
            "SELECT min(parent_credential_id) FROM credential_issues "
            "WHERE parent_credential_id LIKE 'hmac-sha256:%'"
        ).fetchone()[0]  # type: ignore[index]
    engines = [("duckdb", [])] + ([("spark", ["--spark-master", "local[2]"])] if spark else [])
    timed: dict[str, Child] = {}
    for engine, extra in engines:
        out = workdir / f"scope-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        load = _load()
        cmd = [*kt, "scope", str(out), str(data), *inv, "--seed", seed, "--engine", engine]
        child = run_child([*cmd, *extra, "--json"], env)
        if child.rc != 0:
            tail = " ".join(child.stderr.strip().splitlines()[-2:])[:200]
            rows.append(Row(f"`keytrail scope --engine {engine}`", "failed", "", f"error: {tail}"))
            continue
        timed[engine] = child
        doc = json.loads(child.stdout)
        kept = {s: c["events_out"] for s, c in doc["counts"].items()}
        rows.append(
            Row(
                f"`keytrail scope --engine {engine}` {' '.join(extra)} ({load}; kept {kept}, "
                f"closure {len(doc['closure'])})",
                f"{wall_cpu(child)}, {_rss(child)}"
                + (" (Python driver; JVM apart)" if engine == "spark" else ""),
                "<= 1.5 GiB" if engine == "duckdb" else "",
                verdict(child.max_rss / GIB, 1.5) if engine == "duckdb" else "",
            )
        )
    if "duckdb" in timed:
        ratio = full.seconds / timed["duckdb"].seconds
        rows.append(
            Row(
                "full ingest / scope duckdb (wall)",
                f"{ratio:.1f}x",
                ">= 5x",
                verdict(ratio, 5, True),
            )
        )
    if "duckdb" in timed and "spark" in timed:
        ratio = timed["spark"].seconds / timed["duckdb"].seconds
        rows.append(
            Row("scope spark / scope duckdb (wall)", f"{ratio:.1f}x", "<= 3x", verdict(ratio, 3))
        )
