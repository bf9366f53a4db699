"""A small, strict reader for the HCL subset Vault/OpenBao ACL policies are written in.

Vault policies are HCL 1 documents of ``path "<glob>" { ... }`` blocks whose bodies set
``capabilities = [...]`` (or the legacy ``policy = "read"``) and optional parameter
constraints (``allowed_parameters = { "key" = ["v"] }``, ``required_parameters``,
``min_wrapping_ttl``...). A general HCL library is not a dependency of keytrail, and
policies use only this much of the language: attributes, labelled blocks, strings,
numbers, booleans, lists and objects, and ``#``, ``//`` and ``/* */`` comments. Heredocs
and interpolation are not policy syntax and are rejected with their line number.

:func:`parse` returns nested Python values: a block body is a dict whose repeated block
types collect into a list of ``(labels, body)`` pairs under the block type.
Raises :class:`HclError` (with a line number) on anything it cannot read, so the adapter
can reject the policy instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][\w.-]*)
  | (?P<punct>[{}\[\]=,:])
""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}


class HclError(ValueError):
    """The text is not the HCL subset a Vault policy uses; the message names the line."""


def _unquote(tok: str, line: int) -> str:
    out: list[str] = []
    body = tok[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise HclError(f"line {line}: unknown escape \\{nxt} in a string")
        if ch == "$" and body[i + 1 : i + 2] == "{":
            raise HclError(f"line {line}: interpolation ${{...}} is not Vault policy syntax")
        out.append(ch)
        i += 1
    return "".join(out)


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text.startswith("<<", pos):
                raise HclError(f"line {line}: heredoc strings are not supported in policies")
            raise HclError(f"line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "string":
            out.append(("string", _unquote(tok, line), line))
        elif kind == "number":
            out.append(("number", float(tok) if "." in tok else int(tok), line))
        elif kind == "ident":
            out.append(
                ("bool", tok == "true", line) if tok in ("true", "false") else ("ident", tok, line)
            )
        elif kind == "punct":
            out.append(("punct", tok, line))
        line += tok.count("\n")
        pos = m.end()
    out.append(("eof", None, line))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.toks[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, v, line = self.take()
        if kind != "punct" or v != value:
            raise HclError(f"line {line}: expected '{value}', found {v!r}")

    def body(self, closing: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            kind, v, line = self.peek()
            if kind == "eof":
                if closing:
                    raise HclError(f"line {line}: missing '{closing}' at end of file")
                return out
            if kind == "punct" and v == closing:
                self.take()
                return out
            if kind == "punct" and v == ",":  # HCL 1 tolerates separators between object items
                self.take()
                continue
            if kind not in ("ident", "string"):
                raise HclError(f"line {line}: expected a name, found {v!r}")
            self.take()
            name = str(v)
            nk, nv, nline = self.peek()
            if nk == "punct" and nv in ("=", ":"):
                self.take()
                if name in out and not isinstance(out[name], _Blocks):
                    raise HclError(f"line {nline}: '{name}' is set twice")
                out[name] = self.value()
                continue
            labels: list[str] = []
            while self.peek()[0] == "string":
                labels.append(str(self.take()[1]))
            self.expect("{")
            blocks = out.setdefault(name, _Blocks())
            if not isinstance(blocks, _Blocks):
                raise HclError(f"line {nline}: '{name}' is both an attribute and a block")
            blocks.append((labels, self.body("}")))

    def value(self) -> Any:
        kind, v, line = self.take()
        if kind in ("string", "number", "bool"):
            return v
        if kind == "punct" and v == "[":
            items: list[Any] = []
            while True:
                if self.peek()[:2] == ("punct", "]"):
                    self.take()
                    return items
                items.append(self.value())
                nk, nv, nline = self.peek()
                if nk == "punct" and nv == ",":
                    self.take()
                elif not (nk == "punct" and nv == "]"):
                    raise HclError(f"line {nline}: expected ',' or ']' in a list, found {nv!r}")
        if kind == "punct" and v == "{":
            return dict(self.body("}"))
        raise HclError(f"line {line}: expected a value, found {v!r}")


class _Blocks(list):  # type: ignore[type-arg]
    """Blocks of one type, in file order: ``[(labels, body), ...]``."""


def parse(text: str) -> dict[str, Any]:
    """The document as nested values (see module docstring).

    Raises:
        HclError: the text is not readable as the policy subset of HCL.
    """
    return _Parser(text).body(None)


def path_blocks(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(path, body)`` of every ``path`` block, in file order, from HCL or Vault's JSON policy form.

    Raises:
        HclError: a ``path`` block without exactly one label, or a JSON ``path`` that is not an object.
    """
    raw = doc.get("path")
    if raw is None:
        return []
    if isinstance(raw, _Blocks):
        out = []
        for labels, body in raw:
            if len(labels) != 1:
                raise HclError(f"a path block needs exactly one quoted path, found {len(labels)}")
            out.append((labels[0], body))
        return out
    if isinstance(raw, dict):  # JSON form: {"path": {"secret/*": {"capabilities": [...]}}}
        return [(str(k), v if isinstance(v, dict) else {"_invalid": v}) for k, v in raw.items()]
    if isinstance(raw, list) and all(
        isinstance(x, dict) for x in raw
    ):  # JSON form, list of objects
        return [
            (str(k), v if isinstance(v, dict) else {"_invalid": v})
            for x in raw
            for k, v in x.items()
        ]
    raise HclError("'path' must be blocks (HCL) or an object of path -> rules (JSON)")
