"""The agent adapters' cheaper code paths give the rows the straightforward code gave.

Two kinds of checks: each shortcut against the rule it replaces (``_firsts`` against
``_first``, ``rows_table`` against ``LoadContext``'s own conversion, the argument walkers and
``otlp_id`` against their plain definitions), and every row the adapters write (``events``,
``event_resources``, ``rejects``) on crafted hostile files (``benchmarks/agent_oracle.py``: broken
JSON, BOM + CRLF, bad UTF-8, garbage lines, pretty documents, gzip and gzip cut short, duplicate
keys, big and odd numbers, lone surrogates, deep nesting, a 300 KB line), the repository's
recorded agent runs and the sample incident, against digests of the rows ``main`` wrote before
the speed-up (commit 209531a). ``benchmarks/agent_oracle.py`` diffs two code trees on more sets
(every shared fixture, generated files; evidence, credentials and links too).

When a digest changes on purpose (a fix that changes stored rows, e.g. the masking rules), print
the new digests with ``PYTHONPATH=src python benchmarks/agent_oracle.py --digests`` and say why in
the commit.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail.ingest.agent import attrs, refs
from keytrail.ingest.agent.common import json_text, rows_table
from keytrail.ingest.base import rows_to_arrow

REPO = Path(__file__).resolve().parents[2]


def _oracle() -> ModuleType:
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "kt_agent_oracle", REPO / "benchmarks" / "agent_oracle.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- shortcuts against the rules they replace -------------------------------------------------

_SLOT_KEYS = sorted({k for keys in attrs._SLOTS.values() for k in keys})
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**20),
    st.floats(allow_nan=False),
    st.sampled_from(["", "  ", " x ", "abc", "vault.x", "AKIAIOSFODNN7EXAMPLE", "0"]),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*_SLOT_KEYS, "other", "gen_ai.x"]), _VALUES, max_size=12))
def test_firsts_is_first_for_every_slot(given_attrs: dict[str, Any]) -> None:
    got = attrs._firsts(given_attrs)
    for slot, keys in attrs._SLOTS.items():
        assert got.get(slot, (None, None)) == attrs._first(given_attrs, keys), slot


def _first_reference(a: Any, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``_first`` as it was written before the disjointness shortcut."""
    for k in keys:
        v = a.get(k)
        if v is None:
            continue
        if isinstance(v, str):
            v = v.strip()
            if v:
                return v, k
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v), k
    return None, None


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUES, max_size=4))
def test_first_shortcut(given_attrs: dict[str, Any]) -> None:
    for keys in (("a",), ("a", "b"), ("c", "a", "b"), ("e",)):
        assert attrs._first(given_attrs, keys) == _first_reference(given_attrs, keys)
        assert attrs._first(MappingProxyType(given_attrs), keys) == _first_reference(
            given_attrs, keys
        )


def test_key_values_same_for_dicts_and_other_mappings() -> None:
    kvs = [
        {"key": "a", "value": {"stringValue": "x"}},
        {"key": "b", "value": {"stringValue": "y", "intValue": "3"}},
        {"key": "c", "value": {"intValue": "3"}},
        {"key": "d", "value": {}},
        {"key": 5, "value": {"stringValue": "no"}},
        "junk",
        {
            "key": "a",
            "value": {"kvlistValue": {"values": [{"key": "z", "value": {"boolValue": "true"}}]}},
        },
    ]
    want = {"a": {"z": True}, "b": "y", "c": 3, "d": None}
    assert attrs.key_values(kvs) == want
    proxied = [
        MappingProxyType(
            {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in kv.items()}
        )
        if isinstance(kv, dict)
        else kv
        for kv in kvs
    ]
    assert attrs.key_values(proxied) == want


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [
        ("5b8efff798038103d269b633813fc60c", 16),
        ("5B8EFFF798038103D269B633813FC60C", 16),
        ("12345678901234567890123456789012", 16),
        ("00000000000000000000000000000000", 16),
        ("ab cd ef 01 23 45 67 89 ab cd ef", 16),
        ("eee19b7ec3c1b174", 8),
        ("eee19b7ec3c1b17g", 8),
        (" eee19b7ec3c1b174 ", 8),
        ("7u4bfsPBsXQ=", 8),
        ("W47/95gDgQPSabYz/D/AwA==", 16),
        ("ééé19b7ec3c1b174", 8),
    ],
)
def test_otlp_id_hex_shortcut(value: str, nbytes: int) -> None:
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == nbytes * 2 else b""
    except ValueError:
        raw = b""
    got = attrs.otlp_id(value, nbytes)
    if raw:
        assert got == (raw.hex() if any(raw) else None)
    else:
        assert got is None or got == text or len(got) == nbytes * 2


def _walk_reference(obj: Any, depth: int = 0) -> list[Any]:
    if depth > 8:
        return []
    if isinstance(obj, dict):
        return [obj] + [m for v in obj.values() for m in _walk_reference(v, depth + 1)]
    if isinstance(obj, list):
        return [m for v in obj[:1000] for m in _walk_reference(v, depth + 1)]
    return []


def _strings_reference(obj: Any, depth: int = 0) -> list[str]:
    if depth > 8:
        return []
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings_reference(v, depth + 1)]
    if isinstance(obj, list):
        return [s for v in obj[:1000] for s in _strings_reference(v, depth + 1)]
    return []


_JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4)
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_argument_walkers(value: Any) -> None:
    assert list(refs._walk(value)) == _walk_reference(value)
    assert list(refs._strings(value)) == _strings_reference(value)


def test_argument_walkers_depth_limit() -> None:
    deep: Any = "s3://b/deepest"
    for i in range(12):
        deep = {"k": deep, "v": f"s3://b/{i}"} if i % 2 else [deep, f"arn:aws:s3:::b{i}"]
    assert list(refs._strings(deep)) == _strings_reference(deep)
    assert list(refs._walk(deep)) == _walk_reference(deep)


_ROW_VALUES = {
    "event_uid": st.text(max_size=5),
    "time": st.none()
    | st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    "record_no": st.none() | st.integers(0, 2**40),
    "details": st.none() | st.text(max_size=5),
    "raw": st.text(max_size=8),
}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({}, optional=_ROW_VALUES),  # type: ignore[arg-type]
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_rows_table_is_the_context_conversion(rows: list[dict[str, Any]], uniform: bool) -> None:
    if uniform:
        keys = set().union(*rows) or {"event_uid"}
        rows = [{k: r.get(k) for k in sorted(keys)} for r in rows]
    if not set().union(*rows):
        rows = [{**r, "event_uid": "x"} for r in rows]
    assert rows_table("events", rows).equals(rows_to_arrow("events", rows))


def test_json_text_writes_integers_beyond_64_bits_as_text() -> None:
    assert json_text({"a": 2**70, "b": [-(2**64), 2**64 - 1, True], "c": 1.5}) == (
        '{"a":"1180591620717411303424",'
        '"b":["-18446744073709551616",18446744073709551615,true],"c":1.5}'
    )


# -- every row the adapters write, against main's ----------------------------------------------

EXPECTED_PATH = Path(__file__).with_name("agent_rows_main.json")
#: Sets whose rows changed on purpose since main: an OTLP attribute with an integer beyond 64 bits
#: failed the whole file (orjson could not write it back); it loads now. Digest from this branch.
CHANGED = {
    "hostile-otlp-bigint": {
        "event_resources": "7653a7c3e061ef5d",
        "events": "95d2f6104d1e0b73",
        "rejects": "e3b0c44298fc1c14",
    }
}


def test_rows_are_mains(tmp_path: Path) -> None:
    expected = json.loads(EXPECTED_PATH.read_text()) | CHANGED
    got = _oracle().digest_sets(tmp_path)
    assert sorted(got) == sorted(expected)
    differ = {n: [t for t in got[n] if got[n][t] != expected[n][t]] for n in got}
    assert not {k: v for k, v in differ.items() if v}, differ
