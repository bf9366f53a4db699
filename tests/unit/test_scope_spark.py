"""The Spark engine of ``keytrail scope`` against its oracle, the DuckDB engine (``local[2]``).

Both engines must keep the same records, byte for byte: the same output files with the same
SHA-256 and the same closure, on the sample incident and on generated scale data. One Spark
session for the module (a JVM start costs seconds on a loaded machine).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keytrail.scope.engine_duckdb import scope_duckdb

REPO = Path(__file__).resolve().parents[2]
LONG = ("record_no", "byte_offset", "request_offset")
SAMPLE = REPO / "sample_data" / "incident"
TOKEN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
HUMAN = "maria.chen@finco.example"

pytest.importorskip("pyspark", reason="PySpark not installed (pip install 'keytrail[spark]')")
if shutil.which("java") is None:
    pytest.skip(
        "no java on PATH: the Spark engine needs Java 17 (Debian openjdk-17-jre-headless)",
        allow_module_level=True,
    )

from keytrail.scope.engine_spark import LOCAL_CONF, _real_evidence, scope_spark
from keytrail.scope.facts import SUMMARY


@pytest.fixture(scope="module")
def spark() -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # tasks import keytrail from this venv
    builder = SparkSession.builder.master("local[2]").appName("keytrail-scope-test")
    # the engine's own local session (C1 JIT, serial GC, no UI: LOCAL_CONF), but a task per core
    # (a task projects its files in a scratch case of its own: 35 of them per pass of the
    # sample, one file each, made most of this module's time)
    conf = LOCAL_CONF | {
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.files.minPartitionNum": "2",
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def one_file_per_task(spark: Any) -> Any:
    """Each file in a task of its own: a request and its response in two files go to two tasks,
    what a round learns of a file crosses tasks on the driver."""
    key = "spark.sql.files.maxPartitionBytes"
    before = spark.conf.get(key)
    spark.conf.set(key, "1")
    yield spark
    spark.conf.set(key, before)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DuckDB engine's manifest of the whole sample from the token (three tests compare)."""
    out = tmp_path_factory.mktemp("whole") / "w"
    return scope_duckdb(out, [SAMPLE], [TOKEN], inventory=[SAMPLE / "inventory.toml"]).manifest


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert [(o["path"], o["sha256"], o["records"]) for o in a["outputs"]] == [
        (o["path"], o["sha256"], o["records"]) for o in b["outputs"]
    ]
    assert {c["credential_id"] for c in a["closure"]} == {c["credential_id"] for c in b["closure"]}
    assert a["counts"] == b["counts"]
    assert [
        (i["path"], i["sha256"], i["status"], i["records"], i["rejected"]) for i in a["inputs"]
    ] == [(i["path"], i["sha256"], i["status"], i["records"], i["rejected"]) for i in b["inputs"]]
    assert _gate(a) == _gate(b)
    assert not [e for m in (a, b) for c in m["closure"] for e in c["evidence"] if ":summary:" in e]


def _gate(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``gate`` but its ``vault`` (the DuckDB engine's Vault gate; the Spark
    engine's tasks load the Vault files whole, with the same rows and counts)."""
    gate = doc.get("gate")
    return None if gate is None else {k: v for k, v in gate.items() if k != "vault"}


def test_the_closure_evidence_names_events_not_summary_rows() -> None:
    """The driver's summary row of a (credential, principal) group is named after the group's
    first event: the manifest cites that event (once, sorted as the DuckDB engine sorts)."""
    cited = ["cloudtrail:b", f"{SUMMARY}cloudtrail:a", f"{SUMMARY}cloudtrail:b", "vault:c"]
    seed = {"credential_id": "K", "relation": "seed", "why": "seed credential", "evidence": []}
    link = {"credential_id": "L", "relation": "minted from a seed", "why": "w", "evidence": cited}
    assert _real_evidence([seed, link]) == [
        seed,
        {**link, "evidence": ["cloudtrail:a", "cloudtrail:b", "vault:c"]},
    ]


def test_spark_equals_duckdb_on_the_sample(
    spark: Any, tmp_path: Path, whole: dict[str, Any]
) -> None:
    inv = [SAMPLE / "inventory.toml"]
    got = scope_spark(tmp_path / "s", [SAMPLE], [TOKEN], inventory=inv).manifest
    assert got["engine"] == "spark" and got["spark"]["master"] == "local[2]"
    assert whole["outputs"]
    _same(whole, got)
    gate = got["gate"]  # the Vault token's closure opens a few CloudTrail files, not all
    assert gate["fallback"] is None and 0 < gate["files_opened"] < gate["files_gated"]


def test_a_cluster_s_tasks_take_the_bytes_from_spark(
    spark: Any, tmp_path: Path, whole: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local master's tasks read local files where they are; a cluster's (or a remote
    path's) take each file's bytes from Spark's ``binaryFile`` rows: the same cut."""
    from keytrail.scope import spark_gate

    files = [str(p) for p in SAMPLE.rglob("*") if p.is_file()]
    assert spark_gate.in_place(spark, files)  # this test's session reads in place ...
    assert not spark_gate.in_place(spark, [*files, "s3a://bucket/AWSLogs/x.json.gz"])
    asked = []

    def remote(session: Any, paths: list[str]) -> bool:
        asked.append(len(paths))
        return False

    monkeypatch.setattr(spark_gate, "in_place", remote)  # ... this run as a cluster's would
    inv = [SAMPLE / "inventory.toml"]
    got = scope_spark(tmp_path / "s", [SAMPLE], [TOKEN], inventory=inv).manifest
    assert asked and asked[0] > 1
    _same(whole, got)


@pytest.mark.parametrize("pass_2", ["driver", "tasks"])
def test_a_local_master_s_driver_runs_pass_1a(
    spark: Any,
    tmp_path: Path,
    whole: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    pass_2: str,
) -> None:
    """On a local master over local files the driver projects the trail while the session
    starts (``hold_local``): no pass 1a job (its task function is never made), the same cut.
    The driver holds the rows and merges each round's by DuckDB: Spark runs the rounds' jobs
    only (no merge, settle or facts). Pass 2 of a few files is the driver's too (no job of a
    task per file); of more files than ``DRIVER_COPY``, the local tasks' (each reads its file
    where it is)."""
    from pyspark import SparkContext

    from keytrail.scope import engine_spark, spark_gate, spark_merge

    made = []
    parallelize = SparkContext.parallelize

    def tasks(self: Any, *args: Any, **kw: Any) -> Any:
        made.append(args)
        return parallelize(self, *args, **kw)

    monkeypatch.setattr(SparkContext, "parallelize", tasks)
    if pass_2 == "tasks":
        monkeypatch.setattr(engine_spark, "DRIVER_COPY", 0)

    def no_job(seeds: list[str]) -> Any:
        raise AssertionError("pass 1a ran as a Spark job")

    driver = []
    hold_local = spark_gate.hold_local

    def counted(*args: Any) -> spark_gate.Local:
        driver.append(args[1])
        return hold_local(*args)

    steps: list[str] = []  # the Spark work after pass 1a, in order
    for mod, name in (
        (spark_merge, "settle"),
        (engine_spark, "spark_facts"),
        (engine_spark, "merge"),
        (engine_spark, "merge_local"),
    ):
        monkeypatch.setattr(mod, name, _noted(steps, name, getattr(mod, name)))
    monkeypatch.setattr(
        spark_gate.SparkGate, "_round", _noted(steps, "round", spark_gate.SparkGate._round)
    )
    monkeypatch.setattr(spark_gate, "hold_arrow", no_job)
    monkeypatch.setattr("keytrail.scope.engine_spark.hold_local", counted)
    inv = [SAMPLE / "inventory.toml"]
    got = scope_spark(tmp_path / "s", [SAMPLE], [TOKEN], inventory=inv).manifest
    assert len(driver) == 1 and len(driver[0]) > 1
    _same(whole, got)
    assert bool(made) == (pass_2 == "tasks")
    # round 0's facts are DuckDB's, over the driver's rows, and so are a round's merge and
    # facts: the rounds' jobs are Spark's only work before the selection
    assert steps[0] == "round" and set(steps) == {"round", "merge_local"}
    assert 0 < steps.count("merge_local") <= steps.count("round")


def _noted(steps: list[str], name: str, f: Any) -> Any:
    def noted(*args: Any, **kw: Any) -> Any:
        steps.append(name)
        return f(*args, **kw)

    return noted


def test_spark_equals_duckdb_within_a_window(
    spark: Any, tmp_path: Path, whole: dict[str, Any]
) -> None:
    """The window's bounds (UTC, tz-aware) meet the events' times without a time-zone shift."""
    from datetime import UTC, datetime

    inv = [SAMPLE / "inventory.toml"]
    window = {
        "since": datetime(2026, 3, 4, 14, 30, tzinfo=UTC),
        "until": datetime(2026, 3, 4, 15, 10, tzinfo=UTC),
    }
    oracle = scope_duckdb(tmp_path / "d", [SAMPLE], [TOKEN], inventory=inv, **window).manifest
    got = scope_spark(tmp_path / "s", [SAMPLE], [TOKEN], inventory=inv, **window).manifest
    kept = sum(c["events_out"] for c in oracle["counts"].values())
    assert 0 < kept < sum(c["events_out"] for c in whole["counts"].values())
    _same(oracle, got)


def test_spark_equals_duckdb_on_scale_data(spark: Any, tmp_path: Path) -> None:
    data = tmp_path / "scale"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gen_scale.py"),
            "--out",
            str(data),
            "--events",
            "3000",
        ],
        check=True,
        capture_output=True,
    )
    seed = _busiest_issued_key(data)
    oracle = scope_duckdb(tmp_path / "d", [data], [seed]).manifest
    got = scope_spark(tmp_path / "s", [data], [seed]).manifest
    assert oracle["outputs"]
    _same(oracle, got)


def _busiest_issued_key(data: Path) -> str:
    """A credential with an issuing event in the generated trail (so the closure has lineage)."""
    from keytrail.ingest.runner import ingest
    from keytrail.store.case import CaseStore

    case = data.parent / "probe.duckdb"
    ingest(case, [data], graph=False)
    with CaseStore.open(case) as store:
        row = store.con.execute(
            """SELECT i.credential_id FROM credential_issues i
               JOIN events e ON e.credential_id = i.credential_id
               GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"""
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("pass_1a", ["driver", "tasks"])
def test_vault_pairs_and_duplicates_across_tasks(
    one_file_per_task: Any,
    tmp_path: Path,
    whole: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    pass_1a: str,
) -> None:
    """Every Vault request in one file, every response in another, one CloudTrail file delivered
    twice (once as plain JSON: other bytes, the same events) and once more byte for byte: the
    tasks that read them cannot pair or de-duplicate them alone, the engine must (as the ingest
    does), and keep what the unsplit trail keeps. ``driver``: a local master's pass 1a, one
    scratch case on the driver (the ingest pairs); ``tasks``: a cluster's (the merge pairs)."""
    if pass_1a == "tasks":
        from keytrail.scope import spark_gate

        monkeypatch.setattr(spark_gate, "in_place", lambda session, paths: False)
    trail = tmp_path / "trail"
    shutil.copytree(SAMPLE / "AWSLogs", trail / "AWSLogs")
    shutil.copytree(SAMPLE / "agents", trail / "agents")
    lines = (SAMPLE / "vault" / "vault_audit.log").read_text().splitlines(keepends=True)
    (trail / "vault").mkdir()
    for kind in ("request", "response"):
        text = "".join(x for x in lines if f'"type":"{kind}"' in x)
        (trail / "vault" / f"{kind}s.log").write_text(text)
    dup = min((trail / "AWSLogs").rglob("*.json.gz"))
    (trail / "AWSLogs" / "zz-redelivered.json").write_bytes(gzip.decompress(dup.read_bytes()))
    shutil.copy(dup, trail / "AWSLogs" / "zz-same-bytes.json.gz")
    inv = [SAMPLE / "inventory.toml"]
    oracle = scope_duckdb(tmp_path / "d", [trail], [TOKEN], inventory=inv).manifest
    got = scope_spark(tmp_path / "s", [trail], [TOKEN], inventory=inv).manifest
    _same(oracle, got)
    assert "already-ingested" in {i["status"] for i in got["inputs"]}
    # kept: the unsplit trail's events, each once; in: records before de-duplication, so the
    # redelivered file's records count again (the byte-equal copy is never read)
    assert {s: c["events_out"] for s, c in got["counts"].items()} == {
        s: c["events_out"] for s, c in whole["counts"].items()
    }
    (again,) = [i["records"] for i in got["inputs"] if i["path"].endswith("zz-redelivered.json")]
    assert again > 0 and got["counts"]["cloudtrail"]["events_in"] == (
        whole["counts"]["cloudtrail"]["events_in"] + again
    )
    assert got["counts"]["vault"] == whole["counts"]["vault"]
    assert {c["credential_id"] for c in got["closure"]} == {
        c["credential_id"] for c in whole["closure"]
    }
    assert {o["input"].rsplit("/", 1)[1] for o in got["outputs"] if o["source"] == "vault"} == {
        "requests.log",
        "responses.log",
    }


@pytest.mark.parametrize("which", ["sample", "sessions", "sample-tasks"])
def test_spark_equals_duckdb_for_a_human(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """A human seed: the classifier's person sessions (console, Identity Center, SAML) decided
    on the driver from the same rows as the DuckDB engine's (``sample-tasks``: a cluster's
    path, the rows on Spark; else the local driver's, the rows in the driver's DuckDB)."""
    from tests.unit.test_scope_person import _trail

    if which == "sample-tasks":
        from keytrail.scope import spark_gate

        monkeypatch.setattr(spark_gate, "in_place", lambda session, paths: False)
    if which.startswith("sample"):
        paths, seeds, inv = [SAMPLE], [HUMAN], [SAMPLE / "inventory.toml"]
    else:
        paths = [_trail(tmp_path)]
        seeds, inv = ["JaneDoe", "sam.adams@example.com", "pat@example.com"], []
    oracle = scope_duckdb(tmp_path / "d", paths, seeds, inventory=inv).manifest
    got = scope_spark(tmp_path / "s", paths, seeds, inventory=inv).manifest
    _same(oracle, got)
    assert got["seeds"] == oracle["seeds"] and all(s["credentials"] for s in got["seeds"])
    assert [(c["credential_id"], c["why"]) for c in got["closure"]] == [
        (c["credential_id"], c["why"]) for c in oracle["closure"]
    ]


def _hostile(tmp: Path) -> Path:
    """The gate's hostile trails (tests/unit/test_scope_gate.py) in one: a chain over rounds, a
    use of an ancestor behind a ``\\u`` escape, the same issuance in a file that sorts first
    (opened in a later round than its copy), two documents in one file and a truncated gzip."""
    from tests.unit.test_scope_gate import MID, OTHER, ROOT, _assume, _chain_trail, _rec, _write

    trail = _chain_trail(tmp)
    text = json.dumps({"Records": [_rec(50, OTHER), _rec(51, ROOT, "DeleteObject")]})
    text = text.replace(f'"accessKeyId": "{ROOT}"', f'"accessKeyId": "\\u0041{ROOT[1:]}"')
    _write(trail, "h-root-escaped", [], text)
    _write(trail, "0-copy", [_rec(30, OTHER), _assume(5, MID, "ASIALEAF000000000001", "leaf")])
    two = json.dumps({"Records": [_rec(40, OTHER)]}) + json.dumps({"Records": [_rec(41, OTHER)]})
    _write(trail, "f-two-docs", [], two)
    cut = _write(trail, "g-cut", [_rec(42, OTHER), _rec(43, OTHER)])
    cut.write_bytes(cut.read_bytes()[:-20])
    return trail


def _equal(tmp: Path, a: str, b: str) -> None:
    """Two scope folders under ``tmp``: the same manifest (but for when and which engine) and
    the same bytes in every output file."""
    docs = [json.loads((tmp / x / "manifest.json").read_text()) for x in (a, b)]
    drop = {"created_at", "engine", "spark"}
    for d in docs:
        d["gate"] = _gate(d)
    assert [{k: v for k, v in d.items() if k not in drop} for d in docs] == [
        {k: v for k, v in docs[0].items() if k not in drop}
    ] * 2
    assert docs[0]["outputs"]
    for o in docs[0]["outputs"]:
        assert (tmp / a / o["path"]).read_bytes() == (tmp / b / o["path"]).read_bytes()


def test_the_gate_on_hostile_trails(one_file_per_task: Any, tmp_path: Path) -> None:
    """Each task holds one file (the fixture), so what a round learns of a file (its count, its
    escapes, the needles already searched) crosses tasks on the driver: the Spark cut equals
    the DuckDB engine's gated cut, manifest (counts, ``rejected: null``, ``gate``) and bytes."""
    from tests.unit.test_scope_gate import MID, ROOT

    trail = _hostile(tmp_path)
    oracle = scope_duckdb(tmp_path / "d", [trail], [MID]).manifest
    got = scope_spark(tmp_path / "s", [trail], [MID]).manifest
    _equal(tmp_path, "d", "s")
    gate = got["gate"]
    assert gate["fallback"] is None and gate["rounds"] >= 2
    assert 0 < gate["files_opened"] < gate["files_gated"] == oracle["gate"]["files_gated"]
    assert ROOT in {c["credential_id"] for c in got["closure"]}
    assert {"h-root-escaped.json.gz", "0-copy.json.gz"} <= {
        o["input"].rsplit("/", 1)[1] for o in got["outputs"]
    }
    rows = {Path(i["path"]).name: i for i in got["inputs"]}
    assert rows["f-two-docs.json.gz"]["rejected"] is not None
    assert rows["e-other-0.json.gz"]["rejected"] is None and rows["e-other-0.json.gz"]["records"]


def test_spark_without_the_gate(spark: Any, tmp_path: Path) -> None:
    """``gate=False``: every file parsed in pass 1, as the DuckDB engine's ``gate=False``."""
    from tests.unit.test_scope_gate import MID

    trail = _hostile(tmp_path)
    scope_duckdb(tmp_path / "d", [trail], [MID], gate=False)
    got = scope_spark(tmp_path / "s", [trail], [MID], gate=False).manifest
    _equal(tmp_path, "d", "s")
    assert "gate" not in got and all(i["rejected"] is not None for i in got["inputs"])


def test_a_seed_that_matches_nothing_on_spark(spark: Any, tmp_path: Path) -> None:
    """No file holds the seed: the gate falls back to every file, and the closest ids come from
    them (as the DuckDB engine's)."""
    from keytrail.errors import NotFoundError
    from tests.unit.test_scope_gate import LEAF, _chain_trail

    with pytest.raises(NotFoundError) as err:
        scope_spark(tmp_path / "s", [_chain_trail(tmp_path)], ["ASIALEAF000000000002"])
    assert LEAF in str(err.value.suggestions)


def _ddl(cols: tuple[str, ...]) -> str:
    return ", ".join(
        f"{c} {'timestamp_ntz' if c == 'time' else 'bigint' if c in LONG else 'string'}"
        for c in cols
    )


def test_a_round_merged_into_the_merged_rows(spark: Any) -> None:
    """A gate round's rows merged into the rows already merged (``base``: the Vault pairing is
    not run again) equal every row merged at once: a copy the round loads from a file earlier in
    load order replaces the one kept before, a copy from a later file does not, the Vault pairs
    found in the first merge stand (one of them split across two files). The driver's DuckDB
    form (``merge_local``, a local master's) keeps the same rows as Spark's."""
    from datetime import datetime

    from keytrail.scope.spark_arrow import to_arrow
    from keytrail.scope.spark_merge import merge, merge_local
    from keytrail.scope.spark_tasks import EVENT_COLS, WHERE_COLS

    cols = (*EVENT_COLS, *WHERE_COLS)
    ddl = _ddl(cols)
    t = datetime(2026, 3, 1, 12, 0)

    def row(uid: str, source: str, path: str, n: int, entry: str | None = None) -> tuple[Any, ...]:
        given = {"event_uid": uid, "source": source, "time": t, "path": path, "record_no": n}
        given |= {"entry": entry, "byte_offset": 10 * n, "format": "f", "credential_id": uid}
        return tuple(given.get(c) for c in cols)

    files = ["/a.json.gz", "/b.json.gz", "/v.log", "/c.json.gz", "/w.log"]
    first = [  # pass 1: Vault requests and responses (in one file, in two), CloudTrail copies
        row("vault:1", "vault", "/v.log", 1, "request"),
        row("vault:1", "vault", "/v.log", 2, "response"),
        row("vault:2", "vault", "/v.log", 3, "request"),
        row("vault:2", "vault", "/w.log", 1, "response"),
        row("ct:early", "cloudtrail", "/b.json.gz", 3),
        row("ct:late", "cloudtrail", "/b.json.gz", 4),
        row("ct:twice", "cloudtrail", "/c.json.gz", 1),
        row("ct:twice", "cloudtrail", "/c.json.gz", 1),
    ]
    later = [  # a round opens a (before b) and c again (after b)
        row("ct:early", "cloudtrail", "/a.json.gz", 9),
        row("ct:late", "cloudtrail", "/c.json.gz", 2),
        row("ct:new", "cloudtrail", "/a.json.gz", 5),
        row("ct:new", "cloudtrail", "/x.json.gz", 1),  # a file outside the load order: last
        row("ct:twice", "cloudtrail", "/x.json.gz", 7),
    ]
    a, b = spark.createDataFrame(first, ddl), spark.createDataFrame(later, ddl)
    at_once = merge(a.unionByName(b), files)
    in_two = merge(b, files, base=merge(a, files))

    def rows(frame: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in frame.select(*cols).collect())

    got = rows(in_two)
    assert got == rows(at_once)
    local = merge_local(to_arrow(b.select(*cols)), files, to_arrow(merge(a, files).select(*cols)))
    assert sorted(tuple(r.values()) for r in local.to_pylist()) == got
    kept = {(r[0], r[cols.index("path")], r[cols.index("entry")]) for r in got}
    assert kept == {
        ("vault:1", "/v.log", "pair"),
        ("vault:2", "/w.log", "pair"),
        ("ct:early", "/a.json.gz", None),
        ("ct:late", "/b.json.gz", None),
        ("ct:twice", "/c.json.gz", None),
        ("ct:new", "/a.json.gz", None),
    }
    assert len(got) == len(kept)


def _crafted_events() -> Any:
    """Event rows (:data:`EVENT_COLS`) where the facts' orders and groups can go wrong: untimed
    events beside timed ones, equal times, Vault-made names by name or by principal, a Vault name
    outside CloudTrail, a name's first that is also an issuing event, groups with null keys, a
    seed principal with no key, a group of untimed events only."""
    from datetime import datetime

    import pyarrow as pa

    from keytrail.scope.spark_tasks import EVENT_COLS

    def t(minute: int | None) -> datetime | None:
        return None if minute is None else datetime(2026, 3, 1, 12, minute)

    rows = []
    specs: list[tuple[str, str, int | None, dict[str, str | None]]] = [
        ("ct:1", "cloudtrail", 5, {"credential_id": "K1", "actor_name": "vault-app-1"}),
        ("ct:2", "cloudtrail", None, {"credential_id": "K1", "actor_name": "vault-app-1"}),
        ("ct:3", "cloudtrail", 9, {"credential_id": "K1", "actor_name": "vault-app-1"}),
        ("ct:4", "cloudtrail", 9, {"credential_id": "K1", "actor_name": "vault-app-1"}),
        ("ct:5", "cloudtrail", 7, {"credential_id": "K1", "actor_name": "vault-app-1"}),
        ("ct:6", "cloudtrail", 3, {"actor_uid": "arn:aws:sts::1:assumed-role/r/vault-x-2"}),
        ("ct:7", "cloudtrail", 3, {"actor_uid": "arn:aws:sts::1:assumed-role/r/vault-x-2"}),
        ("ct:8", "cloudtrail", 1, {"credential_id": "K2", "actor_name": "vault-b"}),
        ("ct:9", "cloudtrail", 2, {"credential_id": "K2", "actor_name": "vault-b"}),
        ("ct:10", "cloudtrail", 4, {"credential_id": "K2", "actor_name": "vault-b"}),
        ("ag:1", "agent", 1, {"actor_name": "vault-agent", "agent_id": "a1"}),
        ("ag:2", "agent", None, {"agent_id": "a1"}),
        ("ag:3", "agent", None, {"agent_id": "a2"}),
        ("ag:4", "agent", None, {"agent_id": "a2"}),
        ("vault:1", "vault", 8, {"credential_id": "K3", "human_id": "h1"}),
        ("vault:2", "vault", 6, {"credential_id": "K3", "human_id": "h1"}),
        ("ct:11", "cloudtrail", 2, {"actor_uid": "arn:aws:iam::1:user/seed"}),
        ("ct:12", "cloudtrail", 2, {"actor_uid": "arn:aws:iam::1:user/other"}),
        ("ct:13", "cloudtrail", 2, {"credential_id": "K4", "action": "sts:AssumeRole"}),
    ]
    for uid, source, minute, cols in specs:
        given = {"event_uid": uid, "source": source, "time": t(minute)} | cols
        rows.append({c: given.get(c) for c in EVENT_COLS})
    schema = pa.schema(
        [(c, pa.timestamp("us") if c == "time" else pa.string()) for c in EVENT_COLS]
    )
    return pa.Table.from_pylist(rows, schema)


def test_the_driver_s_facts_are_spark_s(spark: Any, tmp_path: Path) -> None:
    """What the driver's case needs of the events (``facts_sql``) comes out the same of DuckDB
    (round 0 of a local master's pass 1a, ``hold_local``) and of Spark (a round's merged rows),
    on crafted rows and on the sample's pass 1a."""
    import pickle

    import pyarrow.parquet as pq

    from keytrail.scope.facts import duckdb_facts, spark_facts
    from keytrail.scope.spark_gate import hold_local
    from keytrail.scope.spark_tasks import EVENT_COLS

    def rows(table: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r.values()) for r in table.to_pylist())

    events = _crafted_events()
    pq.write_table(events, tmp_path / "crafted.parquet")
    ddl = ", ".join(f"{c} {'timestamp_ntz' if c == 'time' else 'string'}" for c in EVENT_COLS)
    frame = spark.read.schema(ddl).parquet(str(tmp_path / "crafted.parquet"))
    issues = [(None, None, None, "ct:1"), (None, None, None, "ag:2")]
    seeds = ["arn:aws:iam::1:user/seed"]
    got = duckdb_facts(events, issues, seeds)
    assert rows(got) == rows(spark_facts(frame, issues, seeds))
    uids = [str(u) for u in got.column("event_uid").to_pylist()]
    # the names' first (untimed first) and last (equal times: the larger id), issues once
    assert sorted(u for u in uids if not u.startswith(SUMMARY)) == sorted(
        ["ct:1", "ct:2", "ct:4", "ct:6", "ct:7", "ct:8", "ct:10", "ag:2"]
    )
    # a group's first event: a timed one before any untimed, then the smaller id
    assert sorted(u.removeprefix(SUMMARY) for u in uids if u.startswith(SUMMARY)) == sorted(
        ["ct:1", "ct:8", "ag:1", "ag:3", "vault:2", "ct:11", "ct:13"]
    )

    inv = SAMPLE / "inventory.toml"
    files = [str(p) for p in sorted(SAMPLE.rglob("*")) if p.is_file() and p != inv]
    local = hold_local(tmp_path / "pass1", files, [TOKEN])
    issues = [pickle.loads(p) for k, p in local.small if k == "issue"]
    assert issues and local.facts.num_rows
    pq.write_table(local.events, tmp_path / "pass1a.parquet")
    frame = spark.read.schema(_ddl(tuple(local.events.column_names)))
    spark_got = spark_facts(frame.parquet(str(tmp_path / "pass1a.parquet")), issues, [TOKEN])
    assert rows(local.facts) == rows(spark_got) and local.facts.schema == spark_got.schema


def test_the_driver_s_merge_is_spark_s_on_the_sample(spark: Any, tmp_path: Path) -> None:
    """``merge_local`` (DuckDB) and ``merge`` (Spark) of a round into the sample's pass 1a rows
    (``hold_local``: Vault pairs and agent events; its CloudTrail files held): a round that
    brings copies of every third event from a file earlier in load order, of every third from a
    later one, and new events, keeps the same rows of both."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from keytrail.scope.spark_gate import hold_local
    from keytrail.scope.spark_merge import merge, merge_local

    inv = SAMPLE / "inventory.toml"
    files = [str(p) for p in sorted(SAMPLE.rglob("*")) if p.is_file() and p != inv]
    base = hold_local(tmp_path / "pass1", files, [TOKEN]).events
    ct = base.filter(pc.is_valid(base["event_uid"]))
    assert {"vault", "agent"} <= set(ct["source"].to_pylist())
    paths = [
        ("/0-early.json.gz", "/zz-late.json.gz", "/zz-late.json.gz")[i % 3]
        for i in range(ct.num_rows)
    ]
    uids = [u if i % 3 != 2 else f"{u}:new" for i, u in enumerate(ct["event_uid"].to_pylist())]
    rnd = ct.set_column(ct.column_names.index("path"), "path", pa.array(paths, pa.string()))
    rnd = rnd.set_column(0, "event_uid", pa.array(uids, pa.string()))
    order = ["/0-early.json.gz", *files, "/zz-late.json.gz"]

    def frame(table: Any, name: str) -> Any:
        pq.write_table(table, tmp_path / name)
        return spark.read.schema(_ddl(tuple(table.column_names))).parquet(str(tmp_path / name))

    want = merge(frame(rnd, "round.parquet"), order, base=frame(base, "base.parquet"))
    got = merge_local(rnd, order, base)
    cols = base.column_names
    assert sorted(tuple(r) for r in want.select(*cols).collect()) == sorted(
        tuple(r.values()) for r in got.to_pylist()
    )
    assert got.num_rows == base.num_rows + ct.num_rows // 3 and got.schema == base.schema
    early = pc.sum(pc.equal(got["path"], "/0-early.json.gz")).as_py()
    assert early == len(range(0, ct.num_rows, 3)) > 0
