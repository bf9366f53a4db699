"""Hostile log text: terminal neutralisation, CSV formula defence, secret masking."""

from __future__ import annotations

from keytrail.redact import MASK, csv_safe, mask_record, mask_secrets
from keytrail.safetext import shown, shown_lines


def test_shown_escapes_controls_and_invisibles_instead_of_removing_them() -> None:
    # The TUI and the reports render log text with safetext.shown, like every CLI line: an
    # escape sequence, a zero-width or a bidi character is shown as its escape, never obeyed
    # and never hidden (removing it would make "AKIA\u200bX" look like "AKIAX").
    hostile = "a\x1b[31mred\x1b]0;title\x07b\u200bc\u202ed\x00e\r\nf"
    assert shown(hostile) == "a\\x1b[31mred\\x1b]0;title\\x07b\\u200bc\\u202ed\\x00e\\r\\nf"
    assert shown("AKIA\u200bX") != shown("AKIAX")


def test_shown_leaves_markup_text_as_text() -> None:
    # Rich markup is not interpreted by shown(); the TUI renders it as a Text object.
    assert shown("[bold red]x[/]") == "[bold red]x[/]"


def test_shown_truncates_long_values() -> None:
    out = shown("x" * 100_000, 50)
    assert len(out) == 50 and out.endswith("…")


def test_shown_lines_keeps_line_breaks_only() -> None:
    assert shown_lines("a\x1b[2Jb\nc\u2028d") == "a\\x1b[2Jb\nc\\u2028d"


def test_csv_safe() -> None:
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x"):
        assert csv_safe(bad).startswith("'")
    assert csv_safe("plain") == "plain"
    assert csv_safe(5) == 5


def test_mask_secrets_in_text() -> None:
    raw = '{"sessionToken": "IQoJb3JpZ2luX2VjEJr", "accessKeyId": "ASIAEXAMPLE", "password":"hunter2"}'
    out = mask_secrets(raw)
    assert "IQoJb3JpZ2luX2VjEJr" not in out and "hunter2" not in out
    assert "ASIAEXAMPLE" in out
    assert mask_secrets("token hvs.CAESIJ1234567890abcdefghijkl used") == f"token {MASK} used"


def test_mask_record_keeps_hmacs_and_ids() -> None:
    rec = {
        "auth": {"client_token": "hmac-sha256:abc", "accessor": "hmac-sha256:def"},
        "responseElements": {"credentials": {"sessionToken": "secret", "accessKeyId": "ASIAX"}},
        "list": [{"password": "p"}],
    }
    out = mask_record(rec)
    assert out["auth"]["client_token"] == "hmac-sha256:abc"
    assert out["responseElements"]["credentials"] == {"sessionToken": MASK, "accessKeyId": "ASIAX"}
    assert out["list"] == [{"password": MASK}]
