"""The CloudTrail reader's inflate (ISA-L when installed) answers as zlib does on every odd gzip.

``_inflate`` decides which files take the one-parse path and which go to the tolerant reader;
a decompressor that accepted a file zlib refuses (or the reverse) would change what is loaded
and what is rejected, so each odd stream is checked against zlib's own answer."""

from __future__ import annotations

import gzip
import zlib

import pytest

from keytrail.ingest.cloudtrail import adapter

DOC = b'{"Records": [' + b",".join(b'{"eventID": "%d"}' % i for i in range(2000)) + b"]}"
ONE = gzip.compress(DOC, mtime=0)


def _flipped(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


CASES = {
    "one member": (ONE, 10**7),
    "two members": (ONE + gzip.compress(b"\n", mtime=0), 10**7),
    "truncated": (ONE[: len(ONE) // 2], 10**7),
    "trailing junk": (ONE + b"junk", 10**7),
    "trailing zeros": (ONE + b"\0" * 8, 10**7),
    "bad crc": (_flipped(ONE, len(ONE) - 6), 10**7),
    "bad length": (_flipped(ONE, len(ONE) - 2), 10**7),
    "bad header": (_flipped(ONE, 0), 10**7),
    "over the limit": (ONE, len(DOC) - 1),
    "exactly the limit": (ONE, len(DOC)),
    "bomb": (gzip.compress(b"\0" * 5_000_000, mtime=0), 100_000),
    "empty member": (gzip.compress(b"", mtime=0), 10**7),
}


def _answer(fn, data: bytes, limit: int) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(data, limit)
    except (EOFError, *adapter._GZ_ERRORS):
        return "refused"


@pytest.mark.parametrize("name", sorted(CASES))
def test_inflate_answers_as_zlib(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, limit = CASES[name]
    got = _answer(adapter._inflate, data, limit)  # ISA-L where it is installed
    monkeypatch.setattr(adapter, "_gz", zlib)  # the reference: the same function over zlib
    want = _answer(adapter._inflate, data, limit)
    assert got == want
    if name in ("one member", "two members", "exactly the limit"):
        assert isinstance(want, bytes) and want.startswith(DOC)
    if name in ("truncated", "trailing junk", "bad crc", "bad header"):
        assert want == "refused"
    if name in ("over the limit", "bomb"):
        assert want is None


def test_isal_is_used_when_installed() -> None:
    """The dependency is declared (pyproject.toml); without a wheel the reader falls back."""
    pytest.importorskip("isal", reason="isal has no wheel here: the reader uses zlib")
    assert adapter._gz.__name__ == "isal.isal_zlib"
