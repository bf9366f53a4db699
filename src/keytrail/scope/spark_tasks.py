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


def local_path(path: str) -> str:
    """Spark's ``file:/x`` back to the path the DuckDB engine names (``/x``)."""
    return path.removeprefix("file:")


def project_files(items: Iterable[tuple[str, bytes]]) -> Iterator[tuple[Any, ...]]:
    """Pass 1 in a task: ``("file", ...)``, ``("issue", ...)`` and ``("event", ...)`` rows."""
    items = list(items)
    if not items:
        return
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-task-") as tmp:
        names = {}
        for i, (path, data) in enumerate(items):
            f = Path(tmp) / str(i) / (Path(local_path(path)).name or "input")
            f.parent.mkdir()
            f.write_bytes(data)
            names[str(f.resolve())] = local_path(path)
        proj = project(Path(tmp) / "scratch.duckdb", list(names))
        try:
            for r in proj.inputs():
                r["path"] = names.get(r["path"], r["path"])
                yield ("file", r)
            con = proj.store.con
            for row in con.execute("SELECT * FROM credential_issues").fetchall():
                yield ("issue", row)
            sql = (
                f"SELECT {', '.join('e.' + c for c in EVENT_COLS)}, v.path, e.record_no, "
                "e.details->>'entry', rv.path, v.format, e.byte_offset, CASE WHEN e.source = "
                "'vault' AND e.details->>'entry' = 'pair' THEN "
                "TRY_CAST(e.details->>'request_byte_offset' AS BIGINT) END FROM events e "
                "JOIN evidence v ON v.file_id = e.file_id LEFT JOIN evidence rv "
                "ON rv.file_id = TRY_CAST(e.details->>'request_file_id' AS INTEGER) "
                "AND e.source = 'vault' AND rv.file_id <> e.file_id"
            )
            for row in con.execute(sql).fetchall():
                *ev, path, no, entry, req, fmt, off, req_off = row
                where = (names.get(path, path), no, entry, names.get(req, req), fmt, off, req_off)
                yield ("event", (*ev, *where))
        finally:
            proj.store.close()


#: What pass 2 needs of a kept record in one file: uid, source, record number, format, and the
#: byte offset of its line there (line formats; a Vault pair's request line has its own).
Want = tuple[str, str, int, str, int | None]


def extract(wanted: dict[str, list[Want]]) -> Any:
    """Pass 2 in a task: the output documents of the files that hold kept records."""

    def run(items: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, str, int, bytes]]:
        for path, data in items:
            want = wanted.get(local_path(path))
            if not want:
                continue
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
