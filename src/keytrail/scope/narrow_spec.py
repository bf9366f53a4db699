"""Which fields of a CloudTrail record a scope's SQL reads, and those reads over a narrow parse.

The scope's CloudTrail pass (:mod:`keytrail.scope.narrow`) runs the adapter's own expressions
(:mod:`keytrail.ingest.cloudtrail.sql`), but parses each record with only the fields they read:
the plain fields named as ``r.a.b`` and, of the JSON subtrees the adapter keeps as JSON text
(``requestParameters``, ``responseElements``, ...), only the paths its ``json_extract_string``
calls read, as structs. Both are found in the SQL text, so an expression added to the adapter
is parsed for too; a use of a JSON subtree the narrow parse cannot carry raises at import.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif k not in out:
            out[k] = v
    return out


JSON_READ = re.compile(r"json_extract_string\(r\.(\w+),\s*(\[[^\]]*\]|'[^']*')\)")
_PATH = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_]*)+")


def json_reads(sql: str, fields: Sequence[str]) -> dict[str, Any]:
    """The paths ``sql`` reads of the record's JSON-typed ``fields``, as a ``json_transform``
    spec of nested structs with ``JSON`` leaves.

    ``json_extract_string(x, '$.a.b')`` of a JSON field equals ``json_extract_string(s.a.b,
    '$')`` of the struct ``s`` ``json_transform`` makes of it with these types (a missing key,
    a non-object, JSON null: NULL in both; a string, a number or an object at the leaf: the same
    text, where a ``VARCHAR`` leaf would print a float such as ``1e16`` otherwise), and a field's
    ``IS NULL`` is the same for the struct as for the JSON (``tests/unit/test_scope_narrow.py``
    holds both, on generated JSON).
    Any other use of those fields raises: the narrow parse would not carry what it reads."""
    spec: dict[str, Any] = {}
    for field, arg in JSON_READ.findall(sql):
        for path in re.findall(r"'([^']*)'", arg):
            if not _PATH.fullmatch(path):
                raise ValueError(f"scope cannot narrow the read of {path!r} in r.{field}")
            node = spec.setdefault(field, {})
            *inner, leaf = path[2:].split(".")
            for k in inner:
                node = node.setdefault(k, {})
                leaf_above = not isinstance(node, dict)
                if leaf_above:
                    raise ValueError(f"scope cannot narrow r.{field}: {path!r} under a leaf")
            prefix = isinstance(node.get(leaf), dict)
            if prefix:
                raise ValueError(f"scope cannot narrow r.{field}: {path!r} is also a prefix")
            node[leaf] = "JSON"
    rest = JSON_READ.sub("", sql)
    for f in fields:
        if re.search(rf"\br\.{f}\b(?!\s+IS\s+(NOT\s+)?NULL)", rest):
            raise ValueError(f"scope cannot narrow r.{f}: it is read other than by path")
    return spec


def struct_reads(sql: str, universe: dict[str, Any]) -> dict[str, Any]:
    """The part of the spec ``universe`` whose fields ``sql`` reads (``r.a.b``)."""
    spec: dict[str, Any] = {}
    for path in re.findall(r"\br((?:\.[A-Za-z_]\w*)+)", sql):
        src, dst = universe, spec
        *inner, leaf = path[1:].split(".")
        for k in inner:
            if not isinstance(src.get(k), dict):
                break
            src, dst = src[k], dst.setdefault(k, {})
        else:
            if leaf in src and src[leaf] != "JSON":
                dst[leaf] = (
                    merge(dst.get(leaf, {}), src[leaf])
                    if isinstance(src[leaf], dict)
                    else src[leaf]
                )
    return spec


def as_struct(sql: str) -> str:
    """``sql`` with each ``json_extract_string(r.X, path)`` of a JSON subtree read as the
    struct path of the narrow parse (``json_extract_string(r.X.a.b, '$')``; a list of paths: the
    list of them, NULL when ``r.X`` is): the same values (:func:`json_reads`), with no JSON
    text of the whole subtree made and parsed again for each record."""

    def one(path: str, field: str) -> str:
        leaf = f"r.{field}" + "".join(f'."{k}"' for k in path[2:].split("."))
        return f"json_extract_string({leaf}, '$')"

    def sub(m: re.Match[str]) -> str:
        field, arg = m.group(1), m.group(2)
        paths = re.findall(r"'([^']*)'", arg)
        if arg.startswith("'"):
            return one(paths[0], field)
        reads = ", ".join(one(p, field) for p in paths)
        return f"(CASE WHEN r.{field} IS NOT NULL THEN [{reads}] END)"

    return JSON_READ.sub(sub, sql)
