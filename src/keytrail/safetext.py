"""Evidence text made safe for where it goes: a terminal, an XML file, a CSV cell, a JSON document.

Every string in a log may have been written by an attacker. Raw, an ``ESC`` starts a
terminal escape (``ESC ] 0`` retitles the window, ``ESC ] 52`` writes the clipboard,
``ESC [ 2 J`` clears the screen), a C1 control (``U+0080``-``U+009F``) does the same on
terminals that honour 8-bit controls, a bidi override (``U+202E``) makes ``gpj.exe`` read
as ``exe.jpg``, a NUL or a form feed breaks XML 1.0 (GraphML), and zero-width characters
make two different ids look the same. Here, and only here, is what counts as unsafe and
how it is shown: the character's escape, ``\\x1b``, ``\\x85``, ``\\u202e``, so the
responder sees that it was there (stripping it would hide the attack) and nothing obeys it.

- :func:`shown`: a value for a human-readable CLI line (stdout or stderr): every unsafe
  character escaped, newlines and tabs included (one value, one line).
- :func:`xml_text`: for XML exports: what XML 1.0 forbids and what is unsafe, escaped.
- :func:`csv_text` / :func:`csv_text_sql`: for CSV cells (Python and DuckDB ``COPY``):
  unsafe characters escaped except tab, CR and LF (quoted CSV carries them).
- :func:`json_text`: a serialised JSON document with C1, DEL, bidi and zero-width
  characters written as ``\\uXXXX`` escapes (``json.dumps`` already escapes C0).

:func:`shown` doubles a backslash where it would otherwise be read as the start of an escape
(before another backslash, an unsafe character or ``n``, ``t``, ``r``, ``xHH``, ``uHHHH``,
``UHHHHHHHH``), so a log line holding the four characters ``\\x1b`` reads ``\\\\x1b``, not as
one that held ESC; every other backslash (a Windows path's, JSON's ``\\"``) stays single and
readable. Read left to right, ``\\\\`` is one backslash; nothing else changes meaning.
The machine formats (CSV, XML) keep backslashes as they are; JSON and Parquet keep the
distinction by their own rules.
"""

from __future__ import annotations

import re

#: DEL, C1 controls, the Arabic letter mark, zero-width and bidi marks, the line and paragraph
#: separators, bidi embeddings/overrides (U+202A-202E), word joiners and bidi isolates
#: (U+2060-206F), the BOM and the interlinear annotation characters.
NOT_C0 = r"\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
#: ... and the C0 controls (newline and tab included): every character that is shown escaped.
UNSAFE_CLASS = r"\x00-\x1f" + NOT_C0
_UNSAFE = re.compile(f"[{UNSAFE_CLASS}]")
#: What XML 1.0 forbids (besides the unsafe controls): surrogates and U+FFFE/U+FFFF.
_XML_BAD = re.compile(f"[{UNSAFE_CLASS}\ud800-\udfff\ufffe\uffff]")
_XML_KEEP = frozenset("\t\n\r")
_CSV_KEEP = frozenset("\t\n\r")
#: C0 is escaped by ``json.dumps`` already; the rest of the unsafe class is not.
_JSON_RAW = re.compile(f"[{NOT_C0}]")


#: The escapes everybody reads at a glance; every other character gets its code point.
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape_char(ch: str) -> str:
    """``\\n``, ``\\t``, ``\\r``; else ``\\x1b`` below 256, ``\\u202e`` up to U+FFFF, ``\\U0001f600`` above."""
    if ch in _SHORT:
        return _SHORT[ch]
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _escape(m: re.Match[str]) -> str:
    return escape_char(m.group())


def _keep_or_escape(m: re.Match[str], keep: frozenset[str]) -> str:
    return m.group() if m.group() in keep else escape_char(m.group())


#: A backslash that a reader would take for the start of an escape :func:`shown` writes.
_AMBIGUOUS_BACKSLASH = re.compile(
    f"\\\\(?=[\\\\ntr{UNSAFE_CLASS}]|x[0-9a-fA-F]{{2}}|u[0-9a-fA-F]{{4}}|U[0-9a-fA-F]{{8}})"
)


def shown(text: str, max_len: int | None = None) -> str:
    """``text`` for one terminal line: unsafe characters (newline, tab too) escaped, a backslash
    that would read as an escape doubled, cut to ``max_len``."""
    out = _UNSAFE.sub(_escape, _AMBIGUOUS_BACKSLASH.sub(r"\\\\", text))
    if max_len is not None and len(out) > max_len:
        out = out[: max(0, max_len - 1)] + "…"
    return out


def shown_lines(text: str) -> str:
    """Like :func:`shown` but keeps line breaks (a multi-line message of ours around evidence)."""
    return "\n".join(shown(line) for line in text.split("\n"))


def xml_text(text: str) -> str:
    """``text`` valid in XML 1.0 and safe to display: forbidden and unsafe characters escaped."""
    return _XML_BAD.sub(lambda m: _keep_or_escape(m, _XML_KEEP), text)


def csv_text(text: str) -> str:
    """``text`` for a CSV cell: unsafe characters escaped, except tab, CR and LF."""
    return _UNSAFE.sub(lambda m: _keep_or_escape(m, _CSV_KEEP), text)


def json_text(document: str) -> str:
    """A JSON text with the raw C1, DEL, bidi and zero-width characters in it as ``\\uXXXX`` escapes.

    Such characters can only be inside JSON strings (the syntax is ASCII), where the escape
    means the same character, so the document decodes to the same value.
    """
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def has_json_raw(text: str) -> bool:
    """Whether :func:`json_text` would change ``text``."""
    return _JSON_RAW.search(text) is not None


def csv_text_sql(expr: str) -> str:
    """DuckDB SQL for :func:`csv_text` of the VARCHAR ``expr`` (only rows with an unsafe character pay).

    The pattern is written with ``chr()`` so no raw control character sits in the SQL text.
    """
    cls = "".join(f"' || chr({a}) || '-' || chr({b}) || '" for a, b in _CSV_RANGES)
    pattern = f"('[{cls}]')"
    one = "CASE WHEN ord(c) < 256 THEN printf('\\x%02x', ord(c)) ELSE printf('\\u%04x', ord(c)) END"
    return (
        f"CASE WHEN regexp_matches({expr}, {pattern}) THEN array_to_string(list_transform("
        f"string_split({expr}, ''), lambda c: CASE WHEN regexp_matches(c, {pattern}) THEN {one} ELSE c END), '') "
        f"ELSE {expr} END"
    )


#: :data:`UNSAFE_CLASS` as code point ranges, without tab, LF and CR (for :func:`csv_text_sql`).
_CSV_RANGES = (
    (0x00, 0x08),
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x9F),
    (0x61C, 0x61C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
)
