"""LazyRows reads a page when one of its rows is asked for and acts as the list it stands for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keytrail.tui.lazy_rows import LazyRows


def _source(
    n: int, reads: list[tuple[int, int]], short_from: int | None = None
) -> Callable[[int, int], list[dict[str, Any]]]:
    def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
        reads.append((offset, limit))
        end = min(n, offset + limit) if short_from is None else min(short_from, offset + limit)
        return [{"i": i} for i in range(offset, max(offset, end))]

    return fetch


def test_rows_are_the_list_and_pages_are_read_when_reached() -> None:
    reads: list[tuple[int, int]] = []
    rows = LazyRows(23, _source(23, reads), page=5, first=[{"i": i} for i in range(5)])
    whole = [{"i": i} for i in range(23)]
    assert len(rows) == 23 and rows[0] == {"i": 0} and reads == []  # page 0 was given
    assert rows[0:4] == whole[0:4] and reads == []
    assert rows[6] == whole[6] and reads == [(5, 5)]
    assert rows[4:8] == whole[4:8] and reads == [(5, 5)]  # held pages are not read again
    assert rows[-1] == whole[-1] and reads[-1] == (20, 5) and rows.pages_read == 3
    assert rows[::7] == whole[::7] and rows[20:100] == whole[20:]
    assert list(rows) == whole and rows.pages_read == 5
    with pytest.raises(IndexError):
        rows[23]
    with pytest.raises(IndexError):
        rows[-24]


def test_a_page_read_short_ends_the_rows_there() -> None:
    reads: list[tuple[int, int]] = []
    rows = LazyRows(10, _source(10, reads, short_from=7), page=4)
    assert rows[0:10] == [{"i": i} for i in range(7)]
    assert list(rows) == [{"i": i} for i in range(7)]
    with pytest.raises(IndexError):
        rows[8]
    with pytest.raises(ValueError, match="page"):
        LazyRows(1, _source(1, reads), page=0)
