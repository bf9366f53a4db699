"""What touching every CloudTrail record costs at the least, per step, in CPU seconds: the floor
under any ``keytrail scope`` that keeps the manifest's exact counts.

    PYTHONPATH=src python benchmarks/scope_floor.py /work/bench/d1m/AWSLogs [--files N]

A scope's manifest counts every input record (``inputs[].records`` and ``rejected`` per file,
``counts.*.events_in`` per source after de-duplication by event id), so each record's
``eventID``, ``eventName`` and ``eventSource`` must be read, whatever the closure keeps. This
runs, for each ``.gz`` file in turn, on one thread (``time.process_time``; DuckDB set to one
thread), the steps a scope could be cut down to and the one it runs now:

- ``inflate``: read and inflate as the adapter does (ISA-L when installed);
- ``scan``: byte-level search of the text for a few needles and for ``\\u`` (what a gate that
  skips records naming none of a closure's ids would pay per pass);
- ``json_valid``: DuckDB's JSON parse alone (yyjson: the least any parse costs);
- ``counts``: ``json_transform`` to the three fields the counts need;
- ``narrow``: the scope's narrow parse with its staging (:func:`keytrail.scope.narrow._parse_doc`),
  what pass 1 runs for every record now.

Prints one markdown row per step: CPU seconds and MB/s of inflated text. No assertion: it
measures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from keytrail.ingest.cloudtrail.adapter import _gz
from keytrail.scope.narrow import _parse_doc

COUNTS_SPEC = json.dumps(
    {"Records": [{"eventID": "VARCHAR", "eventName": "VARCHAR", "eventSource": "VARCHAR"}]}
)
NEEDLES = (b"hmac-sha256:0010c4a1", b"ASIA222JR2FSOP5L2O5S", b"vault-token-scale-agent-0001-")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a folder of CloudTrail .gz files (AWSLogs)")
    ap.add_argument("--files", type=int, default=0, help="only the first N files (0: all)")
    args = ap.parse_args(argv)
    files = sorted(args.root.rglob("*.gz"))
    files = files[: args.files] if args.files else files
    con = duckdb.connect()
    con.execute("SET threads = 1")
    cpu = dict.fromkeys(("inflate", "scan", "json_valid", "counts", "narrow"), 0.0)
    size = records = hits = 0
    steps = {
        "json_valid": "SELECT json_valid(doc) FROM _kt_floor_doc",
        "counts": f"SELECT unnest(json_transform(doc, '{COUNTS_SPEC}').Records) FROM _kt_floor_doc",
        "narrow": _parse_doc(0, "cloudtrail-records").replace("_kt_scope_doc", "_kt_floor_doc"),
    }
    for f in files:
        t = time.process_time()
        data = _gz.decompress(f.read_bytes(), 16 + 15)
        cpu["inflate"] += time.process_time() - t
        t = time.process_time()
        hits += sum(data.count(n) for n in (*NEEDLES, b"\\u"))
        cpu["scan"] += time.process_time() - t
        size += len(data)
        con.register("_kt_floor_doc", pa.table({"doc": pa.array([data.decode()])}))
        for name, sql in steps.items():
            t = time.process_time()
            n = con.sql(sql).to_arrow_table().num_rows
            cpu[name] += time.process_time() - t
        records += n  # the narrow parse's rows: one per record
        con.unregister("_kt_floor_doc")
    mb = size / 1e6
    print(f"{len(files)} files, {records} records, {mb:.0f} MB inflated, needle hits {hits}")
    print("| step | CPU-s | MB/s |")
    print("|---|---|---|")
    for name, s in cpu.items():
        print(f"| {name} | {s:.2f} | {mb / s:.0f} |" if s else f"| {name} | 0 | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
