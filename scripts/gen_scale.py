"""Generate a case of any size with the sample incident's structure, for benchmarks and trials.

Run: ``python scripts/gen_scale.py --events 1000000 --out /tmp/kt-1m [--seed 7]``.

What it writes (about ``--events`` records in total):
- ~90% CloudTrail records in the S3 delivery layout, 1000-5000 records per
  ``.json.gz`` file, two accounts; agents read and write S3, call other services, get
  denied now and then, and every ``--rotate-hours`` each agent gets a new STS key that
  Vault's IAM user mints with ``AssumeRole`` (session names follow Vault's template), so
  the graph has thousands of credentials and lineage edges, as a real estate would;
- ~6% Vault audit lines (AppRole login, child token, ``aws/sts`` read, secret reads);
- ~4% agent records: the agents' S3 tool calls logged three ways, as real agents log them:
  native agent JSON lines naming the credential (``agents/native.jsonl``); OpenTelemetry GenAI
  traces in the collector file exporter's OTLP/JSON, one ``TracesData`` line per agent run with
  an ``invoke_agent`` root, a ``chat`` span and an ``execute_tool`` span whose arguments name the
  object (``agents/otel/traces.jsonl``; the tool and chat spans inherit the agent from the root);
  MCP ``tools/call`` request/response pairs in the wrapped form (time, direction, session,
  server, client) after an ``initialize`` per session and day (``agents/mcp/aws-tools.jsonl``);
- an inventory.

Memory does not grow with ``--events``: records are produced in time order and written
file by file (an agent run's spans are one line, written at once); only the per-agent current
credentials and MCP session are kept. Same seed, same bytes. ``--events`` counts records: a
CloudTrail record, a Vault line, a native line, a span, an MCP message.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import samplegen as g

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - orjson is a project dependency
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


A, B = "418295730164", "730261958447"
REGIONS = {A: "us-east-1", B: "eu-west-1"}
BASE = datetime(2026, 3, 2)
UA = "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.112 md/arch#x86_64 lang/python#3.12.7 Botocore/1.35.36"
#: Share of S3 calls whose tool call an agent log records (about 2 records each, so ~4% of all records).
AGENT_LOG_RATE = 0.027
MGMT = [
    ("ec2", "DescribeInstances"),
    ("kms", "Decrypt"),
    ("sqs", "ReceiveMessage"),
    ("dynamodb", "DescribeTable"),
    ("lambda", "GetFunction20150331v2"),
    ("secretsmanager", "GetSecretValue"),
    ("sts", "GetCallerIdentity"),
]


def orjson_text(obj: Any) -> str:
    return dumps(obj).decode()


@dataclass
class AgentLogs:
    """The three agent log files."""

    native: IO[bytes]
    otlp: IO[bytes]
    mcp: IO[bytes]


class Agent:
    """One simulated agent: its Vault role, IAM role and current STS keys per account."""

    def __init__(self, n: int, ids: g.Ids) -> None:
        self.id = f"scale-agent-{n:04d}"
        self.role = f"scale-agent-{n:04d}"
        self.aroa = {A: ids.unique("AROA"), B: ids.unique("AROA")}
        self.bucket = f"finco-scale-{n % 97:02d}"
        self.ip = f"198.51.100.{n % 250 + 1}"
        self.keys: dict[str, tuple[str, dict[str, Any]]] = {}
        self.slot = -1
        self.mcp_session: str | None = None
        self.mcp_day = -1
        self.mcp_next_id = 0


class ScaleWriter:
    def __init__(
        self, out: Path, events: int, seed: int, days: int, rotate_hours: int, n_agents: int
    ) -> None:
        self.out, self.rng = out, random.Random(seed)
        self.ids = g.Ids(self.rng)
        self.names = g.Ids(random.Random(seed + 1))
        self.n_ct = int(events * 0.90)
        self.vault_budget = int(events * 0.06)
        self.agent_budget = events - self.n_ct - self.vault_budget
        self.span = timedelta(days=days)
        self.rotate = timedelta(hours=rotate_hours)
        self.agents = [Agent(i, self.ids) for i in range(n_agents)]
        self.vault_user = g.iam_user_identity(
            A, "vault-aws-engine", self.ids.unique("AIDA"), self.ids.key("AKIA")
        )
        self.entity = self.ids.uuid()
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.stats = {
            "cloudtrail_records": 0,
            "cloudtrail_files": 0,
            "vault_lines": 0,
            "agent_lines": 0,
            "otlp_spans": 0,
            "otlp_lines": 0,
            "mcp_lines": 0,
            "credentials_minted": 0,
        }

    # -------------------------------------------------------------- credentials
    def key_for(
        self, agent: Agent, acct: str, t: datetime, vault: IO[bytes]
    ) -> tuple[str, dict[str, Any]]:
        slot = int((t - BASE) / self.rotate)
        if slot != agent.slot:
            agent.slot = slot
            agent.keys.clear()
        if acct not in agent.keys:
            key = self.ids.key("ASIA")
            if acct == A:
                session = g.vault_aws_name("token-" + agent.id, agent.role, t, self.ids)
                rec = g.ct_event(
                    self.ids,
                    t,
                    A,
                    REGIONS[A],
                    self.vault_user,
                    "sts",
                    "AssumeRole",
                    ip="198.51.100.11",
                    ua="aws-sdk-go/1.55.5 (go1.22.7; linux; amd64)",
                    read_only=True,
                    request={
                        "roleArn": f"arn:aws:iam::{A}:role/{agent.role}",
                        "roleSessionName": session,
                        "durationSeconds": 3600,
                    },
                    response=g.assume_role_response(
                        self.ids, t, A, agent.role, session, agent.aroa[A], key
                    ),
                )
                self.vault_issue(agent, t, key, vault)
            else:
                _parent_key, parent_ident = self.key_for(agent, A, t, vault)
                session = f"{agent.id}-xacct"
                rec = g.ct_event(
                    self.ids,
                    t,
                    A,
                    REGIONS[A],
                    parent_ident,
                    "sts",
                    "AssumeRole",
                    ip=agent.ip,
                    ua=UA,
                    read_only=True,
                    request={
                        "roleArn": f"arn:aws:iam::{B}:role/{agent.role}",
                        "roleSessionName": session,
                        "durationSeconds": 3600,
                    },
                    response=g.assume_role_response(
                        self.ids, t, B, agent.role, session, agent.aroa[B], key
                    ),
                )
            # Issuing calls are recorded in the caller's account: queue them for that account's next file.
            self.pending.setdefault(A, []).append(rec)
            self.stats["credentials_minted"] += 1
            agent.keys[acct] = (
                key,
                g.role_identity(acct, agent.role, session, agent.aroa[acct], key, t),
            )
        return agent.keys[acct]

    def vault_issue(self, agent: Agent, t: datetime, key: str, vault: IO[bytes]) -> None:
        """AppRole login -> child token -> aws/sts read: 3 request/response pairs."""
        if self.stats["vault_lines"] >= self.vault_budget:
            return
        ids = self.ids
        login = g.VaultToken(
            ids, "approle", ["default", agent.role], self.entity, {"role_name": agent.role}, t
        )
        child = g.VaultToken(
            ids, "token-" + agent.id, ["default", agent.role], self.entity, None, t
        )
        entries = g.vault_pair(
            ids,
            t,
            {"token_type": "default"},
            "update",
            "auth/approle/",
            "auth/approle/login",
            remote="10.20.4.17",
            data={"role_id": agent.role, "secret_id": agent.id},
            response={"auth": login.response_auth()},
            resp_auth_top=login.auth(),
        )
        entries += g.vault_pair(
            ids,
            t,
            login.auth(),
            "update",
            "auth/token/",
            "auth/token/create",
            remote="10.20.4.17",
            data={"display_name": agent.id},
            response={"auth": child.response_auth()},
        )
        entries += g.vault_pair(
            ids,
            t,
            child.auth(),
            "read",
            "aws/",
            f"aws/sts/{agent.role}",
            remote="10.20.4.17",
            response={
                "secret": {"lease_id": f"aws/sts/{agent.role}/{ids.alnum(24)}"},
                "data": {"access_key": key, "secret_key": ids.alnum(40), "ttl": 3599},
            },
        )
        self.write_lines(vault, entries, "vault_lines")

    def write_lines(self, fh: IO[bytes], rows: list[dict[str, Any]], stat: str) -> None:
        fh.write(b"".join(dumps(r) + b"\n" for r in rows))
        self.stats[stat] += len(rows)

    # -------------------------------------------------------------- actions
    def action(
        self, agent: Agent, acct: str, t: datetime, ident: dict[str, Any], key: str, logs: AgentLogs
    ) -> dict[str, Any]:
        rng, region = self.rng, REGIONS[acct]
        r = rng.random()
        if r < 0.80:
            name = "GetObject" if r < 0.70 else "PutObject"
            obj = f"data/{t:%Y/%m/%d}/obj-{rng.randrange(100000):05d}.json"
            rec = g.s3_object_event(
                self.ids,
                t,
                acct,
                region,
                ident,
                name,
                agent.bucket,
                obj,
                ip=agent.ip,
                ua=UA,
                size=rng.randrange(1, 500000),
            )
            if self.agent_records() < self.agent_budget and rng.random() < AGENT_LOG_RATE:
                self.agent_log(agent, t, name, obj, key, logs)
            return rec
        if r < 0.98:
            src, name = MGMT[rng.randrange(len(MGMT))]
            return g.ct_event(
                self.ids,
                t,
                acct,
                region,
                ident,
                src,
                name,
                ip=agent.ip,
                ua=UA,
                read_only=True,
                request={"maxResults": 100},
                response=None,
            )
        src, name = ("iam", "ListRoles") if r < 0.99 else ("organizations", "ListAccounts")
        return g.ct_event(
            self.ids,
            t,
            acct,
            region,
            ident,
            src,
            name,
            ip=agent.ip,
            ua=UA,
            read_only=True,
            request=None,
            error=(
                "AccessDenied",
                (f"User: {ident['arn']} is not authorized to perform: {src}:{name}"),
            ),
        )

    # -------------------------------------------------------------- agent logs
    def agent_records(self) -> int:
        return self.stats["agent_lines"] + self.stats["otlp_spans"] + self.stats["mcp_lines"]

    def agent_log(
        self, agent: Agent, t: datetime, name: str, obj: str, key: str, logs: AgentLogs
    ) -> None:
        """The tool call behind an S3 call, as one of the three agent log kinds (native 40%, OTLP 35%, MCP 25%)."""
        tool = "s3_" + name[:3].lower() + "_object"
        kind = self.rng.random()
        if kind < 0.40:
            self.write_lines(
                logs.native,
                [
                    {
                        "time": g.ct_time(t),
                        "event_id": f"{agent.id}-{self.ids.hex(16)}",
                        "agent_id": agent.id,
                        "operation": "tool_call",
                        "tool": tool,
                        "target": f"arn:aws:s3:::{agent.bucket}/{obj}",
                        "arguments": {"Bucket": agent.bucket, "Key": obj},
                        "credential": key,
                        "credential_kind": "aws-temporary-key",
                        "outcome": "success",
                        "source_ip": agent.ip,
                    }
                ],
                "agent_lines",
            )
        elif kind < 0.75:
            self.otlp_run(agent, t, tool, obj, logs.otlp)
        else:
            self.mcp_call(agent, t, tool, obj, logs.mcp)

    def otlp_run(self, agent: Agent, t: datetime, tool: str, obj: str, fh: IO[bytes]) -> None:
        """One agent run as the collector's file exporter writes it: invoke_agent > chat, execute_tool."""
        ids, rng = self.ids, self.rng
        trace, root = ids.hex(32), ids.hex(16)
        start = t - timedelta(seconds=3, milliseconds=rng.randrange(1000))
        chat_end = start + timedelta(milliseconds=900 + rng.randrange(1500))
        args = {"Bucket": agent.bucket, "Key": obj}
        spans = [
            g.span(
                trace,
                root,
                "",
                f"invoke_agent {agent.id}",
                start,
                t + timedelta(seconds=1),
                1,
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.id": agent.id,
                    "gen_ai.agent.name": f"Scale agent {agent.id[-4:]}",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.conversation.id": f"conv-{agent.id}-{agent.slot}",
                },
            ),
            g.span(
                trace,
                ids.hex(16),
                root,
                "chat gpt-4o",
                start + timedelta(milliseconds=20),
                chat_end,
                3,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.response.id": "chatcmpl-" + ids.alnum(29),
                    "gen_ai.usage.input_tokens": 800 + rng.randrange(1200),
                    "gen_ai.usage.output_tokens": 40 + rng.randrange(80),
                    "server.address": "api.openai.com",
                },
            ),
            g.span(
                trace,
                ids.hex(16),
                root,
                f"execute_tool {tool}",
                t - timedelta(milliseconds=150),
                t + timedelta(milliseconds=60 + rng.randrange(400)),
                1,
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.type": "function",
                    "gen_ai.tool.call.id": "call_" + ids.alnum(24),
                    "gen_ai.tool.call.arguments": orjson_text(args),
                },
            ),
        ]
        fh.write(
            dumps(g.otlp_line(agent.id, "1.8.2", f"{agent.id}-{agent.slot % 7}", spans)) + b"\n"
        )
        self.stats["otlp_spans"] += len(spans)
        self.stats["otlp_lines"] += 1

    def mcp_call(self, agent: Agent, t: datetime, tool: str, obj: str, fh: IO[bytes]) -> None:
        """A tools/call request and its result, after an initialize exchange when the agent starts its day's session."""
        rows: list[dict[str, Any]] = []
        day = (t - BASE) // timedelta(days=1)  # one MCP session per agent and day
        if agent.mcp_session is None or agent.mcp_day != day:
            agent.mcp_session, agent.mcp_day, agent.mcp_next_id = self.ids.uuid(), day, 0
            rows += self.mcp_exchange(
                agent,
                t - timedelta(seconds=2),
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": agent.id, "version": "1.8.2"},
                },
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "aws-tools", "version": "0.6.1"},
                },
            )
        body = {"bucket": agent.bucket, "key": obj, "etag": self.ids.hex(32)}
        rows += self.mcp_exchange(
            agent,
            t - timedelta(milliseconds=200),
            "tools/call",
            {"name": tool, "arguments": {"bucket": agent.bucket, "key": obj}},
            {"content": [{"type": "text", "text": orjson_text(body)}], "isError": False},
        )
        self.write_lines(fh, rows, "mcp_lines")

    def mcp_exchange(
        self, agent: Agent, t: datetime, method: str, params: dict[str, Any], result: dict[str, Any]
    ) -> list[dict[str, Any]]:
        msg_id = agent.mcp_next_id
        agent.mcp_next_id += 1
        wrap = {"session": agent.mcp_session, "server": "aws-tools", "client": agent.id}
        done = t + timedelta(milliseconds=30 + self.rng.randrange(300))
        return [
            {
                "time": g.vault_time(t),
                "direction": "client_to_server",
                "message": {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params},
                **wrap,
            },
            {
                "time": g.vault_time(done),
                "direction": "server_to_client",
                "message": {"jsonrpc": "2.0", "id": msg_id, "result": result},
                **wrap,
            },
        ]

    def run(self) -> dict[str, int]:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "vault").mkdir(exist_ok=True)
        for sub in ("agents/otel", "agents/mcp"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.write_inventory()
        produced, t = 0, BASE
        step = self.span / max(self.n_ct, 1)
        agents = self.out / "agents"
        with (
            (self.out / "vault" / "vault_audit.log").open("wb") as vault,
            (agents / "native.jsonl").open("wb") as native,
            (agents / "otel" / "traces.jsonl").open("wb") as otlp,
            (agents / "mcp" / "aws-tools.jsonl").open("wb") as mcp,
        ):
            logs = AgentLogs(native, otlp, mcp)
            while produced < self.n_ct:
                acct = A if self.rng.random() < 0.85 else B
                n = min(self.rng.randint(1000, 5000), self.n_ct - produced)
                records: list[dict[str, Any]] = self.pending.pop(acct, [])
                start = t
                while len(records) < n:
                    agent = self.agents[self.rng.randrange(len(self.agents))]
                    key, ident = self.key_for(agent, acct, t, vault)
                    records.extend(self.pending.pop(acct, []))
                    records.append(self.action(agent, acct, t, ident, key, logs))
                    t += step
                self.write_ct(acct, start, records)
                produced += len(records)
                self.fill_vault(vault, t)
            for acct, rest in sorted(self.pending.items()):  # issuing calls not yet written
                if rest:
                    self.write_ct(acct, t, rest)
        return self.stats

    def fill_vault(self, vault: IO[bytes], t: datetime) -> None:
        """Top up Vault lines with secret reads so they stay proportional to CloudTrail."""
        target = int(self.vault_budget * self.stats["cloudtrail_records"] / max(self.n_ct, 1))
        while self.stats["vault_lines"] + 2 <= target:
            agent = self.agents[self.rng.randrange(len(self.agents))]
            tok = g.VaultToken(
                self.ids, "token-" + agent.id, ["default", agent.role], self.entity, None, t
            )
            self.write_lines(
                vault,
                g.vault_pair(
                    self.ids,
                    t,
                    tok.auth(),
                    "read",
                    "secret/",
                    f"secret/data/{agent.id}/config",
                    remote="10.20.4.17",
                    response={"data": {"data": {"value": "x"}}},
                ),
                "vault_lines",
            )

    def write_ct(self, acct: str, start: datetime, records: list[dict[str, Any]]) -> None:
        path = self.out / g.ct_file_name(acct, REGIONS[acct], start, self.names)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            path.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=5) as gz,
        ):
            gz.write(b'{"Records":[')
            gz.write(b",".join(dumps(r) for r in records))
            gz.write(b"]}")
        self.stats["cloudtrail_records"] += len(records)
        self.stats["cloudtrail_files"] += 1

    def write_inventory(self) -> None:
        lines = ["# Generated by scripts/gen_scale.py", ""]
        for a in self.agents:
            lines += [
                "[[agents]]",
                f'id = "{a.id}"',
                f'name = "Scale agent {a.id[-4:]}"',
                'owner = "platform@finco.example"',
                'purpose = "synthetic load"',
                "created = 2026-01-01T00:00:00Z",
                f'identities = ["vault:approle/{a.role}", "arn:aws:iam::{A}:role/{a.role}"]',
                "",
            ]
        (self.out / "inventory.toml").write_text("\n".join(lines), encoding="utf-8")


def generate(
    events: int,
    out: Path,
    seed: int = 7,
    days: int = 14,
    rotate_hours: int = 2,
    agents: int | None = None,
) -> dict[str, int]:
    """Write the case files; returns what was written (records per source, files, credentials)."""
    n_agents = agents or max(5, min(200, events // 20000))
    return ScaleWriter(out, events, seed, days, rotate_hours, n_agents).run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--events", type=int, required=True, help="total records to write (all sources)"
    )
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--rotate-hours", type=int, default=2, help="STS key lifetime per agent")
    ap.add_argument(
        "--agents", type=int, default=None, help="default: events/20000, between 5 and 200"
    )
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} is not empty; choose a new directory")
    t0 = time.monotonic()
    stats = generate(args.events, args.out, args.seed, args.days, args.rotate_hours, args.agents)
    print(f"gen_scale: {stats} in {time.monotonic() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
