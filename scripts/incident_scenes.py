"""The sample incident's scenes other than the reconciler's daily run (see docs/sample-incident.md).

Each method appends the records one scene leaves in every source and notes the ids the
documentation and the tests refer to in ``self.answers``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import samplegen as g
from incident_cast import (
    BASE,
    CI_IP,
    JPARK,
    NAT_APP,
    OFFICE_IP,
    OKAFOR,
    OUTSIDE_IP,
    POD_ADMIN,
    POD_REC,
    RA,
    RB,
    RECON,
    SPRAWL,
    SUPPORT_IP,
    TRIAGE_IP,
    UA_BROWSER,
    UA_CI,
    UA_OUTSIDE,
    UA_REC,
    UA_SUPPORT,
    UA_TRIAGE,
    UA_VAULT,
    UA_VENDOR,
    VAULT_EGRESS,
    VENDOR_IP,
    A,
    B,
    StoryBase,
)


class Scenes(StoryBase):
    def incident(self, run: dict[str, Any]) -> datetime:
        """2026-03-10: the poisoned invoice, secret sprawl, a proven key, recon, cross-account, a backdoor."""
        ids, rng, tool, child = self.ids, self.rng, run["tool"], run["child"]
        ident, _key = run["ident"], run["key"]
        t: datetime = run["t"] + timedelta(seconds=5)
        poisoned = "inbound-invoices/2026/03/10/INV-88412.pdf"
        tool(
            t - timedelta(milliseconds=300),
            0.4,
            "s3_get_object",
            {"Bucket": "finco-ledger-prod", "Key": poisoned},
        )
        self.answers["poisoned_invoice_event"] = self.s3(
            t,
            A,
            RA,
            ident,
            "GetObject",
            "finco-ledger-prod",
            poisoned,
            ip=NAT_APP,
            ua=UA_REC,
            size=48213,
        )["eventID"]
        run["chat"](t + timedelta(seconds=1), 3.2)
        t += timedelta(seconds=6)
        sprawl = []
        for path, allowed in SPRAWL[1:]:
            t += timedelta(milliseconds=700 + rng.randrange(900))
            tool(
                t - timedelta(milliseconds=10),
                0.05,
                "vault_read",
                {"path": path},
                None if allowed else "permission denied",
            )
            sprawl.append(
                self.vpair(
                    t,
                    child.auth(allowed),
                    "read",
                    "secret/",
                    path,
                    remote=POD_REC,
                    error=None if allowed else g.DENIED,
                    response={
                        "data": {
                            "data": {"value": ids.alnum(40)},
                            "metadata": {
                                "created_time": "2025-11-20T08:00:00Z",
                                "version": 1,
                                "destroyed": False,
                                "deletion_time": "",
                            },
                        }
                    }
                    if allowed
                    else None,
                )
            )
        self.answers["sprawl_request_ids"] = sprawl
        # aws/creds (iam_user) on the tuned mount: access_key logged in plain text -> proven join.
        t = t.replace(microsecond=0) + timedelta(seconds=4)
        tool(
            t - timedelta(milliseconds=200),
            1.5,
            "aws_credentials",
            {"path": "aws/creds/ledger-exporter"},
        )
        user = g.vault_aws_name(child.display_name, "ledger-exporter", t, ids)
        aida, k1 = ids.unique("AIDA"), ids.key("AKIA")
        uarn = f"arn:aws:iam::{A}:user/vault/{user}"
        ve = self.vault_engine()
        self.ctev(
            t,
            A,
            RA,
            ve,
            "iam",
            "CreateUser",
            ip=VAULT_EGRESS,
            ua=UA_VAULT,
            read_only=False,
            request={"path": "/vault/", "userName": user, "tags": []},
            response={
                "user": {
                    "path": "/vault/",
                    "userName": user,
                    "userId": aida,
                    "arn": uarn,
                    "createDate": g.aws_display_time(t),
                }
            },
        )
        self.ctev(
            t,
            A,
            RA,
            ve,
            "iam",
            "PutUserPolicy",
            ip=VAULT_EGRESS,
            ua=UA_VAULT,
            read_only=False,
            request={
                "userName": user,
                "policyName": "vault-ledger-exporter",
                "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":'
                '["s3:PutObject","s3:GetObject"],"Resource":["arn:aws:s3:::finco-ledger-'
                'exports/*","arn:aws:s3:::finco-ledger-prod/exports/*"]}]}',
            },
        )
        mint = self.ctev(
            t + timedelta(seconds=1),
            A,
            RA,
            ve,
            "iam",
            "CreateAccessKey",
            ip=VAULT_EGRESS,
            ua=UA_VAULT,
            read_only=False,
            request={"userName": user},
            response={
                "accessKey": {
                    "userName": user,
                    "accessKeyId": k1,
                    "status": "Active",
                    "createDate": g.aws_display_time(t + timedelta(seconds=1)),
                }
            },
        )
        lease = f"aws/creds/ledger-exporter/{ids.alnum(24)}"
        creds_id = self.vpair(
            t + timedelta(milliseconds=48),
            child.auth(),
            "read",
            "aws/",
            "aws/creds/ledger-exporter",
            remote=POD_REC,
            latency_ms=1307,
            keep_response_keys=frozenset({"access_key"}),
            response={
                "secret": {"lease_id": lease},
                "data": {"access_key": k1, "secret_key": ids.alnum(40), "security_token": None},
            },
        )
        k1_ident = g.iam_user_identity(A, user, aida, k1)
        t += timedelta(seconds=14)  # IAM keys take a few seconds to propagate
        k1_events = []
        dump = "tmp/recon-dump-20260310.tar.gz"
        for bucket, obj, name in [
            ("finco-ledger-prod", "exports/gl-2026-02.csv", "GetObject"),
            ("finco-ledger-prod", "exports/ap-aging-2026-02.csv", "GetObject"),
            ("finco-ledger-exports", dump, "PutObject"),
        ]:
            t += timedelta(seconds=3)
            tool(
                t - timedelta(milliseconds=300),
                0.5,
                "s3_" + ("get" if name == "GetObject" else "put") + "_object",
                {"Bucket": bucket, "Key": obj},
            )
            k1_events.append(
                self.s3(t, A, RA, k1_ident, name, bucket, obj, ip=NAT_APP, ua=UA_REC)["eventID"]
            )
        self.answers.update(
            exporter_key=k1,
            exporter_user=user,
            exporter_mint_event=mint["eventID"],
            exporter_lease=lease,
            exporter_creds_request_id=creds_id,
            exporter_events=k1_events,
        )
        # Denied recon burst with the STS key.
        t += timedelta(seconds=20)
        burst = []
        for svc, name, code in RECON:
            t += timedelta(milliseconds=1500 + rng.randrange(2500))
            tool(
                t - timedelta(milliseconds=200),
                0.3,
                "aws_api_call",
                {"service": svc, "operation": name},
                code,
            )
            msg = (
                f"User: {ident['arn']} is not authorized to perform: {svc}:{name.replace('20150331', '')} "
                "because no identity-based policy allows the action"
            )
            region = RA
            burst.append(
                self.ctev(
                    t,
                    A,
                    region,
                    ident,
                    svc,
                    name,
                    ip=NAT_APP,
                    ua=UA_REC,
                    read_only=True,
                    request=None,
                    error=(code, msg),
                )["eventID"]
            )
        t += timedelta(seconds=2)
        self.ctev(
            t,
            A,
            RA,
            ident,
            "sts",
            "GetCallerIdentity",
            ip=NAT_APP,
            ua=UA_REC,
            read_only=True,
            request=None,
            response=None,
        )
        self.answers["recon_events"] = burst
        # Role chaining into the analytics account; CloudTrail writes one copy per account.
        t += timedelta(seconds=9)
        tool(
            t - timedelta(milliseconds=300),
            0.5,
            "aws_assume_role",
            {
                "RoleArn": f"arn:aws:iam::{B}:role/analytics-readonly",
                "RoleSessionName": "reconciler-xacct",
            },
        )
        k3, role_b = ids.key("ASIA"), f"arn:aws:iam::{B}:role/analytics-readonly"
        shared, req_id = ids.uuid(), ids.uuid()
        resp = g.assume_role_response(
            ids, t, B, "analytics-readonly", "reconciler-xacct", self.aroa_ana, k3
        )
        req = {"roleArn": role_b, "roleSessionName": "reconciler-xacct", "durationSeconds": 3600}
        res = [{"accountId": B, "type": "AWS::IAM::Role", "ARN": role_b}]
        xa = self.ctev(
            t,
            A,
            RA,
            ident,
            "sts",
            "AssumeRole",
            ip=NAT_APP,
            ua=UA_REC,
            read_only=True,
            request=req,
            response=resp,
            resources=res,
            shared_event_id=shared,
            request_id=req_id,
        )
        owner_ident = {
            "type": "AWSAccount",
            "principalId": f"{self.aroa_rec}:{run['session_name']}",
            "accountId": A,
        }
        xb = self.ctev(
            t,
            B,
            RA,
            owner_ident,
            "sts",
            "AssumeRole",
            ip=NAT_APP,
            ua=UA_REC,
            read_only=True,
            request=req,
            response=resp,
            resources=res,
            shared_event_id=shared,
            request_id=req_id,
        )
        ib = g.role_identity(B, "analytics-readonly", "reconciler-xacct", self.aroa_ana, k3, t)
        k3_events = []
        for svc, name, request in [
            ("glue", "GetDatabases", {"catalogId": B}),
            ("glue", "GetTables", {"catalogId": B, "databaseName": "customers"}),
            (
                "athena",
                "StartQueryExecution",
                {
                    "queryString": "SELECT * FROM customers.accounts LIMIT 100000",
                    "workGroup": "primary",
                    "resultConfiguration": {
                        "outputLocation": "s3://finco-analytics-exports/athena/"
                    },
                },
            ),
            ("athena", "GetQueryExecution", {"queryExecutionId": ids.uuid()}),
        ]:
            t += timedelta(seconds=20 + rng.randrange(40))
            tool(
                t - timedelta(milliseconds=300),
                0.5,
                "aws_api_call",
                {"service": svc, "operation": name},
            )
            k3_events.append(
                self.ctev(
                    t,
                    B,
                    RB,
                    ib,
                    svc,
                    name,
                    ip=NAT_APP,
                    ua=UA_REC,
                    read_only=name != "StartQueryExecution",
                    request=request,
                    response=None,
                )["eventID"]
            )
        for n in range(1, 5):
            t += timedelta(seconds=5 + rng.randrange(10))
            obj = f"customers/2026-03/part-{n:05d}.snappy.parquet"
            tool(
                t - timedelta(milliseconds=300),
                0.8,
                "s3_get_object",
                {"Bucket": "finco-analytics-exports", "Key": obj},
            )
            k3_events.append(
                self.s3(
                    t,
                    B,
                    RB,
                    ib,
                    "GetObject",
                    "finco-analytics-exports",
                    obj,
                    ip=NAT_APP,
                    ua=UA_REC,
                    size=20_000_000 + rng.randrange(5_000_000),
                )["eventID"]
            )
        self.answers.update(
            xacct_key=k3,
            xacct_event_a=xa["eventID"],
            xacct_event_b=xb["eventID"],
            xacct_shared_event_id=shared,
            xacct_events=k3_events,
        )
        # The backdoor: a long-lived key for another IAM user.
        t += timedelta(seconds=40)
        tool(
            t - timedelta(milliseconds=300),
            0.5,
            "aws_api_call",
            {"service": "iam", "operation": "CreateAccessKey", "UserName": "svc-backup-export"},
        )
        bk = ids.key("AKIA")
        bname, baida = self.backup_user
        backdoor = self.ctev(
            t,
            A,
            RA,
            ident,
            "iam",
            "CreateAccessKey",
            ip=NAT_APP,
            ua=UA_REC,
            read_only=False,
            request={"userName": bname},
            response={
                "accessKey": {
                    "userName": bname,
                    "accessKeyId": bk,
                    "status": "Active",
                    "createDate": g.aws_display_time(t),
                }
            },
        )
        end = t + timedelta(seconds=3)
        self.answers.update(backdoor_key=bk, backdoor_mint_event=backdoor["eventID"])
        # Used from outside an hour later; no agent log mentions it.
        t = BASE + timedelta(days=8, hours=10, minutes=41, seconds=7)
        bi = g.iam_user_identity(A, bname, baida, bk)
        out = [
            self.ctev(
                t,
                A,
                RA,
                bi,
                "sts",
                "GetCallerIdentity",
                ip=OUTSIDE_IP,
                ua=UA_OUTSIDE.replace("s3.cp", "sts.get-caller-identity"),
                read_only=True,
                request=None,
                response=None,
            )["eventID"]
        ]
        t += timedelta(seconds=31)
        out.append(
            self.ctev(
                t,
                A,
                RA,
                bi,
                "s3",
                "ListBuckets",
                ip=OUTSIDE_IP,
                ua=UA_OUTSIDE.replace("s3.cp", "s3.ls"),
                read_only=True,
                request={"Host": f"s3.{RA}.amazonaws.com"},
                response=None,
            )["eventID"]
        )
        for bucket, obj in [
            ("finco-ledger-prod", "exports/gl-2026-02.csv"),
            ("finco-ledger-exports", dump),
            ("finco-ledger-prod", "exports/vendor-bank-details.csv"),
        ]:
            t += timedelta(seconds=25 + rng.randrange(30))
            out.append(
                self.s3(t, A, RA, bi, "GetObject", bucket, obj, ip=OUTSIDE_IP, ua=UA_OUTSIDE)[
                    "eventID"
                ]
            )
        t += timedelta(seconds=40)
        out.append(
            self.ctev(
                t,
                A,
                RA,
                bi,
                "secretsmanager",
                "GetSecretValue",
                ip=OUTSIDE_IP,
                ua=UA_OUTSIDE.replace("s3.cp", "secretsmanager.get-secret-value"),
                read_only=True,
                request={"secretId": "prod/ledger/db"},
                error=(
                    "AccessDenied",
                    (
                        f"User: arn:aws:iam::{A}:user/{bname} is not authorized to "
                        "perform: secretsmanager:GetSecretValue on resource: prod/ledger/db because no "
                        "identity-based policy allows the secretsmanager:GetSecretValue action"
                    ),
                ),
            )["eventID"]
        )
        self.answers["backdoor_events"] = out
        return end

    def admin_tune(self) -> None:
        """2026-03-09 18:20: a Vault admin turns off HMAC for access_key on the aws/ mount."""
        ids = self.ids
        t = BASE + timedelta(days=7, hours=18, minutes=20, seconds=4)
        admin = g.VaultToken(
            ids,
            "userpass-m.ito",
            ["default", "vault-admin"],
            self.entity_admin,
            {"username": "m.ito"},
            t,
            ttl=28800,
        )
        self.vpair(
            t,
            {"token_type": "default", "policy_results": {"allowed": True}},
            "update",
            "auth/userpass/",
            "auth/userpass/login/m.ito",
            remote=POD_ADMIN,
            data={"password": "correct-horse-battery"},
            response={"auth": admin.response_auth()},
            resp_auth_top=admin.auth(),
        )
        self.answers["tune_request_id"] = self.vpair(
            t + timedelta(seconds=41),
            admin.auth(),
            "update",
            "sys/",
            "sys/mounts/aws/tune",
            remote=POD_ADMIN,
            data={"audit_non_hmac_response_keys": ["access_key"]},
        )

    def triage_day(self, day: int) -> None:
        """invoice-triage: delegated by j.park, reads invoices with the long-lived svc-invoice-triage key."""
        ids, rng = self.ids, self.rng
        name, aida, key = self.triage_user
        ident = g.iam_user_identity(A, name, aida, key)
        t = BASE + timedelta(days=day, hours=10, minutes=rng.randrange(30))
        sess = f"it-{t:%Y%m%d}"
        common = {
            "agent_id": "invoice-triage",
            "agent_name": "Invoice Triage",
            "session_id": sess,
            "on_behalf_of": JPARK,
            "host": "triage-worker-1",
            "source_ip": TRIAGE_IP,
        }
        log = self.native["invoice-triage"]
        log.append(
            dict(
                time=g.ct_time(t),
                event_id=f"it-{ids.hex(12)}",
                operation="delegation",
                target="invoice-triage",
                outcome="success",
                **common,
            )
        )
        t += timedelta(seconds=2)
        log.append(
            dict(
                time=g.ct_time(t),
                event_id=f"it-{ids.hex(12)}",
                operation="credential_use",
                credential=key,
                credential_kind="aws-access-key",
                target=f"arn:aws:iam::{A}:user/{name}",
                outcome="success",
                **common,
            )
        )
        for _ in range(3 + rng.randrange(3)):
            t += timedelta(seconds=20 + rng.randrange(60))
            obj = f"{t:%Y/%m/%d}/INV-{rng.randrange(10000, 99999)}.pdf"
            log.append(
                dict(
                    time=g.ct_time(t),
                    event_id=f"it-{ids.hex(12)}",
                    operation="tool_call",
                    tool="s3_get_object",
                    target=f"arn:aws:s3:::finco-invoices-inbox/{obj}",
                    arguments={"Bucket": "finco-invoices-inbox", "Key": obj},
                    credential=key,
                    credential_kind="aws-access-key",
                    outcome="success",
                    user_agent=UA_TRIAGE,
                    **common,
                )
            )
            self.s3(
                t + timedelta(seconds=1),
                A,
                RA,
                ident,
                "GetObject",
                "finco-invoices-inbox",
                obj,
                ip=TRIAGE_IP,
                ua=UA_TRIAGE,
            )
            t += timedelta(seconds=3)
            log.append(
                dict(
                    time=g.ct_time(t),
                    event_id=f"it-{ids.hex(12)}",
                    operation="llm_call",
                    target="claude-sonnet-4-5",
                    arguments={"task": "classify_invoice"},
                    outcome="success",
                    **common,
                )
            )
            t += timedelta(seconds=4)
            log.append(
                dict(
                    time=g.ct_time(t),
                    event_id=f"it-{ids.hex(12)}",
                    operation="tool_call",
                    tool="erp_post_invoice",
                    target="erp://finco/ap/invoices",
                    arguments={"invoice": obj.rsplit("/", 1)[1][:-4], "ledger": "AP-EU"},
                    outcome="success",
                    **common,
                )
            )

    def vendor_night(self, day: int) -> list[str]:
        """vendor-sync: nightly job, no human; uses invoice-triage's key (copied into its .env)."""
        ids = self.ids
        name, aida, key = self.triage_user
        ident = g.iam_user_identity(A, name, aida, key)
        t = BASE + timedelta(days=day, hours=2, minutes=5, seconds=self.rng.randrange(50))
        common = {
            "agent_id": "vendor-sync",
            "agent_name": "Vendor Sync",
            "session_id": f"vs-{t:%Y%m%d}",
            "host": "vendor-sync-7f9c",
            "source_ip": VENDOR_IP,
        }
        log = self.native["vendor-sync"]
        log.append(
            dict(
                time=g.ct_time(t),
                event_id=f"vs-{ids.hex(12)}",
                operation="credential_use",
                credential=key,
                credential_kind="aws-access-key",
                outcome="success",
                **common,
            )
        )
        ev = []
        for part in ("vendors", "bank-accounts"):
            t += timedelta(seconds=7)
            obj = f"{part}/{part}-{t:%Y%m%d}.csv"
            log.append(
                dict(
                    time=g.ct_time(t),
                    event_id=f"vs-{ids.hex(12)}",
                    operation="tool_call",
                    tool="s3_put_object",
                    target=f"arn:aws:s3:::finco-vendor-master/{obj}",
                    arguments={"Bucket": "finco-vendor-master", "Key": obj},
                    credential=key,
                    credential_kind="aws-access-key",
                    outcome="success",
                    user_agent=UA_VENDOR,
                    **common,
                )
            )
            ev.append(
                self.s3(
                    t + timedelta(seconds=1),
                    A,
                    RA,
                    ident,
                    "PutObject",
                    "finco-vendor-master",
                    obj,
                    ip=VENDOR_IP,
                    ua=UA_VENDOR,
                )["eventID"]
            )
        return ev

    def console_use(self) -> None:
        """2026-03-06: j.park gives the agent's IAM user a password and browses S3 as it."""
        ids = self.ids
        t = BASE + timedelta(days=4, hours=14, minutes=5, seconds=12)
        sso_key = ids.key("ASIA")
        sso = g.role_identity(
            A,
            "AWSReservedSSO_AdministratorAccess_5b1c0e7f3a2d9c41",
            JPARK,
            self.aroa_sso,
            sso_key,
            t - timedelta(minutes=40),
        )
        name, aida, _ = self.triage_user
        self.answers["login_profile_event"] = self.ctev(
            t,
            A,
            RA,
            sso,
            "iam",
            "CreateLoginProfile",
            ip=OFFICE_IP,
            ua=UA_BROWSER,
            read_only=False,
            console=True,
            request={"userName": name, "passwordResetRequired": False},
            response={
                "loginProfile": {
                    "userName": name,
                    "createDate": g.aws_display_time(t),
                    "passwordResetRequired": False,
                }
            },
        )["eventID"]
        t += timedelta(minutes=6, seconds=51)
        login = self.ctev(
            t,
            A,
            RA,
            g.iam_user_identity(A, name, aida, None),
            "signin",
            "ConsoleLogin",
            ip=OFFICE_IP,
            ua=UA_BROWSER,
            read_only=False,
            request=None,
            response={"ConsoleLogin": "Success"},
            event_type="AwsConsoleSignIn",
            additional={
                "LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                "MobileVersion": "No",
                "MFAUsed": "No",
            },
        )
        ckey = ids.key("ASIA")
        ident = g.console_identity(A, name, aida, ckey, t)
        evs = [login["eventID"]]
        for src, ev_name, req in [
            ("s3", "ListBuckets", {"Host": "s3.amazonaws.com"}),
            (
                "s3",
                "GetBucketLocation",
                {
                    "bucketName": "finco-invoices-inbox",
                    "location": "",
                    "Host": "finco-invoices-inbox.s3.amazonaws.com",
                },
            ),
            ("iam", "ListAccessKeys", {"userName": name}),
        ]:
            t += timedelta(seconds=14)
            evs.append(
                self.ctev(
                    t,
                    A,
                    RA,
                    ident,
                    src,
                    ev_name,
                    ip=OFFICE_IP,
                    ua=UA_BROWSER,
                    read_only=True,
                    request=req,
                    response=None,
                    console=True,
                )["eventID"]
            )
        t += timedelta(seconds=30)
        ev = self.s3(
            t,
            A,
            RA,
            ident,
            "GetObject",
            "finco-invoices-inbox",
            "2026/03/05/INV-51177.pdf",
            ip=OFFICE_IP,
            ua=UA_BROWSER,
        )
        ev["sessionCredentialFromConsole"] = "true"
        evs.append(ev["eventID"])
        self.answers.update(
            console_key=ckey,
            console_login_event=login["eventID"],
            console_events=evs,
            sso_key=sso_key,
        )

    def support_day(self, day: int, s3_object: str | None) -> str | None:
        """support-copilot: dev.okafor's assistant; MCP ticket tools and (sometimes) an S3 attachment fetch."""
        ids, rng = self.ids, self.rng
        t0 = BASE + timedelta(
            days=day, hours=15, minutes=rng.randrange(3), seconds=rng.randrange(60)
        )
        trace, root, sess = ids.hex(32), ids.hex(16), f"sc-{ids.hex(10)}"
        mcp_sess = ids.uuid()
        base = {
            "gen_ai.agent.id": "support-copilot",
            "gen_ai.agent.name": "Support Copilot",
            "enduser.id": OKAFOR,
            "session.id": sess,
        }
        spans = []
        wrap = {
            "session": mcp_sess,
            "server": "ticketing",
            "client": "support-copilot",
            "user": OKAFOR,
        }
        t = t0 + timedelta(seconds=1)
        self.mcp.append(
            dict(
                time=g.vault_time(t),
                direction="client_to_server",
                message={
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "support-copilot", "version": "0.9.2"},
                    },
                },
                **wrap,
            )
        )
        self.mcp.append(
            dict(
                time=g.vault_time(t + timedelta(milliseconds=40)),
                direction="server_to_client",
                message={
                    "jsonrpc": "2.0",
                    "id": 0,
                    "result": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "ticketing", "version": "1.3.0"},
                    },
                },
                **wrap,
            )
        )
        ticket = str(48000 + rng.randrange(999)) if s3_object is None else s3_object.split("/")[1]
        for n, (tool, args) in enumerate(
            [
                ("get_ticket", {"ticket_id": ticket}),
                ("search_kb", {"query": "invoice attachment does not open"}),
            ],
            start=1,
        ):
            t += timedelta(seconds=2 + rng.randrange(3))
            req = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": tool, "arguments": args},
            }
            self.mcp.append(
                dict(time=g.vault_time(t), direction="client_to_server", message=req, **wrap)
            )
            res = {
                "jsonrpc": "2.0",
                "id": n,
                "result": {
                    "content": [
                        {
                            "type": "text",
                            "text": json.dumps(
                                {"ticket": ticket, "status": "open"}
                                if tool == "get_ticket"
                                else {"articles": ["KB-1182"]}
                            ),
                        }
                    ],
                    "isError": False,
                },
            }
            self.mcp.append(
                dict(
                    time=g.vault_time(t + timedelta(milliseconds=180)),
                    direction="server_to_client",
                    message=res,
                    **wrap,
                )
            )
            spans.append(
                g.span(
                    trace,
                    ids.hex(16),
                    root,
                    f"execute_tool {tool}",
                    t,
                    t + timedelta(milliseconds=200),
                    3,
                    dict(
                        base,
                        **{
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": tool,
                            "gen_ai.tool.call.arguments": json.dumps(args),
                            "gen_ai.tool.type": "extension",
                            "mcp.session.id": mcp_sess,
                        },
                    ),
                )
            )
        event_id = None
        if s3_object:
            t += timedelta(seconds=4)
            args = {"Bucket": "finco-support-attachments", "Key": s3_object}
            spans.append(
                g.span(
                    trace,
                    ids.hex(16),
                    root,
                    "execute_tool s3_get_object",
                    t,
                    t + timedelta(seconds=3),
                    1,
                    dict(
                        base,
                        **{
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "s3_get_object",
                            "gen_ai.tool.type": "function",
                            "gen_ai.tool.call.id": "toolu_" + ids.alnum(24),
                            "gen_ai.tool.call.arguments": json.dumps(args),
                        },
                    ),
                )
            )
            name, aida, key = self.support_user
            ev = self.s3(
                t + timedelta(seconds=2),
                A,
                RA,
                g.iam_user_identity(A, name, aida, key),
                "GetObject",
                "finco-support-attachments",
                s3_object,
                ip=SUPPORT_IP,
                ua=UA_SUPPORT,
            )
            event_id = str(ev["eventID"])
            self.answers.setdefault("support_tool_spans", []).append(
                f"{trace}:{spans[-1]['spanId']}"
            )
        t += timedelta(seconds=5)
        spans.append(
            g.span(
                trace,
                ids.hex(16),
                root,
                "chat claude-sonnet-4-5",
                t,
                t + timedelta(seconds=4),
                3,
                dict(
                    base,
                    **{
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "anthropic",
                        "gen_ai.request.model": "claude-sonnet-4-5",
                        "gen_ai.usage.input_tokens": 2400 + rng.randrange(800),
                        "gen_ai.usage.output_tokens": 300 + rng.randrange(200),
                    },
                ),
            )
        )
        rs = g.span(
            trace,
            root,
            "",
            "invoke_agent Support Copilot",
            t0,
            t + timedelta(seconds=5),
            1,
            dict(base, **{"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": sess}),
        )
        self.otlp.append(g.otlp_line("support-copilot", "0.9.2", "support-copilot-0", [rs] + spans))
        return event_id

    def ci_orphan(self) -> None:
        """2026-03-10 11:32: a ci-deployer session with no issuing event and no agent or human behind it."""
        ids = self.ids
        t = BASE + timedelta(days=8, hours=11, minutes=32, seconds=18)
        key, sess = ids.key("ASIA"), "gha-ledger-webhook-4417"
        ident = g.role_identity(A, "ci-deployer", sess, self.aroa_ci, key, t - timedelta(minutes=3))
        evs = [
            self.ctev(
                t,
                A,
                RA,
                ident,
                "lambda",
                "GetFunction20150331v2",
                ip=CI_IP,
                ua=UA_CI,
                read_only=True,
                request={"functionName": "ledger-webhook"},
                response=None,
            )["eventID"]
        ]
        t += timedelta(seconds=9)
        fn = f"arn:aws:lambda:{RA}:{A}:function:ledger-webhook"
        evs.append(
            self.ctev(
                t,
                A,
                RA,
                ident,
                "lambda",
                "UpdateFunctionCode20150331v2",
                ip=CI_IP,
                ua=UA_CI,
                read_only=False,
                request={"functionName": "ledger-webhook", "publish": True},
                response={
                    "functionName": "ledger-webhook",
                    "functionArn": fn,
                    "runtime": "python3.12",
                    "codeSha256": "q1Yh0mWl8p1z4o1c0T9nq5H1b2m3Xk8mQm5n6U0r9s4=",
                    "version": "42",
                },
            )["eventID"]
        )
        t += timedelta(seconds=21)
        evs.append(
            self.ctev(
                t,
                A,
                RA,
                ident,
                "iam",
                "PutRolePolicy",
                ip=CI_IP,
                ua=UA_CI,
                read_only=False,
                request={
                    "roleName": "ledger-webhook-exec",
                    "policyName": "inline-debug",
                    "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                    '"Action":"s3:*","Resource":"*"}]}',
                },
            )["eventID"]
        )
        self.answers.update(orphan_key=key, orphan_events=evs)

    # ------------------------------------------------------------ the whole story
