"""A long list's rows read a page at a time, as a table reaches them.

The credentials list of a million-event case ranks ~50,000 credentials. Held whole, the
ranking took 7 s of Python to build after the list opened and ~250,000 objects that every
full garbage collection walked (docs/performance.md, "The explorer's full garbage
collections"). :class:`LazyRows` holds the pages a :class:`~keytrail.tui.widgets.doc_view.DocTable`
has shown (it adds rows a chunk at a time as the cursor goes down) and reads the next page
when the table asks for a row past them: a page of the stored ranking is one indexed SQL
query and ~200 rows of Python, tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload

Row = dict[str, Any]


class LazyRows(Sequence[Row]):
    """``total`` rows; ``fetch(offset, limit)`` reads rows ``offset`` to ``offset + limit``.

    ``first`` is page 0 when already read (a worker reads it with the total). A page read
    short (the source changed under the list) ends the rows there: slices stop at it and an
    index past it raises :class:`IndexError`, as a shorter list would.
    """

    def __init__(
        self,
        total: int,
        fetch: Callable[[int, int], list[Row]],
        *,
        page: int,
        first: list[Row] | None = None,
    ) -> None:
        if page < 1:
            raise ValueError("page must be at least 1")
        self.total = total
        self.page = page
        self._fetch = fetch
        self._pages: dict[int, list[Row]] = {} if first is None else {0: first}

    def __len__(self) -> int:
        return self.total

    def _page(self, n: int) -> list[Row]:
        rows = self._pages.get(n)
        if rows is None:
            rows = self._pages[n] = self._fetch(n * self.page, self.page)
        return rows

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.total)
            out: list[Row] = []
            for i in range(start, stop, step):
                n, k = divmod(i, self.page)
                rows = self._page(n)
                if k >= len(rows):
                    break
                out.append(rows[k])
            return out
        i = index + self.total if index < 0 else index
        if not 0 <= i < self.total:
            raise IndexError(index)
        n, k = divmod(i, self.page)
        rows = self._page(n)
        if k >= len(rows):
            raise IndexError(index)
        return rows[k]

    @property
    def pages_read(self) -> int:
        """How many pages are held (what the table has reached, not the whole list)."""
        return len(self._pages)
