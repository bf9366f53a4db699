"""Secrets never reach the case: no SQL transformation over any column returns one.

The case is built from every real-format fixture (``/work/shared/fixtures``), the sample incident
and a "zoo" of the secret kinds the fixtures lack (raw Vault tokens, a password inside JSON embedded
as a string, bearer headers, presigned URL tokens, a secret in a rejected record). The secret values
are found in the ORIGINAL files with the same rules (:data:`keytrail.redact.STORED_RULES`): every
value those rules remove and that occurs nowhere else in the file. Then 20 transformations that
used to leak a masked-on-output value (``upper``, ``reverse``, ``to_base64``, ``[raw]``, ...) run over
every text and JSON column of every table, and each result is decoded back before searching.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail import redact
from keytrail.ingest.runner import ingest
from keytrail.store.schema import TABLES
from keytrail.store.sqltext import key_rules_hint_sql, mask_stored_sql
from tests.conftest import SAMPLE_DATA

VAULT_TOKEN = "hvs.CAESIJ7zZ0oLeakMeIfYouCanQ2FzZVRva2VuMTIzNDU2Nzg5"
LEGACY_TOKEN = "s.Zx9LegacyVaultTokenValue0123"
PASSWORD = "Sup3r-S3cret-Passw0rd!"
BEARER = "eyJhbGciOiJIUzI1NiJ9.ZXhmaWx0cmF0ZQ.c2lnbmF0dXJlLXZhbHVl"
STS_SESSION = "IQoJb3JpZ2luX2VjEPrivateSessionTokenValueAAAAAAAAAAAAAAAAAAAAA=="
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzooSecretKey"
URL_TOKEN = "FwoGZXIvYXdzEPresignedUrlSecurityToken0123456789"
REJECT_SECRET = "rejected-record-api-key-0987654321"


def _zoo(root: Path) -> None:
    """Secret kinds the shared fixtures lack, in each source's real format."""
    (root / "vault").mkdir()
    req = {
        "time": "2026-03-02T09:00:00.000Z",
        "type": "request",
        "auth": {"client_token": VAULT_TOKEN, "accessor": "acc-1", "display_name": "approle"},
        "request": {
            "id": "zoo-1",
            "operation": "update",
            "path": "auth/approle/login",
            "data": {"secret_id": LEGACY_TOKEN, "password": PASSWORD},
        },
    }
    resp = {
        **req,
        "type": "response",
        "response": {"auth": {"client_token": VAULT_TOKEN, "accessor": "acc-2"}},
    }
    (root / "vault" / "audit.log").write_text(json.dumps(req) + "\n" + json.dumps(resp) + "\n")
    (root / "agents").mkdir()
    lines = [
        {
            "time": "2026-03-02T10:00:00Z",
            "event_id": "zoo-a1",
            "operation": "tool_call",
            "tool": "db_connect",
            "agent_id": "zoo-agent",
            "arguments": json.dumps({"dsn": "postgres://db", "password": PASSWORD}),
            "target": "db",
            "outcome": "success",
        },
        {
            "time": "2026-03-02T10:00:01Z",
            "event_id": "zoo-a2",
            "operation": "tool_call",
            "tool": "http",
            "agent_id": "zoo-agent",
            "command": f"curl -H 'Authorization: Bearer {BEARER}' https://x",
            "url": f"https://b.s3.amazonaws.com/k?X-Amz-Security-Token={URL_TOKEN}&X-Amz-Expires=60",
            "target": "https://x",
            "outcome": "failure",
            "error": f"denied token={LEGACY_TOKEN}",
        },
    ]
    (root / "agents" / "native.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "ct").mkdir()
    rec = {
        "eventVersion": "1.08",
        "eventID": "zoo-ct-1",
        "eventTime": "2026-03-02T11:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetSessionToken",
        "awsRegion": "us-east-1",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111122223333:user/zoo",
            "accessKeyId": "AKIAZOOZOOZOOZOO1234",
        },
        "errorMessage": f"bad request apiKey={REJECT_SECRET}x",
        "responseElements": {
            "credentials": {
                "accessKeyId": "ASIAZOOZOOZOOZOO5678",
                "sessionToken": STS_SESSION,
                "secretAccessKey": SECRET_KEY,
                "expiration": "Mar 2, 2026, 12:00:00 PM",
            }
        },
    }
    bad = {"notAnEvent": True, "api_key": REJECT_SECRET, "eventTime": "2026-03-02T11:00:00Z"}
    with gzip.open(root / "ct" / "zoo.json.gz", "wt") as fh:
        json.dump({"Records": [rec, bad]}, fh)


def _originals(paths: list[Path]) -> list[Path]:
    return [
        p
        for root in paths
        for p in ([root] if root.is_file() else sorted(root.rglob("*")))
        if p.is_file()
    ]


def _text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return ""
    return data.decode("utf-8", errors="replace")


def secrets_in(paths: list[Path]) -> set[str]:
    """Every value the stored-masking rules remove from the original files (8+ characters, and not
    also present in a non-secret position of any file, such as AWS's ``HIDDEN_DUE_TO_SECURITY_REASONS``
    placeholder that is also a user name)."""
    found: set[str] = set()
    texts = [_text(p) for p in _originals(paths)]
    masked = "\n".join(redact.mask_stored(t).lower() for t in texts)
    for text in texts:
        for pattern, _ in redact.STORED_RULES:
            for m in re.finditer(pattern, text):
                start = (
                    m.end(1)
                    if m.re.groups >= 1 and m.group(1) is not None and m.start(1) == m.start()
                    else m.start()
                )
                end = m.start(2) if m.re.groups >= 2 and m.group(2) is not None else m.end()
                value = text[start:end]
                if pattern == redact.STORED_RULES[-1][0]:
                    value = m.group(0)
                value = value.replace('\\"', '"').replace("\\/", "/")
                if len(value) >= 8 and value != redact.MASK and value.lower() not in masked:
                    found.add(value)
    return found


def _unb64(v: str) -> str:
    return base64.b64decode(v).decode("utf-8", errors="replace")


def _unhex(v: str) -> str:
    return bytes.fromhex(v).decode("utf-8", errors="replace")


#: (SQL over column ``c``, how to turn one result value back into searchable text).
TRANSFORMS: list[tuple[str, Callable[[Any], str]]] = [
    ("c", str),
    ("list(c)", str),
    ("[c]", str),
    ("{'r': c}", str),
    ("upper(c)", lambda v: str(v).lower()),
    ("lower(c)", str),
    ("reverse(c)", lambda v: str(v)[::-1]),
    (
        "to_base64(try_cast(c AS BLOB))",
        _unb64,
    ),  # the raw::BLOB (NULL where a \\ escape fails)
    ("to_base64(encode(c))", _unb64),
    ("hex(c)", _unhex),
    ("replace(c, 'sessionToken', 'st')", str),
    ("substr(c, greatest(strpos(lower(c), 'token') - 20, 1), 4000)", str),
    (
        "regexp_extract(c, '(?i)(?:token|password|secret|key)[^:=]*[:=]\\s*\\\\?\"?([^\"\\\\]+)', 1)",
        str,
    ),
    ("json_extract_string(c, '$..sessionToken')", str),
    ("json_extract_string(c, '$.responseElements.credentials.sessionToken')", str),
    ("c::JSON->>'$.auth.client_token'", str),
    ("string_split(c, '\"')", str),
    ("regexp_extract_all(c, '[A-Za-z0-9+/=._!-]{8,}')", str),
    (
        "list_transform(string_split(c, ''), lambda x: unicode(x))",
        lambda v: "".join(chr(i) for i in v if i is not None and i >= 0) if v else "",
    ),
    ("encode(c)", lambda v: bytes(v).decode("utf-8", errors="replace")),
    ("c || ''", str),
]


def _text_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    out = []
    for t in TABLES:
        for col in t.columns:
            if col.type.split()[0] in ("VARCHAR", "JSON"):
                out.append((t.name, col.name))
    return out


@pytest.fixture(scope="module")
def leak_case(
    tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path
) -> tuple[Path, set[str]]:
    root = tmp_path_factory.mktemp("zoo")
    _zoo(root)
    inputs = [shared_fixtures, SAMPLE_DATA / "incident", root]
    case = root.parent / "leak.duckdb"
    ingest(case, inputs)
    secrets = secrets_in(inputs)
    return case, secrets


def test_the_fixtures_hold_every_secret_kind(leak_case: tuple[Path, set[str]]) -> None:
    """The search is only as good as its secrets: every kind of the rules is present."""
    _, secrets = leak_case
    for s in (
        VAULT_TOKEN,
        LEGACY_TOKEN,
        PASSWORD,
        BEARER,
        STS_SESSION,
        SECRET_KEY,
        URL_TOKEN,
        REJECT_SECRET,
    ):
        assert s in secrets
    assert sum(1 for s in secrets if s.startswith(("IQoJ", "FwoG"))) >= 5  # STS tokens in fixtures
    assert len(secrets) >= 30


@pytest.mark.parametrize("sql,decode", TRANSFORMS, ids=[t[0][:40] for t in TRANSFORMS])
def test_no_transformation_returns_a_secret(
    leak_case: tuple[Path, set[str]], sql: str, decode: Callable[[Any], str]
) -> None:
    case, secrets = leak_case
    lowered = {s.lower() for s in secrets}
    con = duckdb.connect(str(case), read_only=True)
    try:
        by_table: dict[str, list[str]] = {}
        for table, col in _text_columns(con):
            by_table.setdefault(table, []).append(col)
        for table, cols in by_table.items():
            exprs = [
                (
                    f"CASE WHEN json_valid({c}) THEN {_sub(sql, c)} END"
                    if "json" in sql.lower()
                    else _sub(sql, c)
                )
                for c in cols
            ]
            for row in con.execute(f"SELECT {', '.join(exprs)} FROM {table}").fetchall():
                for col, value in zip(cols, row):
                    if value is None:
                        continue
                    text = decode(value).lower()
                    leaked = [s for s in lowered if s in text]
                    assert not leaked, f"{sql} over {table}.{col} returned {leaked[0][:12]}..."
    finally:
        con.close()


def _sub(sql: str, col: str) -> str:
    """``sql`` with the column placeholder ``c`` (a whole word, outside quotes) replaced."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    return "".join(p if p.startswith("'") else re.sub(r"\bc\b", col, p) for p in parts)


def test_whole_table_aggregates_and_the_file_bytes_hold_no_secret(
    leak_case: tuple[Path, set[str]],
) -> None:
    case, secrets = leak_case
    con = duckdb.connect(str(case), read_only=True)
    try:
        for table, col in _text_columns(con):
            (agg,) = con.execute(f"SELECT string_agg({col}::VARCHAR, '|') FROM {table}").fetchone()  # type: ignore[misc]
            assert not [s for s in secrets if agg and s in agg], f"{table}.{col}"
    finally:
        con.close()
    data = case.read_bytes()
    assert not [s for s in secrets if s.encode() in data]


def test_records_stay_valid_json_and_keep_what_is_not_secret(
    leak_case: tuple[Path, set[str]],
) -> None:
    case, _ = leak_case
    con = duckdb.connect(str(case), read_only=True)
    try:
        bad = con.execute(
            "SELECT count(*) FROM events WHERE raw IS NOT NULL AND NOT json_valid(raw) "
            "AND source <> 'vault'"
        ).fetchone()
        assert bad == (0,)
        # HMACs are evidence, not secrets: kept.
        hmacs = con.execute(
            'SELECT count(*) FROM events WHERE contains(raw, \'"client_token":"hmac-sha256:\')'
        )
        assert hmacs.fetchone()[0] > 0  # type: ignore[index]
        sts = con.execute(
            "SELECT raw->>'$.responseElements.credentials.sessionToken', "
            "raw->>'$.responseElements.credentials.accessKeyId' FROM events "
            "WHERE source_event_id = 'zoo-ct-1'"
        ).fetchone()
        assert sts == (redact.MASK, "ASIAZOOZOOZOOZOO5678")
        assert con.execute("SELECT value FROM case_meta WHERE key = 'secrets'").fetchone() == (
            "masked-at-ingest",
        )
    finally:
        con.close()


@pytest.mark.parametrize(
    "text",
    [
        '{"sessionToken":"a\\"b","x":"sessionToken","n":1}',
        '{"password":"hmac-sha256:ab"}',
        '{"password":"hmac"}',
        '{"a":"{\\"password\\": \\"p4ss\\"}"}',
        '{"cmd":"mysql --password=p4ss -u root"}',
        '{"t":"' + VAULT_TOKEN + '"}',
        '{"h":"Authorization: Bearer abc.def"}',
        '{"sessionToken":"IQoJcut',
        '{"password":7,"token":null}',
        "",
    ],
)
def test_sql_masking_equals_python_masking(text: str) -> None:
    got = duckdb.connect().execute(f"SELECT {mask_stored_sql('$v')}", {"v": text}).fetchone()[0]  # type: ignore[index]
    assert got == redact.mask_stored(text)
    if text.endswith("}"):
        json.loads(got)


def _key_rules_change(text: str) -> bool:
    out = text
    for pattern, repl in redact.STORED_RULES[:3]:
        out = re.sub(pattern, repl, out)
    return out != text


def test_the_key_rules_hint_is_necessary() -> None:
    """The SQL and Python masking skip the three key rewrites where KEY_RULES_HINT does not match:
    every spelling the rules mask (any key case, quoted, escaped, ``=`` or ``:``, blanks) must match."""
    rng = random.Random(7)
    seps = ['"{k}":"v1"', '"{k}" : "v 2"', '\\"{k}\\": \\"v3\\"', "{k}=v4", "{k} : v5", "{k}:\tv6"]
    hint = re.compile(redact.KEY_RULES_HINT)
    checked = 0
    for key in sorted(redact.SECRET_KEYS):
        for sep in seps:
            k = "".join(c.upper() if rng.random() < 0.5 else c for c in key)
            text = "x " + sep.format(k=k) + " y"
            if _key_rules_change(text):
                checked += 1
                assert hint.search(text), text
                assert redact.mask_stored(text) != text
    assert checked > len(redact.SECRET_KEYS) * 4
    # A key word that is not used as a key (a role session named vault-token-...) is left alone cheaply.
    assert not hint.search('{"arn":"arn:aws:sts::1:assumed-role/r/vault-token-agent-1"}')


_PIECES = st.sampled_from(
    [
        "token",
        "Password",
        "apiKey",
        "x-amz-security-token",
        '"',
        '\\"',
        ":",
        "=",
        " ",
        "\t",
        "a",
        "-",
        "_",
        "{",
        "}",
        ",",
        "s.",
        "bearer ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_the_key_rules_hint_is_necessary_for_any_text(text: str) -> None:
    if _key_rules_change(text):
        assert re.search(redact.KEY_RULES_HINT, text), text


def _sql_hint(con: duckdb.DuckDBPyConnection, texts: list[str]) -> list[bool]:
    """:func:`key_rules_hint_sql` (the reversed-text test DuckDB runs at ingest) over ``texts``."""
    rows = con.execute(
        f"SELECT i, {key_rules_hint_sql('t')} FROM (SELECT unnest($v) AS t, "
        "generate_subscripts($v, 1) AS i) ORDER BY i",
        {"v": texts},
    ).fetchall()
    return [bool(r[1]) for r in rows]


def test_the_reversed_hint_equals_the_hint() -> None:
    """The SQL decides with the reversed patterns (ASCII text) or the hint itself (other text): the
    answer must be the hint's for every key, case, quote and separator, and for the non-ASCII
    traps: ``ſ`` and the Kelvin sign fold into keys, a prefix mark (U+0600) or a combining mark
    would be moved by DuckDB's grapheme-cluster reverse, CR LF is one cluster."""
    rng = random.Random(11)
    seps = ['"{k}":"v"', '"{k}" : "v"', '\\"{k}\\": \\"v\\"', "{k}=v", "{k} :v", "{k}\r\n= v"]
    texts = []
    for key in sorted(redact.SECRET_KEYS):
        for sep in seps:
            k = "".join(c.upper() if rng.random() < 0.5 else c for c in key)
            texts += ["x " + sep.format(k=k), sep.format(k=k)[:-2], sep.format(k=k[1:] + "x")]
    texts += [
        "pa\u017f\u017fword=1",  # long s folds to s
        "to\u212aen: 1",  # Kelvin sign folds to k
        "\u0600token: 1",  # a prefix mark before the key
        "t\u0600oken: 1",
        "token\u0301: 1",  # a combining mark after the key
        '"pass\u0301word":"x"',
        '{"arn":"arn:aws:sts::1:assumed-role/r/vault-token-agent-1"}',
        "",
    ]
    got = _sql_hint(duckdb.connect(), texts)
    want = [bool(re.search(redact.KEY_RULES_HINT, t)) for t in texts]
    assert got == want
    assert sum(want) > len(redact.SECRET_KEYS) * 4  # the corpus holds many positives
    for text, hit in zip(texts, want):  # and for ASCII text the reversal is exact in Python too
        if text.isascii():
            rev = any(re.search(p, text[::-1]) for p in redact.KEY_RULES_HINT_REVERSED)
            assert rev == hit, text


_HINT_PIECES = st.sampled_from(
    [
        "token",
        "Password",
        "apiKey",
        "x-amz-security-token",
        "secretstring",
        '"',
        '\\"',
        "\\",
        ":",
        "=",
        " ",
        "\t",
        "\r\n",
        "a",
        "-",
        "_",
        "\u017f",
        "\u212a",
        "\u0600",
        "\u0301",
        "é",
    ]
)

_HINT_CON = duckdb.connect()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_HINT_PIECES, max_size=12).map("".join), min_size=1, max_size=8))
def test_the_reversed_hint_equals_the_hint_for_any_text(texts: list[str]) -> None:
    assert _sql_hint(_HINT_CON, texts) == [bool(re.search(redact.KEY_RULES_HINT, t)) for t in texts]


_MASK_PIECES = st.sampled_from(
    [
        "token",
        "PASSWORD",
        "client_token",
        "Authorization",
        '"',
        '\\"',
        "\\",
        ":",
        "=",
        " ",
        "\n",
        "v4lue",
        "hmac-sha256:",
        "bearer ",
        "{",
        "}",
        ",",
        "*",
        "€",  # non-ASCII text takes the forward tests (no Unicode letters: Python's \b counts
        "\u0600",  # them as word characters, RE2's does not, so the twins differ there)
        VAULT_TOKEN,
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_MASK_PIECES, max_size=14).map("".join), min_size=1, max_size=8))
def test_sql_masking_equals_python_masking_for_any_text(texts: list[str]) -> None:
    """The SQL runs each rewrite only where its cheap test (reversed text, ``\\"``) says it can
    match; the result must still be the Python twin's, which applies every rule to every text."""
    rows = _HINT_CON.execute(
        f"SELECT i, {mask_stored_sql('t')} FROM (SELECT unnest($v) AS t, "
        "generate_subscripts($v, 1) AS i) ORDER BY i",
        {"v": texts},
    ).fetchall()
    assert [r[1] for r in rows] == [redact.mask_stored(t) for t in texts]
