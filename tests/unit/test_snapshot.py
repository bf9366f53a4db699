"""The analysis snapshot: stored ranking and findings equal the live answers, are read when
current, and are never served after the case or the configuration changed."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.analysis import snapshot
from keytrail.analysis.answers import blast_radius, level_counts, rank_credentials, run_findings
from keytrail.analysis.findings import count_levels
from keytrail.analysis.findings import run as findings_run
from keytrail.analysis.findings.context import Context
from keytrail.analysis.findings.run import live_findings
from keytrail.analysis.ranking import live_rank_rows
from keytrail.analysis.ranking import to_rank as _to_rank
from keytrail.cli.main import main
from keytrail.config import load_config
from keytrail.store.case import CaseStore

INCIDENT = Path(__file__).resolve().parents[2] / "sample_data" / "incident"


def _ingest(case: Path, *extra: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(
                [
                    "ingest",
                    str(case),
                    str(INCIDENT / "AWSLogs"),
                    str(INCIDENT / "vault"),
                    "--inventory",
                    str(INCIDENT / "inventory.toml"),
                    "-q",
                    "--json",
                    *extra,
                ]
            )
            == 0
        )
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The sample ingested by the CLI (with its snapshot) and the ingest's JSON. Read-only: a
    test that writes to the case works on a copy (the sample was ingested again by each)."""
    if not INCIDENT.is_dir():
        pytest.skip("sample incident not present")
    path = tmp_path_factory.mktemp("snap") / "case.duckdb"
    return path, _ingest(path)


@pytest.fixture(scope="module")
def case(ingested: tuple[Path, dict[str, Any]]) -> Path:
    path, doc = ingested
    assert doc["snapshot"]["credentials"] > 10 and doc["snapshot"]["findings"] > 5
    return path


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The sample ingested with ``--no-snapshot`` and the ingest's JSON; read-only, as above."""
    if not INCIDENT.is_dir():
        pytest.skip("sample incident not present")
    path = tmp_path_factory.mktemp("bare") / "case.duckdb"
    return path, _ingest(path, "--no-snapshot")


def _copy(case: Path, tmp: Path) -> Path:
    path = tmp / "case.duckdb"
    shutil.copyfile(case, path)
    return path


def _live_ranking(store: CaseStore) -> list[dict[str, Any]]:
    rows = live_rank_rows(store)
    ranks = sorted((_to_rank(r) for r in rows), key=lambda r: (-r.score, -r.events, r.credential))
    return [r.as_dict() for r in ranks]


def test_stored_answers_equal_live_ones(case: Path) -> None:
    with CaseStore.open(case) as store:
        assert snapshot.rank_rows(store) is not None
        assert [r.as_dict() for r in rank_credentials(store)] == _live_ranking(store)
        assert [r.as_dict() for r in rank_credentials(store, limit=3)] == _live_ranking(store)[:3]
        cfg = load_config(None)
        stored = snapshot.findings(store, cfg)
        assert stored is not None
        live = live_findings(store, cfg)
        assert [f.as_dict() for f in stored] == [f.as_dict() for f in live]
        assert level_counts(store) == count_levels(live)
        top = rank_credentials(store, limit=1)[0]
        assert blast_radius(store, top.credential).score == top.score


def _hay(r: dict[str, Any]) -> str:
    """The fields a ranking filter searches (id, kind, holder, origin, principal, agents,
    humans), the non-empty ones joined by a space, lists by ", "; lower-cased."""
    fields = [r["credential"], r["kind"], r["holder"], r["origin"], r["principal"]]
    fields += [", ".join(r["agents"]), ", ".join(r["humans"])]
    return " ".join(f for f in fields if f).lower()


def test_ranking_pages_are_the_ranking_and_filter_by_the_searched_fields(
    case: Path, bare: tuple[Path, dict[str, Any]]
) -> None:
    """``rank_page`` (what the explorer's list reads) gives the ranking page by page, and with
    ``contains`` exactly the rows whose searched fields hold it, any case, ``%``, ``_`` and
    quotes taken literally; without a current snapshot it answers ``None``."""
    from keytrail.analysis.answers import rank_page

    with CaseStore.open(case) as store:
        whole = [r.as_dict() for r in rank_credentials(store)]
        got = []
        for offset in range(0, len(whole) + 7, 7):
            page = rank_page(store, offset=offset, limit=7)
            assert page is not None and page[1] == len(whole)
            got += [r.as_dict() for r in page[0]]
        assert got == whole
        needles = ["ASIA", "akia", "maria", "agent", "_", "%", "'", "arn:aws:sts", "workload"]
        useful = 0
        for needle in needles:
            kept = [r for r in whole if needle.lower() in _hay(r)]
            page = rank_page(store, offset=0, limit=len(whole), contains=needle)
            assert page is not None
            assert [r.as_dict() for r in page[0]] == kept and page[1] == len(kept), needle
            useful += 0 < len(kept) < len(whole)
        assert useful >= 3  # the needles split the ranking, not all-or-nothing
    with CaseStore.open(bare[0]) as store:
        assert rank_page(store, offset=0, limit=5) is None


def test_beside_gives_the_same_findings(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The families on two cursors at once (what the snapshot does: the two costliest start
    together, one on each, and each waits at a barrier until the other has started, so the run
    cannot pass on one cursor) find what one cursor running every family in order finds, in the
    same order; the shared database they need is gone afterwards."""
    threads: dict[str, str] = {}
    together = threading.Barrier(2, timeout=60)
    first = findings_run.COSTLY_FIRST[:2]

    def spy(name: str, run: Callable[[Context], None]) -> Callable[[Context], None]:
        def wrapped(ctx: Context) -> None:
            if name in first and name not in threads:
                threads[name] = threading.current_thread().name
                together.wait()
            run(ctx)

        return wrapped

    families = [(f, spy(f, r)) for f, r in findings_run.RULE_FAMILIES]
    monkeypatch.setattr(findings_run, "RULE_FAMILIES", families)
    cfg = load_config(None)
    with CaseStore.open(case, read_only=False) as store:
        beside = [f.as_dict() for f in live_findings(store, cfg, beside=True)]
        attached = store.con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        in_order = [f.as_dict() for f in live_findings(store, cfg)]
    assert beside == in_order
    assert {"scope-drift", "environment-crossing"} <= {f["rule"] for f in beside}
    assert len({f["rule"] for f in beside}) > 5
    assert ("_kt_shared",) not in attached
    ran_on = sorted(threads.values())
    assert ran_on[0] == threading.main_thread().name and ran_on[1].startswith("kt-findings")


def test_two_cursors_take_the_costly_families_first() -> None:
    """One cursor runs the catalog's order (the raw-pass families last while the cache is being
    filled); two take them costliest first, every family in :data:`COSTLY_FIRST`'s order (the
    cheapest last, so neither cursor is left with a costly one while the other has ended), and
    the raw-pass families last, as one unit."""
    enabled = [(i, f, lambda ctx: None) for i, (f, _) in enumerate(findings_run.RULE_FAMILIES)]

    def names(units: list[list[tuple[int, str, object]]]) -> list[list[str]]:
        return [[f for _, f, _ in u] for u in units]

    one = names(findings_run._units(enabled, beside=False, raw_last=False))
    assert one == [[f] for f, _ in findings_run.RULE_FAMILIES]
    late = names(findings_run._units(enabled, beside=False, raw_last=True))
    assert late[-2:] == [["human_use"], ["sigma"]] and len(late) == len(one)
    two = names(findings_run._units(enabled, beside=True, raw_last=False))
    assert list(dict.fromkeys(u[0] for u in two[:-1])) == list(findings_run.COSTLY_FIRST)
    assert two[-2] == ["reconnaissance"]
    assert two[-1] == ["human_use", "sigma"] and sum(map(len, two)) == len(one)


def _tamper(case: Path, sql: str) -> None:
    con = duckdb.connect(str(case))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_snapshot_is_read_while_current_and_ignored_once_stale(case: Path, tmp_path: Path) -> None:
    path = _copy(case, tmp_path)
    with CaseStore.open(path) as store:
        victim = rank_credentials(store)[-1].credential
        true_events = rank_credentials(store)[-1].events
    # A marked row proves the ranking comes from the table...
    _tamper(
        path, f"UPDATE rank_cache SET events = 987654, score = 1e9 WHERE credential_id = '{victim}'"
    )
    with CaseStore.open(path) as store:
        first = rank_credentials(store, limit=1)[0]
        assert (first.credential, first.events) == (victim, 987654)
    # ...and a fingerprint from other analysis code sends readers back to the live answer.
    _tamper(path, "UPDATE case_meta SET value = 'other-code' WHERE key = 'snapshot.rank'")
    with CaseStore.open(path) as store:
        again = {r.credential: r.events for r in rank_credentials(store)}
        assert again[victim] == true_events


def test_findings_snapshot_only_serves_its_own_configuration(case: Path, tmp_path: Path) -> None:
    toml = tmp_path / "strict.toml"
    toml.write_text("[long_lived]\nenabled = false\n", encoding="utf-8")
    with CaseStore.open(case) as store:
        default = run_findings(store)
        long_lived = {
            "long-term-key-used-by-agent",
            "vault-token-long-ttl",
            "credential-active-too-long",
        }
        assert any(f.rule in long_lived for f in default)
        custom = load_config(toml)
        assert snapshot.findings(store, custom) is None
        assert not any(f.rule in long_lived for f in run_findings(store, config=custom))


def test_a_new_ingest_invalidates_and_rebuilds_it(
    bare: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from keytrail.ingest.runner import ingest

    path, doc = _copy(bare[0], tmp_path), bare[1]
    assert doc["snapshot"] is None
    with CaseStore.open(path) as store:
        assert store.meta(snapshot.RANK_KEY) is None
        assert snapshot.rank_rows(store) is None and rank_credentials(store)
    assert snapshot.refresh_case(path) is not None
    with CaseStore.open(path) as store:
        before = {r.credential for r in rank_credentials(store)}
    # The engine-level ingest (no CLI) finalizes, which drops the now stale snapshot.
    ingest(path, [str(INCIDENT / "agents")])
    with CaseStore.open(path) as store:
        assert store.meta(snapshot.RANK_KEY) is None and store.meta(snapshot.FINDINGS_KEY) is None
        after = {r.credential for r in rank_credentials(store)}
    assert before <= after


def test_info_reports_the_snapshot_and_the_snapshot_command_restores_it(
    bare: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path = _copy(bare[0], tmp_path)

    def info() -> tuple[str, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["info", str(path), "--json"]) == 0
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(["info", str(path)]) == 0
        return json.loads(out.getvalue())["snapshot"], text.getvalue()

    state, text = info()
    assert state == "none" and f"keytrail snapshot {path}" in text
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["snapshot", str(path)]) == 0
    assert info()[0] == "current"
    _tamper(path, "UPDATE case_meta SET value = 'older-keytrail' WHERE key = 'snapshot.findings'")
    state, text = info()
    assert state == "stale" and "refresh: keytrail snapshot" in text


def test_an_ingest_that_adds_nothing_keeps_the_current_snapshot(
    ingested: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Re-ingesting files already in the case keeps the stored rows (no whole-case recompute);
    an ingest that adds a file, or only a changed inventory, recomputes it."""
    path, first = _copy(ingested[0], tmp_path), ingested[1]
    assert first["snapshot"]["kept"] is False

    def stored() -> tuple[list[Any], list[Any], str | None]:
        with CaseStore.open(path) as store:
            ranks = store.con.execute("SELECT * FROM rank_cache ORDER BY ALL").fetchall()
            found = store.con.execute("SELECT * FROM finding_cache ORDER BY ALL").fetchall()
            return ranks, found, store.meta(snapshot.FINDINGS_KEY)

    before = stored()
    again = _ingest(path)
    assert set(again["files_by_status"]) == {"already-ingested"} and again["records"] == 0
    assert again["snapshot"]["kept"] is True
    assert again["snapshot"]["credentials"] == first["snapshot"]["credentials"]
    assert again["snapshot"]["findings"] == first["snapshot"]["findings"]
    assert stored() == before
    more = io.StringIO()
    with contextlib.redirect_stdout(more), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ingest", str(path), str(INCIDENT / "agents"), "-q", "--json"]) == 0
    assert json.loads(more.getvalue())["snapshot"]["kept"] is False
    with CaseStore.open(path) as store:
        assert snapshot.status(store) == "current"
        assert [r.as_dict() for r in rank_credentials(store)] == _live_ranking(store)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        (INCIDENT / "inventory.toml").read_text(encoding="utf-8")
        + '\n[[agents]]\nid = "agt-extra-9"\nname = "extra-agent"\nowner = "team-x"\n',
        encoding="utf-8",
    )
    inv_only = io.StringIO()
    with contextlib.redirect_stdout(inv_only), contextlib.redirect_stderr(io.StringIO()):
        argv = ["ingest", str(path), str(INCIDENT / "agents"), "--inventory", str(inventory)]
        assert main([*argv, "-q", "--json"]) == 0
    assert json.loads(inv_only.getvalue())["snapshot"]["kept"] is False


def test_the_raw_pass_families_go_first_once_the_cache_is_filled() -> None:
    """Beside a cache still filling, a free cursor takes the other families; once it is filled
    (a later snapshot's cache is current at once), the raw-pass families are taken next."""
    filled = threading.Event()
    raw: list[tuple[int, str, Callable[[Context], None]]] = [(4, "human_use", print)]
    units = [
        findings_run._Waiting(raw, filled.is_set),
        [(9, "scope_drift", print)],
        [(7, "environment_crossing", print)],
    ]
    assert findings_run._take(units) == [(9, "scope_drift", print)]
    filled.set()
    assert findings_run._take(units) == raw
    assert findings_run._take(units) == [(7, "environment_crossing", print)]
    assert findings_run._take(units) is None
    alone = [findings_run._Waiting(raw, lambda: False)]
    assert findings_run._take(alone) == raw  # the last unit: taken (its families then wait)


def test_the_snapshot_halves_duckdbs_threads_and_restores_them(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queries side by side run with half the threads each (snapshot._fewer_threads); the
    setting is the caller's again afterwards, and the stored rows are what they were."""
    import shutil

    seen: list[int] = []
    real = snapshot.live_findings

    def spy(store: CaseStore, *args: Any, **kwargs: Any) -> Any:
        seen.append(store.scalar("SELECT current_setting('threads')"))
        return real(store, *args, **kwargs)

    monkeypatch.setattr(snapshot, "live_findings", spy)
    copy = tmp_path / "again.duckdb"
    shutil.copy(case, copy)
    tables = "SELECT * FROM rank_cache ORDER BY credential_id"
    with CaseStore.open(copy, read_only=False) as store:
        before = store.con.execute(tables).fetchall()
        findings_before = store.con.execute("SELECT * FROM finding_cache ORDER BY ord").fetchall()
        store.con.execute("SET threads = 4")
        snapshot.refresh(store)
        assert store.scalar("SELECT current_setting('threads')") == 4
        assert store.con.execute(tables).fetchall() == before
        assert store.con.execute("SELECT * FROM finding_cache ORDER BY ord").fetchall() == (
            findings_before
        )
    assert seen == [2]


def test_the_cycle_collector_is_off_during_the_refresh_only(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh runs with Python's cycle collector off (snapshot._no_cycle_collector) and
    leaves it as it found it: on again when it was on, off when the caller had it off."""
    import gc
    import shutil

    seen: list[bool] = []
    real = snapshot.live_findings

    def spy(store: CaseStore, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(store, *args, **kwargs)

    monkeypatch.setattr(snapshot, "live_findings", spy)
    copy = tmp_path / "gc.duckdb"
    shutil.copy(case, copy)
    was = gc.isenabled()
    try:
        for caller in (True, False):
            (gc.enable if caller else gc.disable)()
            with CaseStore.open(copy, read_only=False) as store:
                snapshot.refresh(store)
            assert gc.isenabled() is caller
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False]


def test_the_column_scores_are_every_rows_score() -> None:
    """The snapshot's scores from the ranking table a column at a time (reach_points spreads
    each distinct value's points over the rows through Arrow, then findings_scores) are
    ``row_score`` of every row: NULL counts, DECIMAL sums, repeated values, expiries and kinds."""
    from datetime import UTC, datetime
    from decimal import Decimal

    import pyarrow as pa

    from keytrail.analysis.rank_score import _DIRECT, findings_scores, reach_points, row_score

    n = 40
    values = [None if i % 7 == 0 else Decimal(i * i % 11) for i in range(n)]
    kinds = ["aws-access-key", "vault-token", "aws-temporary-key", None, "other"]
    expiry = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            **{
                k: pa.array(values[j:] + values[:j], pa.decimal128(38, 0))
                for j, k in enumerate(_DIRECT)
            },
            "kind": pa.array([kinds[i % 5] for i in range(n)], pa.string()),
            "expires_at": pa.array([None if i % 3 else expiry for i in range(n)]),
            "origin": pa.array([["unknown", None, "issued"][i % 3] for i in range(n)]),
        }
    )
    found = [float(i % 4) * 1.25 for i in range(n)]
    rows = table.to_pylist()
    assert findings_scores(reach_points(table), found) == [
        row_score({**r, "findings": f}) for r, f in zip(rows, found, strict=True)
    ]
    assert len({row_score({**r, "findings": 0}) for r in rows}) > 5


def test_a_repeat_on_an_unchanged_case_reads_the_ranking_query_columns_back(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh of a case whose ranking is current and which no file came into since takes
    the ranking query's columns from ``rank_cache`` (snapshot._ranking_unchanged, then
    _stored_ranking on the pool; the old rows are deleted only in the write): the query does
    not run and every stored row is what it was, equal to the live ranking. Stored by other
    analysis code, or with a file the last derive did not cover, the query runs again."""
    import shutil

    ran: list[CaseStore] = []
    real = snapshot.rank_query_table

    def counted(store: CaseStore) -> Any:
        ran.append(store)
        return real(store)

    monkeypatch.setattr(snapshot, "rank_query_table", counted)
    copy = Path(shutil.copy(case, tmp_path / "repeat.duckdb"))
    tables = "SELECT * FROM rank_cache ORDER BY credential_id"
    with CaseStore.open(copy, read_only=False) as store:
        before = store.con.execute(tables).fetchall()
        assert snapshot._ranking_unchanged(store)
        stored = snapshot._stored_ranking(store)
        assert stored is not None and stored.num_rows == len(before)
        by_id = [("credential_id", "ascending")]
        assert stored.sort_by(by_id).equals(real(store).sort_by(by_id))  # values and types
        snapshot.refresh(store)
        assert len(ran) == 0 and store.con.execute(tables).fetchall() == before
        assert [r.as_dict() for r in rank_credentials(store)] == _live_ranking(store)
    _tamper(copy, "UPDATE case_meta SET value = 'other-code' WHERE key = 'snapshot.rank'")
    with CaseStore.open(copy, read_only=False) as store:
        assert not snapshot._ranking_unchanged(store)
        snapshot.refresh(store)
        assert len(ran) == 1 and store.con.execute(tables).fetchall() == before
    # A refresh interrupted before its write leaves the old rows, but not their fingerprint:
    # they are neither served nor read back by the next refresh.
    live = snapshot.live_findings

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(snapshot, "live_findings", interrupted)
    with CaseStore.open(copy, read_only=False) as store:
        with pytest.raises(KeyboardInterrupt):
            snapshot.refresh(store)
        assert snapshot.rank_rows(store) is None and not snapshot._ranking_unchanged(store)
    monkeypatch.setattr(snapshot, "live_findings", live)
    with CaseStore.open(copy, read_only=False) as store:
        snapshot.refresh(store)
        assert len(ran) == 2 and store.con.execute(tables).fetchall() == before
    _tamper(copy, "UPDATE case_meta SET value = '0' WHERE key = 'derived.through_file_id'")
    with CaseStore.open(copy, read_only=False) as store:
        assert not snapshot._ranking_unchanged(store)
        snapshot.refresh(store)
        assert len(ran) == 3 and store.con.execute(tables).fetchall() == before


def test_the_context_tables_are_made_on_both_cursors_at_once(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside (the snapshot), the context tables that do not wait for the chain from
    ``_kt_creds`` to ``_kt_agent_event`` are made on the second cursor while it runs
    (``context_tables._owners``, ``_chains``); alone, every table on the one cursor; the same
    findings."""
    from keytrail.analysis.findings import context_tables

    made: dict[str, str] = {}
    for step in ("_lineage", "_owners", "_chain_agents", "_chains", "_agent_events"):
        real = getattr(context_tables, step)

        def spy(cur: duckdb.DuckDBPyConnection, t: str, step: str = step, real: Any = real) -> None:
            made[step] = threading.current_thread().name
            real(cur, t)

        monkeypatch.setattr(context_tables, step, spy)
    main_thread = threading.main_thread().name
    cfg = load_config(None)
    with CaseStore.open(case, read_only=False) as store:
        beside = [f.as_dict() for f in live_findings(store, cfg, beside=True)]
        assert made["_owners"].startswith("kt-context") and made["_chains"] == made["_owners"]
        assert made["_lineage"] == made["_chain_agents"] == made["_agent_events"] == main_thread
        made.clear()
        alone = [f.as_dict() for f in live_findings(store, cfg)]
    assert set(made.values()) == {main_thread} and len(made) == 5
    assert beside == alone
