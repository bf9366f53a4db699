"""The agent logs of a scope loaded in a child process (:mod:`keytrail.scope.beside`).

The projection with the child must hold the same rows, ``evidence`` and per-file results as the
one without it, hostile agent files included (a bad line, a truncated gzip, a file that is not
an agent log past its first line); a file whose adapter fails is ``failed`` with the runner's
note; a child that dies or cannot write stops the scope with an error, never taken for a file's
failure.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest import runner
from keytrail.ingest.base import WRITABLE_TABLES, LoadContext, Sample, SourceAdapter
from keytrail.ingest.batch_load import FileResult
from keytrail.ingest.runner import IngestSummary
from keytrail.scope import beside as bs
from keytrail.scope.engine_duckdb import scope_duckdb
from keytrail.scope.project import project
from keytrail.store.case import CaseStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"
INVENTORY = SAMPLE / "inventory.toml"
TOKEN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"


def _trail(tmp: Path) -> Path:
    """The README sample plus hostile agent files: a bad line, a truncated gzip, a UTF-16 copy
    (loaded by the runner: its UTF-8 copy is gone after the batch), two OTLP files in one batch,
    one of them a copy of the other (duplicates across files)."""
    trail = tmp / "trail"
    shutil.copytree(SAMPLE, trail)
    agents = trail / "agents"
    native = agents / "native" / "invoice-triage.jsonl"
    text = native.read_bytes()
    (agents / "bad.jsonl").write_bytes(text + b'{"ts": not json\n' + text[:200] + b"\n")
    (agents / "wide.jsonl").write_bytes(b"\xff\xfe" + text.decode().encode("utf-16-le"))
    whole = gzip.compress(text * 3)
    (agents / "cut.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    otlp = agents / "otel" / "traces.jsonl"
    shutil.copy(otlp, otlp.with_name("copy-traces.jsonl"))
    return trail


def _tables(store: CaseStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in WRITABLE_TABLES:
        out[table] = sorted(store.con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    out["evidence"] = store.con.execute(
        "SELECT * EXCLUDE (ingested_at) FROM evidence ORDER BY file_id"
    ).fetchall()
    return out


def test_the_child_loads_the_same_rows(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    got = {}
    for side in (False, True):
        proj = project(tmp_path / f"{side}.duckdb", [trail], inventory=[INVENTORY], beside=side)
        try:
            got[side] = (_tables(proj.store), [vars(f) for f in proj.summary.files])
        finally:
            proj.store.close()
    assert got[True] == got[False]
    assert (tmp_path / "True-agents.duckdb").exists()  # the child loaded them
    assert not (tmp_path / "False-agents.duckdb").exists()
    files = got[True][1]
    agent = [f for f in files if f["source"] == "agent"]
    assert len(agent) >= 4 and any(f["status"] == "partial" for f in agent)  # the cut gzip
    assert any(f["rejected"] for f in agent)  # the bad line
    assert any("read as" in (f["note"] or "") for f in agent)  # the UTF-16 copy
    assert got[True][0]["events"] and got[True][0]["rejects"]


def test_a_scope_with_the_child_cuts_what_the_whole_path_cuts(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    a = scope_duckdb(tmp_path / "a", [trail], [TOKEN], inventory=[INVENTORY]).manifest
    b = scope_duckdb(tmp_path / "b", [trail], [TOKEN], inventory=[INVENTORY], narrow=False).manifest
    assert a["closure"] == b["closure"] and a["outputs"] == b["outputs"]
    assert [i for i in a["inputs"] if i["source"] == "agent"] == [
        i for i in b["inputs"] if i["source"] == "agent"
    ]


class _Boom(SourceAdapter):
    NAME = "boom"
    SOURCE = "agent"

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return None

    def load(self, ctx: LoadContext) -> None:
        ctx.insert("rejects", [{"record_no": 1, "reason": "written before the failure"}])
        if "bad" in ctx.path.name:
            raise ValueError("no such field")
        ctx.records = 1


def test_a_failing_file_is_failed_with_the_runners_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bs, "load_adapter", lambda name: _Boom)
    store = CaseStore.open(tmp_path / "child.duckdb", read_only=False, create=True)
    try:
        files = [[str(tmp_path / n), i, "x", False, 1 << 20] for i, n in ((3, "ok"), (4, "bad"))]
        out = bs._load(store, "boom", files)
        rows = store.con.execute("SELECT file_id FROM rejects").fetchall()
    finally:
        store.close()
    assert out[0]["file_id"] == 3 and out[0].get("records") == 1, out
    # the batch failed, then each file alone: only the bad one failed, its rows rolled back
    assert out[1] == {
        "file_id": 4,
        "failed": "boom adapter failed on this file: ValueError: no such field",
    }
    assert rows == [(3,)]
    result = bs._results(out)[4]
    assert result["status"] == "failed" and result["note"] == out[1]["failed"]


def test_the_child_answers_an_error_it_cannot_work_past(tmp_path: Path) -> None:
    out = io.BytesIO()
    code = bs.child(str(tmp_path / "missing" / "c.duckdb"), io.BytesIO(b""), out)
    answer = json.loads(out.getvalue())
    assert code == 1 and "error" in answer
    # stopped before it was closed: an error, not an empty success
    out = io.BytesIO()
    assert bs.child(str(tmp_path / "c.duckdb"), io.BytesIO(b""), out) == 1
    assert "EOFError" in json.loads(out.getvalue())["error"]


def test_a_dead_child_stops_the_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = bs.Beside.start

    def dead(self: bs.Beside) -> subprocess.Popen[bytes]:
        proc = start(self)
        proc.kill()
        proc.wait()
        return proc

    monkeypatch.setattr(bs.Beside, "start", dead)
    with pytest.raises(bs.ChildError, match="the child process loading the agent logs failed"):
        scope_duckdb(tmp_path / "out", [SAMPLE], [TOKEN], inventory=[INVENTORY])


def test_a_child_that_answers_nothing_for_a_file_is_an_error(tmp_path: Path) -> None:
    child = bs.Beside(tmp_path / "c.duckdb")
    try:
        child.sent[7] = "somewhere"  # a file the child was never told of
        store = CaseStore.open(tmp_path / "main.duckdb", read_only=False, create=True)
        try:
            with pytest.raises(bs.ChildError, match=r"did not load file ids \[7\]"):
                child.join(store, IngestSummary(case="x"))
        finally:
            store.close()
    finally:
        child.close()


def test_the_child_starts_before_the_runner_plans_the_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child starts before the runner hashes the first file, so its imports and its DuckDB
    file are ready by the first agent file (docs/performance.md, scope16); a trail of CloudTrail
    and Vault logs only hands it nothing, and the scope cuts what it cuts with nothing loaded
    there."""
    started: list[bs.Beside] = []
    start = bs.Beside.start

    def counted(self: bs.Beside) -> subprocess.Popen[bytes]:
        if self.proc is None:  # a process starts
            started.append(self)
        return start(self)

    at_first_hash: list[int] = []
    sha256_file = runner.sha256_file

    def hashed(path: Path) -> str:
        if not at_first_hash:
            at_first_hash.append(len(started))
        return sha256_file(path)

    monkeypatch.setattr(bs.Beside, "start", counted)
    monkeypatch.setattr(runner, "sha256_file", hashed)
    paths = [SAMPLE / "AWSLogs", SAMPLE / "vault"]
    result = scope_duckdb(tmp_path / "out", paths, [TOKEN], inventory=[INVENTORY])
    assert at_first_hash == [1]
    assert len(started) == 1 and started[0].sent == {}
    assert result.manifest["counts"]["vault"]
    scope_duckdb(tmp_path / "with", [SAMPLE], [TOKEN], inventory=[INVENTORY])
    assert len(started) == 2 and started[1].sent


def test_the_child_imports_what_its_first_batch_needs_before_it(tmp_path: Path) -> None:
    """The agent adapters' modules, and pyarrow's import of pandas, are paid while the child
    waits for its first file, not in the first batch."""
    pytest.importorskip("pandas")
    code = (
        "import io, sys\n"
        "from keytrail.scope import beside\n"
        f"beside.child({str(tmp_path / 'c.duckdb')!r}, io.BytesIO(b'{{\"close\": true}}\\n'),"
        " io.BytesIO())\n"
        "print(sorted(m for m in ('pandas', 'keytrail.ingest.agent.otlp',"
        " 'keytrail.ingest.agent.mcp') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == (
        "['keytrail.ingest.agent.mcp', 'keytrail.ingest.agent.otlp', 'pandas']"
    )


def _msgs(*msgs: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))


def test_the_child_starts_with_the_largest_and_gives_back_what_it_has_not_started() -> None:
    """Told all its files at once, the child loads the largest first; the runner takes back the
    largest it has not started (ties: the first in the plan)."""
    files = [
        ["otlp", "a", 3, "otlp-json", False, 1 << 20, 10],
        ["mcp", "b", 4, "mcp-jsonl", False, 1 << 20, 30],
        ["otlp", "c", 5, "otlp-json", False, 1 << 20, 20],
        ["agent_jsonl", "d", 6, "native", False, 1 << 20, 20],
    ]
    out = io.BytesIO()
    got = bs._Files(_msgs({"load": files[:2]}, {"load": files[2:]}, {"take": True}), out)
    got.reader.join()
    assert json.loads(out.getvalue()) == {"took": files[1]}
    assert [got.next(), got.next(), got.next()] == [files[2], files[3], files[0]]
    with pytest.raises(EOFError):  # the runner never closed it
        got.next()
    got = bs._Files(
        _msgs({"load": files[:1]}, {"take": True}, {"take": True}, {"close": True}), out
    )
    got.reader.join()
    assert got.next() is None  # closed, and its one file taken back
    assert out.getvalue().splitlines()[-2:] == [
        b'{"took": ' + json.dumps(files[0]).encode() + b"}",
        b'{"took": null}',
    ]


def _runner_takes_every_other(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """The child is told nothing until the join; there the runner keeps every other file (the
    first included) and tells the child the rest. Returns the runner's files once loaded."""
    back: list[list[Any]] = []
    tell, take = bs.Beside.tell, bs.Beside._take

    def told(self: bs.Beside) -> None:
        back.extend(self.held[::2])
        self.held = self.held[1::2]
        tell(self)

    def taken(self: bs.Beside) -> list[Any] | None:
        return back.pop(0) if back else take(self)

    loaded: list[list[Any]] = []
    load = bs._load

    def runner_load(
        store: CaseStore, name: str, files: list[list[Any]], checkpoint: bool = True
    ) -> list[dict[str, Any]]:
        if not checkpoint:  # the runner's loads
            loaded.extend(files)
        out: list[dict[str, Any]] = load(store, name, files, checkpoint)
        return out

    monkeypatch.setattr(bs.Beside, "loading", lambda self, adapter: None)
    monkeypatch.setattr(bs.Beside, "tell", told)
    monkeypatch.setattr(bs.Beside, "_take", taken)
    monkeypatch.setattr(bs, "_load", runner_load)
    return loaded


def test_files_the_runner_takes_back_load_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the runner takes back at the join gives the rows, rejects, counts, status and note
    the child's load gives (the hostile trail: a bad line, a cut gzip, two OTLP files)."""
    trail = _trail(tmp_path)
    whole = project(tmp_path / "whole.duckdb", [trail], inventory=[INVENTORY])
    try:
        want = (_tables(whole.store), [vars(f) for f in whole.summary.files])
    finally:
        whole.store.close()
    loaded = _runner_takes_every_other(monkeypatch)
    split = project(tmp_path / "split.duckdb", [trail], inventory=[INVENTORY], beside=True)
    try:
        got = (_tables(split.store), [vars(f) for f in split.summary.files])
    finally:
        split.store.close()
    assert got == want
    names = {Path(f[0]).name for f in loaded}
    assert {"bad.jsonl", "cut.jsonl.gz"} & names and len(names) >= 2, names
    child = CaseStore.open(tmp_path / "split-agents.duckdb", read_only=True)
    try:  # the child loaded the others, not these
        ids = {r[0] for r in child.con.execute("SELECT DISTINCT file_id FROM events").fetchall()}
    finally:
        child.close()
    assert ids and not ids & {int(f[1]) for f in loaded}


def test_a_failing_file_the_runner_takes_back_is_failed_with_the_childs_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's share goes through the child's load: a file whose adapter fails is
    ``failed`` with the note the child gives it, its rows rolled back, the others loaded."""
    monkeypatch.setattr(bs, "load_adapter", lambda name: _Boom)
    files = [[str(tmp_path / n), i, "x", False, 1 << 20] for i, n in ((3, "ok"), (4, "bad"))]
    child = CaseStore.open(tmp_path / "child.duckdb", read_only=False, create=True)
    try:
        want = bs._results(bs._load(child, "boom", files))
    finally:
        child.close()
    beside = bs.Beside(tmp_path / "c.duckdb")
    for f in files:
        ctx = LoadContext(None, Path(f[0]), f[1], "x", False)  # type: ignore[arg-type]
        beside.hand("boom", [ctx])
    monkeypatch.setattr(bs.Beside, "_take", lambda self: self.held.pop(0) if self.held else None)
    monkeypatch.setattr(bs.Beside, "tell", lambda self: None)
    store = CaseStore.open(tmp_path / "main.duckdb", read_only=False, create=True)
    summary = IngestSummary(case="x")
    try:
        for f in files:
            store.con.execute(
                "INSERT INTO evidence (file_id, path, sha256, status, records, rejected)"
                " VALUES (?, ?, '', 'loaded', 0, 0)",
                [f[1], f[0]],
            )
            summary.files.append(FileResult(str(f[0]), "", 0, "loaded"))
        beside.join(store, summary)
        got = store.con.execute(
            "SELECT file_id, status, records, rejected, skipped, note FROM evidence ORDER BY 1"
        ).fetchall()
        rejects = store.con.execute("SELECT file_id FROM rejects").fetchall()
    finally:
        store.close()
        beside.close()
    assert beside.proc is None  # the runner loaded both
    assert got == [
        (i, *(want[i][k] for k in ("status", "records", "rejected", "skipped", "note")))
        for i in (3, 4)
    ]
    assert (
        got[1][1] == "failed"
        and got[1][5] == "boom adapter failed on this file: ValueError: no such field"
    )
    assert rejects == [(3,)]
    assert [(f.status, f.note) for f in summary.files] == [
        (want[i]["status"], want[i]["note"]) for i in (3, 4)
    ]
