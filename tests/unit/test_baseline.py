"""``baseline()``: an agent's events through its credentials, networks, thin baselines, unknown ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.analysis.baseline import baseline
from keytrail.errors import NotFoundError
from keytrail.store.case import CaseStore
from tests.unit.test_findings_support import Case, at


def test_agent_baseline_includes_its_credentials_and_minted_ones(tmp_path: Path) -> None:
    case = Case(tmp_path / "c.duckdb")
    u = case.event(
        time=at(0),
        action="vault:update",
        source="vault",
        credential="acc-1",
        kind="vault-token",
        src_ip="2001:db8:7:1::5",
    )
    case.uses("bot", "acc-1", [u])
    case.issue(
        "ASIAMINTEDBYVAULT001", "aws-temporary-key", parent="acc-1", event_uid=u, issued_at=at(0)
    )
    s3 = case.event(
        time=at(1), action="s3:GetObject", credential="ASIAMINTEDBYVAULT001", src_ip="198.51.100.9"
    )
    late = case.event(
        time=at(0, days=8),
        action="kms:Decrypt",
        credential="ASIAMINTEDBYVAULT001",
        src_ip="198.51.100.10",
    )
    case.event(
        time=at(2), action="s3:GetObject", credential="ASIAOTHERKEY00000001"
    )  # not the agent's
    with CaseStore.open(case.close()) as store:
        b = baseline(store, "bot")
    assert b.kind == "agent" and b.baseline_events == 2 and b.thin
    assert [v["value"] for v in b.values["services"]] == ["s3", "vault"]
    assert {v["value"] for v in b.values["source_networks"]} == {
        "198.51.100.0/24",
        "2001:db8:7::/48",
    }
    [dep] = b.departed["services"]
    assert dep["value"] == "kms" and dep["evidence_uids"] == [late]
    assert b.departed["source_networks"] == []  # same /24
    assert s3 not in [d["evidence_uids"][0] for d in b.departed["actions"]]


def test_unknown_subject(tmp_path: Path) -> None:
    case = Case(tmp_path / "c.duckdb")
    case.event(time=at(0), action="s3:GetObject", credential="AKIAEXAMPLEKEY000001")
    with CaseStore.open(case.close()) as store, pytest.raises(NotFoundError) as err:
        baseline(store, "AKIAEXAMPLEKEY000002")
    assert err.value.suggestions[0] == "AKIAEXAMPLEKEY000001"


def test_a_departure_counts_every_later_event_of_its_value_and_cites_the_first(
    tmp_path: Path,
) -> None:
    """A value departs only when none of its events is in the window; its count, first and last
    time and first event are then those of all its events (ties on time: the lower event id),
    and a value seen in the window and again later never departs. Every dimension at once,
    resource types through ``event_resources``, hours as two-digit text."""
    case = Case(tmp_path / "c.duckdb")
    key = "AKIAEXAMPLEKEY000001"
    obj = ("arn:aws:s3:::ledger/a", "AWS::S3::Object")
    for d in range(3):
        case.event(
            time=at(0, days=d, hours=1),
            action="s3:GetObject",
            credential=key,
            src_ip="198.51.100.7",
            resources=[obj],
        )
    user = ("arn:aws:iam::111111111111:user/x", "AWS::IAM::User")
    late = at(0, days=9, hours=5)
    _, second = (
        case.event(
            time=late,
            action="iam:CreateUser",
            credential=key,
            src_ip="203.0.113.50",
            resources=[user],
            source_id=sid,
        )
        for sid in ("ev-b", "ev-a")  # the same time: the lower id ("ev-a") is cited
    )
    case.event(
        time=at(0, days=10, hours=5), action="iam:CreateUser", credential=key, resources=[user]
    )
    case.event(  # every value of this one was seen in the window but its hour
        time=at(0, days=11, hours=1), action="s3:GetObject", credential=key, src_ip="198.51.100.7"
    )
    with CaseStore.open(case.close()) as store:
        b = baseline(store, key)
    assert b.baseline_events == 3 and [v["value"] for v in b.values["hours"]] == ["10"]
    want = {
        "events": 3,
        "evidence_uids": [second],
        "first_seen": "2024-05-10T14:00:00Z",
        "last_seen": "2024-05-11T14:00:00Z",
    }
    for dim, value in (("services", "iam"), ("actions", "iam:CreateUser")):
        [dep] = b.departed[dim]
        assert dep["value"] == value and {k: dep[k] for k in want} == want
    [rtype] = b.departed["resource_types"]
    assert rtype["value"] == "AWS::IAM::User" and rtype["events"] == 3
    [net] = b.departed["source_networks"]
    assert net["value"] == "203.0.113.0/24" and net["events"] == 2
    [hour] = b.departed["hours"]
    assert hour["value"] == "14" and hour["events"] == 3


def test_scope_drift_judges_every_subject_with_a_later_event_as_baseline_does(
    tmp_path: Path,
) -> None:
    """The ``scope-drift`` rule groups the rows of only the subjects with an event after their
    window (no other subject can depart). An event at the window's very end is after it: a
    subject whose only later event falls there still departs, with the same values, counts and
    window as ``baseline()`` (which reads every subject's rows) reports; a subject with no later
    event and a thin one do not. Fails with the filter on ``last_t > end_t``."""
    case = Case(tmp_path / "c.duckdb")
    edge, inside, thin = "AKIAEDGEKEY000000001", "AKIAINSIDEKEY0000001", "AKIATHINKEY000000001"
    for key in (edge, inside):
        case.routine(key)
    case.event(time=at(0, days=6, hours=3), action="s3:PutObject", credential=inside)
    new = case.event(  # exactly the window's end: the first time + 7 days
        time=at(0, days=7),
        action="iam:CreateUser",
        credential=edge,
        src_ip="203.0.113.50",
        resources=[("arn:aws:iam::111111111111:user/x", "AWS::IAM::User")],
    )
    case.event(time=at(0), action="s3:GetObject", credential=thin)
    case.event(time=at(0, days=9), action="iam:CreateUser", credential=thin)
    [f] = case.findings("scope-drift")
    with CaseStore.open(case.path) as store:
        b = baseline(store, edge)
        assert not baseline(store, inside).departed["actions"]
    assert f.subjects == (edge,) and f.evidence_uids == (new,) and b.baseline_events == 12
    assert f"({b.baseline_events} events from" in f.description
    assert f.details["departed"] == {
        d: [x["value"] for x in vs] for d, vs in b.departed.items() if vs
    }
    assert f.evidence_count == sum(x["events"] for vs in b.departed.values() for x in vs)
