"""Builds small real cases (DuckDB files with the case schema) for the findings tests.

Rows go into the ingested tables as the adapters write them and into ``links`` as
``graph.derive`` produces them (documented in docs/schema.md and docs/architecture.md).
No test functions here; the other ``test_findings*`` modules import :class:`Case`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keytrail.analysis.answers import run_findings
from keytrail.analysis.findings import Finding
from keytrail.store.case import CaseStore

T0 = datetime(2024, 5, 1, 9, 0, 0)


def at(minutes: float = 0, *, days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


class Case:
    """A case under construction; ``findings()`` closes the writer and runs the rules read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = CaseStore.open(path, read_only=False, create=True)
        self.n = 0

    def event(
        self,
        *,
        time: datetime,
        action: str,
        credential: str | None = None,
        kind: str | None = None,
        agent: str | None = None,
        human: str | None = None,
        outcome: str = "success",
        source: str = "cloudtrail",
        src_ip: str | None = None,
        user_agent: str | None = None,
        account: str | None = None,
        actor: str | None = None,
        actor_type: str | None = None,
        session: str | None = None,
        target: str | None = None,
        raw: dict[str, Any] | None = None,
        resources: list[tuple[str, ...]] | None = None,
        source_id: str | None = None,
    ) -> str:
        self.n += 1
        sid = source_id or f"ev-{self.n:04d}"
        uid = f"{source}:{sid}"
        service, _, operation = action.partition(":")
        if kind is None and credential:
            kind = (
                "aws-access-key"
                if credential.startswith("AKIA")
                else "aws-temporary-key"
                if credential.startswith("ASIA")
                else None
            )
        self.store.con.execute(
            """INSERT INTO events (event_uid, source, source_event_id, time, action, service, operation, outcome,
                 credential_id, credential_kind, agent_id, human_id, src_ip, user_agent, account, actor_uid,
                 actor_type, session_id, target, raw, details, file_id, record_no)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)""",
            [
                uid,
                source,
                sid,
                time,
                action,
                service,
                operation,
                outcome,
                credential,
                kind,
                agent,
                human,
                src_ip,
                user_agent,
                account,
                actor,
                actor_type,
                session,
                target,
                json.dumps(raw or {"id": sid}),
                # what the CloudTrail ingest stores in `details` (ingest.cloudtrail.sql)
                json.dumps(
                    {k: (raw or {}).get(k) for k in ("requestParameters", "responseElements")}
                )
                if source == "cloudtrail"
                else None,
                self.n,
            ],
        )
        for res in resources or []:
            rid, rtype, racct = (*res, account) if len(res) == 2 else res
            self.store.con.execute(
                "INSERT INTO event_resources VALUES (?, ?, ?, ?)", [uid, rid, rtype, racct]
            )
        return uid

    def issue(
        self,
        credential: str,
        kind: str,
        *,
        parent: str | None,
        event_uid: str,
        issued_at: datetime,
        expires_at: datetime | None = None,
        principal: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.store.con.execute(
            """INSERT INTO credential_issues (credential_id, kind, parent_credential_id, event_uid, issued_at,
                 expires_at, principal_uid, attributes, confidence, reason)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'proven', 'test')""",
            [
                credential,
                kind,
                parent,
                event_uid,
                issued_at,
                expires_at,
                principal,
                json.dumps(attributes) if attributes is not None else None,
            ],
        )
        if parent:
            self.link("MINTED", "credential", parent, "credential", credential, [event_uid])

    def agent(
        self,
        agent_id: str,
        *,
        retired: datetime | None = None,
        identities: list[str] | None = None,
        name: str | None = None,
        owner: str = "team-a@example.com",
    ) -> None:
        self.store.con.execute(
            """INSERT INTO inventory_agents (agent_id, name, owner, purpose, created, retired, identities, file_id,
                 record_no, raw) VALUES (?, ?, ?, 'test', ?, ?, ?, 2, 1, '{}')""",
            [agent_id, name or agent_id, owner, T0 - timedelta(days=30), retired, identities or []],
        )

    def link(
        self,
        kind: str,
        src_kind: str,
        src: str,
        dst_kind: str,
        dst: str,
        evidence: list[str],
        confidence: str = "proven",
    ) -> None:
        self.store.con.execute(
            """INSERT INTO links (src_kind, src, dst_kind, dst, kind, reason, confidence, evidence, evidence_count,
                 first_seen, last_seen) VALUES (?, ?, ?, ?, ?, 'test', ?, ?, ?, ?, ?)""",
            [src_kind, src, dst_kind, dst, kind, confidence, evidence, len(evidence), T0, T0],
        )

    def uses(
        self, agent: str, credential: str, evidence: list[str], confidence: str = "proven"
    ) -> None:
        self.link("USES", "agent", agent, "credential", credential, evidence, confidence)

    def routine(self, credential: str) -> None:
        """Six days of the same S3 read, twice a day, from one address: the baseline window that
        the drift tests' later events depart from (or not)."""
        for d in range(6):
            for h in range(2):
                self.event(
                    time=at(0, days=d, hours=h),
                    action="s3:GetObject",
                    credential=credential,
                    src_ip="198.51.100.7",
                    resources=[("arn:aws:s3:::ledger/a", "AWS::S3::Object")],
                )

    def close(self) -> Path:
        if self.store is not None:
            self.store.close()
            self.store = None  # type: ignore[assignment]
        return self.path

    def findings(self, rule: str | None = None, **kwargs: Any) -> list[Finding]:
        self.close()
        with CaseStore.open(self.path) as store:
            found = run_findings(store, **kwargs)
        for f in found:  # the contract every rule keeps
            assert f.evidence, f"{f.rule} without evidence"
            assert f.recommendation and f.description and f.frameworks
        return [f for f in found if rule is None or f.rule == rule]
