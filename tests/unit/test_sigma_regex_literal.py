"""The text a Sigma regular expression's every match holds (``regex_literal``), and the
``contains`` the backend puts before ``regexp_matches`` with it: the same truth value as the
regular expression alone, on DuckDB's own RE2."""

from __future__ import annotations

import zlib
from pathlib import Path

import duckdb
import pytest

from keytrail.analysis.sigma.regex_literal import required_literal
from keytrail.analysis.sigma.rules import load_rules


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (".+:assumed-role/aws:.+", ":assumed-role/aws:"),
        ("^arn:aws:iam::\\d+", None),  # \d: not read, no pre-filter
        ("abc", "abc"),
        ("ab*cdef", "cdef"),  # b may be absent: "a" and "cdef" are apart
        ("abcd?ef", "abc"),  # d may be absent
        ("abc+def", "abc"),  # c repeats: "def" is not next to "ab"
        ("x\\.example\\.com", "x.example.com"),
        ("a.b.c", None),  # no run of MIN_LENGTH
        ("foo|barbaz", None),  # alternation
        ("(abc)", None),
        ("[abc]def", None),
        ("abc{2}", None),
        ("(?i)abcdef", None),
        ("^start$", "start"),
        ("trailing\\", None),
        ("\\Qabc\\E", None),
    ],
)
def test_required_literal_reads_only_plain_patterns(pattern: str, literal: str | None) -> None:
    assert required_literal(pattern) == literal


_PATTERNS = [
    ".+:assumed-role/aws:.+",
    "ab*cdef",
    "abcd?ef",
    "abc+def",
    "x\\.example\\.com",
    "^start$",
    "a\\+\\+b.*cde",
    "ünï.ödé",
]
_TEXTS = [
    None,
    "",
    "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1",
    ":assumed-role/aws:x",
    "a:assumed-role/aws:",
    "a\n:assumed-role/aws:b",
    "acdef",
    "abbbcdef",
    "abcef",
    "abcdef",
    "abcccdef",
    "abdef",
    "x.example.com",
    "xxexample.com",
    "start",
    "start\n",
    "a++bzzcde",
    "ünïxödé",
]


def test_contains_before_the_regex_never_changes_its_answer() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (s VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[s] for s in _TEXTS])
    for p in _PATTERNS:
        lit = required_literal(p)
        assert lit is not None, p
        q = p.replace("'", "''")
        rows = con.execute(
            f"""SELECT s, regexp_matches(s, '{q}'),
                       (contains(s, '{lit.replace("'", "''")}') AND regexp_matches(s, '{q}'))
                FROM t"""
        ).fetchall()
        assert [r[1] for r in rows] == [r[2] for r in rows], p
        assert any(r[1] for r in rows) and any(r[1] is False for r in rows), p


def _rule(d: Path, name: str, detection: str) -> None:
    (d / f"{name}.yml").write_text(
        f"title: {name}\nid: 00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}\n"
        "author: tester\nlogsource:\n  product: aws\n  service: cloudtrail\n"
        f"detection:\n{detection}\nlevel: high\n",
        encoding="utf-8",
    )


def test_the_backend_puts_the_contains_before_plain_regexes_only(tmp_path: Path) -> None:
    _rule(
        tmp_path,
        "plain",
        "  sel:\n    userIdentity.arn|re: '.+:assumed-role/aws:.+'\n  condition: sel",
    )
    _rule(tmp_path, "flagged", "  sel:\n    userAgent|re|i: 'trufflehog'\n  condition: sel")
    _rule(tmp_path, "alternation", "  sel:\n    userAgent|re: 'abc|def'\n  condition: sel")
    rs = load_rules(tmp_path)
    assert not rs.failed, rs.failed
    where = {r.title: r.where for r in rs.rules}
    assert (
        "(contains(\"userIdentity.arn\", ':assumed-role/aws:') AND regexp_matches("
        "\"userIdentity.arn\", '.+:assumed-role/aws:.+'))"
    ) in where["plain"]
    assert "contains" not in where["flagged"] and "regexp_matches" in where["flagged"]
    assert "contains" not in where["alternation"]
