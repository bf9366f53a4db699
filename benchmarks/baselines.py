"""The two baselines keytrail's CloudTrail ingest is compared with, run as child processes.

``python benchmarks/baselines.py duckdb DIR OUT.duckdb``: bare DuckDB, ``read_json`` (schema
inferred) of every ``*.json.gz`` under ``DIR/AWSLogs``, ``unnest``, the columns a responder
needs plus the raw record (``to_json``), into a table on disk. No dedup, no
resources, no lineage: the floor for "load CloudTrail into DuckDB".

``python benchmarks/baselines.py orjson DIR``: one thread, ``gzip`` + ``orjson.loads``
per file and the same fields pulled out record by record in Python (kept only long
enough to count them): the ceiling a plain-Python ingest would start from.

Each prints the number of records it read on stdout, so the runner can check that all
three saw the same evidence.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path


def duckdb_baseline(root: Path, out: Path) -> int:
    import duckdb

    glob = str(root / "AWSLogs" / "**" / "*.json.gz")
    con = duckdb.connect(str(out))
    con.execute(f"""
        CREATE TABLE ct AS
        SELECT r.eventID AS event_id, CAST(r.eventTime AS TIMESTAMP) AS time, r.eventSource AS source,
               r.eventName AS name, r.userIdentity.arn AS arn, r.userIdentity.accessKeyId AS access_key,
               r.sourceIPAddress AS ip, r.userAgent AS user_agent, r.recipientAccountId AS account,
               r.awsRegion AS region, r.errorCode AS error_code, to_json(r) AS raw
        FROM (SELECT unnest(Records) AS r FROM read_json('{glob}', maximum_object_size=268435456))""")
    n = int(con.execute("SELECT count(*) FROM ct").fetchone()[0])  # type: ignore[index]
    con.close()
    return n


def orjson_baseline(root: Path) -> int:
    import orjson

    n = 0
    for path in sorted((root / "AWSLogs").rglob("*.json.gz")):
        doc = orjson.loads(gzip.decompress(path.read_bytes()))
        rows = []
        for r in doc.get("Records", []):
            ui = r.get("userIdentity") or {}
            rows.append(
                (
                    r.get("eventID"),
                    r.get("eventTime"),
                    r.get("eventSource"),
                    r.get("eventName"),
                    ui.get("arn"),
                    ui.get("accessKeyId"),
                    r.get("sourceIPAddress"),
                    r.get("userAgent"),
                    r.get("recipientAccountId"),
                    r.get("awsRegion"),
                    r.get("errorCode"),
                    orjson.dumps(r),
                )
            )
        n += len(rows)
    return n


if __name__ == "__main__":
    kind, root = sys.argv[1], Path(sys.argv[2])
    count = duckdb_baseline(root, Path(sys.argv[3])) if kind == "duckdb" else orjson_baseline(root)
    print(count)
