"""Generate the sample incident in ``sample_data/incident`` (deterministic; see docs/sample-incident.md).

Run: ``python scripts/gen_incident.py [--out sample_data/incident] [--answers]``.

The story (nine days from 2026-03-02, two AWS accounts, one Vault, four agents) is told
once here, in order, through the record builders of :mod:`samplegen`. A fixed seed and
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

SEED = 20260302
BASE = datetime(2026, 3, 2)
DAYS = 9  # 2026-03-02 .. 2026-03-10
A, B = "418295730164", "730261958447"  # ledger-prod, analytics
RA, RB = "us-east-1", "eu-west-1"
NAT_APP, VAULT_EGRESS, TRIAGE_IP, VENDOR_IP = "198.51.100.10", "198.51.100.11", "198.51.100.21", "198.51.100.37"
SUPPORT_IP, OFFICE_IP, OUTSIDE_IP, CI_IP = "198.51.100.52", "192.0.2.44", "203.0.113.77", "203.0.113.140"
POD_REC, POD_ADMIN = "10.20.4.17", "10.20.1.5"
MARIA, JPARK, OKAFOR = "maria.chen@finco.example", "j.park@finco.example", "dev.okafor@finco.example"

UA_REC = ("Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.112 md/arch#x86_64 lang/python#3.12.7 "
          "md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.35.36 ledger-reconciler/2.4.0")
UA_VAULT = "aws-sdk-go/1.55.5 (go1.22.7; linux; amd64)"
UA_TRIAGE = ("Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.15.0 md/arch#x86_64 lang/python#3.11.8 "
             "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69")
UA_VENDOR = "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.4"
UA_SUPPORT = ("Boto3/1.36.2 md/Botocore#1.36.2 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.8 "
              "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.36.2")
UA_BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/133.0.0.0 Safari/537.36")
UA_OUTSIDE = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
UA_CI = "aws-cli/2.22.4 Python/3.12.6 Linux/6.8.0-1017-azure exe/x86_64.ubuntu.24 exec-env/GitHub_Actions"

SPRAWL = [  # (path, allowed) read by the reconciler's child token on 2026-03-10
    ("secret/data/ledger/db", True), ("secret/data/ledger/api", True), ("secret/data/payments/stripe", True),
    ("secret/data/payments/adyen", True), ("secret/data/ledger/sftp-bank", True),
    ("secret/data/analytics/snowflake", True), ("secret/data/ledger/exporter", True),
    ("secret/data/hr/payroll-db", False), ("secret/data/ci/github-deploy-key", False),
    ("secret/data/platform/vault-admin", False), ("secret/data/ledger/signing-key", True),
    ("secret/data/ledger/warehouse", True), ("secret/data/security/pagerduty", False),
    ("secret/data/payments/swift", False),
]
RECON = [  # (service, eventName, error code) denied calls of the 2026-03-10 burst
    ("iam", "ListUsers", "AccessDenied"), ("iam", "ListRoles", "AccessDenied"),
    ("iam", "GetAccountAuthorizationDetails", "AccessDenied"), ("organizations", "ListAccounts", "AccessDenied"),
    ("ec2", "DescribeInstances", "Client.UnauthorizedOperation"), ("secretsmanager", "ListSecrets", "AccessDenied"),
    ("kms", "ListKeys", "AccessDenied"), ("lambda", "ListFunctions20150331", "AccessDenied"),
    ("rds", "DescribeDBInstances", "AccessDenied"), ("dynamodb", "ListTables", "AccessDenied"),
    ("ssm", "DescribeParameters", "AccessDenied"), ("iam", "ListPolicies", "AccessDenied"),
    ("ec2", "DescribeSecurityGroups", "Client.UnauthorizedOperation"), ("iam", "ListAccessKeys", "AccessDenied"),
]


class Story:
    """Accumulates the records of every source while the story is told in time order."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.ids = g.Ids(self.rng)
        self.ct: list[dict[str, Any]] = []
        self.vault: list[dict[str, Any]] = []
        self.otlp: list[dict[str, Any]] = []
        self.mcp: list[dict[str, Any]] = []
        self.native: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.answers: dict[str, Any] = {}
        i = self.ids
        self.vault_user = ("vault-aws-engine", i.unique("AIDA"), i.key("AKIA"))
        self.triage_user = ("svc-invoice-triage", i.unique("AIDA"), i.key("AKIA"))
        self.support_user = ("svc-support-copilot", i.unique("AIDA"), i.key("AKIA"))
        self.backup_user = ("svc-backup-export", i.unique("AIDA"))
        self.aroa_rec, self.aroa_ana, self.aroa_ci, self.aroa_sso = (i.unique("AROA") for _ in range(4))
        self.entity_rec = i.uuid()
        self.entity_admin = i.uuid()
        self.role_id, self.secret_id = i.uuid(), i.uuid()
        self.answers.update(vault_engine_key=self.vault_user[2], shared_key=self.triage_user[2],
                            support_key=self.support_user[2], entity_reconciler=self.entity_rec)

    # ------------------------------------------------------------ helpers
    def ctev(self, t: datetime, acct: str, region: str, ident: dict[str, Any], src: str, name: str,
             **kw: Any) -> dict[str, Any]:
        rec = g.ct_event(self.ids, t, acct, region, ident, src, name, **kw)
        self.ct.append(rec)
        return rec

    def s3(self, t: datetime, acct: str, region: str, ident: dict[str, Any], name: str, bucket: str, key: str,
           **kw: Any) -> dict[str, Any]:
        rec = g.s3_object_event(self.ids, t, acct, region, ident, name, bucket, key,
                                size=kw.pop("size", 1000 + self.rng.randrange(200000)), **kw)
        self.ct.append(rec)
        return rec

    def vpair(self, t: datetime, caller: dict[str, Any], op: str, mount: str, path: str, **kw: Any) -> str:
        pair = g.vault_pair(self.ids, t, caller, op, mount, path, **kw)
        self.vault.extend(pair)
        return str(pair[0]["request"]["id"])

    def vault_engine(self) -> dict[str, Any]:
        name, aida, key = self.vault_user
        return g.iam_user_identity(A, name, aida, key)

    # ------------------------------------------------------------ actors
    def reconciler_run(self, day: int) -> dict[str, Any]:
        """One daily run of the ledger reconciler: Vault login -> child token -> secret -> STS key -> S3."""
        ids, rng = self.ids, self.rng
        t0 = BASE + timedelta(days=day, hours=9, seconds=rng.randrange(240))
        trace, root = ids.hex(32), ids.hex(16)
        session = f"rec-{t0:%Y%m%d}-{ids.hex(6)}"
        spans: list[dict[str, Any]] = []
        base_attrs = {"gen_ai.agent.id": "ledger-reconciler", "gen_ai.agent.name": "Ledger Reconciler",
                      "enduser.id": MARIA, "session.id": session}

        def tool(start: datetime, secs: float, name: str, args: dict[str, Any], err: str | None = None) -> None:
            spans.append(g.span(trace, ids.hex(16), root, f"execute_tool {name}", start,
                                start + timedelta(seconds=secs), 1,
                                dict(base_attrs, **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                                                    "gen_ai.tool.type": "function",
                                                    "gen_ai.tool.call.id": "call_" + ids.alnum(24),
                                                    "gen_ai.tool.call.arguments": json.dumps(args)}), err))

        def chat(start: datetime, secs: float) -> None:
            spans.append(g.span(trace, ids.hex(16), root, "chat gpt-4.1", start, start + timedelta(seconds=secs), 3,
                                dict(base_attrs, **{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                                    "gen_ai.request.model": "gpt-4.1",
                                                    "gen_ai.response.model": "gpt-4.1-2025-04-14",
                                                    "gen_ai.usage.input_tokens": 1800 + rng.randrange(900),
                                                    "gen_ai.usage.output_tokens": 120 + rng.randrange(300)})))

        chat(t0 + timedelta(seconds=1), 1.4)
        # Vault AppRole login: the request carries no token; the response's top-level auth is the new token.
        t = t0 + timedelta(seconds=3, milliseconds=212)
        tool(t - timedelta(milliseconds=30), 0.2, "vault_login", {"mount": "approle", "role": "ledger-reconciler"})
        login = g.VaultToken(ids, "approle", ["default", "ledger-reconciler"], self.entity_rec,
                             {"role_name": "ledger-reconciler"}, t, ttl=3600)
        login_id = self.vpair(t, {"token_type": "default", "policy_results": {"allowed": True}}, "update",
                              "auth/approle/", "auth/approle/login", remote=POD_REC,
                              data={"role_id": self.role_id, "secret_id": self.secret_id},
                              response={"auth": login.response_auth()}, resp_auth_top=login.auth())
        # Child token for the batch (auth/token/create): top-level auth = creator, response.auth = child.
        t += timedelta(seconds=1, milliseconds=37)
        tool(t - timedelta(milliseconds=20), 0.1, "vault_token_create", {"display_name": "ledger-batch", "ttl": "30m"})
        child = g.VaultToken(ids, "token-ledger-batch", ["default", "ledger-reconciler"], self.entity_rec,
                             None, t, ttl=1800)
        create_id = self.vpair(t, login.auth(), "update", "auth/token/", "auth/token/create", remote=POD_REC,
                               data={"display_name": "ledger-batch", "policies": ["ledger-reconciler"], "ttl": "30m"},
                               response={"auth": child.response_auth()})
        t += timedelta(seconds=1, milliseconds=311)
        tool(t - timedelta(milliseconds=15), 0.1, "vault_read", {"path": "secret/data/ledger/db"})
        self.vpair(t, child.auth(), "read", "secret/", "secret/data/ledger/db", remote=POD_REC,
                   response={"data": {"data": {"username": "ledger_rw", "password": ids.alnum(32)},
                                      "metadata": {"created_time": "2026-01-12T10:04:11Z", "version": 3,
                                                   "destroyed": False, "deletion_time": ""}}})
        # Dynamic STS credentials: Vault assumes the role with its own key; the session name follows the template.
        t = t.replace(microsecond=0) + timedelta(seconds=2)
        tool(t - timedelta(milliseconds=120), 0.6, "aws_credentials", {"path": "aws/sts/reconciler"})
        key = ids.key("ASIA")
        session_name = g.vault_aws_name(child.display_name, "reconciler", t, ids)
        role_arn = f"arn:aws:iam::{A}:role/ledger-reconciler"
        mint = self.ctev(t, A, RA, self.vault_engine(), "sts", "AssumeRole", ip=VAULT_EGRESS, ua=UA_VAULT,
                         read_only=True,
                         request={"roleArn": role_arn, "roleSessionName": session_name, "durationSeconds": 3600},
                         response=g.assume_role_response(ids, t, A, "ledger-reconciler", session_name,
                                                         self.aroa_rec, key),
                         resources=[{"accountId": A, "type": "AWS::IAM::Role", "ARN": role_arn}])
        tuned = day == DAYS - 1  # the aws/ mount was tuned on 2026-03-09 18:20 (see admin_tune)
        lease = f"aws/sts/reconciler/{ids.alnum(24)}"
        sts_id = self.vpair(t + timedelta(milliseconds=102), child.auth(), "read", "aws/", "aws/sts/reconciler",
                            remote=POD_REC, latency_ms=351,
                            keep_response_keys=frozenset({"access_key"}) if tuned else frozenset(),
                            response={"secret": {"lease_id": lease},
                                      "data": {"access_key": key, "secret_key": ids.alnum(40),
                                               "security_token": "IQoJb3JpZ2luX2VjE" + ids.alnum(100),
                                               "session_token": "IQoJb3JpZ2luX2VjE" + ids.alnum(100),
                                               "arn": f"arn:aws:sts::{A}:assumed-role/ledger-reconciler/{session_name}",
                                               "ttl": 3599}})
        ident = g.role_identity(A, "ledger-reconciler", session_name, self.aroa_rec, key, t)
        t += timedelta(seconds=3)
        prefix = f"statements/{t0:%Y/%m/%d}/"
        tool(t, 0.3, "s3_list_objects", {"Bucket": "finco-ledger-prod", "Prefix": prefix})
        self.ctev(t, A, RA, ident, "s3", "ListObjects", ip=NAT_APP, ua=UA_REC, data_event=True, read_only=True,
                  request={"bucketName": "finco-ledger-prod", "Host": f"finco-ledger-prod.s3.{RA}.amazonaws.com",
                           "list-type": "2", "prefix": prefix},
                  additional={"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                              "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader",
                              "x-amz-id-2": ids.alnum(56), "bytesTransferredOut": 2211},
                  resources=[{"accountId": A, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::finco-ledger-prod"}])
        gets = []
        for n in range(1, 4):
            t += timedelta(seconds=2 + rng.randrange(3))
            obj = f"{prefix}stmt-{n:04d}.csv"
            tool(t - timedelta(milliseconds=400), 0.5, "s3_get_object", {"Bucket": "finco-ledger-prod", "Key": obj})
            gets.append(self.s3(t, A, RA, ident, "GetObject", "finco-ledger-prod", obj, ip=NAT_APP, ua=UA_REC)["eventID"])
        chat(t + timedelta(seconds=2), 2.1)
        run = {"trace": trace, "root": root, "session": session, "t0": t0, "spans": spans, "login": login,
               "child": child, "key": key, "ident": ident, "session_name": session_name, "lease": lease,
               "login_request_id": login_id, "create_request_id": create_id, "sts_request_id": sts_id,
               "mint_event": mint["eventID"], "get_events": gets, "t": t, "tool": tool, "chat": chat}
        return run

    def close_run(self, run: dict[str, Any], end: datetime) -> None:
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "ledger-reconciler",
                 "gen_ai.agent.name": "Ledger Reconciler", "gen_ai.agent.description": "Reconciles bank statements",
                 "enduser.id": MARIA, "session.id": run["session"], "gen_ai.conversation.id": run["session"]}
        root = g.span(run["trace"], run["root"], "", "invoke_agent Ledger Reconciler", run["t0"], end, 1, attrs)
        self.otlp.append(g.otlp_line("ledger-reconciler", "2.4.0", "ledger-reconciler-7d9f8-x2kq",
                                     [root] + run["spans"]))

    def incident(self, run: dict[str, Any]) -> datetime:
        """2026-03-10: the poisoned invoice, secret sprawl, a proven key, recon, cross-account, a backdoor."""
        ids, rng, tool, child = self.ids, self.rng, run["tool"], run["child"]
        ident, _key = run["ident"], run["key"]
        t: datetime = run["t"] + timedelta(seconds=5)
        poisoned = "inbound-invoices/2026/03/10/INV-88412.pdf"
        tool(t - timedelta(milliseconds=300), 0.4, "s3_get_object", {"Bucket": "finco-ledger-prod", "Key": poisoned})
        self.answers["poisoned_invoice_event"] = self.s3(t, A, RA, ident, "GetObject", "finco-ledger-prod",
                                                         poisoned, ip=NAT_APP, ua=UA_REC, size=48213)["eventID"]
        run["chat"](t + timedelta(seconds=1), 3.2)
        t += timedelta(seconds=6)
        sprawl = []
        for path, allowed in SPRAWL[1:]:
            t += timedelta(milliseconds=700 + rng.randrange(900))
            tool(t - timedelta(milliseconds=10), 0.05, "vault_read", {"path": path},
                 None if allowed else "permission denied")
            sprawl.append(self.vpair(t, child.auth(allowed), "read", "secret/", path, remote=POD_REC,
                                     error=None if allowed else g.DENIED,
                                     response={"data": {"data": {"value": ids.alnum(40)},
                                                        "metadata": {"created_time": "2025-11-20T08:00:00Z",
                                                                     "version": 1, "destroyed": False,
                                                                     "deletion_time": ""}}} if allowed else None))
        self.answers["sprawl_request_ids"] = sprawl
        # aws/creds (iam_user) on the tuned mount: access_key logged in plain text -> proven join.
        t = t.replace(microsecond=0) + timedelta(seconds=4)
        tool(t - timedelta(milliseconds=200), 1.5, "aws_credentials", {"path": "aws/creds/ledger-exporter"})
        user = g.vault_aws_name(child.display_name, "ledger-exporter", t, ids)
        aida, k1 = ids.unique("AIDA"), ids.key("AKIA")
        uarn = f"arn:aws:iam::{A}:user/vault/{user}"
        ve = self.vault_engine()
        self.ctev(t, A, RA, ve, "iam", "CreateUser", ip=VAULT_EGRESS, ua=UA_VAULT, read_only=False,
                  request={"path": "/vault/", "userName": user, "tags": []},
                  response={"user": {"path": "/vault/", "userName": user, "userId": aida, "arn": uarn,
                                     "createDate": g.aws_display_time(t)}})
        self.ctev(t, A, RA, ve, "iam", "PutUserPolicy", ip=VAULT_EGRESS, ua=UA_VAULT, read_only=False,
                  request={"userName": user, "policyName": "vault-ledger-exporter",
                           "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":'
                                             '["s3:PutObject","s3:GetObject"],"Resource":["arn:aws:s3:::finco-ledger-'
                                             'exports/*","arn:aws:s3:::finco-ledger-prod/exports/*"]}]}'})
        mint = self.ctev(t + timedelta(seconds=1), A, RA, ve, "iam", "CreateAccessKey", ip=VAULT_EGRESS,
                         ua=UA_VAULT, read_only=False, request={"userName": user},
                         response={"accessKey": {"userName": user, "accessKeyId": k1, "status": "Active",
                                                 "createDate": g.aws_display_time(t + timedelta(seconds=1))}})
        lease = f"aws/creds/ledger-exporter/{ids.alnum(24)}"
        creds_id = self.vpair(t + timedelta(milliseconds=48), child.auth(), "read", "aws/",
                              "aws/creds/ledger-exporter", remote=POD_REC, latency_ms=1307,
                              keep_response_keys=frozenset({"access_key"}),
                              response={"secret": {"lease_id": lease},
                                        "data": {"access_key": k1, "secret_key": ids.alnum(40),
                                                 "security_token": None}})
        k1_ident = g.iam_user_identity(A, user, aida, k1)
        t += timedelta(seconds=14)  # IAM keys take a few seconds to propagate
        k1_events = []
        dump = "tmp/recon-dump-20260310.tar.gz"
        for bucket, obj, name in [("finco-ledger-prod", "exports/gl-2026-02.csv", "GetObject"),
                                  ("finco-ledger-prod", "exports/ap-aging-2026-02.csv", "GetObject"),
                                  ("finco-ledger-exports", dump, "PutObject")]:
            t += timedelta(seconds=3)
            tool(t - timedelta(milliseconds=300), 0.5, "s3_" + ("get" if name == "GetObject" else "put") + "_object",
                 {"Bucket": bucket, "Key": obj})
            k1_events.append(self.s3(t, A, RA, k1_ident, name, bucket, obj, ip=NAT_APP, ua=UA_REC)["eventID"])
        self.answers.update(exporter_key=k1, exporter_user=user, exporter_mint_event=mint["eventID"],
                            exporter_lease=lease, exporter_creds_request_id=creds_id, exporter_events=k1_events)
        # Denied recon burst with the STS key.
        t += timedelta(seconds=20)
        burst = []
        for svc, name, code in RECON:
            t += timedelta(milliseconds=1500 + rng.randrange(2500))
            tool(t - timedelta(milliseconds=200), 0.3, "aws_api_call", {"service": svc, "operation": name},
                 code)
            msg = (f"User: {ident['arn']} is not authorized to perform: {svc}:{name.replace('20150331', '')} "
                   "because no identity-based policy allows the action")
            region = RA
            burst.append(self.ctev(t, A, region, ident, svc, name, ip=NAT_APP, ua=UA_REC, read_only=True,
                                   request=None, error=(code, msg))["eventID"])
        t += timedelta(seconds=2)
        self.ctev(t, A, RA, ident, "sts", "GetCallerIdentity", ip=NAT_APP, ua=UA_REC, read_only=True,
                  request=None, response=None)
        self.answers["recon_events"] = burst
        # Role chaining into the analytics account; CloudTrail writes one copy per account.
        t += timedelta(seconds=9)
        tool(t - timedelta(milliseconds=300), 0.5, "aws_assume_role",
             {"RoleArn": f"arn:aws:iam::{B}:role/analytics-readonly", "RoleSessionName": "reconciler-xacct"})
        k3, role_b = ids.key("ASIA"), f"arn:aws:iam::{B}:role/analytics-readonly"
        shared, req_id = ids.uuid(), ids.uuid()
        resp = g.assume_role_response(ids, t, B, "analytics-readonly", "reconciler-xacct", self.aroa_ana, k3)
        req = {"roleArn": role_b, "roleSessionName": "reconciler-xacct", "durationSeconds": 3600}
        res = [{"accountId": B, "type": "AWS::IAM::Role", "ARN": role_b}]
        xa = self.ctev(t, A, RA, ident, "sts", "AssumeRole", ip=NAT_APP, ua=UA_REC, read_only=True, request=req,
                       response=resp, resources=res, shared_event_id=shared, request_id=req_id)
        owner_ident = {"type": "AWSAccount", "principalId": f"{self.aroa_rec}:{run['session_name']}", "accountId": A}
        xb = self.ctev(t, B, RA, owner_ident, "sts", "AssumeRole", ip=NAT_APP, ua=UA_REC, read_only=True,
                       request=req, response=resp, resources=res, shared_event_id=shared, request_id=req_id)
        ib = g.role_identity(B, "analytics-readonly", "reconciler-xacct", self.aroa_ana, k3, t)
        k3_events = []
        for svc, name, request in [
            ("glue", "GetDatabases", {"catalogId": B}),
            ("glue", "GetTables", {"catalogId": B, "databaseName": "customers"}),
            ("athena", "StartQueryExecution", {"queryString": "SELECT * FROM customers.accounts LIMIT 100000",
                                               "workGroup": "primary",
                                               "resultConfiguration": {"outputLocation": "s3://finco-analytics-exports/athena/"}}),
            ("athena", "GetQueryExecution", {"queryExecutionId": ids.uuid()}),
        ]:
            t += timedelta(seconds=20 + rng.randrange(40))
            tool(t - timedelta(milliseconds=300), 0.5, "aws_api_call", {"service": svc, "operation": name})
            k3_events.append(self.ctev(t, B, RB, ib, svc, name, ip=NAT_APP, ua=UA_REC, read_only=name != "StartQueryExecution",
                                       request=request, response=None)["eventID"])
        for n in range(1, 5):
            t += timedelta(seconds=5 + rng.randrange(10))
            obj = f"customers/2026-03/part-{n:05d}.snappy.parquet"
            tool(t - timedelta(milliseconds=300), 0.8, "s3_get_object", {"Bucket": "finco-analytics-exports", "Key": obj})
            k3_events.append(self.s3(t, B, RB, ib, "GetObject", "finco-analytics-exports", obj, ip=NAT_APP, ua=UA_REC,
                                     size=20_000_000 + rng.randrange(5_000_000))["eventID"])
        self.answers.update(xacct_key=k3, xacct_event_a=xa["eventID"], xacct_event_b=xb["eventID"],
                            xacct_shared_event_id=shared, xacct_events=k3_events)
        # The backdoor: a long-lived key for another IAM user.
        t += timedelta(seconds=40)
        tool(t - timedelta(milliseconds=300), 0.5, "aws_api_call",
             {"service": "iam", "operation": "CreateAccessKey", "UserName": "svc-backup-export"})
        bk = ids.key("AKIA")
        bname, baida = self.backup_user
        backdoor = self.ctev(t, A, RA, ident, "iam", "CreateAccessKey", ip=NAT_APP, ua=UA_REC, read_only=False,
                             request={"userName": bname},
                             response={"accessKey": {"userName": bname, "accessKeyId": bk, "status": "Active",
                                                     "createDate": g.aws_display_time(t)}})
        end = t + timedelta(seconds=3)
        self.answers.update(backdoor_key=bk, backdoor_mint_event=backdoor["eventID"])
        # Used from outside an hour later; no agent log mentions it.
        t = BASE + timedelta(days=8, hours=10, minutes=41, seconds=7)
        bi = g.iam_user_identity(A, bname, baida, bk)
        out = [self.ctev(t, A, RA, bi, "sts", "GetCallerIdentity", ip=OUTSIDE_IP, ua=UA_OUTSIDE.replace("s3.cp", "sts.get-caller-identity"),
                         read_only=True, request=None, response=None)["eventID"]]
        t += timedelta(seconds=31)
        out.append(self.ctev(t, A, RA, bi, "s3", "ListBuckets", ip=OUTSIDE_IP, ua=UA_OUTSIDE.replace("s3.cp", "s3.ls"),
                             read_only=True, request={"Host": f"s3.{RA}.amazonaws.com"}, response=None)["eventID"])
        for bucket, obj in [("finco-ledger-prod", "exports/gl-2026-02.csv"),
                            ("finco-ledger-exports", dump),
                            ("finco-ledger-prod", "exports/vendor-bank-details.csv")]:
            t += timedelta(seconds=25 + rng.randrange(30))
            out.append(self.s3(t, A, RA, bi, "GetObject", bucket, obj, ip=OUTSIDE_IP, ua=UA_OUTSIDE)["eventID"])
        t += timedelta(seconds=40)
        out.append(self.ctev(t, A, RA, bi, "secretsmanager", "GetSecretValue", ip=OUTSIDE_IP,
                             ua=UA_OUTSIDE.replace("s3.cp", "secretsmanager.get-secret-value"), read_only=True,
                             request={"secretId": "prod/ledger/db"},
                             error=("AccessDenied", (f"User: arn:aws:iam::{A}:user/{bname} is not authorized to "
                                    "perform: secretsmanager:GetSecretValue on resource: prod/ledger/db because no "
                                    "identity-based policy allows the secretsmanager:GetSecretValue action")))["eventID"])
        self.answers["backdoor_events"] = out
        return end

    def admin_tune(self) -> None:
        """2026-03-09 18:20: a Vault admin turns off HMAC for access_key on the aws/ mount."""
        ids = self.ids
        t = BASE + timedelta(days=7, hours=18, minutes=20, seconds=4)
        admin = g.VaultToken(ids, "userpass-m.ito", ["default", "vault-admin"], self.entity_admin,
                             {"username": "m.ito"}, t, ttl=28800)
        self.vpair(t, {"token_type": "default", "policy_results": {"allowed": True}}, "update", "auth/userpass/",
                   "auth/userpass/login/m.ito", remote=POD_ADMIN, data={"password": "correct-horse-battery"},
                   response={"auth": admin.response_auth()}, resp_auth_top=admin.auth())
        self.answers["tune_request_id"] = self.vpair(
            t + timedelta(seconds=41), admin.auth(), "update", "sys/", "sys/mounts/aws/tune", remote=POD_ADMIN,
            data={"audit_non_hmac_response_keys": ["access_key"]})

    def triage_day(self, day: int) -> None:
        """invoice-triage: delegated by j.park, reads invoices with the long-lived svc-invoice-triage key."""
        ids, rng = self.ids, self.rng
        name, aida, key = self.triage_user
        ident = g.iam_user_identity(A, name, aida, key)
        t = BASE + timedelta(days=day, hours=10, minutes=rng.randrange(30))
        sess = f"it-{t:%Y%m%d}"
        common = {"agent_id": "invoice-triage", "agent_name": "Invoice Triage", "session_id": sess,
                  "on_behalf_of": JPARK, "host": "triage-worker-1", "source_ip": TRIAGE_IP}
        log = self.native["invoice-triage"]
        log.append(dict(time=g.ct_time(t), event_id=f"it-{ids.hex(12)}", operation="delegation",
                        target="invoice-triage", outcome="success", **common))
        t += timedelta(seconds=2)
        log.append(dict(time=g.ct_time(t), event_id=f"it-{ids.hex(12)}", operation="credential_use",
                        credential=key, credential_kind="aws-access-key",
                        target=f"arn:aws:iam::{A}:user/{name}", outcome="success", **common))
        for _ in range(3 + rng.randrange(3)):
            t += timedelta(seconds=20 + rng.randrange(60))
            obj = f"{t:%Y/%m/%d}/INV-{rng.randrange(10000, 99999)}.pdf"
            log.append(dict(time=g.ct_time(t), event_id=f"it-{ids.hex(12)}", operation="tool_call",
                            tool="s3_get_object", target=f"arn:aws:s3:::finco-invoices-inbox/{obj}",
                            arguments={"Bucket": "finco-invoices-inbox", "Key": obj}, credential=key,
                            credential_kind="aws-access-key", outcome="success", user_agent=UA_TRIAGE, **common))
            self.s3(t + timedelta(seconds=1), A, RA, ident, "GetObject", "finco-invoices-inbox", obj, ip=TRIAGE_IP,
                    ua=UA_TRIAGE)
            t += timedelta(seconds=3)
            log.append(dict(time=g.ct_time(t), event_id=f"it-{ids.hex(12)}", operation="llm_call",
                            target="claude-sonnet-4-5", arguments={"task": "classify_invoice"}, outcome="success",
                            **common))
            t += timedelta(seconds=4)
            log.append(dict(time=g.ct_time(t), event_id=f"it-{ids.hex(12)}", operation="tool_call",
                            tool="erp_post_invoice", target="erp://finco/ap/invoices",
                            arguments={"invoice": obj.rsplit("/", 1)[1][:-4], "ledger": "AP-EU"},
                            outcome="success", **common))

    def vendor_night(self, day: int) -> list[str]:
        """vendor-sync: nightly job, no human; uses invoice-triage's key (copied into its .env)."""
        ids = self.ids
        name, aida, key = self.triage_user
        ident = g.iam_user_identity(A, name, aida, key)
        t = BASE + timedelta(days=day, hours=2, minutes=5, seconds=self.rng.randrange(50))
        common = {"agent_id": "vendor-sync", "agent_name": "Vendor Sync", "session_id": f"vs-{t:%Y%m%d}",
                  "host": "vendor-sync-7f9c", "source_ip": VENDOR_IP}
        log = self.native["vendor-sync"]
        log.append(dict(time=g.ct_time(t), event_id=f"vs-{ids.hex(12)}", operation="credential_use",
                        credential=key, credential_kind="aws-access-key", outcome="success", **common))
        ev = []
        for part in ("vendors", "bank-accounts"):
            t += timedelta(seconds=7)
            obj = f"{part}/{part}-{t:%Y%m%d}.csv"
            log.append(dict(time=g.ct_time(t), event_id=f"vs-{ids.hex(12)}", operation="tool_call",
                            tool="s3_put_object", target=f"arn:aws:s3:::finco-vendor-master/{obj}",
                            arguments={"Bucket": "finco-vendor-master", "Key": obj}, credential=key,
                            credential_kind="aws-access-key", outcome="success", user_agent=UA_VENDOR, **common))
            ev.append(self.s3(t + timedelta(seconds=1), A, RA, ident, "PutObject", "finco-vendor-master", obj,
                              ip=VENDOR_IP, ua=UA_VENDOR)["eventID"])
        return ev

    def console_use(self) -> None:
        """2026-03-06: j.park gives the agent's IAM user a password and browses S3 as it."""
        ids = self.ids
        t = BASE + timedelta(days=4, hours=14, minutes=5, seconds=12)
        sso_key = ids.key("ASIA")
        sso = g.role_identity(A, "AWSReservedSSO_AdministratorAccess_5b1c0e7f3a2d9c41", JPARK, self.aroa_sso,
                              sso_key, t - timedelta(minutes=40))
        name, aida, _ = self.triage_user
        self.answers["login_profile_event"] = self.ctev(
            t, A, RA, sso, "iam", "CreateLoginProfile", ip=OFFICE_IP, ua=UA_BROWSER, read_only=False, console=True,
            request={"userName": name, "passwordResetRequired": False},
            response={"loginProfile": {"userName": name, "createDate": g.aws_display_time(t),
                                       "passwordResetRequired": False}})["eventID"]
        t += timedelta(minutes=6, seconds=51)
        login = self.ctev(t, A, RA, g.iam_user_identity(A, name, aida, None), "signin", "ConsoleLogin",
                          ip=OFFICE_IP, ua=UA_BROWSER, read_only=False, request=None,
                          response={"ConsoleLogin": "Success"}, event_type="AwsConsoleSignIn",
                          additional={"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                                      "MobileVersion": "No", "MFAUsed": "No"})
        ckey = ids.key("ASIA")
        ident = g.console_identity(A, name, aida, ckey, t)
        evs = [login["eventID"]]
        for src, ev_name, req in [("s3", "ListBuckets", {"Host": "s3.amazonaws.com"}),
                                  ("s3", "GetBucketLocation", {"bucketName": "finco-invoices-inbox", "location": "",
                                                               "Host": "finco-invoices-inbox.s3.amazonaws.com"}),
                                  ("iam", "ListAccessKeys", {"userName": name})]:
            t += timedelta(seconds=14)
            evs.append(self.ctev(t, A, RA, ident, src, ev_name, ip=OFFICE_IP, ua=UA_BROWSER, read_only=True,
                                 request=req, response=None, console=True)["eventID"])
        t += timedelta(seconds=30)
        ev = self.s3(t, A, RA, ident, "GetObject", "finco-invoices-inbox", "2026/03/05/INV-51177.pdf",
                     ip=OFFICE_IP, ua=UA_BROWSER)
        ev["sessionCredentialFromConsole"] = "true"
        evs.append(ev["eventID"])
        self.answers.update(console_key=ckey, console_login_event=login["eventID"], console_events=evs,
                            sso_key=sso_key)

    def support_day(self, day: int, s3_object: str | None) -> str | None:
        """support-copilot: dev.okafor's assistant; MCP ticket tools and (sometimes) an S3 attachment fetch."""
        ids, rng = self.ids, self.rng
        t0 = BASE + timedelta(days=day, hours=15, minutes=rng.randrange(3), seconds=rng.randrange(60))
        trace, root, sess = ids.hex(32), ids.hex(16), f"sc-{ids.hex(10)}"
        mcp_sess = ids.uuid()
        base = {"gen_ai.agent.id": "support-copilot", "gen_ai.agent.name": "Support Copilot",
                "enduser.id": OKAFOR, "session.id": sess}
        spans = []
        wrap = {"session": mcp_sess, "server": "ticketing", "client": "support-copilot", "user": OKAFOR}
        t = t0 + timedelta(seconds=1)
        self.mcp.append(dict(time=g.vault_time(t), direction="client_to_server", message={
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "support-copilot", "version": "0.9.2"}}}, **wrap))
        self.mcp.append(dict(time=g.vault_time(t + timedelta(milliseconds=40)), direction="server_to_client", message={
            "jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                                  "serverInfo": {"name": "ticketing", "version": "1.3.0"}}}, **wrap))
        ticket = str(48000 + rng.randrange(999)) if s3_object is None else s3_object.split("/")[1]
        for n, (tool, args) in enumerate([("get_ticket", {"ticket_id": ticket}),
                                          ("search_kb", {"query": "invoice attachment does not open"})], start=1):
            t += timedelta(seconds=2 + rng.randrange(3))
            req = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": args}}
            self.mcp.append(dict(time=g.vault_time(t), direction="client_to_server", message=req, **wrap))
            res = {"jsonrpc": "2.0", "id": n, "result": {"content": [{"type": "text", "text": json.dumps(
                {"ticket": ticket, "status": "open"} if tool == "get_ticket" else {"articles": ["KB-1182"]})}],
                "isError": False}}
            self.mcp.append(dict(time=g.vault_time(t + timedelta(milliseconds=180)), direction="server_to_client",
                                 message=res, **wrap))
            spans.append(g.span(trace, ids.hex(16), root, f"execute_tool {tool}", t, t + timedelta(milliseconds=200),
                                3, dict(base, **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                                 "gen_ai.tool.call.arguments": json.dumps(args),
                                                 "gen_ai.tool.type": "extension", "mcp.session.id": mcp_sess})))
        event_id = None
        if s3_object:
            t += timedelta(seconds=4)
            args = {"Bucket": "finco-support-attachments", "Key": s3_object}
            spans.append(g.span(trace, ids.hex(16), root, "execute_tool s3_get_object", t, t + timedelta(seconds=3), 1,
                                dict(base, **{"gen_ai.operation.name": "execute_tool",
                                              "gen_ai.tool.name": "s3_get_object", "gen_ai.tool.type": "function",
                                              "gen_ai.tool.call.id": "toolu_" + ids.alnum(24),
                                              "gen_ai.tool.call.arguments": json.dumps(args)})))
            name, aida, key = self.support_user
            ev = self.s3(t + timedelta(seconds=2), A, RA, g.iam_user_identity(A, name, aida, key), "GetObject",
                         "finco-support-attachments", s3_object, ip=SUPPORT_IP, ua=UA_SUPPORT)
            event_id = str(ev["eventID"])
            self.answers.setdefault("support_tool_spans", []).append(f"{trace}:{spans[-1]['spanId']}")
        t += timedelta(seconds=5)
        spans.append(g.span(trace, ids.hex(16), root, "chat claude-sonnet-4-5", t, t + timedelta(seconds=4), 3,
                            dict(base, **{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                          "gen_ai.request.model": "claude-sonnet-4-5",
                                          "gen_ai.usage.input_tokens": 2400 + rng.randrange(800),
                                          "gen_ai.usage.output_tokens": 300 + rng.randrange(200)})))
        rs = g.span(trace, root, "", "invoke_agent Support Copilot", t0, t + timedelta(seconds=5), 1,
                    dict(base, **{"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": sess}))
        self.otlp.append(g.otlp_line("support-copilot", "0.9.2", "support-copilot-0", [rs] + spans))
        return event_id

    def ci_orphan(self) -> None:
        """2026-03-10 11:32: a ci-deployer session with no issuing event and no agent or human behind it."""
        ids = self.ids
        t = BASE + timedelta(days=8, hours=11, minutes=32, seconds=18)
        key, sess = ids.key("ASIA"), "gha-ledger-webhook-4417"
        ident = g.role_identity(A, "ci-deployer", sess, self.aroa_ci, key, t - timedelta(minutes=3))
        evs = [self.ctev(t, A, RA, ident, "lambda", "GetFunction20150331v2", ip=CI_IP, ua=UA_CI, read_only=True,
                         request={"functionName": "ledger-webhook"}, response=None)["eventID"]]
        t += timedelta(seconds=9)
        fn = f"arn:aws:lambda:{RA}:{A}:function:ledger-webhook"
        evs.append(self.ctev(t, A, RA, ident, "lambda", "UpdateFunctionCode20150331v2", ip=CI_IP, ua=UA_CI,
                             read_only=False, request={"functionName": "ledger-webhook", "publish": True},
                             response={"functionName": "ledger-webhook", "functionArn": fn, "runtime": "python3.12",
                                       "codeSha256": "q1Yh0mWl8p1z4o1c0T9nq5H1b2m3Xk8mQm5n6U0r9s4=",
                                       "version": "42"})["eventID"])
        t += timedelta(seconds=21)
        evs.append(self.ctev(t, A, RA, ident, "iam", "PutRolePolicy", ip=CI_IP, ua=UA_CI, read_only=False,
                             request={"roleName": "ledger-webhook-exec", "policyName": "inline-debug",
                                      "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                                                        '"Action":"s3:*","Resource":"*"}]}'})["eventID"])
        self.answers.update(orphan_key=key, orphan_events=evs)

    # ------------------------------------------------------------ the whole story
    def tell(self) -> None:
        support_objects = {5: "tickets/47731/statement.pdf", 7: "tickets/48213/invoice.pdf",
                           8: "tickets/48390/remittance.png"}
        for day in range(DAYS):
            run = self.reconciler_run(day)
            self.answers.setdefault("daily_keys", []).append(run["key"])
            self.answers.setdefault("daily_login_accessors", []).append(run["login"].accessor)
            end = self.incident(run) if day == DAYS - 1 else run["t"] + timedelta(seconds=5)
            self.close_run(run, end)
            if day == DAYS - 2:  # the last HMAC'd issuance: matched by the name template only
                self.answers.update(strong_key=run["key"], strong_session_name=run["session_name"],
                                    strong_sts_request_id=run["sts_request_id"],
                                    strong_child_accessor=run["child"].accessor,
                                    strong_get_events=run["get_events"])
            if day == DAYS - 1:
                self.answers.update(incident_login_accessor=run["login"].accessor,
                                    incident_child_accessor=run["child"].accessor, incident_key=run["key"],
                                    incident_session_name=run["session_name"], incident_lease=run["lease"],
                                    incident_login_request_id=run["login_request_id"],
                                    incident_create_request_id=run["create_request_id"],
                                    incident_sts_request_id=run["sts_request_id"],
                                    incident_mint_event=run["mint_event"], incident_trace_id=run["trace"])
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
            by_file[(rec["recipientAccountId"], rec["awsRegion"], t.strftime("%Y%m%d%H"))].append(rec)
        names = g.Ids(random.Random(SEED + 1))
        for (acct, region, hour), recs in sorted(by_file.items()):
            # CloudTrail delivers about every 5 minutes; one file per account, region and hour keeps it small.
            stamp = datetime.strptime(hour, "%Y%m%d%H") + timedelta(minutes=55)
            g.write_gz_json(out / g.ct_file_name(acct, region, stamp, names), {"Records": recs})
        g.write_jsonl(out / "vault" / "vault_audit.log",
                      sorted(self.vault, key=lambda e: datetime.fromisoformat(e["time"])))
        g.write_jsonl(out / "agents" / "otel" / "traces.jsonl", self.otlp)
        g.write_jsonl(out / "agents" / "mcp" / "support-copilot-mcp.jsonl", self.mcp)
        for agent, rows in sorted(self.native.items()):
            g.write_jsonl(out / "agents" / "native" / f"{agent}.jsonl", rows)
        (out / "inventory.toml").write_text(INVENTORY.format(A=A, triage_key=self.triage_user[2]), encoding="utf-8")
        self.answers["counts"] = {
            "cloudtrail_records": len(self.ct), "cloudtrail_files": len(by_file),
            "vault_entries": len(self.vault), "vault_requests": len(self.vault) // 2,
            "otlp_lines": len(self.otlp),
            "otlp_spans": sum(len(ss["spans"]) for line in self.otlp for rs in line["resourceSpans"]
                              for ss in rs["scopeSpans"]),
            "mcp_lines": len(self.mcp), "native_lines": sum(len(v) for v in self.native.values()),
        }
        return self.answers


INVENTORY = """\
# Agent register of FinCo's NHI program (sample incident, keytrail).
# identities: the IAM roles/users, access key ids and Vault roles each agent is meant to use.

[[agents]]
id = "ledger-reconciler"
name = "Ledger Reconciler"
owner = "maria.chen@finco.example"
purpose = "Reconciles daily bank statements against the general ledger"
created = 2026-01-12T00:00:00Z
environment = "prod"
identities = ["vault:approle/ledger-reconciler", "arn:aws:iam::{A}:role/ledger-reconciler"]

[[agents]]
id = "invoice-triage"
name = "Invoice Triage"
owner = "j.park@finco.example"
purpose = "Classifies inbound supplier invoices and posts them to accounts payable"
created = 2025-09-01T00:00:00Z
environment = "prod"
identities = ["arn:aws:iam::{A}:user/svc-invoice-triage", "{triage_key}"]

[[agents]]
id = "vendor-sync"
name = "Vendor Sync"
owner = "j.park@finco.example"
purpose = "Nightly export of the vendor master to S3 (replaced by the ERP connector)"
created = 2025-06-15T00:00:00Z
retired = 2026-03-05T00:00:00Z
environment = "prod"
identities = ["arn:aws:iam::{A}:user/svc-vendor-sync"]

[[agents]]
id = "support-copilot"
name = "Support Copilot"
owner = "dev.okafor@finco.example"
purpose = "Helps support engineers answer billing tickets"
created = 2026-02-20T00:00:00Z
environment = "prod"
identities = ["vault:approle/support-copilot"]
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "sample_data" / "incident"))
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
