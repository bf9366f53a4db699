"""UTC parsing of every time shape the sources write."""

from __future__ import annotations

from datetime import datetime

import pytest

from keytrail.timefmt import format_utc, to_utc

T = datetime(2024, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-02T03:04:05Z",
        "2024-01-02T04:04:05+01:00",
        "2024-01-02 03:04:05",
        1704164645,
        "1704164645",
        1704164645000,
        "1704164645000000000",
    ],
)
def test_to_utc_shapes(value: object) -> None:
    assert to_utc(value) == T  # type: ignore[arg-type]


def test_nanoseconds_truncated() -> None:
    assert to_utc("2024-01-02T03:04:05.123456789Z") == T.replace(microsecond=123456)


@pytest.mark.parametrize("value", [None, "", "yesterday", "0", -5])
def test_unparseable_is_none(value: object) -> None:
    assert to_utc(value) is None  # type: ignore[arg-type]


def test_format_utc() -> None:
    assert format_utc(T) == "2024-01-02T03:04:05Z"
    assert format_utc(T.replace(microsecond=5)) == "2024-01-02T03:04:05.000005Z"
    assert format_utc(None) is None


def test_non_ascii_digits_are_not_epochs() -> None:
    # str.isdigit() holds for superscripts and Arabic-Indic digits, which float() refuses: one such
    # Vault "time" used to fail the whole file.
    assert to_utc("²") is None and to_utc("٣٣") is None
    assert to_utc(" 1700000000 ") is not None
