"""Line-oriented Vault / OpenBao audit files in bulk: DuckDB parses and shapes the lines.

Why: the Python loop (:func:`keytrail.ingest.vault.rows.build` per record) reads 12-17k entries
per CPU second; a responder's audit device writes millions. Here each window of whole lines
becomes one Arrow column (no per-line Python object when the window is ASCII), DuckDB screens,
parses and shapes every line (:mod:`keytrail.ingest.vault.bulk_sql`), pairs requests with
responses over the whole file in SQL and writes ``events`` and ``event_resources`` with
``INSERT ... SELECT``.

Python still reads, and stays the reference for:

- every line the screen does not pass (framing, server log lines, KMIP and other entry types,
  entries without ``request.id``, broken JSON, anything the JSON readers may read differently):
  these go through :func:`keytrail.ingest.vault.framing.iter_records` and the adapter's loop,
  in runs of consecutive lines, so rejects, positions and pretty-printed objects are as before;
- pairs with one side on the Python path (built by ``rows.build`` from both entries);
- the credentials a response mints (``rows.pair_issues``), for the responses that may mint.

Output is identical to the Python loop's, row for row (``tests/unit/test_ingest_vault_bulk.py``,
``benchmarks/vault_oracle.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import TYPE_CHECKING, Protocol

import orjson
import pyarrow as pa

from keytrail.ingest.vault import bulk_sql as q
from keytrail.ingest.vault.framing import Record, iter_records
from keytrail.ingest.vault.rows import Entry, Rows, build, pair_issues, vault_time
from keytrail.workload_claims import workload_family

if TYPE_CHECKING:
    from keytrail.ingest.base import LoadContext

#: Rows fetched back into Python at once (mint candidates, mixed pairs).
FETCH = 20_000


def _window(base_off: int, base_line: int, chunk: bytes) -> tuple[pa.Table, list[int]]:
    """The window as an Arrow table (line number, byte offset, line) and each line's start.

    An ASCII window (the usual audit file) becomes one string column over the chunk's own bytes;
    otherwise a line with a non-ASCII byte is passed as ``""`` (the Python path reads it)."""
    if not chunk.endswith(b"\n"):
        chunk += b"\n"
    lines = chunk.split(b"\n")
    lines.pop()
    n = len(lines)
    starts = list(accumulate((len(x) + 1 for x in lines), initial=0))
    if chunk.isascii():
        text = pa.LargeStringArray.from_buffers(
            n, pa.array(starts, pa.int64()).buffers()[1], pa.py_buffer(chunk)
        )  # type: ignore[arg-type]
    else:
        text = pa.array([x + b"\n" if x.isascii() else b"" for x in lines], pa.large_binary()).cast(
            pa.large_string()
        )
    return (
        pa.table(
            {
                "ln": pa.array(range(base_line, base_line + n), pa.int64()),
                "off": pa.array([base_off + s for s in starts[:-1]], pa.int64()),
                "line": text,
            }
        ),
        starts,
    )


def _runs(idx: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted indexes."""
    runs: list[tuple[int, int]] = []
    for i in idx:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _entry(ln: int, off: int, line: str) -> Entry:
    raw = line.encode()[:-1]  # without its newline
    return Entry(orjson.loads(raw), ln, off, raw)


class Sink(Protocol):
    """Where the Python-built rows go (the adapter's writer): ``key`` is the position of the rows
    ``add`` is given next in the sequential reader's order."""

    key: tuple[int, int]

    def add(self, rows: Rows) -> None: ...


class BulkFile:
    """One file read in bulk; ``feed`` is the adapter's loop for the records Python reads.

    ``feed`` returns the entry when it is a request or response with a ``request.id``: those
    are paired in SQL, so the loop leaves them to this class."""

    def __init__(self, ctx: LoadContext, feed: Callable[[Record], Entry | None]) -> None:
        self.ctx = ctx
        self.con = ctx.con
        self.feed = feed
        self.py: dict[int, Entry] = {}  # pairable entries read by Python, by line number

    def read(self) -> None:
        con = self.con
        con.execute(q.MACROS)
        con.execute(q.TABLE)
        for table, temp in q.STAGED.items():  # the Python path's rows, with their position
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {temp} AS SELECT * EXCLUDE (file_id), "
                f"0 AS _phase, 0::BIGINT AS _key, 0::BIGINT AS _seq FROM {table} LIMIT 0"
                if table == "events"
                else f"CREATE OR REPLACE TEMP TABLE {temp} AS SELECT *, 0 AS _phase, "
                f"0::BIGINT AS _key, 0::BIGINT AS _seq FROM {table} LIMIT 0"
            )
        for base_off, base_line, chunk in self.ctx.windows():
            table, starts = _window(base_off, base_line, chunk)
            con.register("_kt_vw", table)
            try:
                con.execute(q.WINDOW)
            finally:
                con.unregister("_kt_vw")
            slow = con.execute(
                "SELECT ln FROM _kt_vl WHERE ln >= ? AND ln < ? AND NOT ok ORDER BY ln",
                [base_line, base_line + table.num_rows],
            ).fetchall()
            for a, b in _runs([r[0] - base_line for r in slow]):
                for rec in iter_records(chunk[starts[a] : starts[b + 1]], bom=a == 0):
                    rec.line_no += base_line + a - 1
                    rec.offset += base_off + starts[a]
                    entry = self.feed(rec)
                    if entry is not None:
                        self.py[entry.line_no] = entry

    def pair(self, out: Sink, fmt: str) -> tuple[int, int, int, int]:
        """Pair in SQL, shape the SQL events (``_kt_vev``), hand the Python-built rows to ``out``.

        Returns (records read in SQL, merged, repeated, late)."""
        con, ctx = self.con, self.ctx
        con.execute("DELETE FROM _kt_vl WHERE NOT ok")
        con.register(
            "_kt_vpy_new",
            pa.table(
                {
                    "ln": pa.array(list(self.py), pa.int64()),
                    "typ": pa.array([e.type for e in self.py.values()], pa.string()),
                    "rid": pa.array([e.request_id for e in self.py.values()], pa.string()),
                }
            ),
        )
        con.execute("INSERT INTO _kt_vpy SELECT * FROM _kt_vpy_new")
        con.unregister("_kt_vpy_new")
        names = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT oidc FROM _kt_vl WHERE oidc IS NOT NULL"
            ).fetchall()
        ]
        con.register(
            "_kt_vwf",
            pa.table(
                {
                    "name": pa.array(names, pa.string()),
                    "workload": pa.array([bool(workload_family(n)) for n in names], pa.bool_()),
                }
            ),
        )
        try:
            con.execute(q.PAIRS)
            con.execute(q.EVENTS, [ctx.file_id, fmt])
            # Paged by line number: ``out`` writes to the case between pages (one open result at
            # a time on the connection).
            con.execute(f"CREATE OR REPLACE TEMP TABLE _kt_vmint AS {q.MINTS}")
            last = -1
            while batch := con.execute(
                "SELECT * FROM _kt_vmint WHERE ln > ? ORDER BY ln LIMIT ?", [last, FETCH]
            ).fetchall():
                for uid, ln, off, line, req_time in batch:
                    issues = pair_issues(
                        uid, _entry(ln, off, line), vault_time(req_time) if req_time else None
                    )
                    if issues:
                        out.key = (0, ln)
                        out.add(Rows(None, [], issues))
                last = batch[-1][1]
            con.execute("DROP TABLE _kt_vmint")
            self._python_pairs(out, fmt)
        finally:
            con.unregister("_kt_vwf")
        row = con.execute(
            """SELECT (SELECT count(*) FROM _kt_vl),
                      count(*) FILTER (WHERE role = 'merged'),
                      count(*) FILTER (WHERE role = 'repeated'),
                      count(*) FILTER (WHERE role = 'late') FROM _kt_vpair"""
        ).fetchone()
        con.execute("DROP TABLE _kt_vl; DROP TABLE _kt_vpy; DROP TABLE _kt_vpair")
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def write(self, staged: dict[str, str]) -> None:
        """Write the SQL rows and the staged Python rows to the case, in the order the sequential
        reader writes them (phase, line number, then as built), and drop the temp tables."""
        ctx = self.ctx
        order = "ORDER BY _phase, _key, _seq"
        ctx.insert_sql(
            "events",
            "SELECT * EXCLUDE (_phase, _key, _seq, file_id), ?::INTEGER AS file_id FROM "
            "(SELECT * EXCLUDE (_mount_type) FROM _kt_vev "
            f"UNION ALL BY NAME SELECT * FROM {staged['events']}) {order}",
            [ctx.file_id],
        )
        ctx.insert_sql(
            "event_resources",
            f"SELECT * EXCLUDE (_phase, _key, _seq) FROM ({q.RESOURCES} "
            f"UNION ALL BY NAME SELECT * FROM {staged['event_resources']}) {order}",
        )
        ctx.insert_sql(
            "credential_issues",
            f"SELECT * EXCLUDE (_phase, _key, _seq) FROM {staged['credential_issues']} {order}",
        )
        self.con.execute(
            "DROP TABLE _kt_vev; " + "; ".join(f"DROP TABLE {t}" for t in staged.values())
        )

    def _python_pairs(self, out: Sink, fmt: str) -> None:
        """Pairs with a side on the Python path: ``rows.build`` from both entries."""
        pairs = self.con.execute(
            """SELECT uid, main, main_py, req, req_py, answered FROM _kt_vpair
               WHERE role = 'event' AND (main_py OR req_py) ORDER BY main"""
        ).fetchall()
        need = [p[1] for p in pairs if not p[2]] + [
            p[3] for p in pairs if p[3] is not None and not p[4]
        ]
        fast: dict[int, Entry] = {}
        for i in range(0, len(need), FETCH):
            for ln, off, line in self.con.execute(
                "SELECT ln, off, line FROM _kt_vl WHERE list_contains(?, ln)", [need[i : i + FETCH]]
            ).fetchall():
                fast[ln] = _entry(ln, off, line)
        for uid, main, main_py, req, req_py, answered in pairs:
            m = self.py[main] if main_py else fast[main]
            out.key = (0 if answered else 1, main)
            if answered:
                r = None if req is None else (self.py[req] if req_py else fast[req])
                out.add(build(uid, r, m, fmt))
            else:
                out.add(build(uid, m, None, fmt))
