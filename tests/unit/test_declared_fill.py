"""A rule file's description template is filled from the row's keys it names only
(findings.declared.fill): the same text, and the same errors, as from every key converted."""

from __future__ import annotations

import string
from typing import Any

import pytest

from keytrail.analysis.findings.declared import _text, _Values, fill
from keytrail.errors import ConfigError

ROW: dict[str, Any] = {
    "n": 3,
    "root_id": "ASIAEXAMPLE",
    "actions": ["s3:GetObject", "s3:PutObject"],
    "uids": [f"cloudtrail:{i}" for i in range(25)],
    "when": None,
    "flag": True,
    "ratio": 0.25,
    "0": "a key that looks like an index",
}


def _every_key(template: str, row: dict[str, Any]) -> str:
    return string.Formatter().vformat(template, (), _Values({k: _text(v) for k, v in row.items()}))


@pytest.mark.parametrize(
    "template",
    [
        "{n} action(s) signed by the chain rooted at {root_id} ({actions}).",
        "{n!r:>6} {when} {missing} {actions[0]} {{literal}}",
        "{root_id:{n}} nested in a format spec",
        "no field at all",
        "{when}{flag} {ratio}: {missing} {{not a field}} {n}{n}",
        "",
    ],
)
def test_the_same_text_as_from_every_key(template: str) -> None:
    assert fill(template, ROW, "rule.toml") == _every_key(template, ROW)


@pytest.mark.parametrize("template", ["{0}", "{}", "{root_id.upper.x}", "{n", "{actions[999]}"])
def test_the_same_errors_as_from_every_key(template: str) -> None:
    with pytest.raises((ValueError, IndexError, AttributeError)) as old:
        _every_key(template, ROW)
    with pytest.raises(ConfigError) as new:
        fill(template, ROW, "rule.toml")
    assert str(old.value) in str(new.value)


def test_bare_names_are_filled_from_the_parse() -> None:
    """A template of bare names takes the short way (declared._plain); one with a conversion,
    a spec, an index or a position does not, and both give str.format's text."""
    from keytrail.analysis.findings.declared import _plain

    assert _plain("{n} by {root_id}") == (("", "n"), (" by ", "root_id"))
    for template in ("{n!r}", "{n:>3}", "{actions[0]}", "{0}", "{}", "{n"):
        assert _plain(template) is None
