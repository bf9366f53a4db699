"""CaseStore.session(): analysis calls that another thread can stop (the TUI's Escape).

Real case files, real DuckDB queries: a cross join of ``range()`` tables that would run
for minutes is interrupted from another thread, and the call raises ``Cancelled``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.analysis.lineage import ancestry, lineage_tree
from keytrail.analysis.summary import case_info
from keytrail.errors import Cancelled
from keytrail.store.case import CaseSession, CaseStore
from tests.tui.casefactory import make_case

#: Minutes of work on two cores; an interrupt stops it in milliseconds.
SLOW = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE (a.range * b.range) % 7 = 3"
#: Generous bound on waiting for a thread that should stop at once (a hang fails, it is not a timing assert).
JOIN_TIMEOUT = 60


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_case(tmp_path_factory.mktemp("session") / "case.duckdb")


def in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread to assert on
            out["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def test_session_is_a_store_analysis_code_takes_unchanged(case: Path) -> None:
    with CaseStore.open(case) as store:
        session = store.session()
        assert isinstance(session, CaseStore)
        assert session.meta("schema_version") == store.meta("schema_version")
        assert (
            session.scalar("SELECT count(*) FROM events")
            == store.scalar("SELECT count(*) FROM events")
            > 0
        )
        # real analysis functions, through their cursors, store.query and store.con
        assert (
            session.run(lineage_tree, session, "ASIA1").as_dict()
            == lineage_tree(store, "ASIA1").as_dict()
        )
        assert session.run(ancestry, session, "ASIA1") == ancestry(store, "ASIA1")
        assert session.run(case_info, session) == case_info(store)
        assert session.active == 0
        assert not session.cancelled


def test_interrupt_from_another_thread_stops_a_running_query(case: Path) -> None:
    with CaseStore.open(case) as store:
        session = store.session()
        t, out = in_thread(lambda: session.query(SLOW))
        while session.active == 0 and t.is_alive():  # the call has started (its cursor is tracked)
            t.join(0.005)
        session.interrupt()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive(), "the query was not interrupted"
        err = out.get("error")
        assert isinstance(err, Cancelled), out
        assert str(err) == "cancelled: the analysis was interrupted before it finished"
        assert err.title == "cancelled" and err.exit_code == 130
        assert session.active == 0
        # the session is spent: every later call says so at once; the store itself still works
        with pytest.raises(Cancelled):
            session.scalar("SELECT 1")
        with pytest.raises(Cancelled):
            session.cursor()
        assert store.scalar("SELECT 42") == 42
        assert store.session().scalar("SELECT 42") == 42


def test_interrupt_between_two_queries_of_a_call_still_stops_it(case: Path) -> None:
    """DuckDB drops an interrupt that reaches an idle cursor; the session keeps interrupting while the call runs."""
    with CaseStore.open(case) as store:
        session = store.session()
        between, interrupted, second_started = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )

        def analysis(s: CaseSession) -> int:
            cur = s.cursor()  # one cursor for several queries, as run_findings and baseline do
            try:
                cur.execute("SELECT count(*) FROM events").fetchone()
                between.set()
                interrupted.wait(JOIN_TIMEOUT)  # the interrupt lands while this cursor is idle
                second_started.set()
                row = cur.execute(SLOW).fetchone()
                return int(row[0]) if row else 0
            finally:
                cur.close()

        t, out = in_thread(lambda: session.run(analysis, session))
        assert between.wait(JOIN_TIMEOUT)
        session.interrupt()
        interrupted.set()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive(), "the second query ran to the end"
        assert second_started.is_set()
        err = out.get("error")
        assert isinstance(err, Cancelled), out
        assert isinstance(err.__cause__, duckdb.InterruptException)
        assert "result" not in out


def test_store_con_in_a_session_is_a_tracked_cursor_per_thread(case: Path) -> None:
    """Code written against ``store.con`` (case_info) gets a cancellable cursor of its own thread."""
    with CaseStore.open(case) as store:
        session = store.session()
        here = session.con
        assert here is session.con and here is not store.con
        t, out = in_thread(lambda: session.con)
        t.join(JOIN_TIMEOUT)
        assert out["result"] is not here
        t, out = in_thread(lambda: session.run(lambda: session.con.execute(SLOW).fetchone()))
        while session.active == 0 and t.is_alive():
            t.join(0.005)
        session.interrupt()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive()
        assert isinstance(out.get("error"), Cancelled)
        with pytest.raises(Cancelled):
            _ = session.con


def test_closing_a_session_leaves_the_case_open(case: Path) -> None:
    with CaseStore.open(case) as store:
        with store.session() as session:
            assert session.scalar("SELECT 1") == 1
        assert session.cancelled
        with pytest.raises(Cancelled):
            session.query("SELECT 1")
        assert store.scalar("SELECT count(*) FROM credentials") > 0
