"""Vault's request/response pairing on ``request.id``, one definition for every reader.

Vault writes a request entry, then its response entry, both with the same ``request.id``.
The adapter keeps one event per id (the response, carrying its request) and must say what
became of every request entry it did not store on its own. The scope's Vault gate counts
what the adapter would store without building rows, so both read the rules from here: a
second copy drifted once already.

The rules, in file order:
- a response takes the waiting request of its id, if any (``merged``), and marks the id
  answered;
- a request waits for its response unless a request of its id already waits (``repeated``:
  not stored again) or its response came first (``late``: merged into that response);
- a request still waiting at the end of the file is stored on its own.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Pairing(Generic[T]):
    """The requests of one file waiting for their responses (``T``: what the reader keeps of
    a request entry) and the counts the file's note states."""

    __slots__ = ("answered", "late", "merged", "pending", "repeated")

    def __init__(self) -> None:
        self.pending: dict[str, T] = {}
        self.answered: set[str] = set()
        self.merged = self.repeated = self.late = 0

    def response(self, rid: str) -> T | None:
        """The waiting request a response of ``rid`` takes (``None``: none waits)."""
        self.answered.add(rid)
        if rid not in self.pending:
            return None
        self.merged += 1
        return self.pending.pop(rid)

    def request(self, rid: str, entry: T) -> None:
        """The request waits for its response, unless it is a repeat or late (then counted,
        not stored on its own)."""
        if rid in self.pending:
            self.repeated += 1
        elif rid in self.answered:
            self.late += 1
        else:
            self.pending[rid] = entry

    @property
    def skipped(self) -> int:
        """Request entries not stored as events of their own."""
        return self.merged + self.repeated + self.late
