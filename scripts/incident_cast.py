"""The sample incident's cast: accounts, addresses, user agents, the inventory and the record sinks.

Shared by :mod:`incident_scenes` and :mod:`gen_incident` (see docs/sample-incident.md).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Any

import samplegen as g

SEED = 20260302
BASE = datetime(2026, 3, 2)
DAYS = 9  # 2026-03-02 .. 2026-03-10
A, B = "418295730164", "730261958447"  # ledger-prod, analytics
RA, RB = "us-east-1", "eu-west-1"
NAT_APP, VAULT_EGRESS, TRIAGE_IP, VENDOR_IP = (
    "198.51.100.10",
    "198.51.100.11",
    "198.51.100.21",
    "198.51.100.37",
)
SUPPORT_IP, OFFICE_IP, OUTSIDE_IP, CI_IP = (
    "198.51.100.52",
    "192.0.2.44",
    "203.0.113.77",
    "203.0.113.140",
)
POD_REC, POD_ADMIN = "10.20.4.17", "10.20.1.5"
MARIA, JPARK, OKAFOR = (
    "maria.chen@finco.example",
    "j.park@finco.example",
    "dev.okafor@finco.example",
)

UA_REC = (
    "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.112 md/arch#x86_64 lang/python#3.12.7 "
    "md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.35.36 ledger-reconciler/2.4.0"
)
UA_VAULT = "aws-sdk-go/1.55.5 (go1.22.7; linux; amd64)"
UA_TRIAGE = (
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.15.0 md/arch#x86_64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69"
)
UA_VENDOR = (
    "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.4"
)
UA_SUPPORT = (
    "Boto3/1.36.2 md/Botocore#1.36.2 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.8 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.36.2"
)
UA_BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.0.0 Safari/537.36"
)
UA_OUTSIDE = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
UA_CI = "aws-cli/2.22.4 Python/3.12.6 Linux/6.8.0-1017-azure exe/x86_64.ubuntu.24 exec-env/GitHub_Actions"

SPRAWL = [  # (path, allowed) read by the reconciler's child token on 2026-03-10
    ("secret/data/ledger/db", True),
    ("secret/data/ledger/api", True),
    ("secret/data/payments/stripe", True),
    ("secret/data/payments/adyen", True),
    ("secret/data/ledger/sftp-bank", True),
    ("secret/data/analytics/snowflake", True),
    ("secret/data/ledger/exporter", True),
    ("secret/data/hr/payroll-db", False),
    ("secret/data/ci/github-deploy-key", False),
    ("secret/data/platform/vault-admin", False),
    ("secret/data/ledger/signing-key", True),
    ("secret/data/ledger/warehouse", True),
    ("secret/data/security/pagerduty", False),
    ("secret/data/payments/swift", False),
]
RECON = [  # (service, eventName, error code) denied calls of the 2026-03-10 burst
    ("iam", "ListUsers", "AccessDenied"),
    ("iam", "ListRoles", "AccessDenied"),
    ("iam", "GetAccountAuthorizationDetails", "AccessDenied"),
    ("organizations", "ListAccounts", "AccessDenied"),
    ("ec2", "DescribeInstances", "Client.UnauthorizedOperation"),
    ("secretsmanager", "ListSecrets", "AccessDenied"),
    ("kms", "ListKeys", "AccessDenied"),
    ("lambda", "ListFunctions20150331", "AccessDenied"),
    ("rds", "DescribeDBInstances", "AccessDenied"),
    ("dynamodb", "ListTables", "AccessDenied"),
    ("ssm", "DescribeParameters", "AccessDenied"),
    ("iam", "ListPolicies", "AccessDenied"),
    ("ec2", "DescribeSecurityGroups", "Client.UnauthorizedOperation"),
    ("iam", "ListAccessKeys", "AccessDenied"),
]


class StoryBase:
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
        self.aroa_rec, self.aroa_ana, self.aroa_ci, self.aroa_sso = (
            i.unique("AROA") for _ in range(4)
        )
        self.entity_rec = i.uuid()
        self.entity_admin = i.uuid()
        self.role_id, self.secret_id = i.uuid(), i.uuid()
        self.answers.update(
            vault_engine_key=self.vault_user[2],
            shared_key=self.triage_user[2],
            support_key=self.support_user[2],
            entity_reconciler=self.entity_rec,
        )

    # ------------------------------------------------------------ helpers
    def ctev(
        self,
        t: datetime,
        acct: str,
        region: str,
        ident: dict[str, Any],
        src: str,
        name: str,
        **kw: Any,
    ) -> dict[str, Any]:
        rec = g.ct_event(self.ids, t, acct, region, ident, src, name, **kw)
        self.ct.append(rec)
        return rec

    def s3(
        self,
        t: datetime,
        acct: str,
        region: str,
        ident: dict[str, Any],
        name: str,
        bucket: str,
        key: str,
        **kw: Any,
    ) -> dict[str, Any]:
        rec = g.s3_object_event(
            self.ids,
            t,
            acct,
            region,
            ident,
            name,
            bucket,
            key,
            size=kw.pop("size", 1000 + self.rng.randrange(200000)),
            **kw,
        )
        self.ct.append(rec)
        return rec

    def vpair(
        self, t: datetime, caller: dict[str, Any], op: str, mount: str, path: str, **kw: Any
    ) -> str:
        pair = g.vault_pair(self.ids, t, caller, op, mount, path, **kw)
        self.vault.extend(pair)
        return str(pair[0]["request"]["id"])

    def vault_engine(self) -> dict[str, Any]:
        name, aida, key = self.vault_user
        return g.iam_user_identity(A, name, aida, key)

    # ------------------------------------------------------------ actors


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
