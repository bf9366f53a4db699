"""Build small real DuckDB cases for graph tests by inserting ingested rows directly.

Rows follow the adapter conventions in docs/architecture.md (event uids, actions,
credential kinds, resource ids); :func:`finalize` then runs the real end-of-ingest
path, including :func:`keytrail.graph.derive.derive`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keytrail.ingest.finalize import finalize
from keytrail.store.case import CaseStore

T0 = datetime(2024, 3, 1, 12, 0, 0)
ACCT = "111122223333"


class CaseBuilder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = CaseStore.open(path, read_only=False, create=True)
        self.store.con.execute(
            "INSERT INTO evidence (file_id, path, sha256, source, status) VALUES (1, 'synthetic', 'x', 'cloudtrail', 'loaded')"
        )
        self.n = 0

    def event(
        self,
        source: str,
        sid: str,
        seconds: float,
        action: str,
        *,
        cred: str | None = None,
        cred_kind: str | None = None,
        actor: str | None = None,
        actor_type: str | None = None,
        actor_name: str | None = None,
        outcome: str = "success",
        agent: str | None = None,
        human: str | None = None,
        target: str | None = None,
        resources: tuple[str, ...] = (),
        account: str | None = ACCT,
        shared: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> str:
        self.n += 1
        prefix = {"cloudtrail": "cloudtrail", "vault": "vault", "agent": "agent"}[source]
        uid = f"{prefix}:{sid}"
        service, _, op = action.partition(":")
        self.store.con.execute(
            """INSERT INTO events (event_uid, source, source_event_id, time, action, service, operation, outcome,
                 actor_uid, actor_type, actor_name, credential_id, credential_kind, agent_id, human_id, account,
                 target, shared_event_id, details, raw, file_id, record_no)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)""",
            [
                uid,
                source,
                sid,
                T0 + timedelta(seconds=seconds),
                action,
                service,
                op,
                outcome,
                actor,
                actor_type,
                actor_name,
                cred,
                cred_kind,
                agent,
                human,
                account,
                target,
                shared,
                json.dumps(details or {}),
                json.dumps({"id": sid}),
                self.n,
            ],
        )
        for r in resources:
            self.store.con.execute(
                "INSERT INTO event_resources VALUES (?, ?, ?, ?)", [uid, r, None, account]
            )
        return uid

    def issue(
        self,
        cred: str,
        kind: str,
        parent: str | None,
        event_uid: str,
        seconds: float,
        *,
        principal: str | None = None,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
        confidence: str = "proven",
        reason: str = "test issuance",
    ) -> None:
        self.store.con.execute(
            "INSERT INTO credential_issues VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            [
                cred,
                kind,
                parent,
                event_uid,
                T0 + timedelta(seconds=seconds),
                principal,
                name,
                json.dumps(attributes or {}),
                confidence,
                reason,
            ],
        )

    def agent(self, agent_id: str, identities: list[str], owner: str = "ops@example.com") -> None:
        self.store.con.execute(
            "INSERT INTO inventory_agents (agent_id, name, owner, identities, file_id, record_no) VALUES (?, ?, ?, ?, 1, 1)",
            [agent_id, agent_id, owner, identities],
        )

    def finalize(self) -> CaseStore:
        finalize(self.store)
        self.store.close()
        return CaseStore.open(self.path)


ROLE = f"arn:aws:iam::{ACCT}:role/LedgerRole"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/LedgerRole/ledger-sess"
VAULT_USER = "vault-approle-ledger-1709294400"
VAULT_USER_ARN = f"arn:aws:iam::{ACCT}:user/{VAULT_USER}-abcd"


def incident(path: Path) -> CaseStore:
    """A small incident with every edge rule: Vault logins, AWS engine, role chain, agents, stolen key."""
    b = CaseBuilder(path)
    # A person logs in to Vault with OIDC and creates a token for the agent.
    ev = b.event(
        "vault", "v-login-alice", 0, "vault:update", target="vault:auth/oidc/login", account="root"
    )
    b.issue(
        "acc-alice",
        "vault-token",
        None,
        ev,
        0,
        principal="ent-alice",
        name="oidc-alice@example.com",
        attributes={"metadata": {"role": "default"}},
    )
    ev = b.event(
        "vault",
        "v-create",
        10,
        "vault:update",
        cred="acc-alice",
        cred_kind="vault-token",
        actor="ent-alice",
        actor_name="oidc-alice@example.com",
        target="vault:auth/token/create",
        account="root",
    )
    b.issue("acc-child", "vault-token", "acc-alice", ev, 10, name="token-helper")
    # AppRole login of the agent; reads a secret and asks the AWS engine for a key.
    ev = b.event(
        "vault",
        "v-login-app",
        20,
        "vault:update",
        target="vault:auth/approle/login",
        account="root",
    )
    b.issue(
        "acc-app",
        "vault-token",
        None,
        ev,
        20,
        principal="ent-app",
        name="approle",
        attributes={"metadata": {"role_name": "ledger"}},
    )
    b.event(
        "vault",
        "v-read",
        30,
        "vault:read",
        cred="acc-app",
        cred_kind="vault-token",
        actor="ent-app",
        actor_name="approle",
        target="vault:secret/data/ledger/db",
        resources=("vault:secret/data/ledger/db",),
        account="root",
    )
    ev = b.event(
        "vault",
        "v-aws",
        40,
        "vault:read",
        cred="acc-app",
        cred_kind="vault-token",
        actor="ent-app",
        actor_name="approle",
        target="vault:aws/creds/ledger",
        resources=("vault:aws/creds/ledger",),
        account="root",
    )
    # The key id is HMAC'd in the audit log: only the lease is issued, with Vault's name stem.
    b.issue(
        "lease-aws-1",
        "vault-lease",
        "acc-app",
        ev,
        40,
        attributes={"username_prefix": VAULT_USER, "access_key": "hmac-sha256:aaaa"},
    )
    # Vault's own AWS key creates the IAM user and its key (CloudTrail).
    vault_root = "AKIAVAULTROOT0000001"
    vault_arn = f"arn:aws:iam::{ACCT}:user/vault-root"
    b.event(
        "cloudtrail",
        "ct-createuser",
        41,
        "iam:CreateUser",
        cred=vault_root,
        cred_kind="aws-access-key",
        actor=vault_arn,
        actor_type="IAMUser",
        actor_name="vault-root",
        resources=(VAULT_USER_ARN,),
    )
    ev = b.event(
        "cloudtrail",
        "ct-createkey",
        42,
        "iam:CreateAccessKey",
        cred=vault_root,
        cred_kind="aws-access-key",
        actor=vault_arn,
        actor_type="IAMUser",
        actor_name="vault-root",
    )
    b.issue(
        "AKIANEWKEY0000000001",
        "aws-access-key",
        vault_root,
        ev,
        42,
        principal=VAULT_USER_ARN,
        name=f"{VAULT_USER}-abcd",
        reason="CreateAccessKey responseElements.accessKey.accessKeyId",
    )
    # The new key assumes a role (two cross-account copies of one call), the session acts.
    for i, acct in enumerate((ACCT, "444455556666")):
        ev = b.event(
            "cloudtrail",
            f"ct-assume-{i}",
            60,
            "sts:AssumeRole",
            cred="AKIANEWKEY0000000001",
            cred_kind="aws-access-key",
            actor=VAULT_USER_ARN,
            actor_type="IAMUser",
            actor_name=f"{VAULT_USER}-abcd",
            resources=(ROLE,),
            account=acct,
            shared="shared-1",
        )
        b.issue(
            "ASIACHAIN00000000001",
            "aws-temporary-key",
            "AKIANEWKEY0000000001",
            ev,
            60,
            principal=SESSION,
            name="ledger-sess",
            reason="AssumeRole responseElements.credentials.accessKeyId",
        )
    # The agent's tool call and the API call it caused three seconds later.
    b.agent("ledger-bot", ["vault:approle/ledger", ROLE])
    b.event(
        "agent",
        "tool-1",
        97,
        "tool:s3_get_object",
        agent="ledger-bot",
        human="bob@example.com",
        resources=("s3://ledger/q1.csv",),
    )
    b.event(
        "cloudtrail",
        "ct-get",
        100,
        "s3:GetObject",
        cred="ASIACHAIN00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        actor_name="ledger-sess",
        resources=("arn:aws:s3:::ledger/q1.csv", "arn:aws:s3:::ledger"),
    )
    b.event(
        "cloudtrail",
        "ct-put",
        110,
        "s3:PutObject",
        cred="ASIACHAIN00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        resources=("arn:aws:s3:::ledger/out.csv",),
    )
    b.event(
        "cloudtrail",
        "ct-attach",
        120,
        "iam:AttachRolePolicy",
        cred="ASIACHAIN00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        outcome="denied",
        resources=(ROLE,),
    )
    b.event(
        "cloudtrail",
        "ct-secret",
        130,
        "secretsmanager:GetSecretValue",
        cred="ASIACHAIN00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        resources=(f"arn:aws:secretsmanager:us-east-1:{ACCT}:secret:db-abc",),
    )
    # Stolen instance credentials used from outside: no issuing event in the evidence.
    b.event(
        "cloudtrail",
        "ct-stolen",
        200,
        "s3:ListBuckets",
        cred="ASIASTOLEN0000000001",
        cred_kind="aws-temporary-key",
        actor=f"arn:aws:sts::{ACCT}:assumed-role/web-ec2/i-0abc",
        actor_type="AssumedRole",
        human=None,
    )
    return b.finalize()
