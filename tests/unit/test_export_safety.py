"""Hostile log text in exports: formulas neutralised, secrets masked, overwrite refused, shapes valid."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from keytrail import redact
from keytrail.errors import UsageError
from keytrail.report._sql import csv_cell_sql, mask_sql
from keytrail.report.exports import export
from keytrail.report.ocsf import classify
from keytrail.store.case import CaseStore
from tests.golden.case_fixture import FORMULA, SESSION_TOKEN, build_case

FORMULAS = [FORMULA, "+SUM(1,2)", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_case(tmp_path_factory.mktemp("safety") / "case.duckdb")


@pytest.mark.parametrize("text", FORMULAS + ["plain", "a=b", "", "'=already"])
def test_sql_csv_rule_equals_redact_csv_safe(text: str) -> None:
    got = duckdb.connect().execute(f"SELECT {csv_cell_sql('$v')}", {"v": text}).fetchall()
    assert got == [(redact.csv_safe(text),)]


_KEYS = [
    "sessionToken",
    "secretAccessKey",
    "SecretAccessKey",
    "SessionToken",
    "password",
    "client_token",
    "secret_id",
    "api_key",
    "apiKey",
    "access_token",
    "refresh_token",
    "id_token",
]


@pytest.mark.parametrize(
    "text",
    [
        '{"sessionToken": "IQoJb3JpZ2luX2Vj", "x": 1}',
        "password=hunter2 rest",
        "token hvs.CAESIabcdefghijklmnopqrstuv",
        "nothing secret here",
        'api_key: "k-123"',
        "hvr.ABCDEFGHIJKLMNOPQRSTUVWX1",
        "b.AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "s.ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "hvb.CAESIabcdefghijklmnopqrstuv",
        None,
        *[f'{{"{k}": "v4lue"}}' for k in _KEYS],
        *[f"{k}=v4lue" for k in _KEYS],
    ],
)
def test_sql_mask_equals_redact_mask_secrets(text: str | None) -> None:
    got = (
        duckdb.connect()
        .execute(f"SELECT {mask_sql('CAST($v AS VARCHAR)')}", {"v": text})
        .fetchall()
    )
    assert got == [(None if text is None else redact.mask_secrets(text),)]


@pytest.mark.parametrize("table", ["events", "credentials", "links"])
def test_csv_cells_never_start_a_formula(case: Path, tmp_path: Path, table: str) -> None:
    out = tmp_path / f"{table}.csv"
    with CaseStore.open(case) as store:
        export(store, out, "csv", table=table)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    cells = [cell for row in rows[1:] for cell in row]
    assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for cell in cells)
    if table == "events":
        assert "'" + FORMULA in cells and "'+SUM(1,2)" in cells
        assert SESSION_TOKEN not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["timesketch", "ocsf", "csv", "parquet"])
def test_session_token_never_exported(case: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"x.{fmt}"
    with CaseStore.open(case) as store:
        export(store, out, fmt)
    if fmt == "parquet":
        text = (
            duckdb.connect()
            .execute(f"SELECT string_agg(raw, '') FROM read_parquet('{out}')")
            .fetchall()[0][0]
        )
    else:
        text = out.read_text(encoding="utf-8")
    assert "AssumeRole" in text
    assert SESSION_TOKEN not in text


def test_timesketch_has_mandatory_fields(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    with CaseStore.open(case) as store:
        n = export(store, out, "timesketch")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == len(lines) == 9
    for doc in lines:
        assert doc["message"] and doc["timestamp_desc"]
        assert doc["datetime"].endswith("+00:00") and doc["datetime"][10] == "T"
        assert isinstance(doc["timestamp"], int)
    assert [d["datetime"] for d in lines] == sorted(d["datetime"] for d in lines)


def test_ocsf_classes(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    with CaseStore.open(case) as store:
        export(store, out, "ocsf")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [d["metadata"]["product"]["name"] for d in lines].count("CloudTrail") == 6 and len(
        lines
    ) == 9
    docs = {
        d["api"]["operation"]: d for d in lines if d["metadata"]["product"]["name"] == "CloudTrail"
    }
    assert {k: (d["class_uid"], d["activity_id"], d["type_uid"]) for k, d in docs.items()} == {
        "ConsoleLogin": (3002, 1, 300201),
        "CreateAccessKey": (3001, 1, 300101),
        "AssumeRole": (3002, 99, 300299),
        "GetObject": (6003, 2, 600302),
        "PutObject": (6003, 3, 600303),
        "ListBuckets": (6003, 2, 600302),
    }
    assert (
        docs["PutObject"]["status_id"] == 2 and docs["PutObject"]["status_code"] == "AccessDenied"
    )
    assert (
        docs["AssumeRole"]["api"]["response"]["data"]["credentials"]["sessionToken"] == redact.MASK
    )
    assert all(d["category_uid"] in (3, 6) and d["severity_id"] == 1 for d in docs.values())
    assert "null" not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("UpdateAccessKey", {"status": "Inactive"}, (3001, 5)),
        ("UpdateAccessKey", {"status": "Active"}, (3001, 2)),
        ("AttachRolePolicy", None, (3001, 7)),
        ("DeleteUserPolicy", None, (3001, 8)),
        ("DeleteUser", None, (3001, 6)),
        ("GetSessionToken", None, (3002, 99)),
        ("DeleteBucket", None, (6003, 4)),
        ("Frobnicate", None, (6003, 99)),
    ],
)
def test_ocsf_classify(name: str, params: dict[str, str] | None, expected: tuple[int, int]) -> None:
    cls, activity, _ = classify(name, params)
    assert (cls[0], activity) == expected


def _links_case(case: Path, tmp_path: Path) -> Path:
    """A copy of the case with a few links inserted directly (the graph export reads the table)."""
    path = tmp_path / "links.duckdb"
    path.write_bytes(case.read_bytes())
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM links")
    con.execute("""INSERT INTO links VALUES
      ('credential','AKIAEXAMPLEAGENT0001','credential','ASIAEXAMPLESESSION01','MINTED','AssumeRole','proven',
       ['cloudtrail:e3'],1,TIMESTAMP '2026-03-02 10:05:00',TIMESTAMP '2026-03-02 10:05:00','{}'),
      ('credential','ASIAEXAMPLESESSION01','resource','arn:aws:s3:::b/k','ACTED_ON','used','proven',
       ['cloudtrail:e4','cloudtrail:e5'],2,TIMESTAMP '2026-03-02 10:06:00',TIMESTAMP '2026-03-02 10:07:00',
       '{"actions": {"s3:GetObject": 1, "s3:PutObject": 1}, "denied": 1}'),
      ('agent','ledger-agent','credential','AKIAEXAMPLEAGENT0001','USES','credential_ref','inferred',
       ['agent:evt-0001'],1,NULL,NULL,NULL)""")
    con.close()
    return path


def test_opengraph_shape(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    with CaseStore.open(_links_case(case, tmp_path)) as store:
        n = export(store, out, "opengraph")
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["metadata"] == {"source_kind": "keytrail"}
    nodes, edges = doc["graph"]["nodes"], doc["graph"]["edges"]
    assert n == len(nodes) + len(edges) == 4 + 3
    ids = {node["id"] for node in nodes}
    for node in nodes:
        assert 1 <= len(node["kinds"]) <= 3
        for v in node["properties"].values():
            assert isinstance(v, (str, int, float, bool)) or (
                isinstance(v, list) and all(isinstance(x, str) for x in v)
            )
    for edge in edges:
        assert edge["start"]["match_by"] == edge["end"]["match_by"] == "id"
        assert edge["start"]["value"] in ids and edge["end"]["value"] in ids
        for v in edge["properties"].values():
            assert not isinstance(v, dict)
    acted = next(e for e in edges if e["kind"] == "KTActedOn")
    assert acted["properties"]["attr_denied"] == 1 and acted["properties"]["evidence"] == [
        "cloudtrail:e4",
        "cloudtrail:e5",
    ]


def test_graphml_loads_in_networkx(case: Path, tmp_path: Path) -> None:
    import networkx as nx

    out = tmp_path / "g.graphml"
    with CaseStore.open(_links_case(case, tmp_path)) as store:
        export(store, out, "graphml")
    graph = nx.read_graphml(out, force_multigraph=True)
    assert graph.number_of_nodes() == 4 and graph.number_of_edges() == 3
    assert graph.nodes["credential:ASIAEXAMPLESESSION01"]["kind"] == "credential"
    kinds = sorted(d["kind"] for _, _, d in graph.edges(data=True))
    assert kinds == ["ACTED_ON", "MINTED", "USES"]


def test_overwrite_refused_without_force(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.jsonl"
    out.write_text("keep me")
    with CaseStore.open(case) as store:
        with pytest.raises(UsageError, match="--force"):
            export(store, out, "timesketch")
        assert out.read_text() == "keep me"
        export(store, out, "timesketch", force=True)
    assert out.read_text() != "keep me"


def test_cli_export_exit_codes(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.csv"
    out.write_text("x")
    cmd = [sys.executable, "-m", "keytrail", "export", str(case), "-o", str(out), "--format", "csv"]
    refused = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert refused.returncode == 2 and "--force" in refused.stderr and out.read_text() == "x"
    done = subprocess.run(
        cmd + ["--force", "--table", "links"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        cmd[:-2] + ["--format", "ocsf", "--table", "links", "--force"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2


def test_ocsf_sql_classification_equals_python() -> None:
    from keytrail.report import ocsf

    names = sorted(
        ocsf._LOGON | ocsf._TOKEN | set(ocsf._ACCOUNT_CHANGE_ACTIVITY) | ocsf._ACCOUNT_CHANGE_OTHER
    )
    names += [
        "GetObject",
        "PutObject",
        "DeleteBucket",
        "RunInstances",
        "Frobnicate",
        "UpdateAccessKey",
        "",
    ]
    cls, act, act_name = ocsf.classification_sql("n", "r")
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT n, {cls}, {act}, {act_name} FROM (SELECT unnest($names) AS n, "
        '\'{"requestParameters": {"status": "Inactive"}}\' AS r)',
        {"names": names},
    ).fetchall()
    for name, class_uid, activity_id, activity_name in rows:
        (py_cls, *_), py_act, py_name = classify(name, {"status": "Inactive"})
        assert (class_uid, activity_id, activity_name) == (py_cls, py_act, py_name), name


def test_graphml_mixed_attribute_types_become_text(case: Path, tmp_path: Path) -> None:
    import networkx as nx

    path = _links_case(case, tmp_path)
    con = duckdb.connect(str(path))
    con.execute("""UPDATE links SET attributes = '{"note": "text"}' WHERE kind = 'MINTED'""")
    con.execute("""UPDATE links SET attributes = '{"note": 7}' WHERE kind = 'USES'""")
    con.close()
    out = tmp_path / "mixed.graphml"
    with CaseStore.open(path) as store:
        export(store, out, "graphml")
    graph = nx.read_graphml(out, force_multigraph=True)
    assert sorted(d.get("attr_note") for _, _, d in graph.edges(data=True) if "attr_note" in d) == [
        "7",
        "text",
    ]
