"""CLI output that fits the terminal, export formats from extensions, no empty case after a failed ingest,
unique id prefixes, and ``report -o r.pdf`` as a real PDF (issue 15)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from keytrail.cli.fit import cut_id, fit_table, relative_paths, wrap
from keytrail.cli.main import main
from keytrail.cli.report_cmd import export_format
from keytrail.errors import UsageError
from tests.unit.graph_case import incident

HMAC = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "case.duckdb"
    incident(path).close()
    return path


def test_fit_table_drops_optional_columns_and_cuts_ids_in_the_middle() -> None:
    heads = ["score", "credential", "kind", "origin", "events", "agents", "first"]
    rows = [
        [
            "271.2",
            HMAC,
            "vault-token",
            "issued",
            "57",
            "ledger-reconciler",
            "2026-03-10T09:03:59.212000Z",
        ],
        [
            "269.7",
            "AKIATXJNATFQP43ZUU2J",
            "aws-access-key",
            "unknown",
            "83",
            "ledger-reconciler",
            "-",
        ],
    ]
    h, b = fit_table(heads, rows, 80, optional=("origin", "first"), ids=("credential",))
    assert h == ["score", "credential", "kind", "events", "agents"]
    assert all(len("  ".join(r)) <= 80 for r in b)
    assert b[0][1].startswith("hmac:4b900e35") and b[0][1].endswith("…")
    assert b[1][1] == "AKIATXJNATFQP43ZUU2J"  # an AWS key id stays whole
    assert fit_table(heads, rows, None)[1] == rows  # --wide or a pipe: nothing cut
    assert (
        cut_id("arn:aws:iam::418295730164:user/svc-invoice-triage", 24)
        == "arn:aws:iam:…oice-triage"
    )


def test_wrap_hangs_continuation_lines_under_the_value() -> None:
    lines = wrap("    what:       " + "word " * 30, 60)
    assert len(lines) > 1 and all(len(x) <= 60 for x in lines)
    assert all(x.startswith(" " * 16) for x in lines[1:])


def test_relative_paths_name_the_common_root_once() -> None:
    root, rel = relative_paths(
        ["/case/logs/a/x.json", "/case/logs/b/y.json", "/case/logs/inv.toml"]
    )
    assert root == "/case/logs" and rel == ["a/x.json", "b/y.json", "inv.toml"]


def test_credentials_fit_80_columns_and_wide_prints_all(
    case: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["credentials", str(case)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert max(len(x) for x in out) <= 80
    assert out[0].split()[:2] == ["score", "credential"] and "first" not in out[0]
    assert main(["credentials", str(case), "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert "first" in wide[0] and max(len(x) for x in wide) > 80


def test_info_shows_evidence_relative_to_its_root(
    case: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["info", str(case)]) == 0
    out = capsys.readouterr().out
    evidence = out[out.index("\nevidence") :].splitlines()[1:]
    assert evidence and max(len(x) for x in evidence) <= 80


def test_findings_lines_wrap_at_the_terminal(
    case: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["findings", str(case)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert max(len(x) for x in out) <= 80


def test_export_format_comes_from_the_extension(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        export_format("x.csv", None) == "csv"
        and export_format("g.opengraph.json", None) == "opengraph"
    )
    assert (
        export_format("e.ocsf.jsonl", None) == "ocsf"
        and export_format("t.jsonl", None) == "timesketch"
    )
    assert export_format("x.csv", "parquet") == "parquet"
    with pytest.raises(UsageError, match="--format"):
        export_format("x.bin", None)
    out = tmp_path / "events.csv"
    assert main(["export", str(case), "-o", str(out)]) == 0
    assert (
        out.read_text().splitlines()[0].startswith("event_uid")
        or "," in out.read_text().splitlines()[0]
    )
    assert main(["export", str(case), "-o", str(tmp_path / "x.bin")]) == 2


def test_a_failed_first_ingest_leaves_no_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not a log\n")
    target = tmp_path / "t.duckdb"
    assert main(["ingest", str(target), str(readme), "-q"]) == 2
    assert not target.exists() and not Path(str(target) + ".wal").exists()
    assert "no case file was created" in capsys.readouterr().err


def test_unique_prefixes_name_credentials(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blast", str(case), "AKIANEWKEY000000000", "--json"]) == 0
    assert '"credential": "AKIANEWKEY0000000001"' in capsys.readouterr().out


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() and shutil.which("chromium") is None,
    reason="headless Chromium (Debian package chromium) is not installed",
)
@pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="pdftotext (Debian package poppler-utils) is absent"
)
def test_report_pdf_is_a_real_pdf_with_the_report_text(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    assert main(["report", str(case), "-o", str(out)]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "AKIANEWKEY0000000001" in text or "AKIANEWKEY" in text


def test_report_pdf_without_chromium_exits_2_and_writes_nothing(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYTRAIL_CHROMIUM", str(tmp_path / "no-such-browser"))
    out = tmp_path / "r.pdf"
    assert main(["report", str(case), "-o", str(out)]) == 2
    assert not out.exists() and "needs Chromium" in capsys.readouterr().err


def test_sigma_status_wraps_a_long_rules_path() -> None:
    # an installed package puts the shipped rules under .venv/lib/pythonX/site-packages/...: longer
    # than 80 columns (an editable install's src/ path is not, so the findings test alone missed it)
    from keytrail.cli.findings_cmd import _sigma_status

    deep = (
        "/opt/very/long/virtualenv/lib/python3.11/site-packages/keytrail/data/sigma/aws-cloudtrail"
    )
    failed = [{"file": "rule.yml", "reason": "unsupported modifier " * 8}]
    text = _sigma_status({"converted": 57, "directory": deep, "failed": failed}, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "57 rule(s)" in text and "did not convert" in text
    unwrapped = _sigma_status({"converted": 57, "directory": deep, "failed": []}, None)
    assert deep in unwrapped  # --wide / a pipe: the path whole
