"""``LoadContext.windows`` gives exactly the chunks, offsets, line numbers and rejects of the
``bytearray`` reader it replaced (docs/performance.md, "Vault audit entries per CPU second").

The replaced reader is kept below as the reference; both run over the same blocks (random
contents, random block splits, small window sizes and record caps so every path is taken:
chunks cut inside a block and at its end, a line longer than the cap flushed and skipped
across blocks, blank blocks, no final newline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail.ingest.base import EXCERPT_CHARS, LoadContext


class _Ctx(LoadContext):
    """A context whose ``_blocks`` are given and whose rejects are collected, not stored."""

    def __init__(self, blocks: list[bytes], cap: int) -> None:
        super().__init__(duckdb.connect(), Path("x"), 1, "test", False, max_record_bytes=cap)
        self.given = blocks
        self.got: list[tuple[Any, ...]] = []

    def _blocks(self) -> Iterator[bytes]:  # type: ignore[override]
        yield from self.given

    def _reject_long(self, offset: int, line: int, excerpt: bytes, length: int) -> None:
        self.got.append(("reject", offset, line, excerpt, length))


def _reference(ctx: _Ctx, size: int) -> Iterator[tuple[int, int, bytes]]:
    """The reader before: a growing ``bytearray``, sliced and copied at each window."""
    cap = ctx.max_record_bytes
    buf = bytearray()
    base_off, base_line = 0, 1
    skip: list[Any] | None = None
    for block in ctx._blocks():
        if skip is not None:
            nl = block.find(b"\n")
            if nl < 0:
                skip[3] += len(block)
                continue
            skip[3] += nl + 1
            ctx._reject_long(*skip)
            base_off, base_line, skip = skip[0] + skip[3], skip[1] + 1, None
            block = block[nl + 1 :]
        buf += block
        last = buf.rfind(b"\n") + 1
        if len(buf) - last > cap:
            if last:
                yield base_off, base_line, bytes(buf[:last])
                base_line += buf.count(b"\n", 0, last)
                base_off += last
            skip = [base_off, base_line, bytes(buf[last : last + EXCERPT_CHARS]), len(buf) - last]
            buf.clear()
        elif len(buf) >= size and last:
            chunk = bytes(buf[:last])
            del buf[:last]
            yield base_off, base_line, chunk
            base_off += last
            base_line += chunk.count(b"\n")
    if skip is not None:
        ctx._reject_long(*skip)
    elif buf:
        yield base_off, base_line, bytes(buf)


def _run(reader: Any, blocks: list[bytes], cap: int, size: int) -> list[tuple[Any, ...]]:
    ctx = _Ctx(blocks, cap)
    out: list[tuple[Any, ...]] = []
    for item in reader(ctx, size):
        out += ctx.got  # a reject is reported before the chunk that follows it
        ctx.got = []
        out.append(item)
    return out + ctx.got


_LINES = st.lists(
    st.one_of(st.binary(max_size=3), st.sampled_from([b"{}", b"x" * 40, b"", b"\r"])),
    max_size=30,
)


@settings(max_examples=250, deadline=None)
@given(
    _LINES,
    st.booleans(),
    st.lists(st.integers(0, 50), min_size=1, max_size=40),
    st.integers(1, 60),
    st.integers(1, 80),
)
def test_windows_equal_the_bytearray_reader(
    lines: list[bytes], final_newline: bool, cuts: list[int], cap: int, size: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    blocks, pos = [], 0
    for n in cuts:  # random block lengths, an empty block now and then, the rest in one
        blocks.append(data[pos : pos + n])
        pos += n
    blocks.append(data[pos:])
    want = _run(_reference, blocks, cap, size)
    got = _run(LoadContext.windows, blocks, cap, size)
    assert got == want
    # and what the windows hold is the content, lines skipped as too long aside
    kept = b"".join(c[2] for c in got if c[0] != "reject")
    assert len(kept) + sum(r[4] for r in got if r[0] == "reject") == len(data)


def test_windows_cut_at_the_last_newline_of_a_block_run() -> None:
    """A hand-made case: windows of about 8 bytes over blocks that end mid-line."""
    blocks = [b"aa\nbb", b"b\ncc", b"c\nd", b"dd\n", b"e"]
    got = _run(LoadContext.windows, blocks, 100, 8)
    assert got == [(0, 1, b"aa\nbbb\n"), (7, 3, b"ccc\nddd\n"), (15, 5, b"e")]
    assert got == _run(_reference, blocks, 100, 8)
