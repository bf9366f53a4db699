"""The raw pass's rows kept in the case (findings.rawcache): a later snapshot reads only the
records of new files, and the rows are never used for other rules, other code, or a case whose
covered CloudTrail events changed.

The first part of the sample ingested with its snapshot is a module fixture (``first_case``):
five tests began with that same ingest; each now writes to a byte copy of it."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from keytrail.analysis import snapshot
from keytrail.analysis.findings import rawcache
from keytrail.analysis.findings.catalog import RULES
from keytrail.analysis.findings.context import Context
from keytrail.analysis.findings.rawpass import CONSOLE, ensure, one_pass_sql, prefill
from keytrail.analysis.findings.run import live_findings
from keytrail.analysis.sigma.rules import load_rules
from keytrail.cli.main import main
from keytrail.config import FindingsConfig, load_config
from keytrail.store.case import CaseStore

INCIDENT = Path(__file__).resolve().parents[2] / "sample_data" / "incident"
DAYS = INCIDENT / "AWSLogs" / "418295730164" / "CloudTrail" / "us-east-1" / "2026" / "03"
Rows = list[tuple[int, str]]


def _ingest(case: Path, *paths: Path, snap: bool = True) -> None:
    args = ["ingest", str(case), *map(str, paths), "-q"]
    args += ["--inventory", str(INCIDENT / "inventory.toml")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args + ([] if snap else ["--no-snapshot"])) == 0


def _sql(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _fresh(path: Path, cfg: FindingsConfig) -> Rows:
    """The raw pass's rows read from every record now (no cache)."""
    rs = load_rules(cfg.sigma.rules_dir or None)
    sql = one_pass_sql(rs, list(rs.rules), (CONSOLE, -1))
    with CaseStore.open(path) as store:
        return sorted(store.con.execute(sql).fetchall())


def _stored(path: Path) -> Rows:
    return sorted(_sql(path, "SELECT r, event_uid FROM raw_pass_cache"))  # type: ignore[arg-type]


def _state(path: Path) -> dict[str, object]:
    rows = _sql(path, f"SELECT value FROM case_meta WHERE key = '{rawcache.KEY}'")
    return json.loads(str(rows[0][0])) if rows else {}


def _run(path: Path, cfg: FindingsConfig, keep: bool) -> Rows:
    """What ``ensure`` hands the rule families (flag rows as -1), on the case as it is."""
    with CaseStore.open(path, read_only=not keep) as store:
        cur = store.cursor()
        ctx = Context(cur, cfg, None)
        ctx.keep_raw_pass = keep
        ensure(ctx)
        rows = cur.execute(
            "SELECT -1, event_uid FROM _kt_console_ct "
            "UNION ALL SELECT r, event_uid FROM _kt_sigma_hit"
        ).fetchall()
        cur.close()
    return sorted(rows)


def _no_cache_findings(path: Path, tmp: Path) -> list[dict[str, object]]:
    copy = tmp / "nocache.duckdb"
    copy.write_bytes(path.read_bytes())
    _sql(copy, f"DELETE FROM case_meta WHERE key = '{rawcache.KEY}'")
    with CaseStore.open(copy) as store:
        return [f.as_dict() for f in live_findings(store, load_config(None, rule_ids=RULES))]


@pytest.fixture
def two_parts() -> tuple[list[Path], list[Path]]:
    if not DAYS.is_dir():
        pytest.skip("sample incident not present")
    days = sorted(DAYS.iterdir())
    return days[:4], [*days[4:], INCIDENT / "vault"]


@pytest.fixture(scope="module")
def first_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first part ingested with its snapshot (the raw pass's cache filled), once per module:
    five tests began with this same ingest. Read-only: each test works on a copy."""
    if not DAYS.is_dir():
        pytest.skip("sample incident not present")
    path = tmp_path_factory.mktemp("first") / "first.duckdb"
    _ingest(path, *sorted(DAYS.iterdir())[:4])
    return path


def _first(first_case: Path, tmp: Path) -> Path:
    path = tmp / "case.duckdb"
    shutil.copyfile(first_case, path)
    return path


def test_a_second_ingest_reads_only_its_own_files(
    tmp_path: Path, two_parts: tuple[list[Path], list[Path]], first_case: Path
) -> None:
    _first_files, second = two_parts
    path = _first(first_case, tmp_path)
    cfg = load_config(None, rule_ids=RULES)
    state = _state(path)
    top = _sql(path, "SELECT max(file_id) FROM evidence")[0][0]
    assert state["through"] == top and _stored(path) == _fresh(path, cfg) != []
    # A marker on an old record the rules do not match: kept, the record was not read again.
    old = _sql(
        path,
        "SELECT min(event_uid) FROM events WHERE source = 'cloudtrail' AND event_uid NOT IN "
        "(SELECT event_uid FROM raw_pass_cache WHERE r = 0)",
    )[0][0]
    _sql(path, f"INSERT INTO raw_pass_cache VALUES (0, '{old}')")
    # An ingest without the snapshot leaves the cache as it was; live answers read it for the
    # old files and the new files' records themselves.
    _ingest(path, *second, snap=False)
    assert _state(path) == state
    fresh = _fresh(path, cfg)
    assert (0, old) not in fresh
    assert _run(path, cfg, keep=False) == sorted([*fresh, (0, old)])
    assert snapshot.refresh_case(path) is not None
    assert int(str(_state(path)["through"])) > int(str(state["through"]))
    assert _stored(path) == sorted([*fresh, (0, old)])
    # Without the marker the findings are those of a run that reads every record.
    _sql(path, f"DELETE FROM raw_pass_cache WHERE r = 0 AND event_uid = '{old}'")
    with CaseStore.open(path) as store:
        stored = snapshot.findings(store, cfg)
        assert stored is not None
        live = [f.as_dict() for f in live_findings(store, cfg)]
    assert _stored(path) == fresh
    assert live == _no_cache_findings(path, tmp_path) != []


@pytest.mark.parametrize(
    "change",
    [
        "DELETE FROM events WHERE event_uid = '{uid}'",
        # the same number of events, one of them another record (as a rewrite would leave it)
        "UPDATE events SET record_no = record_no + 100000 WHERE event_uid = '{uid}'",
    ],
)
def test_a_changed_covered_event_rebuilds_the_cache(
    tmp_path: Path, first_case: Path, change: str
) -> None:
    """De-duplication keeps the earliest copy, so it never removes a covered event; were one
    removed or replaced anyway, the digest in ``rawpass.cache`` no longer matches and every
    record is read again."""
    path = _first(first_case, tmp_path)
    cfg = load_config(None, rule_ids=RULES)
    hit = _stored(path)[0]
    _sql(path, "INSERT INTO raw_pass_cache VALUES (0, 'marker')")
    _sql(path, change.format(uid=hit[1]))
    assert (0, "marker") not in _run(path, cfg, keep=False)
    assert snapshot.refresh_case(path) is not None
    assert _stored(path) == _fresh(path, cfg) and (0, "marker") not in _stored(path)


def test_other_rules_neither_read_nor_keep_the_rows_of_the_old_ones(
    tmp_path: Path, first_case: Path
) -> None:
    path = _first(first_case, tmp_path)
    default = load_config(None, rule_ids=RULES)
    before = _state(path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(
        "title: Any AssumeRole\nid: 8e3c1f9a-0000-4000-8000-000000000001\n"
        "status: test\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n"
        "  sel:\n    eventName: AssumeRole\n  condition: sel\nlevel: low\n",
        encoding="utf-8",
    )
    other = replace(default, sigma=replace(default.sigma, rules_dir=str(rules)))
    _sql(path, "INSERT INTO raw_pass_cache VALUES (0, 'marker')")
    mine = _run(path, other, keep=False)
    assert (0, "marker") not in mine and mine == _fresh(path, other)
    assert any(r == 0 for r, _ in mine)
    # Stored for the other rules, the cache answers for them and no longer for the default ones.
    assert _run(path, other, keep=True) == mine
    assert _state(path)["fingerprint"] != before["fingerprint"] and _stored(path) == mine
    assert _run(path, default, keep=False) == _fresh(path, default)


def test_prefill_gives_the_same_rows(
    tmp_path: Path, two_parts: tuple[list[Path], list[Path]]
) -> None:
    """The snapshot fills the cache on a cursor of its own beside the findings, and the two
    families that read it run last: the same cache rows, and the same findings in the same
    order, as one cursor running every family in order and reading every record itself."""
    first, second = two_parts
    path = tmp_path / "case.duckdb"
    cfg = load_config(None, rule_ids=RULES)
    _ingest(path, *first, *second, snap=False)
    assert _state(path) == {} and _stored(path) == []
    with CaseStore.open(path) as store:
        in_order = [f.as_dict() for f in live_findings(store, cfg)]
    with CaseStore.open(path, read_only=False) as store, ThreadPoolExecutor(1) as pool:
        filled = pool.submit(prefill, store, cfg)
        beside = live_findings(store, cfg, keep_raw_pass=True, raw_ready=filled.result)
    assert [f.as_dict() for f in beside] == in_order != []
    assert {f.rule for f in beside} & {"browser-on-agent-credential", "console-login-as-agent"}
    assert any(f.rule.startswith("sigma:") for f in beside)
    top = _sql(path, "SELECT max(file_id) FROM evidence")[0][0]
    assert _state(path)["through"] == top and _stored(path) == _fresh(path, cfg) != []


def test_a_failing_prefill_changes_nothing(
    tmp_path: Path, two_parts: tuple[list[Path], list[Path]]
) -> None:
    """Whatever fails in the prefill (here: a missing rule folder) is left to the Sigma family,
    which meets it again and reports it as it does without one; the cache is not touched."""
    first, _ = two_parts
    path = tmp_path / "case.duckdb"
    _ingest(path, *first, snap=False)
    default = load_config(None, rule_ids=RULES)
    missing = replace(default, sigma=replace(default.sigma, rules_dir=str(tmp_path / "none")))
    with CaseStore.open(path, read_only=False) as store:
        prefill(store, missing)
    assert _state(path) == {} and _stored(path) == []


def test_a_new_case_stores_the_cached_event_ids_uncompressed(
    tmp_path: Path, first_case: Path
) -> None:
    """A first snapshot writes the whole cache: its event ids are stored as they are
    (``store.schema.UNCOMPRESSED_COLUMNS``), not through DuckDB's string compression, which cost
    four times the write at 1M events; the rows are those read from every record (on a byte
    copy of the first part's new case)."""
    path = _first(first_case, tmp_path)
    storage = _sql(
        path,
        "SELECT DISTINCT compression FROM pragma_storage_info('raw_pass_cache') "
        "WHERE column_name = 'event_uid' AND segment_type = 'VARCHAR'",
    )
    assert {c for (c,) in storage} == {"Uncompressed"}
    assert _stored(path) == _fresh(path, load_config(None, rule_ids=RULES)) != []


class _Refuses:
    """A cache reader whose every query fails: what :func:`rawcache.make` may not ask."""

    keep_raw_pass = True

    @property
    def cur(self) -> duckdb.DuckDBPyConnection:
        raise AssertionError("queried the case")

    def scalar(self, sql: str, params: list[object] | None = None) -> object:
        raise AssertionError(f"queried the case: {sql}")


def test_the_cache_the_prefill_brought_up_to_date_is_read_where_it_is(
    tmp_path: Path, first_case: Path
) -> None:
    """The prefill hands over the fingerprint of the query it brought the cache up to date for:
    ``make`` then takes the cache for that query without checking it again (no query at all),
    and checks it for any other; the families read the cache in place (views over it, not
    copies of its rows), the rows those of every record read now."""
    path = _first(first_case, tmp_path)
    cfg = load_config(None, rule_ids=RULES)
    with CaseStore.open(path, read_only=False) as store:
        fp = prefill(store, cfg)
    assert fp is not None and fp == _state(path)["fingerprint"]
    rs = load_rules(cfg.sigma.rules_dir or None)

    def sql_for(where: str | None) -> str:
        return one_pass_sql(rs, list(rs.rules), (CONSOLE, -1), where, carried=True)

    assert rawcache.fingerprint(sql_for(None)) == fp
    assert rawcache.make(_Refuses(), sql_for, current=fp) == rawcache.TABLE
    with pytest.raises(AssertionError, match="queried the case"):
        rawcache.make(_Refuses(), sql_for, current="another query's")
    with CaseStore.open(path) as store:
        cur = store.cursor()
        ensure(Context(cur, cfg, None))
        views = cur.execute(
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal ORDER BY 1"
        ).fetchall()
        cur.close()
    assert views == [("_kt_console_ct",), ("_kt_sigma_hit",)]
    assert _run(path, cfg, keep=False) == _fresh(path, cfg) != []


def test_hits_left_by_a_failure_after_the_views_give_the_same_rows(
    tmp_path: Path, first_case: Path
) -> None:
    """When making the views fails half way (here: a table of the second's name is in the way),
    the rule-by-rule way replaces what was made, views or tables: the same rows."""
    path = _first(first_case, tmp_path)
    cfg = load_config(None, rule_ids=RULES)
    with CaseStore.open(path) as store:
        cur = store.cursor()
        cur.execute("CREATE TEMP TABLE _kt_sigma_hit (stale INTEGER)")
        ensure(Context(cur, cfg, None))
        rows = cur.execute(
            "SELECT -1, event_uid FROM _kt_console_ct "
            "UNION ALL SELECT r, event_uid FROM _kt_sigma_hit"
        ).fetchall()
        views = cur.execute(
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
        ).fetchall()
        cur.close()
    assert views == [] and sorted(rows) == _fresh(path, cfg) != []
