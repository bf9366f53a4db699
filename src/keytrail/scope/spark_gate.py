"""The needle gate on Spark: pass 1 parses only the CloudTrail files that can matter.

The DuckDB engine's gate (:mod:`keytrail.scope.gate`, docs/scale.md "The needle gate") with its
rounds as Spark jobs and its state on the driver:

1. pass 1a (:func:`hold_arrow`): every input file goes to a task, which projects it as pass 1
   does, but for the plain CloudTrail ``Records`` files: those it hands back as ``held`` rows
   (the runner's own choice, :class:`keytrail.scope.gate.GatedCloudTrail`). A CloudTrail file
   the gate cannot hold (another shape, a converted copy) is projected there and then;
2. the driver computes the needles over what is loaded (:func:`keytrail.scope.needles.needles`
   on its DuckDB case, the same SQL) and, while they grow, runs a round (:func:`round_arrow`):
   a job over the held files not opened yet, the round's new needles and each file's state
   broadcast. A task inflates its files, counts and checks a file for escapes the first time it
   reads it, searches the new needles (:func:`keytrail.scope.gate.search`) and projects, in the
   same task, the files the gate opens (:func:`keytrail.scope.gate.why_open`), returning their
   rows as pass 1 does, and one ``probe`` row per file (its count, escapes, why opened);
3. the driver merges every loaded row (:mod:`keytrail.scope.spark_merge`: de-duplication over
   all of them; on a local master whose driver ran pass 1a, :func:`hold_local`, the round's rows
   come back to the driver as Arrow and DuckDB merges them there), fills its case again and
   computes the needles again, to the fixpoint. A
   needle set that cannot stand for the seeds (human, agent, unmatched seed, a needle JSON would
   escape) opens every held file not opened yet: today's whole pass 1.

The loop of 2-3 is :func:`keytrail.scope.gate.fixpoint`, the DuckDB engine's own: this module
gives it a round (:meth:`SparkGate._round`) and a refresh of the driver's case.

The manifest states the same ``gate`` object and counts as the DuckDB engine's.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from keytrail.scope.facts import duckdb_facts
from keytrail.scope.gate import Gate, Held, fixpoint, search, why_open
from keytrail.scope.spark_arrow import to_arrow
from keytrail.scope.spark_merge import same_bytes
from keytrail.scope.spark_tasks import (
    EVENT_COLS,
    PASS1_DDL,
    WHERE_COLS,
    in_place,
    local_path,
    pass1_schema,
    project_arrow,
    projected,
    small_batch,
    task_files,
    written,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from keytrail.ingest.runner import IngestSummary
    from keytrail.store.case import CaseStore


class _Hold(Gate):
    """A task's gate: it only holds the ``Records`` files (the driver runs the rounds)."""

    def run(self, store: CaseStore, summary: IngestSummary, after: Callable[[], None]) -> None:
        return None


def hold_arrow(seeds: list[str]) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """Pass 1a in a task: its files projected, the ``Records`` files held (``held`` rows)."""

    def run(batches: Iterable[Any]) -> Iterator[Any]:
        items = task_files(batches)
        if not items:
            return
        with tempfile.TemporaryDirectory(prefix="keytrail-scope-task-") as tmp:
            yield from projected(Path(tmp), written(Path(tmp), items), _Hold(seeds))

    return run


class Local(NamedTuple):
    """Pass 1a of the driver (:func:`hold_local`): its ``file``, ``issue`` and ``held`` rows
    (kind, pickled payload), its event rows (an Arrow table of :data:`EVENT_COLS` and
    :data:`WHERE_COLS`), and round 0's facts of the driver's case over them
    (:func:`keytrail.scope.facts.duckdb_facts`)."""

    small: list[tuple[str, bytes]]
    events: Any
    facts: Any


def hold_local(tmp: Path, files: list[str], seeds: list[str]) -> Local:
    """Pass 1a on the driver of a local master over local files (:func:`in_place`), run while
    the session starts: every file in one scratch case under ``tmp``, as :func:`hold_arrow`'s
    tasks project theirs (the same rows), so the ingest itself pairs the Vault lines and drops
    the copies across all of them, as the DuckDB engine's projection does
    (:attr:`SparkGate.merged`). At 1M events the JVM's start and first plan took about one core
    for 7-10 s and pass 1's job 14 s more (docs/performance.md, spark7).

    The ``file``, ``issue`` and ``held`` rows, the event rows (the driver keeps them: Spark
    never reads them, :attr:`SparkGate.on_driver`), and what the driver's case needs of them
    before round 1, computed here by DuckDB (:mod:`keytrail.scope.facts`, the SQL Spark runs
    over a cluster's merged rows): Spark plans no job over them (at 1M the cold plans and jobs
    of their checkpoint and facts took 6-12 s of the driver's wall, docs/performance.md,
    spark8)."""
    import pyarrow as pa

    tmp.mkdir(exist_ok=True)
    table = pa.Table.from_batches(
        projected(tmp, written(tmp, [(f, None) for f in files]), _Hold(seeds)), pass1_schema()
    )
    small, rows = _split(table)
    issues = [pickle.loads(p) for k, p in small if k == "issue"]
    facts = duckdb_facts(rows, issues, seeds)
    return Local(small, rows, facts)


def _split(table: Any) -> tuple[list[tuple[str, bytes]], Any]:
    """A pass's Arrow ``table`` (:data:`PASS1_DDL`): its ``file``, ``issue`` and ``held`` rows
    (kind, pickled payload), and its ``event`` rows' :data:`EVENT_COLS` and :data:`WHERE_COLS`."""
    import pyarrow.compute as pc

    rest = table.filter(pc.not_equal(table["kind"], "event"))
    small = list(zip(rest["kind"].to_pylist(), rest["payload"].to_pylist(), strict=True))
    events = table.filter(pc.equal(table["kind"], "event")).select([*EVENT_COLS, *WHERE_COLS])
    return small, events


#: A held file's state as the driver sends it to a round's tasks: format, gzipped, record limit,
#: the count (``None`` before the first read), holds ``\u``, holds ``\/``, read before.
State = tuple[str, bool, int, "int | None", bool, bool, bool]


def round_arrow(shared: Any) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """A round in a task. ``shared``: the broadcast (file states by path, the round's new
    needles, whether a needle has a ``/``, whether every file is opened: the whole path)."""

    def run(batches: Iterable[Any]) -> Iterator[Any]:
        import duckdb

        states: dict[str, State]
        states, new, slash, whole = shared.value
        items = task_files(batches)
        if not items:
            return
        with tempfile.TemporaryDirectory(prefix="keytrail-scope-task-") as tmp:
            names = written(Path(tmp), items)
            held = []
            for f, orig in names.items():
                fmt, gz, limit, records, escaped, slashed, searched = states[orig]
                held.append(Held(0, Path(f), fmt, gz, limit, records, escaped, slashed, searched))
            hits = [True] * len(held)
            if not whole:
                con = duckdb.connect()
                try:
                    hits = search(con, held, new, workers=1)
                finally:
                    con.close()
            probes, opened = [], {}
            for (f, orig), h, hit in zip(names.items(), held, hits, strict=True):
                why = "the whole path" if whole else why_open(h, hit, slash=slash)
                probes.append(("probe", pickle.dumps((orig, h.records, h.escaped, h.slashed, why))))
                if why is not None:
                    opened[f] = orig
            yield small_batch(probes)
            if opened:
                yield from projected(Path(tmp), opened)

    return run


class SparkGate:
    """Pass 1 and the gate's rounds, driven from the driver: what is loaded (persisted
    DataFrames of :data:`keytrail.scope.spark_tasks.PASS1_DDL` rows), the file rows, the
    issuance rows and the gate's state per held file."""

    def __init__(self, spark: Any, files: list[str], seeds: list[str], *, gated: bool) -> None:
        self.spark = spark
        self.files = files
        self.order = [local_path(f) for f in files]
        self.gate = Gate(list(dict.fromkeys(seeds))) if gated else None
        self.in_place = in_place(spark, files)
        self.parts: list[Any] = []
        self.rows: dict[str, dict[str, Any]] = {}  # a file's row (an opened file: the round's)
        self.issues: list[tuple[Any, ...]] = []
        #: Pass 1a ran on the driver (:func:`hold_local`: one scratch case, its rows paired and
        #: de-duplicated already): the driver holds every loaded row, :attr:`parts` are Arrow
        #: tables of :data:`EVENT_COLS` and :data:`WHERE_COLS` (a round's rows come back as
        #: Arrow), merged by DuckDB (:func:`keytrail.scope.spark_merge.merge_local`). Else
        #: :attr:`parts` are persisted DataFrames of :data:`PASS1_DDL` rows, merged by Spark.
        self.on_driver = False
        self._held: list[tuple[str, str, bool, int]] = []
        self._where: dict[int, str] = {}  # a held file's id (load order) -> its path
        #: What each pass over the trail read (files, bytes, files opened): the manifest's
        #: ``spark.passes``, the cost of a scope in passes over the data (docs/scale.md).
        self.passes: list[dict[str, Any]] = []

    def run(
        self,
        refresh: Callable[[list[Any]], CaseStore],
        local: Local | None = None,
    ) -> CaseStore:
        """Pass 1, then the rounds to the fixpoint; ``refresh``: the driver's case filled from
        what is loaded (called again whenever a round loads rows). ``local``: pass 1a's batches
        from the driver (:func:`hold_local`; a local master over local files, with the gate),
        not a job's."""
        gate = self.gate
        if gate is None:
            raw = self.source(self.files)
            self._add(raw.mapInArrow(project_arrow, PASS1_DDL))
            self.read("pass 1", self.order, len(self.order))
            return refresh(self.parts)
        if local is not None:
            self._local(local)
        else:
            self._add(self.source(self.files).mapInArrow(hold_arrow(gate.seeds), PASS1_DDL))
        self._register(gate)
        self.read("pass 1", self.order, len(self.order) - len(gate.held))
        return fixpoint(
            gate,
            refresh(self.parts),
            lambda todo, new, slash, whole: self._round(todo, new, slash=slash, whole=whole),
            lambda: refresh(self.parts),
        )

    def source(self, paths: list[str]) -> Any:
        """The ``binaryFile`` rows of ``paths`` for a pass's tasks: on a local master over local
        files only their ``path`` (:func:`keytrail.scope.spark_tasks.in_place`: Spark then
        reads no bytes, the task reads the file where it is)."""
        raw = self.spark.read.format("binaryFile").load(paths)
        return raw.select("path") if self.in_place else raw

    def read(self, name: str, paths: list[str], opened: int) -> None:
        """Note a pass over ``paths`` (``opened``: how many it parsed) in :attr:`passes`."""
        size = sum(int(self.rows.get(p, {}).get("bytes") or 0) for p in paths)
        self.passes.append({"pass": name, "files": len(paths), "bytes": size, "parsed": opened})

    def inputs(self) -> list[dict[str, Any]]:
        """The manifest's ``inputs`` (the pass's file rows; a held file never opened: its count,
        ``rejected`` not examined), the copies of earlier files' bytes ``already-ingested``."""
        rows = dict(self.rows)
        for h in self.gate.held if self.gate is not None else []:
            path = self._where[h.file_id]
            if not h.opened:
                rows[path] = {**rows[path], "records": h.records or 0, "rejected": None}
        return same_bytes(list(rows.values()), self.order)

    def _add(self, frame: Any) -> list[tuple[str, bytes]]:
        """Run a pass (persisted: the merge reads it again) and take its small rows (the one
        job that computes it: a persisted partition is cached whole, whatever the filter)."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        part = frame.persist(StorageLevel.MEMORY_AND_DISK)
        small = [
            (str(r["kind"]), bytes(r["payload"]))
            for r in part.where(F.col("kind") != "event").select("kind", "payload").collect()
        ]
        self.parts.append(part)
        self._take(small)
        return small

    def _local(self, local: Local) -> None:
        """Pass 1a from the driver (:func:`hold_local`): the small rows taken here, the event
        rows the first part (merged already; the driver keeps them: :attr:`on_driver`)."""
        self._take(local.small)
        self.parts.append(local.events)
        self.on_driver = True

    def _take(self, small: list[tuple[str, bytes]]) -> None:
        """A pass's ``file``, ``issue`` and ``held`` rows into the driver's state."""
        for kind, payload in small:
            if kind == "file":
                row = pickle.loads(payload)
                self.rows[row["path"]] = row
            elif kind == "issue":
                self.issues.append(pickle.loads(payload))
            elif kind == "held":
                self._held.append(pickle.loads(payload))

    def _register(self, gate: Gate) -> None:
        """The held files, in load order; a copy of an earlier file's bytes is not held (the
        ingest never reads it: ``already-ingested``)."""
        copies = {
            r["path"]
            for r in same_bytes([dict(r) for r in self.rows.values()], self.order)
            if r["status"] == "already-ingested"
        }
        rank = {p: i for i, p in enumerate(self.order)}
        for path, fmt, gz, limit in sorted(self._held, key=lambda x: rank.get(x[0], len(rank))):
            if path in copies:
                continue
            fid = rank.get(path, len(rank) + len(self._where))
            self._where[fid] = path
            gate.held.append(Held(fid, Path(path), fmt, gz, limit))

    def _round(self, todo: list[Held], new: list[str], *, slash: bool, whole: bool) -> int:
        """One round's job over ``todo``; the files it opened (their rows added)."""
        gate = self.gate
        assert gate is not None
        states: dict[str, State] = {
            self._where[h.file_id]: (
                h.format,
                h.gzipped,
                h.max_record_bytes,
                h.records,
                h.escaped,
                h.slashed,
                h.searched,
            )
            for h in todo
        }
        shared = self.spark.sparkContext.broadcast((states, new, slash, whole))
        paths = [self._where[h.file_id] for h in todo]
        frame = self.source(paths).mapInArrow(round_arrow(shared), PASS1_DDL)
        if self.on_driver:  # the round's rows to the driver, which merges them (one job)
            small, events = _split(to_arrow(frame))
            self.parts.append(events)
            self._take(small)
        else:
            small = self._add(frame)
        by_path = {self._where[h.file_id]: h for h in todo}
        opened = 0
        for kind, payload in small:
            if kind != "probe":
                continue
            path, records, escaped, slashed, why = pickle.loads(payload)
            h = by_path[path]
            if not whole:
                h.records, h.escaped, h.slashed, h.searched = records, escaped, slashed, True
            if why is not None:
                opened += 1
                if not whole:
                    h.opened, h.why = gate.rounds, why
        self.read("the whole path" if whole else f"round {gate.rounds}", paths, opened)
        return opened
