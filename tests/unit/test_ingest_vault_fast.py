"""The Vault adapter's fast paths give exactly what the plain code they replace gave.

Each shortcut taken for speed (``docs/performance.md``, "Vault ingest") is checked here
against the straightforward expression it stands for, over generated inputs: Vault's
time fast path against :func:`keytrail.timefmt.to_utc`, the empty-value filters against
``v not in (None, "", [], {})``, ``strs`` against ``s``, and the column-wise Arrow
conversion against ``pa.Table.from_pylist``. The whole-case check is the oracle,
``benchmarks/vault_oracle.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from keytrail.ingest.vault.adapter import _schema, _text_array, _to_arrow
from keytrail.ingest.vault.framing import iter_records
from keytrail.ingest.vault.mint import _compact, s, strs
from keytrail.ingest.vault.rows import _json, vault_time
from keytrail.timefmt import to_utc

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(0, 2), max_size=2),
    st.tuples(),
    st.just(0.0),
    st.just(b""),
)


@st.composite
def _times(draw: st.DrawFn) -> str:
    """RFC 3339 strings around Vault's form: valid and invalid fields, 0-9 fraction digits, other zones."""
    y, mo, d = draw(st.integers(1, 9999)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, sec = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    frac = draw(
        st.one_of(
            st.just(""),
            st.text("0123456789", min_size=1, max_size=10).map(lambda f: "." + f),
            st.just("."),
        )
    )
    zone = draw(st.sampled_from(["Z", "z", "+00:00", "-07:30", "", " "]))
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{frac}{zone}"


@given(_times())
def test_vault_time_is_to_utc(value: str) -> None:
    assert vault_time(value) == to_utc(value)


def _outcome(fn: Any, value: str) -> Any:
    try:
        return fn(value)
    except (
        ValueError
    ) as e:  # to_utc raises on some digit-like text ("²"): the same error either way
        return type(e)


@given(st.text(max_size=40))
def test_vault_time_is_to_utc_on_any_text(value: str) -> None:
    if value:
        assert _outcome(vault_time, value) == _outcome(to_utc, value)


def test_vault_time_examples() -> None:
    assert vault_time("2020-04-30T14:27:11.0097064Z") == datetime(2020, 4, 30, 14, 27, 11, 9706)
    assert vault_time("2026-03-02T00:00:00.004Z") == datetime(2026, 3, 2, 0, 0, 0, 4000)
    assert vault_time("2026-03-02T00:00:00Z") == datetime(2026, 3, 2)
    assert vault_time("2026-02-30T00:00:00Z") is None


@given(st.dictionaries(st.text(max_size=3), _VALUES, max_size=8))
def test_empty_value_filters_match_the_plain_rule(obj: dict[str, Any]) -> None:
    plain = {k: v for k, v in obj.items() if v not in (None, "", [], {})}
    assert _compact(obj) == plain and list(_compact(obj)) == list(plain)
    try:
        expected = __import__("orjson").dumps(plain).decode()
    except TypeError:  # bytes are not JSON: neither form serialises them
        return
    assert _json(obj).decode() == expected


@given(st.dictionaries(st.text(max_size=3), _VALUES, max_size=8), st.text(max_size=3))
def test_strs_lookup_is_s_of_get(obj: dict[str, Any], key: str) -> None:
    for k in [*obj, key]:
        assert strs(obj).get(k) == s(obj.get(k))


def test_columns_to_arrow_match_from_pylist() -> None:
    rows = [
        {
            "event_uid": "a",
            "resource_id": "vault:x",
            "resource_type": "vault-path",
            "account": None,
        },
        {
            "event_uid": "b",
            "resource_id": "vault:é/y",
            "resource_type": "vault-secret",
            "account": "team-a/",
        },
    ]
    schema = _schema("event_resources")
    assert _to_arrow("event_resources", rows).equals(pa.Table.from_pylist(rows, schema=schema))


def test_bare_json_line_fast_path_keeps_positions_and_rejects() -> None:
    """``{...}`` lines take the fast path; a broken one, a lone brace, CRLF and blanks the general one."""
    ok = b'{"type":"request","request":{"id":"1"}}'
    data = b"\xef\xbb\xbf" + ok + b"\n\n  " + ok + b'\r\n{}\n{"type":\n{\n' + ok
    recs = list(iter_records(data))
    assert [(r.kind, r.line_no, r.offset) for r in recs] == [
        ("entry", 1, 3),
        ("entry", 3, 3 + len(ok) + 4),
        ("bad", 4, 3 + 2 * len(ok) + 6),
        ("bad", 5, 3 + 2 * len(ok) + 9),
        ("bad", 6, 3 + 2 * len(ok) + 18),
        ("entry", 7, 3 + 2 * len(ok) + 20),
    ]
    assert (
        recs[1].raw == ok
        and recs[2].reason is not None
        and "invalid JSON" in (recs[3].reason or "")
    )


def test_raw_column_from_bytes_is_the_decoded_text() -> None:
    """Valid UTF-8 takes the joined-buffer path; one bad byte sends the batch to per-record decoding."""
    good = (b'{"a":"\xc3\xa9"}', b"", b"vault: {}", "already text")
    for values in (good[:3], good, (*good[:3], b"host-\xff: {}")):
        expected = pa.array(
            [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in values],
            pa.string(),
        )
        assert _text_array(values).equals(expected)
