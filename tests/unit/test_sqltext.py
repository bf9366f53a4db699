"""The shared SQL text helpers mask in DuckDB what keytrail.redact masks in Python."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from keytrail import redact
from keytrail.store.sqltext import mask_json_sql, quote_literal


def _mask(text: str | None) -> Any:
    return (
        duckdb.connect()
        .execute(f"SELECT {mask_json_sql('CAST($v AS VARCHAR)')}", {"v": text})
        .fetchone()[0]
    )  # type: ignore[index]


@pytest.mark.parametrize("key", sorted(redact.SECRET_KEYS))
@pytest.mark.parametrize("case", [str.lower, str.upper, lambda k: k[:1].upper() + k[1:]])
def test_every_secret_key_masked_in_any_case_like_mask_record(key: str, case: Any) -> None:
    doc = {
        "outer": {case(key): 'v4lue with "quotes" and \\ slash', "keep": "visible", "n": 3},
        "list": [{case(key): "x"}],
        case(key): 42,
    }
    masked = json.loads(_mask(json.dumps(doc)))
    assert masked == redact.mask_record(doc)
    assert masked["outer"][case(key)] == redact.MASK and masked["outer"]["keep"] == "visible"
    assert masked[case(key)] == 42  # non-string values are not secrets' text


@pytest.mark.parametrize(
    "text",
    [
        '{"sessionToken" : "a\\"b", "x": "sessionToken"}',
        '{"password":""}',
        '[{"Token":"t"},{"token2":"keep"}]',
        '{"user":"tokenholder","note":"password=hunter2"}',
        "{}",
        "[]",
    ],
)
def test_masked_json_stays_valid_and_only_values_change(text: str) -> None:
    masked = _mask(text)
    assert json.loads(masked) == redact.mask_record(json.loads(text))


def test_null_stays_null() -> None:
    assert _mask(None) is None


@pytest.mark.parametrize("text", ["", "it's", "''", "a'b'c", "\\'", "%_"])
def test_quote_literal_round_trips(text: str) -> None:
    assert duckdb.connect().execute(f"SELECT {quote_literal(text)}").fetchone() == (text,)
