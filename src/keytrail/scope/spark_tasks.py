"""What the Spark engine's tasks run: pass 1 (project files) and pass 2 (copy kept records).

Both run inside Spark executors on whole files handed over by ``binaryFiles``; each writes the
file to a temporary folder and uses the DuckDB engine's code on it (:mod:`keytrail.scope.project`,
:mod:`keytrail.scope.output`), so a record means the same and is copied the same way whichever
engine cut it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.scope import output
from keytrail.scope.project import locate, project, with_raw

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from keytrail.scope.gate import Gate

EVENT_COLS = (
    "event_uid",
    "source",
    "time",
    "action",
    "target",
    "shared_event_id",
    "credential_id",
    "actor_uid",
    "actor_name",
    "human_id",
    "agent_id",
    "request_id",
    "actor_type",
    "user_agent",
    "src_ip",
    "raw",  # the classifier's sample records only (keytrail.scope.narrow)
)
#: Per event, where it sits, for the cross-task pairing and de-duplication (:mod:`spark_merge`).
WHERE_COLS = (
    "path",
    "record_no",
    "entry",
    "request_path",
    "format",
    "byte_offset",
    "request_offset",
)
_LONG = ("record_no", "byte_offset", "request_offset")


def local_path(path: str) -> str:
    """Spark's ``file:/x`` back to the path the DuckDB engine names (``/x``)."""
    return path.removeprefix("file:")


#: Pass 1's output, one Arrow schema for its three kinds of row: ``kind`` is ``file``,
#: ``issue`` or ``event``; a file's or issue's row is pickled in ``payload`` (a few per file),
#: an event's columns are Arrow columns, so the per-event rows never pass through Python objects.
PASS1_DDL = ", ".join(
    ["kind string", "payload binary"]
    + [
        f"{c} {'timestamp_ntz' if c == 'time' else 'bigint' if c in _LONG else 'string'}"
        for c in (*EVENT_COLS, *WHERE_COLS)
    ]
)


def project_arrow(batches: Iterable[Any]) -> Iterator[Any]:
    """Pass 1 in a task (``DataFrame.mapInArrow`` over the ``binaryFile`` source): the files of
    the task's batches projected, as Arrow record batches of :data:`PASS1_DDL`."""
    items = task_files(batches)
    if not items:
        return
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-task-") as tmp:
        yield from projected(Path(tmp), written(Path(tmp), items))


def in_place(spark: Any, files: list[str]) -> bool:
    """Whether the tasks read the input files where they are, not their bytes from Spark: a
    local master (its tasks run on this machine) over local files only. Spark's ``binaryFile``
    then reads no ``content``; each pass sent every file's bytes through the JVM and a socket
    into the task, which wrote them to a temporary file to read them again (pass 1 and each of
    the gate's rounds: about 0.9 GB at 1M, docs/performance.md, spark6). A cluster's executors
    get the bytes as before."""
    master = str(spark.sparkContext.master)
    return master.startswith("local") and all(f.startswith("/") for f in files)


def task_files(batches: Iterable[Any]) -> list[tuple[str, bytes | None]]:
    """The (path, bytes) of the files in a task's ``binaryFile`` batches; the bytes ``None``
    when the batches hold no ``content`` (:func:`in_place`: the file is read where it is)."""
    out: list[tuple[str, bytes | None]] = []
    for b in batches:
        paths = b.column("path").to_pylist()
        if "content" in b.schema.names:
            out.extend(
                (str(p), bytes(d))
                for p, d in zip(paths, b.column("content").to_pylist(), strict=True)
            )
        else:
            out.extend((str(p), None) for p in paths)
    return out


def written(tmp: Path, items: list[tuple[str, bytes | None]]) -> dict[str, str]:
    """``items`` written under ``tmp`` (each in its own folder, its own name): the written path
    to the path the DuckDB engine names it by. A file without bytes (:func:`in_place`) is not
    written: its own path, as the DuckDB engine reads it."""
    names = {}
    for i, (path, data) in enumerate(items):
        if data is None:
            names[str(Path(local_path(path)).resolve())] = local_path(path)
            continue
        f = tmp / str(i) / (Path(local_path(path)).name or "input")
        f.parent.mkdir()
        f.write_bytes(data)
        names[str(f.resolve())] = local_path(path)
    return names


def small_batch(small: list[tuple[str, bytes]]) -> Any:
    """Rows of :data:`PASS1_DDL` that are not events: ``kind`` and a pickled ``payload``."""
    import pyarrow as pa

    schema = pass1_schema()
    kinds, payloads = zip(*small, strict=True) if small else ((), ())
    head = {"kind": list(kinds), "payload": list(payloads)}
    return pa.RecordBatch.from_pydict(
        head | {c: [None] * len(small) for c in schema.names[2:]}, schema=schema
    )


def projected(tmp: Path, names: dict[str, str], gate: Gate | None = None) -> Iterator[Any]:
    """The written files ``names`` projected in a scratch case under ``tmp``: one batch of their
    ``file`` and ``issue`` rows (and, with a ``gate`` that holds the ``Records`` files, a ``held``
    row for each), then the event rows."""
    import pickle

    import pyarrow as pa

    schema = pass1_schema()
    proj = project(tmp / "scratch.duckdb", list(names), gate=gate)
    try:
        small: list[tuple[str, bytes]] = []
        for r in proj.inputs():
            r["path"] = names.get(r["path"], r["path"])
            small.append(("file", pickle.dumps(r)))
        con = proj.store.con
        for row in con.execute("SELECT * FROM credential_issues").fetchall():
            small.append(("issue", pickle.dumps(row)))
        for h in gate.held if gate is not None else []:
            held = (names.get(str(h.path), str(h.path)), h.format, h.gzipped, h.max_record_bytes)
            small.append(("held", pickle.dumps(held)))
        yield small_batch(small)
        t_names = pa.table(  # noqa: F841
            {"tmp": list(names), "orig": list(names.values())}
        )
        sql = (
            f"SELECT 'event' AS kind, NULL::BLOB AS payload, "
            f"{', '.join('e.' + c for c in EVENT_COLS)}, "
            "coalesce(n.orig, v.path) AS path, e.record_no, e.details->>'entry' AS entry, "
            "CASE WHEN rv.path IS NOT NULL THEN coalesce(rn.orig, rv.path) END "
            "AS request_path, v.format, e.byte_offset, CASE WHEN e.source = "
            "'vault' AND e.details->>'entry' = 'pair' THEN "
            "TRY_CAST(e.details->>'request_byte_offset' AS BIGINT) END AS request_offset "
            "FROM events e JOIN evidence v ON v.file_id = e.file_id LEFT JOIN evidence rv "
            "ON rv.file_id = TRY_CAST(e.details->>'request_file_id' AS INTEGER) "
            "AND e.source = 'vault' AND rv.file_id <> e.file_id "
            "LEFT JOIN t_names n ON n.tmp = v.path LEFT JOIN t_names rn ON rn.tmp = rv.path"
        )
        for batch in con.sql(sql).to_arrow_reader(65536):  # no extra copy of the rows
            yield batch.cast(schema)
    finally:
        proj.store.close()


def pass1_schema() -> Any:
    import pyarrow as pa

    def typ(c: str) -> Any:
        if c == "time":
            return pa.timestamp("us")
        return pa.int64() if c in _LONG else pa.string()

    return pa.schema(
        [("kind", pa.string()), ("payload", pa.binary())]
        + [(c, typ(c)) for c in (*EVENT_COLS, *WHERE_COLS)]
    )


#: What pass 2 needs of a kept record in one file: uid, source, record number, format, and the
#: byte offset of its line there (line formats; a Vault pair's request line has its own).
Want = tuple[str, str, int, str, int | None]


def extract(wanted: dict[str, list[Want]]) -> Any:
    """Pass 2 in a task: the output documents of the files that hold kept records."""

    def run(items: Iterable[tuple[str, bytes | None]]) -> Iterator[tuple[str, str, int, bytes]]:
        for path, content in items:
            want = wanted.get(local_path(path))
            if not want:
                continue
            # no bytes from Spark (spark_tasks.in_place): the task reads the local file
            data = Path(local_path(path)).read_bytes() if content is None else content
            if all(w[1] != "cloudtrail" and w[4] is not None for w in want):
                # lines at the offsets pass 1 found: no need to load the file again
                pieces = sorted(
                    {output.Piece(local_path(path), w[1], int(w[4] or 0)) for w in want}
                )
                yield from output.documents(pieces, _constant(data))
                continue
            with tempfile.TemporaryDirectory(prefix="keytrail-scope-task-") as tmp:
                f = Path(tmp) / (Path(local_path(path)).name or "input")
                f.write_bytes(data)
                if all(w[1] == "cloudtrail" for w in want):  # record texts: the bulk scan
                    rows = with_raw(
                        [
                            {"event_uid": u, "source": s, "record_no": n, "format": fmt}
                            | {"path": str(f), "file_id": 0}
                            for u, s, n, fmt, _off in want
                        ]
                    )
                else:
                    rows = locate(f, [w[0] for w in want])
                for r in rows:
                    r["path"] = local_path(path)
                    r["request_path"] = local_path(path) if r.get("request_path") else None
                docs = output.documents(output.pieces(rows), _constant(data))
                yield from docs

    return run


def _constant(data: bytes) -> Callable[[str], bytes]:
    """A reader that answers every path with ``data`` (the one file a task already holds in memory)."""

    def read(_path: str) -> bytes:
        return data

    return read
