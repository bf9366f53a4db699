"""`benchmarks/agent_bench.py` builds a set whose copies are new records; it measures 3 kinds.

Small (a 20,000-event ``gen_scale`` output copied 3 times); no timing asserts: the readers must
see every record, the copies must not collapse into duplicates, and the table must print.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import duckdb

from keytrail.ingest.runner import ingest

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kt_agent_bench", REPO / "benchmarks" / "agent_bench.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_agent_bench_set_and_table(tmp_path: Path) -> None:
    bench = _bench()
    base = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_scale.py"), "--events", "20000", "--seed", "3"]
        + ["--out", str(base)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
    )
    one = bench._count({k: (base / "agents" / v[0]).read_bytes() for k, v in bench.KINDS.items()})
    folder, copies = bench.build_set(tmp_path / "work", 3 * one, 2, base)
    assert copies == 3
    assert sorted(p.name for p in (folder / "otlp").iterdir()) == [
        "part-000.jsonl",
        "part-001.jsonl",
    ]

    case = tmp_path / "case.duckdb"
    summary = ingest(case, [folder], graph=False)
    assert all(f.status == "loaded" for f in summary.files), summary.files
    con = duckdb.connect(str(case), read_only=True)
    try:
        events, distinct = con.execute(
            "SELECT count(*), count(DISTINCT event_uid) FROM events"
        ).fetchone()
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    finally:
        con.close()
    assert rejects == 0
    assert events == distinct  # the copies are new records, not duplicates de-duplicated away
    # every MCP response merges into its request: one event per request line
    assert (
        events
        == one * copies
        - bench._count({"mcp": (base / "agents/mcp/aws-tools.jsonl").read_bytes()}) * copies // 2
    )

    rows = bench.measure(folder, [str(REPO / "src")], 1, False)
    by = {what.split()[0]: n for what, n, *_ in rows if not what.endswith("read_json")}
    assert by == {
        "otlp": (folder / "otlp").joinpath("part-000.jsonl").read_bytes().count(b'"spanId"')
        + (folder / "otlp").joinpath("part-001.jsonl").read_bytes().count(b'"spanId"'),
        "mcp": sum(p.read_bytes().count(b"\n") for p in (folder / "mcp").iterdir()),
        "native": sum(p.read_bytes().count(b"\n") for p in (folder / "native").iterdir()),
    }
    lines = bench.table(rows)
    assert any(line.startswith("| all three, read_json") for line in lines)
    assert len(lines) == 2 + len(rows) + 2
