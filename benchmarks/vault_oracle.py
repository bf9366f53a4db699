"""Oracle for the Vault adapter: ingest fixed input sets, dump every row they produce.

Why: the Vault ingest is being made faster; a speed-up must not change a single byte of a
case. This script builds a fixed set of inputs (the public fixtures, the sample incident,
generated scale files, and every framing the adapter reads, synthesised from fixture and
generated lines), ingests each set into its own case with whatever ``keytrail`` is on
``PYTHONPATH``, and writes, per set, every row of ``events``, ``event_resources``,
``credential_issues``, ``rejects``, ``evidence`` (without ``ingested_at``), ``credentials``
and ``links``, sorted. Run it once with the old code and once with the new and diff:

    PYTHONPATH=/tmp/vault-base/src python benchmarks/vault_oracle.py --inputs /tmp/vo-in --out /tmp/vo-old
    PYTHONPATH=src python benchmarks/vault_oracle.py --inputs /tmp/vo-in --out /tmp/vo-new
    diff -r /tmp/vo-old /tmp/vo-new

Timing (before/after on the same machine, alternating, each run in its own child process):

    python benchmarks/vault_oracle.py --bench /tmp/vault-gen/vault/vault_audit.log \\
        --src /tmp/vault-base/src --src src --runs 5

prints, per code tree, the CPU seconds of ``VaultAdapter.load`` (the adapter alone) and of
the whole child (``getrusage(RUSAGE_CHILDREN)``: ingest, de-duplication and graph derive).

``--inputs`` is rebuilt deterministically on every run (same bytes, same paths), so file
paths in ``evidence`` compare equal. ``--gen DIR`` adds the ``vault/`` files of a
``scripts/gen_scale.py`` output; ``--fixtures DIR`` points at the shared fixtures.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "events": "*",
    "event_resources": "*",
    "credential_issues": "*",
    "rejects": "*",
    "evidence": "* EXCLUDE (ingested_at)",
    "credentials": "*",
    "links": "*",
}
LEARN = "hashicorp-education_learn-vault-monitoring/vault-audit.log"
HEADERS = [
    "<110>Apr 30 14:27:11 vault[4242]: ",
    "Apr 30 14:27:11 vault-1 vault[4242]: ",
    "<110>1 2020-04-30T14:27:11.123Z vault-1 vault 4242 - - ",
    '<110>1 2020-04-30T14:27:11Z vault-1 vault 4242 audit [meta sequenceId="1"] ',
    "2020-04-30T14:27:11.123456+00:00 vault-1 vault[4242]: ",
]
SERVER_LOG = [
    "2024-01-01T00:00:00.000Z [INFO]  core: post-unseal setup complete",
    "2024-01-01T00:00:01.500Z [DEBUG] expiration: revoked lease: lease_id=aws/creds/deploy/AbCdEf123",
    '{"@level":"info","@message":"core: vault is unsealed","@module":"core","@timestamp":"2024-01-01T00:00:02.000000Z"}',
    "Jan  1 00:00:03 vault-1 vault[7]: 2024-01-01T00:00:03.000Z [WARN]  core: something",
    "2024-01-01T00:00:04+02:00 [ERROR] rollback: failed: lease_id=x",
]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _framings(base: Path, tag: str, lines: list[str]) -> dict[str, list[list[Path]]]:
    """Sets built from ``lines`` (JSON audit lines): one case per key, ingests in order."""
    sets: dict[str, list[list[Path]]] = {}
    joined = "\n".join(lines) + "\n"
    d = base / tag
    sets[f"{tag}-prefix"] = [
        [_write(d / "prefix.log", "".join(f"vault-audit-prod: {x}\n" for x in lines))]
    ]
    for i, h in enumerate(HEADERS):
        sets[f"{tag}-syslog{i}"] = [
            [_write(d / f"syslog{i}.log", "".join(f"{h}{x}\n" for x in lines))]
        ]
    objs = [json.dumps(json.loads(x), indent=2) for x in lines]
    k = len(objs) // 3
    pretty = (
        "\n".join(objs[:k]) + "".join(objs[k : k + 10]) + "\n" + "\n\n".join(objs[k + 10 :]) + "\n"
    )
    sets[f"{tag}-pretty"] = [[_write(d / "pretty.json", pretty)]]
    # A pretty file with a broken object in the middle and a server log line.
    broken = (
        "\n".join(objs[:5])
        + "\n"
        + objs[5][: len(objs[5]) // 2]
        + "\n"
        + SERVER_LOG[0]
        + "\n"
        + "\n".join(objs[6:20])
        + "\n"
    )
    sets[f"{tag}-pretty-broken"] = [[_write(d / "pretty-broken.json", broken)]]
    blob = gzip.compress(joined.encode(), mtime=0)
    sets[f"{tag}-gz"] = [[_write(d / "whole.log.gz", blob)]]
    sets[f"{tag}-gzcut"] = [[_write(d / "cut.log.gz", blob[: len(blob) * 2 // 3])]]
    sets[f"{tag}-gzmulti"] = [
        [
            _write(
                d / "multi.log.gz",
                gzip.compress("\n".join(lines[:7]).encode() + b"\n", mtime=0)
                + gzip.compress(("\n".join(lines[7:]) + "\n").encode(), mtime=0),
            )
        ]
    ]
    reqs = _write(d / "a-requests.log", "\n".join(lines[0::2]) + "\n")
    resps = _write(d / "b-responses.log", "\n".join(lines[1::2]) + "\n")
    sets[f"{tag}-split-one-ingest"] = [[reqs, resps]]
    sets[f"{tag}-split-req-then-resp"] = [[reqs], [resps]]
    sets[f"{tag}-split-resp-then-req"] = [[resps], [reqs]]
    mixed = lines[:10] + SERVER_LOG + lines[10:]
    garbage = (
        mixed[:4]
        + [
            "this is not json",
            mixed[4][:200],
            "{",
            "\x00" + mixed[5][1:],
            "[1, 2]",
            '{"type": "request"}',
            "prefix-only no brace",
            '{"type":"x","request":{}}',
            "  ",
        ]
        + mixed[5:]
        + [lines[3], lines[2], lines[1]]
    )  # repeated and late request entries
    sets[f"{tag}-mixed"] = [
        [_write(d / "mixed.log", "\ufeff" + "\r\n".join(garbage) + "\n" + lines[0][:77])]
    ]
    bad_utf8 = b"".join(
        b"host-\xff\xfe: " + x.encode() + b"\n" if i % 7 == 3 else x.encode() + b"\n"
        for i, x in enumerate(lines)
    )
    sets[f"{tag}-bad-utf8-prefix"] = [[_write(d / "bad-utf8.log", bad_utf8)]]
    sets[f"{tag}-two-devices"] = [
        [_write(d / "dev-a.log", joined), _write(d / "dev-b.log", "\n".join(lines[:20]) + "\n\n")]
    ]
    big = json.loads(lines[1])
    big["response"] = {"data": {"keys": [f"hmac-sha256:{i:064x}" for i in range(6000)]}}
    sets[f"{tag}-long-first"] = [
        [_write(d / "long.log", json.dumps(big) + "\n" + "\n".join(lines[2:]) + "\n")]
    ]
    return sets


_HMAC = "hmac-sha256:" + "ab" * 32
#: Response variations that reach the rarer branches of the row and mint rules.
_VARIANTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "aws/creds/deploy",
        {"mount_type": "aws"},
        {
            "secret": {"lease_id": "aws/creds/deploy/x1", "lease_duration": 900},
            "data": {
                "access_key": "AKIAIOSFODNN7EXAMPLE",
                "secret_key": _HMAC,
                "security_token": None,
            },
        },
    ),
    (
        "aws/sts/deploy",
        {"mount_type": "aws"},
        {
            "secret": {"lease_id": "aws/sts/deploy/x2", "renewable": False},
            "data": {"access_key": _HMAC, "security_token": _HMAC, "arn": _HMAC, "ttl": 60},
        },
    ),
    (
        "cloud/sts/ro le",
        {"mount_type": None},
        {
            "secret": {"lease_id": "cloud/sts/x3"},
            "data": {"access_key": "ASIAIOSFODNN7EXAMPLE", "arn": "arn:aws:sts::1:x"},
        },
    ),
    ("aws/creds/deploy", {"mount_type": ""}, {"data": {"access_key": "not-a-key"}}),
    (
        "secret/data/ledger/db",
        {"namespace": {"id": "Rk2xa", "path": "team-a/"}},
        {
            "wrap_info": {
                "accessor": "Bh57",
                "ttl": 300,
                "creation_path": "secret/data/ledger/db",
                "wrapped_accessor": "w",
            }
        },
    ),
    (
        "auth/approle/role/r1/secret-id",
        {},
        {"data": {"secret_id": _HMAC, "secret_id_accessor": "acc1", "secret_id_ttl": 3600}},
    ),
    (
        "auth/approle/role/r1/custom-secret-id",
        {},
        {"data": {"secret_id": "plain", "secret_id_accessor": "acc2"}},
    ),
    (
        "auth/token/create-orphan/role9",
        {"data": {"no_parent": True}},
        {
            "auth": {
                "accessor": "t-new",
                "policies": ["a"],
                "token_ttl": 60,
                "metadata": {"agent_id": "bot-1"},
                "num_uses": True,
                "display_name": "token-x",
            }
        },
    ),
    (
        "auth/kubernetes/prod/login",
        {"mount_point": "auth/kubernetes/prod/", "data": {"role_id": _HMAC}},
        {
            "auth": {
                "accessor": "t-k8s",
                "lease_duration": 120.7,
                "display_name": "oidc-alice@example.com",
                "metadata": {"role": "web", "service_account_name": "sa", "email": "no-at"},
            }
        },
    ),
    (
        "auth/userpass/login/bob",
        {"remote_address": "[2001:db8::10]:36778", "headers": {"user-agent": ["curl/8", _HMAC, 3]}},
        {
            "auth": {
                "accessor": "t-up",
                "display_name": "userpass-bob",
                "metadata": {"username": "bob"},
                "policy_results": {"allowed": False},
            }
        },
    ),
    (
        "sys/leases/revoke",
        {"remote_address": "10.0.0.1:36776", "client_id": "c1", "operation": "weird"},
        {"data": {"z": 1, "a": None, "\u00e9t\u00e9": "x"}, "mount_type": "kv"},
    ),
    (
        "transit/encrypt/k",
        {"remote_port": "443", "request_uri": "/v1/transit"},
        {"mount_class": "secret"},
    ),
]


def _mint_lines(lines: list[str]) -> list[str]:
    """Request/response pairs of ``lines`` rewritten with :data:`_VARIANTS` and some oddities."""
    objs = [json.loads(x) for x in lines]
    resps = [o for o in objs if o["type"] == "response"]
    out: list[str] = []
    for i, (path, req_extra, resp_extra) in enumerate(_VARIANTS * 2):
        base = resps[i % len(resps)]
        rid = f"ffffffff-0000-0000-0000-{i:012d}"
        req = {
            "time": base["time"],
            "type": "request",
            "auth": base.get("auth", {}),
            "request": {**base["request"], "id": rid, "path": path, **req_extra},
        }
        resp = json.loads(json.dumps(base))
        resp["request"] = dict(req["request"])
        resp["response"] = {**resp.get("response", {}), **resp_extra}
        if i % 3 == 0:
            req["error"] = "1 error occurred: permission denied"
        if i % 4 == 1:
            resp["forwarded_from"] = "10.1.1.1:8201"
            resp["time"] = "2020-04-30T16:27:11.123456789+02:00"
        if i % 5 == 2:
            resp["error"] = "internal error"
        if i >= len(
            _VARIANTS
        ):  # second round: response before request (late), and a repeated request
            out += [json.dumps(resp), json.dumps(req, ensure_ascii=False)]
            if i % 2:
                out.append(json.dumps(req))
        else:
            out += [json.dumps(req), json.dumps(resp, ensure_ascii=False)]
    out.append(
        json.dumps(
            {"time": "2020-04-30T14:27:11Z", "type": "request", "request": {"path": "sys/help"}}
        )
    )
    out.append(
        json.dumps({"time": "", "type": "audit-plugin", "request": {"id": "p1", "path": "x"}})
    )
    out.append(json.dumps({"time": "bogus", "type": "response", "auth": {"accessor": "only-auth"}}))
    return out


def build_inputs(out: Path, fixtures: Path | None, gen: Path | None) -> dict[str, list[list[Path]]]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sets: dict[str, list[list[Path]]] = {}
    sample = ROOT / "sample_data" / "incident" / "vault"
    if sample.exists():
        sets["sample-incident"] = [[sample]]
    if fixtures is not None and (fixtures / "vault").exists():
        fx = fixtures / "vault"
        for f in sorted(p for p in fx.rglob("*") if p.is_file()):
            sets[f"fixture-{f.parent.name}-{f.name}"] = [[f]]
        sets["fixture-all"] = [[fx]]
        learn = (fx / LEARN).read_text().splitlines()
        sets |= _framings(out, "mint", _mint_lines(learn))
        sets |= _framings(out, "learn", learn[1:61])
        sets |= _framings(out, "learnall", learn)
        elastic = [
            x
            for x in (fx / "elastic_integrations/test-audit.log").read_text().splitlines()
            if x.strip()
        ]
        sets |= {
            k: v
            for k, v in _framings(out, "elastic", elastic).items()
            if not k.endswith("long-first")
        }
        yaml_text = (fx / "datadog_integrations-core/vault_tests.yaml").read_text()
        logs = [
            x.split('"', 1)[1].rsplit('"', 1)[0]
            for x in yaml_text.splitlines()
            if x.strip().startswith('sample: "')
        ]
        entry = textwrap.dedent(yaml_text.split("sample: |-\n", 1)[1].split("  result:", 1)[0])
        sets["datadog-pretty"] = [
            [
                _write(
                    out / "datadog" / "vault.log",
                    "\n".join(logs[:2]) + "\n" + entry + logs[2] + "\n",
                )
            ]
        ]
    if gen is not None:
        files = sorted(p for p in (gen / "vault").rglob("*") if p.is_file())
        sets["gen"] = [files]
        head: list[str] = []
        with files[0].open() as fh:
            for line in fh:
                head.append(line.rstrip("\n"))
                if len(head) >= 2000:
                    break
        sets |= {
            k: v
            for k, v in _framings(out, "gen", head).items()
            if k.endswith(("prefix", "syslog2", "pretty", "gzcut", "split-one-ingest", "mixed"))
        }
    return sets


def _cell(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_cell(x) for x in v]
    return v


def dump_case(case: Path, dest: Path, tables: tuple[str, ...] | None = None) -> str:
    """Every row of ``tables`` (default: all of :data:`TABLES`), sorted, one JSON line each."""
    import duckdb

    con = duckdb.connect(str(case), read_only=True)
    h = hashlib.sha256()
    with dest.open("w") as fh:
        for table, cols in TABLES.items():
            if tables is not None and table not in tables:
                continue
            rows = con.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()
            fh.write(f"## {table} {len(rows)}\n")
            for r in rows:
                line = json.dumps([_cell(v) for v in r], ensure_ascii=False, sort_keys=True)
                fh.write(line + "\n")
                h.update(line.encode())
    con.close()
    return h.hexdigest()


_CHILD = """
import sys, tempfile, time
from pathlib import Path
from keytrail.ingest.vault import adapter as vault
from keytrail.ingest.runner import ingest
spent = []
load = vault.VaultAdapter.load
def timed(self, ctx):
    t = time.process_time()
    try:
        return load(self, ctx)
    finally:
        spent.append((time.process_time() - t, ctx.records))
vault.VaultAdapter.load = timed
with tempfile.TemporaryDirectory() as d:
    ingest(Path(d) / "case.duckdb", sys.argv[1:])
print(sum(s for s, _ in spent), sum(n for _, n in spent))
"""


def bench(files: list[str], srcs: list[str], runs: int) -> int:
    """Alternate the code trees ``runs`` times; print CPU seconds per tree (min and median)."""
    import os
    import resource
    import statistics
    import subprocess

    got: dict[str, list[tuple[float, float, int]]] = {s: [] for s in srcs}
    for _ in range(runs):
        for src in srcs:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, *files],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": src},
            ).stdout.split()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            got[src].append((float(out[0]), total, int(out[1])))
    print(
        "| code | records | adapter load CPU s (min / median) | records per CPU s (median) "
        "| whole child CPU s (min / median) |"
    )
    print("|---|---|---|---|---|")
    for src, rows in got.items():
        load = [r[0] for r in rows]
        total = [r[1] for r in rows]
        n = rows[0][2]
        print(
            f"| {src} | {n} | {min(load):.3f} / {statistics.median(load):.3f} | "
            f"{n / statistics.median(load):,.0f} | {min(total):.3f} / {statistics.median(total):.3f} |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bench", nargs="+", default=None, help="time ingest of these files instead (see --src)"
    )
    ap.add_argument(
        "--src", action="append", default=[], help="a code tree to put on PYTHONPATH (repeat)"
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--inputs", type=Path, help="where to (re)build the synthesised inputs")
    ap.add_argument("--out", type=Path, help="where to write one dump per set")
    ap.add_argument("--fixtures", type=Path, default=Path("/work/shared/fixtures"))
    ap.add_argument(
        "--gen", type=Path, default=None, help="a gen_scale.py output folder (its vault/ files)"
    )
    ap.add_argument("--only", default=None, help="run only sets whose name contains this")
    args = ap.parse_args(argv)
    if args.bench:
        return bench(args.bench, args.src or ["src"], args.runs)
    if args.inputs is None or args.out is None:
        ap.error("--inputs and --out are required (or --bench)")
    from keytrail.ingest.runner import ingest

    sets = build_inputs(args.inputs, args.fixtures if args.fixtures.exists() else None, args.gen)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = args.inputs / "_cases"
    cases.mkdir()
    for name, ingests in sets.items():
        if args.only and args.only not in name:
            continue
        case = cases / f"{name}.duckdb"
        for paths in ingests:
            ingest(case, paths)
        digest = dump_case(case, args.out / f"{name}.txt")
        print(f"{name}: {digest[:16]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
