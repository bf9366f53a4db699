"""Hostile evidence text reaches no output raw: terminal lines, stderr, JSON, CSV, GraphML (issue 12).

A real CloudTrail file, whose name holds a newline, ESC and U+202E, carries a principal,
a user agent and an access key id with OSC 0 (window title), OSC 52 (clipboard write), a
screen clear, C1 controls (CSI U+009B, NEL U+0085), NUL, DEL and a bidi override. It is
ingested for real, then every output is checked: no unsafe character raw (text outputs
show them escaped, ``\\x1b``), JSON decodes back to the same values, GraphML parses.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytrail.cli.main import main
from keytrail.safetext import UNSAFE_CLASS, csv_text, escape_char, json_text, shown, xml_text

EVIL = "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31m\x85\u202egpj.exe\x00\x7f\u2066x\u2069"
KEY = "ASIAHOSTILE" + EVIL
UNSAFE = re.compile(f"[{UNSAFE_CLASS}]")


def _record(i: int) -> dict[str, object]:
    return {
        "eventVersion": "1.08",
        "eventTime": f"2024-05-01T10:0{i}:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "agent" + EVIL,
        "eventID": f"hostile-{i}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "requestParameters": {"bucketName": "b" + EVIL, "key": "k"},
        "resources": [{"ARN": "arn:aws:s3:::b" + EVIL, "type": "AWS::S3::Bucket"}],
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROA:x" + EVIL,
            "arn": "arn:aws:sts::111122223333:assumed-role/role" + EVIL + "/s",
            "accountId": "111122223333",
            "accessKeyId": KEY,
        },
    }


@pytest.fixture(scope="module")
def hostile_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    logs = root / "logs"
    logs.mkdir()
    (logs / "trail\n\u202eevil\x1b[31m.json").write_text(
        json.dumps({"Records": [_record(i) for i in range(3)]})
    )
    case = root / "case.duckdb"
    assert main(["ingest", str(case), str(logs), "-q"]) == 0
    return case


def _no_raw(text: str, keep: str = "\n") -> None:
    bad = sorted({c for c in UNSAFE.findall(text) if c not in keep})
    assert not bad, f"raw unsafe characters reached the output: {[escape_char(c) for c in bad]}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_text_outputs_show_escapes(hostile_case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(hostile_case)
    for argv in (
        ["info", c],
        ["credentials", c],
        ["blast", c, KEY],
        ["findings", c],
        ["sql", c, "SELECT credential_id, user_agent, actor_uid FROM events"],
        ["sql", c, "SELECT path FROM evidence"],
    ):
        rc, out, err = _run(capsys, *argv)
        assert rc == 0, (argv, err)
        _no_raw(out)
        _no_raw(err)
    rc, out, _ = _run(capsys, "info", c)
    assert "trail\\n\\u202eevil\\x1b[31m.json" in out  # the evidence path, one line, escaped
    rc, out, _ = _run(capsys, "sql", c, "SELECT DISTINCT credential_id FROM events")
    assert (
        shown(KEY, 80) in out and "\\x1b]52;c;" in out and "\\x9b31m" in out
    )  # cells are cut at 80


def test_closest_matches_on_stderr_are_escaped(
    hostile_case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # part of the id, not its start (a unique prefix such as "ASIAHOSTILE" names the key itself)
    rc, _, err = _run(capsys, "blast", str(hostile_case), "HOSTILE")
    assert rc == 1 and "closest matches" in err
    _no_raw(err)
    assert shown(KEY, 400) in err


def test_json_escapes_c1_and_bidi_and_decodes_back(
    hostile_case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(hostile_case)
    for argv in (
        ["sql", c, "SELECT DISTINCT credential_id, user_agent FROM events", "--json"],
        ["info", c, "--json"],
        ["credentials", c, "--json"],
    ):
        rc, out, _ = _run(capsys, *argv)
        assert rc == 0
        _no_raw(out)
        json.loads(out)
    rc, out, _ = _run(capsys, "sql", c, "SELECT DISTINCT credential_id FROM events", "--json")
    assert "\\u202e" in out and "\\u0085" in out and "\\u009b" in out
    assert json.loads(out) == [{"credential_id": KEY}]


def test_sql_csv_escapes_controls_and_keeps_formula_neutralisation(
    hostile_case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _run(
        capsys,
        "sql",
        str(hostile_case),
        "SELECT DISTINCT credential_id, '=HYPERLINK(\"x\")' AS f FROM events",
        "--csv",
    )
    assert rc == 0
    _no_raw(out, keep="\r\n")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1] == [csv_text(KEY), '\'=HYPERLINK("x")']


def test_csv_export_escapes_controls(
    hostile_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.csv"
    rc, _, err = _run(capsys, "export", str(hostile_case), "-o", str(out), "--format", "csv")
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    _no_raw(text, keep="\r\n")
    assert csv_text(KEY) in text


def test_graphml_parses_and_keeps_the_text_escaped(
    hostile_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "graph.graphml"
    rc, _, err = _run(capsys, "export", str(hostile_case), "-o", str(out), "--format", "graphml")
    assert rc == 0, err
    tree = ET.parse(out)  # raises on a NUL, ESC or other character XML 1.0 forbids
    ids = [n.get("id") or "" for n in tree.iter() if n.tag.endswith("node")]
    assert any(xml_text(KEY) in i for i in ids)
    _no_raw(out.read_text(encoding="utf-8"), keep="\n")


def test_opengraph_json_escapes(
    hostile_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "graph.json"
    rc, _, err = _run(capsys, "export", str(hostile_case), "-o", str(out), "--format", "opengraph")
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    _no_raw(text)
    assert "credential:" + KEY in [
        n["id"] for n in json.loads(text)["graph"]["nodes"]
    ]  # same value back


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("\x1b[31m", "\\x1b[31m"),
        ("\x9b", "\\x9b"),
        ("\u202e", "\\u202e"),
        ("a\nb\tc\r", "a\\nb\\tc\\r"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\u2066\u200b\ufeff", "\\u2066\\u200b\\ufeff"),
        ("naïve ✓", "naïve ✓"),
        # a backslash that would read as an escape is doubled; any other stays single
        ("\\x1b", "\\\\x1b"),
        ("\\\x1b", "\\\\\\x1b"),
        ("\\\\n", "\\\\\\\\n"),
        ("C:\\Users\\svc\\new", "C:\\Users\\svc\\\\new"),
        ('{"a":"x\\"y"}', '{"a":"x\\"y"}'),
        ("\\u202e \\u20 \\xZZ end\\", "\\\\u202e \\u20 \\xZZ end\\"),
    ],
)
def test_shown(raw: str, escaped: str) -> None:
    assert shown(raw) == escaped


_READ_BACK = re.compile(r"\\(\\|[ntr]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _read_back(line: str) -> str:
    """How a responder reads a shown line, left to right: ``\\\\`` one backslash, ``\\n``,
    ``\\t``, ``\\r``, ``\\xHH``, ``\\uHHHH``, ``\\UHHHHHHHH`` one character, the rest itself."""
    short = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
    return _READ_BACK.sub(lambda m: short.get(m[1]) or chr(int(m[1][1:], 16)), line)


_ESCAPE_LIKE = st.sampled_from(
    ["\\", "x1b", "u202e", "U0001f600", "n", "t", "r", "x", "u2", "\x1b", "\u202e"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=8), _ESCAPE_LIKE), max_size=12).map("".join))
def test_shown_reads_back_to_the_text_and_obeys_nothing(text: str) -> None:
    """No two texts are shown alike (a log's literal ``\\x1b`` is not an ESC), and no unsafe
    character reaches the terminal."""
    line = shown(text)
    assert _read_back(line) == text
    assert re.search(f"[{UNSAFE_CLASS}]", line) is None


def test_xml_and_json_text() -> None:
    assert xml_text("a\x00b\tc\n\ud800\uffff") == "a\\x00b\tc\n\\ud800\\uffff"
    doc = json.dumps({"k": "x\x85\u202e\x7f"}, ensure_ascii=False)
    assert json.loads(json_text(doc)) == {"k": "x\x85\u202e\x7f"} and "\\u202e" in json_text(doc)


def test_csv_rule_in_sql_matches_python() -> None:
    """The export's SQL (:func:`csv_text_sql`) and ``sql --csv``'s Python agree on every BMP character."""
    import duckdb

    from keytrail.safetext import csv_text_sql

    every = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF) + "\U0001f600"
    row = (
        duckdb.connect()
        .execute(f"SELECT {csv_text_sql('x')} FROM (SELECT ? AS x)", [every])
        .fetchone()
    )
    assert row is not None and row[0] == csv_text(every)


@pytest.mark.parametrize("fmt", ["timesketch", "ocsf"])
def test_json_lines_exports_escape(
    hostile_case: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"{fmt}.jsonl"
    rc, _, err = _run(capsys, "export", str(hostile_case), "-o", str(out), "--format", fmt)
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    _no_raw(text)
    docs = [json.loads(line) for line in text.splitlines()]
    assert len(docs) == 3 and any(
        KEY in str(v) for d in docs for v in _leaves(d)
    )  # decodes to the value
    assert "\\u202e" in text
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def _leaves(doc: object) -> list[object]:
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in _leaves(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in _leaves(v)]
    return [doc]
