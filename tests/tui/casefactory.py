"""Small real case files for the explorer tests, built by inserting rows directly.

A tiny incident: alice delegates to the agent ``ledger-bot``; its long-lived key
AKIA1 assumes a role (minting ASIA1), which reads S3 objects and is denied once; a
Vault token is used to read a secret. One event carries hostile text (Rich markup,
ANSI escapes, zero-width characters, a 100 kB line) and one record carries an STS
session token that must be masked. Ingested tables are written, then
:func:`keytrail.ingest.finalize.finalize` runs as after a real ingest, so credentials,
principals and graph edges are derived by the real graph layer.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keytrail.ingest.finalize import finalize
from keytrail.store.case import CaseStore

T0 = datetime(2024, 5, 1, 12, 0, 0)
HOSTILE_UA = "[bold red]x[/] \x1b[31mred\x1b[0m zero\u200bwidth\u202eevil " + "A" * 100_000
HOSTILE_ACTION = "s3:[bold red]Boom[/]\x1b[2J"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENVALUE0123456789"


def _event(n: int, **kw: Any) -> dict[str, Any]:
    source = kw.get("source", "cloudtrail")
    sid = kw.pop("sid", f"ev-{n:05d}")
    raw = kw.pop("raw", None) or {"eventID": sid, "eventName": kw.get("action", "x"), "n": n}
    row = {
        "event_uid": f"{source}:{sid}",
        "source": source,
        "format": "cloudtrail-records",
        "source_event_id": sid,
        "time": T0 + timedelta(minutes=n),
        "time_raw": (T0 + timedelta(minutes=n)).isoformat() + "Z",
        "action": "s3:GetObject",
        "service": None,
        "operation": None,
        "outcome": "success",
        "actor_uid": "arn:aws:sts::111122223333:assumed-role/ledger/bot",
        "actor_name": "bot",
        "credential_id": "ASIA1",
        "credential_kind": "aws-temporary-key",
        "agent_id": None,
        "human_id": None,
        "user_agent": "aws-cli/2",
        "account": "111122223333",
        "region": "us-east-1",
        "target": "arn:aws:s3:::ledger/report.csv",
        "file_id": 1,
        "record_no": n,
        "raw": json.dumps(raw),
    }
    row.update(kw)
    return row


def events(extra: int = 0) -> list[dict[str, Any]]:
    evs = [
        _event(
            0,
            source="agent",
            sid="span-1",
            format="agent-jsonl",
            action="tool:aws_cli",
            actor_uid="ledger-bot",
            actor_name="ledger-bot",
            credential_id="AKIA1",
            credential_kind="aws-access-key",
            agent_id="ledger-bot",
            human_id="alice@example.com",
            target="sts assume-role",
            file_id=2,
            record_no=1,
        ),
        _event(
            1,
            sid="ev-assume",
            action="sts:AssumeRole",
            credential_id="AKIA1",
            credential_kind="aws-access-key",
            actor_uid="arn:aws:iam::111122223333:user/ledger-bot",
            actor_name="ledger-bot",
            raw={
                "eventID": "ev-assume",
                "eventName": "AssumeRole",
                "responseElements": {
                    "credentials": {"accessKeyId": "ASIA1", "sessionToken": SESSION_TOKEN}
                },
            },
        ),
        _event(2, sid="ev-get-1"),
        _event(3, sid="ev-get-2", target="arn:aws:s3:::ledger/payroll.csv"),
        _event(
            4,
            sid="ev-denied",
            action="s3:DeleteObject",
            outcome="denied",
            error_code="AccessDenied",
        ),
        _event(
            5,
            source="vault",
            sid="req-1",
            format="vault-audit-jsonl",
            action="vault:read",
            credential_id="hmac-sha256:abc",
            credential_kind="vault-token",
            actor_uid="entity-1",
            actor_name="ledger-bot",
            target="vault:secret/data/ledger/db",
            file_id=3,
            record_no=1,
            raw={"type": "response", "request": {"id": "req-1", "path": "secret/data/ledger/db"}},
        ),
        _event(
            6,
            sid="ev-hostile",
            action=HOSTILE_ACTION,
            user_agent=HOSTILE_UA,
            actor_name="[link=x]evil[/link]",
            raw={"eventID": "ev-hostile", "userAgent": HOSTILE_UA, "eventName": HOSTILE_ACTION},
        ),
    ]
    for i in range(extra):
        evs.append(
            _event(
                100 + i, sid=f"bulk-{i:06d}", action="s3:ListBucket" if i % 2 else "s3:GetObject"
            )
        )
    return evs


def make_case(path: Path, extra_events: int = 0) -> Path:
    """Write the tiny incident case to ``path`` (finalized) and return the path."""
    store = CaseStore.open(path, read_only=False, create=True)
    con = store.con
    try:
        con.execute("""INSERT INTO evidence (file_id, path, sha256, bytes, source, format, adapter, status, records,
                        rejected, integrity) VALUES
            (1, '/evidence/cloudtrail.json', 'aa11', 100, 'cloudtrail', 'cloudtrail-records', 'cloudtrail', 'loaded',
             7, 1, 'no-digest'),
            (2, '/evidence/agent.jsonl', 'bb22', 50, 'agent', 'agent-jsonl', 'agent_jsonl', 'loaded', 1, 0, NULL),
            (3, '/evidence/vault.log', 'cc33', 50, 'vault', 'vault-audit-jsonl', 'vault', 'loaded', 1, 0, NULL)""")
        con.execute("INSERT INTO rejects VALUES (1, 9, 900, 'not JSON', '{broken')")
        rows = events(extra_events)
        import pyarrow as pa

        cols = sorted({k for r in rows for k in r})
        table = pa.table({c: [r.get(c) for r in rows] for c in cols})
        con.register("ev_in", table)
        con.execute(f"INSERT INTO events ({', '.join(cols)}) SELECT {', '.join(cols)} FROM ev_in")
        con.unregister("ev_in")
        con.execute("""INSERT INTO event_resources VALUES
            ('cloudtrail:ev-get-1', 'arn:aws:s3:::ledger/report.csv', 'AWS::S3::Object', '111122223333'),
            ('cloudtrail:ev-get-2', 'arn:aws:s3:::ledger/payroll.csv', 'AWS::S3::Object', '111122223333'),
            ('vault:req-1', 'vault:secret/data/ledger/db', 'vault-secret', NULL)""")
        con.execute(
            """INSERT INTO credential_issues (credential_id, kind, parent_credential_id, event_uid, issued_at,
                        principal_uid, confidence, reason) VALUES
            ('ASIA1', 'aws-temporary-key', 'AKIA1', 'cloudtrail:ev-assume', ?,
             'arn:aws:sts::111122223333:assumed-role/ledger/bot', 'proven',
             'AssumeRole responseElements.credentials.accessKeyId')""",
            [T0 + timedelta(minutes=1)],
        )
        con.execute("""INSERT INTO inventory_agents (agent_id, name, owner, purpose, identities, file_id, record_no)
            VALUES ('ledger-bot', 'Ledger bot', 'finance-team', 'reconcile ledgers', ['AKIA1'], 4, 1)""")
        finalize(
            store
        )  # dedup, counts and the graph layer's derived tables, as after a real ingest
    finally:
        store.close()
    return path
