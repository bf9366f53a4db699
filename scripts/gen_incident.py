"""Generate the sample incident in ``sample_data/incident`` (deterministic; see docs/sample-incident.md).

Run: ``python scripts/gen_incident.py [--out sample_data/incident] [--answers]``.

The story (nine days from 2026-03-02, two AWS accounts, one Vault, four agents) is told
once, in order: the reconciler's daily run here, the other scenes in :mod:`incident_scenes`,
the cast in :mod:`incident_cast`, all through the record builders of :mod:`samplegen`. A fixed seed and
fixed times make every identifier and every byte reproducible, so the expected answers
in docs/sample-incident.md and tests/e2e/test_sample_incident.py stay true.
``--answers`` prints the key identifiers the documentation and the tests refer to.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import samplegen as g
from incident_cast import (
    BASE,
    DAYS,
    INVENTORY,
    MARIA,
    NAT_APP,
    POD_REC,
    RA,
    RECON,
    SEED,
    SPRAWL,
    UA_REC,
    UA_VAULT,
    VAULT_EGRESS,
    A,
)
from incident_scenes import Scenes

__all__ = ["RECON", "SEED", "SPRAWL", "Story", "main"]


class Story(Scenes):
    """The whole story: the reconciler's daily runs and every other scene, in time order."""

    def reconciler_run(self, day: int) -> dict[str, Any]:
        """One daily run of the ledger reconciler: Vault login -> child token -> secret -> STS key -> S3."""
        ids, rng = self.ids, self.rng
        t0 = BASE + timedelta(days=day, hours=9, seconds=rng.randrange(240))
        trace, root = ids.hex(32), ids.hex(16)
        session = f"rec-{t0:%Y%m%d}-{ids.hex(6)}"
        spans: list[dict[str, Any]] = []
        base_attrs = {
            "gen_ai.agent.id": "ledger-reconciler",
            "gen_ai.agent.name": "Ledger Reconciler",
            "enduser.id": MARIA,
            "session.id": session,
        }

        def tool(
            start: datetime, secs: float, name: str, args: dict[str, Any], err: str | None = None
        ) -> None:
            spans.append(
                g.span(
                    trace,
                    ids.hex(16),
                    root,
                    f"execute_tool {name}",
                    start,
                    start + timedelta(seconds=secs),
                    1,
                    dict(
                        base_attrs,
                        **{
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": name,
                            "gen_ai.tool.type": "function",
                            "gen_ai.tool.call.id": "call_" + ids.alnum(24),
                            "gen_ai.tool.call.arguments": json.dumps(args),
                        },
                    ),
                    err,
                )
            )

        def chat(start: datetime, secs: float) -> None:
            spans.append(
                g.span(
                    trace,
                    ids.hex(16),
                    root,
                    "chat gpt-4.1",
                    start,
                    start + timedelta(seconds=secs),
                    3,
                    dict(
                        base_attrs,
                        **{
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4.1",
                            "gen_ai.response.model": "gpt-4.1-2025-04-14",
                            "gen_ai.usage.input_tokens": 1800 + rng.randrange(900),
                            "gen_ai.usage.output_tokens": 120 + rng.randrange(300),
                        },
                    ),
                )
            )

        chat(t0 + timedelta(seconds=1), 1.4)
        # Vault AppRole login: the request carries no token; the response's top-level auth is the new token.
        t = t0 + timedelta(seconds=3, milliseconds=212)
        tool(
            t - timedelta(milliseconds=30),
            0.2,
            "vault_login",
            {"mount": "approle", "role": "ledger-reconciler"},
        )
        login = g.VaultToken(
            ids,
            "approle",
            ["default", "ledger-reconciler"],
            self.entity_rec,
            {"role_name": "ledger-reconciler"},
            t,
            ttl=3600,
        )
        login_id = self.vpair(
            t,
            {"token_type": "default", "policy_results": {"allowed": True}},
            "update",
            "auth/approle/",
            "auth/approle/login",
            remote=POD_REC,
            data={"role_id": self.role_id, "secret_id": self.secret_id},
            response={"auth": login.response_auth()},
            resp_auth_top=login.auth(),
        )
        # Child token for the batch (auth/token/create): top-level auth = creator, response.auth = child.
        t += timedelta(seconds=1, milliseconds=37)
        tool(
            t - timedelta(milliseconds=20),
            0.1,
            "vault_token_create",
            {"display_name": "ledger-batch", "ttl": "30m"},
        )
        child = g.VaultToken(
            ids,
            "token-ledger-batch",
            ["default", "ledger-reconciler"],
            self.entity_rec,
            None,
            t,
            ttl=1800,
        )
        create_id = self.vpair(
            t,
            login.auth(),
            "update",
            "auth/token/",
            "auth/token/create",
            remote=POD_REC,
            data={"display_name": "ledger-batch", "policies": ["ledger-reconciler"], "ttl": "30m"},
            response={"auth": child.response_auth()},
        )
        t += timedelta(seconds=1, milliseconds=311)
        tool(t - timedelta(milliseconds=15), 0.1, "vault_read", {"path": "secret/data/ledger/db"})
        self.vpair(
            t,
            child.auth(),
            "read",
            "secret/",
            "secret/data/ledger/db",
            remote=POD_REC,
            response={
                "data": {
                    "data": {"username": "ledger_rw", "password": ids.alnum(32)},
                    "metadata": {
                        "created_time": "2026-01-12T10:04:11Z",
                        "version": 3,
                        "destroyed": False,
                        "deletion_time": "",
                    },
                }
            },
        )
        # Dynamic STS credentials: Vault assumes the role with its own key; the session name follows the template.
        t = t.replace(microsecond=0) + timedelta(seconds=2)
        tool(
            t - timedelta(milliseconds=120), 0.6, "aws_credentials", {"path": "aws/sts/reconciler"}
        )
        key = ids.key("ASIA")
        session_name = g.vault_aws_name(child.display_name, "reconciler", t, ids)
        role_arn = f"arn:aws:iam::{A}:role/ledger-reconciler"
        mint = self.ctev(
            t,
            A,
            RA,
            self.vault_engine(),
            "sts",
            "AssumeRole",
            ip=VAULT_EGRESS,
            ua=UA_VAULT,
            read_only=True,
            request={"roleArn": role_arn, "roleSessionName": session_name, "durationSeconds": 3600},
            response=g.assume_role_response(
                ids, t, A, "ledger-reconciler", session_name, self.aroa_rec, key
            ),
            resources=[{"accountId": A, "type": "AWS::IAM::Role", "ARN": role_arn}],
        )
        tuned = day == DAYS - 1  # the aws/ mount was tuned on 2026-03-09 18:20 (see admin_tune)
        lease = f"aws/sts/reconciler/{ids.alnum(24)}"
        sts_id = self.vpair(
            t + timedelta(milliseconds=102),
            child.auth(),
            "read",
            "aws/",
            "aws/sts/reconciler",
            remote=POD_REC,
            latency_ms=351,
            keep_response_keys=frozenset({"access_key"}) if tuned else frozenset(),
            response={
                "secret": {"lease_id": lease},
                "data": {
                    "access_key": key,
                    "secret_key": ids.alnum(40),
                    "security_token": "IQoJb3JpZ2luX2VjE" + ids.alnum(100),
                    "session_token": "IQoJb3JpZ2luX2VjE" + ids.alnum(100),
                    "arn": f"arn:aws:sts::{A}:assumed-role/ledger-reconciler/{session_name}",
                    "ttl": 3599,
                },
            },
        )
        ident = g.role_identity(A, "ledger-reconciler", session_name, self.aroa_rec, key, t)
        t += timedelta(seconds=3)
        prefix = f"statements/{t0:%Y/%m/%d}/"
        tool(t, 0.3, "s3_list_objects", {"Bucket": "finco-ledger-prod", "Prefix": prefix})
        self.ctev(
            t,
            A,
            RA,
            ident,
            "s3",
            "ListObjects",
            ip=NAT_APP,
            ua=UA_REC,
            data_event=True,
            read_only=True,
            request={
                "bucketName": "finco-ledger-prod",
                "Host": f"finco-ledger-prod.s3.{RA}.amazonaws.com",
                "list-type": "2",
                "prefix": prefix,
            },
            additional={
                "SignatureVersion": "SigV4",
                "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0,
                "AuthenticationMethod": "AuthHeader",
                "x-amz-id-2": ids.alnum(56),
                "bytesTransferredOut": 2211,
            },
            resources=[
                {"accountId": A, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::finco-ledger-prod"}
            ],
        )
        gets = []
        for n in range(1, 4):
            t += timedelta(seconds=2 + rng.randrange(3))
            obj = f"{prefix}stmt-{n:04d}.csv"
            tool(
                t - timedelta(milliseconds=400),
                0.5,
                "s3_get_object",
                {"Bucket": "finco-ledger-prod", "Key": obj},
            )
            gets.append(
                self.s3(
                    t, A, RA, ident, "GetObject", "finco-ledger-prod", obj, ip=NAT_APP, ua=UA_REC
                )["eventID"]
            )
        chat(t + timedelta(seconds=2), 2.1)
        run = {
            "trace": trace,
            "root": root,
            "session": session,
            "t0": t0,
            "spans": spans,
            "login": login,
            "child": child,
            "key": key,
            "ident": ident,
            "session_name": session_name,
            "lease": lease,
            "login_request_id": login_id,
            "create_request_id": create_id,
            "sts_request_id": sts_id,
            "mint_event": mint["eventID"],
            "get_events": gets,
            "t": t,
            "tool": tool,
            "chat": chat,
        }
        return run

    def close_run(self, run: dict[str, Any], end: datetime) -> None:
        attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "ledger-reconciler",
            "gen_ai.agent.name": "Ledger Reconciler",
            "gen_ai.agent.description": "Reconciles bank statements",
            "enduser.id": MARIA,
            "session.id": run["session"],
            "gen_ai.conversation.id": run["session"],
        }
        root = g.span(
            run["trace"],
            run["root"],
            "",
            "invoke_agent Ledger Reconciler",
            run["t0"],
            end,
            1,
            attrs,
        )
        self.otlp.append(
            g.otlp_line(
                "ledger-reconciler", "2.4.0", "ledger-reconciler-7d9f8-x2kq", [root] + run["spans"]
            )
        )

    def tell(self) -> None:
        support_objects = {
            5: "tickets/47731/statement.pdf",
            7: "tickets/48213/invoice.pdf",
            8: "tickets/48390/remittance.png",
        }
        for day in range(DAYS):
            run = self.reconciler_run(day)
            self.answers.setdefault("daily_keys", []).append(run["key"])
            self.answers.setdefault("daily_login_accessors", []).append(run["login"].accessor)
            end = self.incident(run) if day == DAYS - 1 else run["t"] + timedelta(seconds=5)
            self.close_run(run, end)
            if day == DAYS - 2:  # the last HMAC'd issuance: matched by the name template only
                self.answers.update(
                    strong_key=run["key"],
                    strong_session_name=run["session_name"],
                    strong_sts_request_id=run["sts_request_id"],
                    strong_child_accessor=run["child"].accessor,
                    strong_get_events=run["get_events"],
                )
            if day == DAYS - 1:
                self.answers.update(
                    incident_login_accessor=run["login"].accessor,
                    incident_child_accessor=run["child"].accessor,
                    incident_key=run["key"],
                    incident_session_name=run["session_name"],
                    incident_lease=run["lease"],
                    incident_login_request_id=run["login_request_id"],
                    incident_create_request_id=run["create_request_id"],
                    incident_sts_request_id=run["sts_request_id"],
                    incident_mint_event=run["mint_event"],
                    incident_trace_id=run["trace"],
                )
            self.triage_day(day)
            if day <= 2 or day == 7:  # retired 2026-03-05; runs again on 2026-03-09
                ev = self.vendor_night(day)
                if day == 7:
                    self.answers["vendor_after_retirement_events"] = ev
            if day == 4:
                self.console_use()
            if day >= 3:
                ev_id = self.support_day(day, support_objects.get(day))
                if ev_id:
                    self.answers.setdefault("support_s3_events", []).append(ev_id)
            if day == 7:
                self.admin_tune()
        self.ci_orphan()

    def write(self, out: Path) -> dict[str, Any]:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        by_file: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for rec in sorted(self.ct, key=lambda r: (r["eventTime"], r["eventID"])):
            t = datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
            by_file[(rec["recipientAccountId"], rec["awsRegion"], t.strftime("%Y%m%d%H"))].append(
                rec
            )
        names = g.Ids(random.Random(SEED + 1))
        for (acct, region, hour), recs in sorted(by_file.items()):
            # CloudTrail delivers about every 5 minutes; one file per account, region and hour keeps it small.
            stamp = datetime.strptime(hour, "%Y%m%d%H") + timedelta(minutes=55)
            g.write_gz_json(out / g.ct_file_name(acct, region, stamp, names), {"Records": recs})
        g.write_jsonl(
            out / "vault" / "vault_audit.log",
            sorted(self.vault, key=lambda e: datetime.fromisoformat(e["time"])),
        )
        g.write_jsonl(out / "agents" / "otel" / "traces.jsonl", self.otlp)
        g.write_jsonl(out / "agents" / "mcp" / "support-copilot-mcp.jsonl", self.mcp)
        for agent, rows in sorted(self.native.items()):
            g.write_jsonl(out / "agents" / "native" / f"{agent}.jsonl", rows)
        (out / "inventory.toml").write_text(
            INVENTORY.format(A=A, triage_key=self.triage_user[2]), encoding="utf-8"
        )
        self.answers["counts"] = {
            "cloudtrail_records": len(self.ct),
            "cloudtrail_files": len(by_file),
            "vault_entries": len(self.vault),
            "vault_requests": len(self.vault) // 2,
            "otlp_lines": len(self.otlp),
            "otlp_spans": sum(
                len(ss["spans"])
                for line in self.otlp
                for rs in line["resourceSpans"]
                for ss in rs["scopeSpans"]
            ),
            "mcp_lines": len(self.mcp),
            "native_lines": sum(len(v) for v in self.native.values()),
        }
        return self.answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "sample_data" / "incident")
    )
    ap.add_argument("--answers", action="store_true", help="print the key identifiers as JSON")
    args = ap.parse_args(argv)
    story = Story()
    story.tell()
    answers = story.write(Path(args.out))
    if args.answers:
        print(json.dumps(answers, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
