"""Blast radius and ranking: D(c), the aggregated radius, filters and the explained score."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from keytrail.analysis.answers import blast_radius, rank_credentials
from keytrail.analysis.lineage import descendants
from keytrail.errors import NotFoundError, UsageError
from keytrail.store.case import CaseStore
from tests.unit.graph_case import ROLE, T0, incident


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseStore]:
    s = incident(tmp_path_factory.mktemp("blast") / "case.duckdb")
    yield s
    s.close()


def test_descendants_respect_min_confidence(store: CaseStore) -> None:
    assert descendants(store, "acc-app") == [
        "AKIANEWKEY0000000001",
        "ASIACHAIN00000000001",
        "lease-aws-1",
    ]
    # The Vault-to-CloudTrail name match is strong, not proven.
    assert descendants(store, "acc-app", min_confidence="proven") == ["lease-aws-1"]


def test_blast_radius_contents(store: CaseStore) -> None:
    b = blast_radius(store, "AKIANEWKEY0000000001")
    assert b.derived_credentials == ["ASIACHAIN00000000001"]
    res = {r["resource"]: r for r in b.resources}
    role = res[ROLE]
    assert role["denied"] == 1 and role["events"] == 3
    assert {a["action"]: a["count"] for a in role["actions"]} == {
        "sts:AssumeRole": 2,
        "iam:AttachRolePolicy": 1,
    }
    assert "arn:aws:s3:::ledger/q1.csv" in res
    assert b.counts["writes"] == 1 and b.counts["denied"] == 1 and b.counts["secrets_read"] == 1
    assert [s["action"] for s in b.secrets_read] == ["secretsmanager:GetSecretValue"]
    assert {s["category"] for s in b.sensitive_actions} == {"write", "denied"}
    assert set(b.accounts) == {"111122223333", "444455556666"}
    assert {a["agent"] for a in b.agents} == {"ledger-bot"}
    assert [h["human"] for h in b.humans] == ["bob@example.com"]
    assert b.lineage is not None and [c.credential for c in b.lineage.children] == [
        "ASIACHAIN00000000001"
    ]


def test_json_keys_contract(store: CaseStore) -> None:
    d = blast_radius(store, "acc-app").as_dict()
    for key in (
        "credential",
        "kind",
        "score",
        "score_terms",
        "derived_credentials",
        "resources",
        "principals",
        "accounts",
        "agents",
        "humans",
    ):
        assert key in d
    for r in d["resources"]:
        assert set(r) >= {
            "resource",
            "type",
            "actions",
            "events",
            "first_seen",
            "last_seen",
            "denied",
        }
    for t in d["score_terms"]:
        assert set(t) >= {"name", "value", "weight", "points", "explanation"}
    assert round(sum(t["points"] for t in d["score_terms"]), 1) == d["score"]


def test_rank_agrees_with_blast(store: CaseStore) -> None:
    ranks = rank_credentials(store)
    assert len(ranks) == store.scalar("SELECT count(*) FROM credentials")
    assert [r.score for r in ranks] == sorted((r.score for r in ranks), reverse=True)
    for r in ranks:
        b = blast_radius(store, r.credential)
        assert b.score == r.score, r.credential
        assert r.derived_credentials == b.derived_credentials
    top = ranks[0].as_dict()
    assert set(top) >= {
        "credential",
        "kind",
        "score",
        "agents",
        "humans",
        "events",
        "first_seen",
        "last_seen",
    }
    assert len(rank_credentials(store, limit=2)) == 2


def test_minting_credential_outranks_its_child(store: CaseStore) -> None:
    # the reach terms: findings, long_lived and origin_unknown describe the credential itself
    scores = {
        r.credential: sum(
            t.points
            for t in r.score_terms
            if t.name not in ("findings", "long_lived", "origin_unknown")
        )
        for r in rank_credentials(store)
    }
    assert scores["acc-app"] > scores["AKIANEWKEY0000000001"] > scores["ASIACHAIN00000000001"]
    assert scores["lease-aws-1"] > scores["ASIACHAIN00000000001"]


def test_time_filters(store: CaseStore) -> None:
    b = blast_radius(store, "AKIANEWKEY0000000001", since=T0 + timedelta(seconds=105))
    assert {r["resource"] for r in b.resources} == {
        ROLE,
        "arn:aws:s3:::ledger/out.csv",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-abc",
    }
    assert b.counts["events"] == 3
    b = blast_radius(store, "AKIANEWKEY0000000001", until=T0 + timedelta(seconds=60))
    assert b.counts["events"] == 2 and b.counts["writes"] == 0


def test_unknown_credential_suggests(store: CaseStore) -> None:
    with pytest.raises(NotFoundError) as e:
        blast_radius(store, "ASIACHAIN0000000000l")
    assert "ASIACHAIN00000000001" in e.value.suggestions
    with pytest.raises(UsageError):
        rank_credentials(store, min_confidence="maybe")


def test_principal_arn_with_one_key_resolves(store: CaseStore) -> None:
    assert (
        blast_radius(store, "arn:aws:iam::111122223333:user/vault-root").credential
        == "AKIAVAULTROOT0000001"
    )


def test_ranking_in_a_window_leaves_out_idle_credentials(store: CaseStore) -> None:
    """A window before the evidence ranks nothing (minted/long-lived terms alone scored idle keys)."""
    assert rank_credentials(store, until=T0 - timedelta(days=1)) == []
    some = rank_credentials(store, since=T0 + timedelta(seconds=95))
    assert some and all(r.events > 0 for r in some)
    assert len(some) < len(rank_credentials(store))


def test_every_root_counts_equal_one_root_counts(store: CaseStore) -> None:
    """The every-credential ranking counts shared values apart from values one credential has
    (ranking._dcount_every); each root's counts equal the one-root query's distinct counts."""
    from keytrail.analysis.ranking import params, query, rank_query_rows, rank_sql

    keys = ("resources", "accounts", "principals", "events", "credentials_minted")
    every = {r["credential_id"]: r for r in rank_query_rows(store)}
    assert every, "the incident case has credentials"
    shared = store.scalar(
        "SELECT count(*) FROM (SELECT dst FROM links WHERE kind = 'ACTED_ON' "
        "GROUP BY dst HAVING count(DISTINCT src) > 1)"
    )
    assert shared, "some resource is acted on by several credentials (the de-duplicated part)"
    for cid, row in every.items():
        p = params(None, None, "inferred", root=cid)
        one = query(store, rank_sql("SELECT $root AS root", filtered=False), p)[0]
        assert {k: one[k] for k in keys} == {k: row[k] for k in keys}, cid
    # the windowed query (values from the events, not the links) takes the same path
    start = T0 - timedelta(days=1)
    windowed = {r["credential_id"]: r for r in rank_query_rows(store, since=start)}
    assert any(r["resources"] for r in windowed.values())
    for cid, row in windowed.items():
        p = params(start, None, "inferred", root=cid)
        one = query(store, rank_sql("SELECT $root AS root"), p)[0]
        assert {k: one[k] for k in keys} == {k: row[k] for k in keys}, cid


def test_repeated_value_rows_are_counted_once(tmp_path: Path) -> None:
    """The every-credential ranking does not make its (credential, value) rows distinct
    (ranking._dcount_every): an edge repeated for one pair (another reason, as an older or
    partial derive could leave it) must not count its value twice, whether the value is that
    credential's alone or shared."""
    from keytrail.analysis.ranking import rank_query_rows

    keys = ("resources", "accounts", "principals")
    s = incident(tmp_path / "case.duckdb")
    try:
        before = {r["credential_id"]: {k: r[k] for k in keys} for r in rank_query_rows(s)}
        own = s.scalar(
            "SELECT count(*) FROM (SELECT dst FROM links WHERE kind = 'ACTED_ON' "
            "GROUP BY dst HAVING count(DISTINCT src) = 1)"
        )
        assert own, "some resource is one credential's alone"
        s.close()
        with CaseStore.open(tmp_path / "case.duckdb", read_only=False) as w:
            w.con.execute(
                """INSERT INTO links SELECT * REPLACE ('repeated: ' || reason AS reason)
                   FROM links WHERE kind IN ('ACTED_ON', 'AUTHENTICATES_AS')"""
            )
        s = CaseStore.open(tmp_path / "case.duckdb")
        after = {r["credential_id"]: {k: r[k] for k in keys} for r in rank_query_rows(s)}
        assert any(v["resources"] and v["principals"] for v in before.values())
        assert after == before
    finally:
        s.close()


@pytest.mark.parametrize("key", ["0", "length({v})", "left({v}, 12)"])
def test_shared_values_found_by_colliding_keys_count_the_same(tmp_path: Path, key: str) -> None:
    """The every-credential ranking finds the shared values by a key of the value (its hash,
    ranking.SHARED_KEY), not the value: a key one row alone has is a value in one row, and the
    rows of any other key go through the distinct count. Keys that collide (all, by length, by
    prefix) give the counts the value itself gives, windowed or not, with repeated edge rows."""
    from keytrail.analysis.ranking import SHARED_KEY, params, query, rank_sql

    keys = ("resources", "accounts", "principals", "events", "credentials_minted")
    roots = "SELECT credential_id AS root FROM credentials"

    def counts(
        s: CaseStore, shared_key: str, since: datetime | None
    ) -> dict[str, dict[str, object]]:
        sql = rank_sql(roots, filtered=since is not None, every_root=True, shared_key=shared_key)
        rows = query(s, sql, params(since, None, "inferred"))
        return {r["credential_id"]: {k: r[k] for k in keys} for r in rows}

    s = incident(tmp_path / "case.duckdb")
    try:
        for since in (T0 - timedelta(days=1), None):  # the values from the events, the links
            exact = counts(s, "{v}", since)
            assert any(v["resources"] and v["principals"] for v in exact.values())
            assert counts(s, key, since) == exact
            assert counts(s, SHARED_KEY, since) == exact
        s.close()
        with CaseStore.open(tmp_path / "case.duckdb", read_only=False) as w:
            w.con.execute(
                """INSERT INTO links SELECT * REPLACE ('repeated: ' || reason AS reason)
                   FROM links WHERE kind IN ('ACTED_ON', 'AUTHENTICATES_AS')"""
            )
        s = CaseStore.open(tmp_path / "case.duckdb")
        assert counts(s, key, None) == counts(s, SHARED_KEY, None) == exact  # links' counts
    finally:
        s.close()


def test_counters_equal_the_predicates_on_every_event(store: CaseStore) -> None:
    """The ranking classifies each distinct (source, service, operation, action, outcome, target,
    details) once and joins the flags back NULL-safe (ranking ``cls``): a credential that minted
    nothing has the counts the predicates give on its own events, one by one."""
    from keytrail.analysis import classify
    from keytrail.analysis.ranking import rank_query_rows

    names = [n for n, _ in classify.COUNTERS]
    direct = {
        r["credential_id"]: r
        for r in store.query(
            f"""SELECT e.credential_id, count(*) AS events, {classify.counter_columns()}
                FROM events e WHERE e.credential_id IS NOT NULL GROUP BY e.credential_id"""
        )
    }
    leaves = [r for r in rank_query_rows(store) if not r["credentials_minted"] and r["events"]]
    assert leaves and any(r["writes"] for r in leaves) and any(r["denied"] for r in leaves)
    nulls = store.scalar(
        "SELECT count(*) FROM events WHERE credential_id IS NOT NULL AND outcome IS NULL"
    )
    assert nulls or store.scalar(
        "SELECT count(*) FROM events WHERE credential_id IS NOT NULL AND target IS NULL"
    ), "some classified row has a NULL key column (the NULL-safe join)"
    for r in leaves:
        want = direct[r["credential_id"]]
        assert {k: r[k] for k in ["events", *names]} == {k: want[k] for k in ["events", *names]}


def test_row_score_is_the_ranks_score(store: CaseStore) -> None:
    """The snapshot stores ``row_score`` (no term objects); it is the score the rank shows."""
    from keytrail.analysis.rank_score import row_score, row_scores
    from keytrail.analysis.ranking import live_rank_rows, to_rank

    rows = live_rank_rows(store)
    assert rows and any(to_rank(r).score for r in rows)
    assert [row_score(r) for r in rows] == [to_rank(r).score for r in rows]
    assert row_scores(rows) == [row_score(r) for r in rows]
