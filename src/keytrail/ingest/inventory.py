"""The agent inventory (``--inventory``): the NHI programme's register of agents.

Findings compare it with what the logs show (an agent acting after it was retired,
using an identity it is not registered for, or missing from the register), so it
is validated strictly: an entry with a missing id, a bad date, an unknown key or an
identity of no known shape is rejected with its record number and a message naming
the key and the allowed values; every other entry still loads. Three encodings hold
the same data and produce identical rows: TOML ``[[agents]]`` tables, JSON (an array
or ``{"agents": [...]}``) and CSV (one row per agent, identities separated by ``;``).
Format reference: ``docs/formats/inventory.md``.

The runner gives this adapter only files named with ``--inventory``; it is not in the
log-adapter registry, and its sniffer is strict so it never claims a log file.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from datetime import UTC, date, datetime
from typing import Any

import orjson

from keytrail.ingest.base import LoadContext, Sample, SourceAdapter
from keytrail.timefmt import to_utc

FIELDS = ("id", "name", "owner", "purpose", "created", "retired", "environment", "identities")
_TEXT_FIELDS = ("name", "owner", "purpose", "environment")
IDENTITY_SHAPES = (
    "an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name> or :user/<name>)",
    "an AWS access key id (AKIA or ASIA followed by 16 upper-case letters or digits)",
    "a Vault auth role as vault:<auth mount>/<role> (e.g. vault:approle/ledger-reconciler)",
)
_IAM_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(?:role|user)/[\w+=,.@/-]+$")
_ACCESS_KEY = re.compile(r"^(?:AKIA|ASIA)[A-Z0-9]{16}$")
_VAULT_ROLE = re.compile(r"^vault:[\w.-]+(?:/[\w.-]+)+$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TOML_TABLE = re.compile(rb"^[ \t]*\[\[[ \t]*agents[ \t]*\]\][ \t]*(?:#.*)?$", re.MULTILINE)
_JSON_ARRAY = re.compile(rb'^\[\s*(?:\]|\{\s*(?:\}|"(?:' + "|".join(FIELDS).encode() + rb')"\s*:))')
_JSON_OBJECT = re.compile(rb'^\{\s*"agents"\s*:\s*\[')
_CSV_HEADER = re.compile(r"^[\w ,\"]+$")


class _Problem(str):
    """A reading problem standing in for an entry (a CSV row with extra cells, a stray TOML key)."""


def identity_ok(value: str) -> bool:
    return bool(_IAM_ARN.match(value) or _ACCESS_KEY.match(value) or _VAULT_ROLE.match(value))


def _when(value: Any, key: str) -> tuple[datetime | None, str | None]:
    """(UTC datetime, error) for a TOML date/datetime or an RFC 3339 / YYYY-MM-DD string."""
    if value is None or value == "":
        return None, None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value, None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day), None
    if isinstance(value, str):
        text = value.strip()
        parsed = to_utc(text) if (_DATE_ONLY.match(text) or "T" in text or " " in text) else None
        if parsed is not None:
            return parsed, None
    return None, (
        f"'{key}' is {value!r}: expected a date (YYYY-MM-DD) or an RFC 3339 timestamp "
        f"(e.g. 2026-03-01T12:00:00Z)"
    )


def validate(entry: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A checked ``inventory_agents`` row (without file/record columns), or the reason it is rejected."""
    if not isinstance(entry, dict):
        return None, "an agent entry must be a table/object with keys " + ", ".join(FIELDS)
    unknown = [k for k in entry if k not in FIELDS]
    if unknown:
        return None, f"unknown key '{unknown[0]}'; allowed keys: {', '.join(FIELDS)}"
    agent_id = entry.get("id")
    if isinstance(agent_id, int) and not isinstance(agent_id, bool):
        agent_id = str(agent_id)
    if not isinstance(agent_id, str) or not agent_id.strip():
        return (
            None,
            "'id' is required and must be a non-empty string (the agent id as the logs name it)",
        )
    row: dict[str, Any] = {"agent_id": agent_id.strip()}
    for key in _TEXT_FIELDS:
        v = entry.get(key)
        if v is not None and not isinstance(v, str):
            return None, f"'{key}' must be a string, not {type(v).__name__}"
        row[key] = v.strip() if isinstance(v, str) and v.strip() else None
    for key in ("created", "retired"):
        row[key], err = _when(entry.get(key), key)
        if err:
            return None, err
    if row["created"] and row["retired"] and row["retired"] < row["created"]:
        return (
            None,
            f"'retired' ({row['retired']:%Y-%m-%d}) is before 'created' ({row['created']:%Y-%m-%d})",
        )
    idents = entry.get("identities") or []
    if isinstance(idents, str):  # CSV cell, or a single identity written as a string
        idents = [p for p in (s.strip() for s in idents.split(";")) if p]
    if not isinstance(idents, list) or not all(isinstance(i, str) for i in idents):
        return None, "'identities' must be a list of strings"
    clean = [i.strip() for i in idents if i.strip()]
    for ident in clean:
        if not identity_ok(ident):
            return None, f"'identities' item {ident!r} has no known shape; allowed: " + "; ".join(
                IDENTITY_SHAPES
            )
    row["identities"] = list(dict.fromkeys(clean))
    return row, None


def _detect(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf")
    stripped = text.lstrip()
    if _JSON_ARRAY.match(stripped) or _JSON_OBJECT.match(stripped):
        return "inventory-json"
    if not stripped.startswith((b"{", b"[{", b"[\n")) and _TOML_TABLE.search(text):
        return "inventory-toml"
    first = stripped.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    if _CSV_HEADER.match(first):
        cols = [c.strip().strip('"').lower() for c in first.split(",")]
        if "id" in cols and "identities" in cols and all(c in FIELDS for c in cols):
            return "inventory-csv"
    return None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v)
        for k, v in row.items()
    }


class InventoryAdapter(SourceAdapter):
    NAME = "inventory"
    SOURCE = "inventory"
    PRIORITY = 1000  # never ahead of a log adapter; the runner forces it for --inventory files

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return _detect(sample.head)

    def load(self, ctx: LoadContext) -> None:
        data = ctx.read_all()
        fmt = _detect(data[:65536]) or ctx.format
        try:
            entries = self._entries(fmt, data)
        except ValueError as e:
            ctx.records += 1
            ctx.reject(str(e), record_no=None, excerpt=data[:512])
            return
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for record_no, entry in entries:
            ctx.records += 1
            if isinstance(entry, _Problem):
                where = f"agent record {record_no}: " if record_no is not None else ""
                ctx.reject(where + entry, record_no=record_no)
                continue
            row, err = validate(entry)
            if row is not None and row["agent_id"] in seen:
                err = f"duplicate id {row['agent_id']!r} (first defined in record {seen[row['agent_id']]})"
                row = None
            if row is None or record_no is None:
                ctx.reject(
                    f"agent record {record_no}: {err}",
                    record_no=record_no,
                    excerpt=orjson.dumps(entry, default=str).decode(),
                )
                continue
            seen[row["agent_id"]] = record_no
            raw = {"id": row["agent_id"], **{k: row[k] for k in FIELDS[1:]}}
            rows.append(
                {**row, "record_no": record_no, "raw": orjson.dumps(_jsonable(raw)).decode()}
            )
        ctx.insert("inventory_agents", rows)

    @staticmethod
    def _entries(fmt: str, data: bytes) -> list[tuple[int | None, Any]]:
        """``(record number, entry)`` pairs; ``(None, message)`` for a file-level problem.

        Raises:
            ValueError: the file as a whole cannot be read (does not parse, or no agents list).
        """
        text = data.decode("utf-8-sig", errors="replace")
        if fmt == "inventory-toml":
            try:
                doc = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"inventory TOML does not parse: {e}") from e
            agents = doc.get("agents")
            if not isinstance(agents, list):
                raise ValueError("inventory TOML has no [[agents]] tables")
            stray: list[tuple[int | None, Any]] = [
                (
                    None,
                    _Problem(
                        f"inventory TOML top-level key '{k}' ignored; only [[agents]] tables are read"
                    ),
                )
                for k in doc
                if k != "agents"
            ]
            return stray + list(enumerate(agents, start=1))
        if fmt == "inventory-json":
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise ValueError(f"inventory JSON does not parse: {e}") from e
            agents = doc.get("agents") if isinstance(doc, dict) else doc
            if not isinstance(agents, list):
                raise ValueError('inventory JSON must be an array of agents or {"agents": [...]}')
            return list(enumerate(agents, start=1))
        if fmt == "inventory-csv":
            reader = csv.DictReader(io.StringIO(text, newline=""))
            reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
            out: list[tuple[int | None, Any]] = []
            for row in reader:
                if None in row:  # more cells than header columns
                    out.append(
                        (
                            reader.line_num,
                            _Problem(f"row has {len(row[None])} more cells than the header"),
                        )
                    )
                    continue
                out.append(
                    (reader.line_num, {k: v for k, v in row.items() if v is not None and v.strip()})
                )
            return out
        raise ValueError(
            "not an agent inventory: expected TOML with [[agents]] tables, a JSON array of agent "
            'objects (or {"agents": [...]}), or CSV with a header naming id and identities '
            "(see docs/formats/inventory.md)"
        )
