"""``keytrail tui`` / ``serve`` / ``demo`` at the command line (no terminal UI started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.cli.main import main
from keytrail.errors import UsageError
from keytrail.web.serve import HOST, csp, offline_template, tui_command
from tests.conftest import SAMPLE_DATA


def test_tui_and_serve_refuse_a_missing_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for cmd in (["tui"], ["serve", "--port", "1"]):
        assert main([cmd[0], str(tmp_path / "nope.duckdb"), *cmd[1:]]) == 2
        assert "does not exist" in capsys.readouterr().err


def test_serve_page_is_offline_and_loopback() -> None:
    import textual_serve

    source = (Path(textual_serve.__file__).parent / "templates" / "app_index.html").read_text()
    assert "fonts.googleapis.com" in source  # what we replace; if this fails textual-serve changed
    page = offline_template(source)
    assert "googleapis" not in page and "RobotoMono-VariableFont_wght.ttf" in page
    with pytest.raises(UsageError):
        offline_template(page + '<script src="https://cdn.example/x.js"></script>')
    assert HOST == "127.0.0.1"
    assert "connect-src 'self' ws://127.0.0.1:8566" in csp("127.0.0.1:8566")
    assert tui_command(Path("/cases/my case.duckdb")).endswith("tui '/cases/my case.duckdb'")


@pytest.mark.skipif(
    not (SAMPLE_DATA / "incident").is_dir(), reason="sample incident not in this checkout"
)
def test_demo_builds_the_sample_case_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = tmp_path / "cache" / "demo.duckdb"
    monkeypatch.setenv("KEYTRAIL_DEMO_CASE", str(case))
    assert main(["demo", "--no-tui"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == str(case) and "building the demo case" in err
    assert "inventory agents 4" in out or "inventory agents" in out
    mtime = case.stat().st_mtime_ns
    assert main(["demo", "--no-tui"]) == 0  # present and finalized: not rebuilt
    assert "building" not in capsys.readouterr().err and case.stat().st_mtime_ns == mtime
