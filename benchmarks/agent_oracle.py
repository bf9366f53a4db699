"""Oracle for the agent-log adapters (OTLP, MCP, native): ingest fixed input sets, dump every row.

Why: the agent adapters are being made faster; a speed-up must not change a byte of a case.
This script builds a fixed set of inputs (every agent fixture, ``jaeger/`` included, the
repository's recorded agent runs, the sample incident's agent logs, generated files, and crafted
hostile lines: broken JSON, BOM, CRLF, huge lines, bad UTF-8, duplicate keys, big and odd
numbers, lone surrogates, deep nesting, pretty documents, gzip cut short), ingests each set into
its own case with whatever ``keytrail`` is on ``PYTHONPATH``, and writes per set every row of
``events``, ``event_resources``, ``rejects``, ``evidence`` (without ``ingested_at``),
``credentials`` and ``links``, sorted (``vault_oracle.dump_case``). Run it with the old code and
the new and diff:

    PYTHONPATH=/tmp/base/src python benchmarks/agent_oracle.py --inputs /tmp/ao-in --out /tmp/ao-old
    PYTHONPATH=src python benchmarks/agent_oracle.py --inputs /tmp/ao-in --out /tmp/ao-new
    diff -r /tmp/ao-old /tmp/ao-new

``--inputs`` is rebuilt deterministically on every run (same bytes, same paths), so file paths
in ``evidence`` compare equal. ``--gen DIR`` adds the ``agents/`` files of a
``scripts/gen_scale.py`` output. :func:`hostile_files` is also used by
``tests/unit/test_agent_fast_paths.py``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vault_oracle import _write, dump_case

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("events", "event_resources", "rejects", "evidence", "credentials", "links")
#: The tables the adapters write themselves (no file paths, no derive): what the test compares.
ADAPTER_TABLES = ("events", "event_resources", "rejects")

_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "parentSpanId": "eee19b7ec3c1b173",
    "name": "execute_tool s3_get",
    "kind": 1,
    "startTimeUnixNano": "1772409782313000000",
    "endTimeUnixNano": "1772409786472000000",
    "attributes": [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
        {"key": "gen_ai.tool.name", "value": {"stringValue": "s3_get"}},
        {
            "key": "gen_ai.tool.call.arguments",
            "value": {
                "stringValue": '{"Bucket":"b1","Key":"k/1","access_key_id":"AKIAAAAAAAAAAAAAAAAA"}'
            },
        },
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
        {"key": "password", "value": {"stringValue": "hunter2-secret"}},
    ],
    "status": {"code": 1},
}
_ROOT_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b173",
    "name": "invoke_agent bot",
    "startTimeUnixNano": 1772409782300000000,
    "attributes": [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
        {"key": "gen_ai.agent.id", "value": {"stringValue": "bot-1"}},
        {"key": "enduser.id", "value": {"stringValue": "alice"}},
    ],
}


def _otlp(*spans: dict[str, object], service: str = "svc") -> str:
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    doc = {
        "resourceSpans": [
            {"resource": res, "scopeSpans": [{"scope": {"name": "s"}, "spans": list(spans)}]}
        ]
    }
    return json.dumps(doc, separators=(",", ":"))


def _variants() -> dict[str, list[str]]:
    """Good lines of each kind, and lines that break or stretch them."""
    span = dict(_SPAN)
    odd = [
        {**span, "spanId": "eee19b7ec3c1b175", "startTimeUnixNano": 1.7724097823e18},
        {**span, "spanId": "eee19b7ec3c1b176", "startTimeUnixNano": "17724097823130000001234567"},
        {**span, "spanId": "7u4bfsPBsXQ=", "traceId": "W47/95gDgQPSabYz/D/AwA=="},
        {**span, "spanId": "", "traceId": "00000000000000000000000000000000"},
        {
            **span,
            "spanId": "EEE19B7EC3C1B177",
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        },
        {**span, "spanId": "eee19b7ec3c1b178", "startTimeUnixNano": True},
        {**span, "spanId": "eee19b7ec3c1b179", "startTimeUnixNano": "0"},
        {**span, "spanId": "eee19b7ec3c1b17a", "attributes": "nope"},
        {
            **span,
            "spanId": "eee19b7ec3c1b17b",
            "events": [
                {
                    "name": "exception",
                    "attributes": [
                        {"key": "exception.type", "value": {"stringValue": "ValueError"}},
                        {"key": "exception.message", "value": {"stringValue": "token=abc123"}},
                    ],
                },
                "junk",
            ],
        },
        {
            **span,
            "spanId": "eee19b7ec3c1b17c",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.system", "value": {"stringValue": "vertex_ai"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "77"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": 7.0}},
                {"key": "gen_ai.tool.definitions", "value": {"stringValue": '[{"name":"a"}]'}},
                {
                    "key": "gen_ai.output.messages",
                    "value": {"stringValue": '[{"parts":[{"type":"tool_call","name":"b"}]}]'},
                },
                {
                    "key": "x",
                    "value": {"arrayValue": {"values": [{"intValue": "1"}, {"boolValue": "true"}]}},
                },
                {
                    "key": "y",
                    "value": {
                        "kvlistValue": {"values": [{"key": "z", "value": {"doubleValue": "nan"}}]}
                    },
                },
                {"key": "w", "value": {"bytesValue": "AAEC"}},
                {"key": 5, "value": {}},
                "junk",
            ],
        },
        {
            **span,
            "spanId": "eee19b7ec3c1b17d",
            "attributes": [
                {"key": "openinference.span.kind", "value": {"stringValue": "tool"}},
                {"key": "tool.name", "value": {"stringValue": "vault_read"}},
                {"key": "input.value", "value": {"stringValue": "secret/data/app/db"}},
                {"key": "session.id", "value": {"intValue": "42"}},
            ],
        },
        {
            **span,
            "spanId": "eee19b7ec3c1b17e",
            "name": "agent_run [planner]",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}
            ],
        },
        {
            **span,
            "spanId": "eee19b7ec3c1b17f",
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": "t"}}],
            "events": [
                {
                    "name": "gen_ai.tool.message",
                    "attributes": [
                        {"key": "content", "value": {"stringValue": '{"url":"s3://bk/o"}'}}
                    ],
                }
            ],
        },
    ]
    logs = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "com.anthropic.claude_code"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1772409782313000000",
                                "body": {"stringValue": "claude_code.tool_result"},
                                "attributes": [
                                    {"key": "event.name", "value": {"stringValue": "tool_result"}},
                                    {"key": "tool_name", "value": {"stringValue": "Bash"}},
                                    {"key": "success", "value": {"stringValue": "false"}},
                                    {"key": "decision", "value": {"stringValue": "reject"}},
                                ],
                            },
                            {
                                "observedTimeUnixNano": "1772409782313000001",
                                "severityNumber": 17,
                                "body": {
                                    "kvlistValue": {
                                        "values": [
                                            {"key": "a", "value": {"stringValue": "x" * 3000}}
                                        ]
                                    }
                                },
                            },
                            {"severityText": "INFO"},
                            7,
                        ],
                    }
                ],
            }
        ]
    }
    otlp = [_otlp(_ROOT_SPAN, _SPAN), _otlp(*odd), json.dumps(logs)]
    otlp += [
        _otlp(_SPAN).replace('"s3_get"', '"s3_get","name":"dup"', 1),  # duplicate key
        _otlp(_SPAN).replace("s3_get", "s3_g\\ud800et"),  # lone surrogate
        _otlp(_SPAN).replace('"kind":1', '"kind":1e999'),
        _otlp(_SPAN).replace('"kind":1', '"kind":NaN'),
        _otlp(_SPAN).replace('"kind":1', '"kind":18446744073709551616'),
        _otlp(_SPAN).replace('"code":1}', '"code":1,}'),
        '{"resourceSpans": [1, {"scopeSpans": [2, {"spans": [3]}]}], "resourceLogs": "x"}',
        '{"resourceSpans": []}',
        '{"other": 1}',
        "[1, 2]",
        '{"resourceSpans": [{"scopeSpans": [{"spans": [' + "[" * 2000 + "]" * 2000 + "]}]}]}",
        _otlp({**_SPAN, "name": "big " + "y" * 300_000}),
    ]
    mcp_env = {
        "time": "2026-03-02T00:00:59.824Z",
        "direction": "client_to_server",
        "session": "s1",
        "server": "aws-tools",
        "client": "bot-1",
    }
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "s3_get",
            "arguments": {"bucket": "b", "key": "k", "password": "pw-1"},
            "_meta": {
                "traceparent": "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01",
                "io.modelcontextprotocol/clientInfo": {"name": "c"},
            },
        },
    }
    resp = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "err"}], "isError": True},
    }
    back = {**mcp_env, "direction": "server_to_client", "time": 1772409783}
    mcp = [
        json.dumps({**mcp_env, "message": call}),
        json.dumps({**back, "message": resp}),
        json.dumps({**mcp_env, "message": {**call, "id": "1"}}),
        json.dumps({**mcp_env, "message": {**call, "id": 2}}),
        json.dumps(
            {
                **mcp_env,
                "message": {
                    **call,
                    "id": 2,
                    "method": "resources/read",
                    "params": {"uri": "s3://b/k"},
                },
            }
        ),
        json.dumps(
            {
                **back,
                "message": {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}},
            }
        ),
        json.dumps({**mcp_env, "time": "yesterday", "message": call}),
        json.dumps(
            {
                **mcp_env,
                "time": 1.5e9,
                "message": {
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": "info", "logger": "x"},
                },
            }
        ),
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "initialize",
                "params": {"clientInfo": {"name": "cli", "version": "1"}},
            }
        ),
        json.dumps({"jsonrpc": "2.0", "id": 9, "result": {"resultType": "input_required"}}),
        json.dumps({"jsonrpc": "2.0", "id": 10}),
        json.dumps({"jsonrpc": "1.0", "id": 10, "method": "x"}),
        json.dumps({**mcp_env, "session": {"a": 1}, "message": {**call, "id": [1]}}),
        json.dumps({**mcp_env, "message": {**call, "id": 12345678901234567890123}}),
        json.dumps({**mcp_env, "message": call}).replace('"s3_get"', '"s3_get","name":"x"'),
        json.dumps({**mcp_env, "message": call}).replace('"b"', '"\\udfff"'),
    ]
    native_base = {
        "time": "2026-03-02T00:02:46Z",
        "event_id": "e-1",
        "agent_id": "bot-1",
        "operation": "tool_call",
        "tool": "vault_read",
        "target": "secret/data/x",
        "arguments": {"path": "kv/app", "token": "s.abcdefghijklmnopqrstuvwx"},
        "credential": "ASIAZ6RAOUT7CX3I4IVA",
        "outcome": "success",
        "extra_field": [1],
    }
    native = [
        json.dumps(native_base),
        json.dumps({**native_base, "event_id": None, "outcome": None, "error": "denied"}),
        json.dumps({**native_base, "event_id": None}),
        json.dumps({**native_base, "event_id": None}),
        json.dumps({**native_base, "time": "2026-03-02 00:02:46+02:00", "operation": "login"}),
        json.dumps({**native_base, "time": "soon"}),
        json.dumps({**native_base, "operation": "bad op!"}),
        json.dumps({**native_base, "outcome": "maybe"}),
        json.dumps({**native_base, "tool": 5}),
        json.dumps({**native_base, "arguments": [1]}),
        json.dumps({**native_base, "tool": " "}),
        json.dumps({**native_base, "agent_id": ""}),
        json.dumps(
            {
                **native_base,
                "trace_id": "ABCDEF",
                "span_id": "not hex",
                "credential": None,
                "arguments": {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "x": "ASIAIOSFODNN7EXAMPLE"},
            }
        ),
        json.dumps(native_base).replace('"bot-1"', '"bot-1","agent_id":"bot-2"'),
        json.dumps(native_base).replace('"e-1"', '"e-\\ud83d"'),
        json.dumps({**native_base, "event_id": "big", "n": 123456789012345678901234567890}),
        json.dumps({**native_base, "event_id": "flt", "n": 1.0e-7, "m": 1e400}),
        "42",
        "{not json",
    ]
    return {"otlp": otlp, "mcp": mcp, "native": native}


def hostile_files(out: Path) -> dict[str, list[Path]]:
    """One file per (kind, framing): the crafted lines bare, with a BOM and CRLF, bad UTF-8,
    blank and garbage lines, pretty-printed, gzip and gzip cut short."""
    sets: dict[str, list[Path]] = {}
    for kind, lines in _variants().items():
        d = out / "hostile" / kind
        body = "\n".join(lines) + "\n"
        sets[f"hostile-{kind}"] = [_write(d / "lines.jsonl", body)]
        sets[f"hostile-{kind}-bom-crlf"] = [
            _write(d / "crlf.jsonl", "\ufeff" + body.replace("\n", "\r\n"))
        ]
        raw = b"\n".join(
            x.encode().replace(b"bot-1", b"bot-\xff\xfe1") if i % 3 == 1 else x.encode()
            for i, x in enumerate(lines)
        )
        sets[f"hostile-{kind}-bad-utf8"] = [_write(d / "bad-utf8.jsonl", raw + b"\n")]
        garbage = (
            lines[:1]
            + ["", "   ", "not json", "\x00{}", lines[0][: len(lines[0]) // 2]]
            + lines[1:]
        )
        sets[f"hostile-{kind}-garbage"] = [_write(d / "garbage.jsonl", "\n".join(garbage))]
        pretty = json.dumps(json.loads(lines[0]), indent=2)
        sets[f"hostile-{kind}-pretty"] = [_write(d / "pretty.json", pretty + "\n")]
        sets[f"hostile-{kind}-pretty-broken"] = [
            _write(d / "pretty-broken.json", pretty[:-3] + "\n")
        ]
        blob = gzip.compress(body.encode(), mtime=0)
        sets[f"hostile-{kind}-gz"] = [_write(d / "whole.jsonl.gz", blob)]
        sets[f"hostile-{kind}-gzcut"] = [_write(d / "cut.jsonl.gz", blob[: len(blob) * 2 // 3])]
        sets[f"hostile-{kind}-twice"] = [_write(d / "a.jsonl", body), _write(d / "b.jsonl", body)]
    # An integer beyond 64 bits in an attribute failed the whole file before (orjson cannot write
    # it back); its own set, so the other crafted lines still compare.
    big = {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 123456789012345678901234}}
    line = _otlp({**_SPAN, "attributes": [*_SPAN["attributes"], big]})  # type: ignore[list-item]
    sets["hostile-otlp-bigint"] = [_write(out / "hostile" / "bigint.jsonl", line + "\n")]
    return sets


def build_inputs(out: Path, fixtures: Path | None, gen: Path | None) -> dict[str, list[Path]]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sets: dict[str, list[Path]] = {}
    sample = ROOT / "sample_data" / "incident" / "agents"
    if sample.exists():
        sets["sample-incident"] = [sample]
    recorded = ROOT / "tests" / "fixtures" / "agents"
    for d in sorted(p for p in recorded.iterdir() if p.is_dir()):
        sets[f"recorded-{d.name}"] = [d]
    if fixtures is not None and (fixtures / "agent").exists():
        fx = fixtures / "agent"
        for f in sorted(p for p in fx.rglob("*") if p.is_file() and p.suffix != ".md"):
            sets[f"fixture-{f.relative_to(fx).as_posix().replace('/', '-')}"] = [f]
        sets["fixture-all"] = [fx]
    if gen is not None:
        files = sorted(p for p in (gen / "agents").rglob("*") if p.is_file())
        sets["gen"] = files
        for f in files:  # the first 2,000 lines of each, with CRLF
            head = f.read_bytes().split(b"\n")[:2000]
            sets[f"gen-crlf-{f.name}"] = [_write(out / "gen" / f.name, b"\r\n".join(head))]
    return sets | hostile_files(out)


def _cell(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_cell(x) for x in v]
    return v


def digests(case: Path, tables: tuple[str, ...] = ADAPTER_TABLES) -> dict[str, str]:
    """sha256 (first 16 hex digits) of every row of ``tables``, sorted, per table."""
    import duckdb

    con = duckdb.connect(str(case), read_only=True)
    try:
        out = {}
        for table in tables:
            h = hashlib.sha256()
            # not the CloudTrail ingest's ct_* columns (schema 3): NULL on every agent row
            cols = [
                str(c[0])
                for c in con.execute(f"DESCRIBE {table}").fetchall()
                if not str(c[0]).startswith("ct_")
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            for r in con.execute(f"SELECT {select} FROM {table} ORDER BY ALL").fetchall():
                row = json.dumps([_cell(v) for v in r], ensure_ascii=False, sort_keys=True)
                h.update(row.encode() + b"\n")
            out[table] = h.hexdigest()[:16]
        return out
    finally:
        con.close()


def digest_sets(tmp: Path) -> dict[str, dict[str, str]]:
    """Per set, :func:`digests` of the rows the adapters wrote, for the sets that need no shared
    fixtures (hostile files, recorded agent runs, the sample incident): what
    ``tests/unit/test_agent_fast_paths.py`` holds against ``main``'s rows."""
    from keytrail.ingest.runner import ingest

    sets = dict(hostile_files(tmp))
    sets["sample-incident"] = [ROOT / "sample_data" / "incident" / "agents"]
    recorded = ROOT / "tests" / "fixtures" / "agents"
    for d in sorted(p for p in recorded.iterdir() if p.is_dir()):
        sets[f"recorded-{d.name}"] = [d]
    got = {}
    for name, paths in sets.items():
        case = tmp / "_cases" / f"{name}.duckdb"
        case.parent.mkdir(exist_ok=True)
        ingest(case, paths, graph=False)  # the graph derive writes none of these tables
        if name.endswith("-twice"):
            ingest(case, paths, graph=False)  # idempotent re-ingest
        got[name] = digests(case)
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=Path, help="where to (re)build the inputs")
    ap.add_argument("--out", type=Path, help="where to write one dump per set")
    ap.add_argument("--digests", action="store_true", help="print digest_sets() as JSON")
    ap.add_argument("--fixtures", type=Path, default=Path("/work/shared/fixtures"))
    ap.add_argument("--gen", type=Path, default=None, help="a gen_scale.py output folder")
    ap.add_argument("--only", default=None, help="run only sets whose name contains this")
    args = ap.parse_args(argv)
    if args.digests:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(digest_sets(Path(d)), indent=1, sort_keys=True))
        return 0
    if args.inputs is None or args.out is None:
        ap.error("--inputs and --out are required (or --digests)")
    from keytrail.ingest.runner import ingest

    sets = build_inputs(args.inputs, args.fixtures if args.fixtures.exists() else None, args.gen)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = args.inputs / "_cases"
    cases.mkdir()
    for name, paths in sets.items():
        if args.only and args.only not in name:
            continue
        case = cases / f"{name}.duckdb"
        ingest(case, paths)
        if name.endswith("-twice"):
            ingest(case, paths)  # idempotent re-ingest
        digest = dump_case(case, args.out / f"{name}.txt", TABLES)
        print(f"{name}: {digest[:16]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
