"""Text encodings other than UTF-8: byte-order marks, UTF-16 and UTF-32 (a PowerShell redirect).

``Get-WinEvent ... | ConvertTo-Json > out.json`` in Windows PowerShell 5 writes UTF-16 LE with
a byte-order mark; ``Out-File -Encoding utf8`` writes UTF-8 *with* a BOM. A responder receives
such files as they are. Every JSON format keytrail reads is detected and loaded through one
step: the sniffer sees the text as UTF-8, and the loader reads a UTF-8 copy of the file (the
evidence row keeps the original path and SHA-256; byte offsets then count in the copy, which
the evidence note says).

Detection: a BOM first (UTF-32 before UTF-16: the UTF-32 LE BOM starts with the UTF-16 LE
one), else the NUL pattern of JSON's first ASCII character (``{`` or ``[``) in UTF-16/32.
"""

from __future__ import annotations

import codecs
import gzip
import shutil
import tempfile
from pathlib import Path

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def text_codec(head: bytes) -> str | None:
    """The codec to read ``head``'s file with, or ``None`` for plain UTF-8 (or not text)."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    if len(head) >= 4:
        b = head[:4]
        if b[1:4] == b"\x00\x00\x00" and b[0] != 0:
            return "utf-32-le"
        if b[:3] == b"\x00\x00\x00" and b[3] != 0:
            return "utf-32-be"
        if b[1] == 0 and b[3] == 0 and b[0] != 0 and b[2] != 0:
            return "utf-16-le"
        if b[0] == 0 and b[2] == 0 and b[1] != 0 and b[3] != 0:
            return "utf-16-be"
    return None


def as_utf8(head: bytes, codec: str) -> bytes:
    """A sniffing sample re-encoded as UTF-8 (a character cut at the end becomes U+FFFD)."""
    return head.decode(codec, errors="replace").encode("utf-8")


def utf8_copy(path: Path, gzipped: bool, codec: str) -> Path:
    """A temporary UTF-8 copy of the (decompressed) file; the caller deletes it and its
    directory."""
    opener = gzip.open if gzipped else open
    # same file name in a private directory: adapters that name things after the file still can
    name = Path(tempfile.mkdtemp(prefix="keytrail-utf8-")) / (
        path.name[:-3] if gzipped else path.name
    )
    with opener(path, "rb") as src, open(name, "wb") as dst:
        reader = codecs.getreader(codec)(src, "replace")
        writer = codecs.getwriter("utf-8")(dst)
        shutil.copyfileobj(reader, writer, 1 << 20)
    return name
