"""The narrow projection of ``keytrail scope`` against the unchanged adapters.

The DuckDB engine reads CloudTrail ``Records`` files with one parse per file and writes only
the columns the closure reads (:mod:`keytrail.scope.narrow`). Its output must be the one the
ingest adapters themselves give (``narrow=False``): the same manifest (closure, seeds, inputs,
counts, output SHA-256s) and the same bytes in every output file, on the sample incident and on
generated scale data. The narrow path must also really be taken (else the test is vacuous).

Module fixtures share what several tests only read: the adapters' scope of the sample from the
token (``token_exact``); the odd trail and its adapters' scope (``odd_exact``: three tests read
the trail, two compare to that scope; both were made twice); the sample projected narrow and
exact (``sample_projections``: two tests query both; each projected the sample twice); the
sample's scope with one file per CloudTrail batch (``one_file_batches``: three tests ran it, each
under its own wrapper; one run under all three wrappers serves them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytrail.scope import narrow, narrow_spec
from keytrail.scope import project as pj
from keytrail.scope.engine_duckdb import scope_duckdb
from keytrail.scope.project import project

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"
INVENTORY = SAMPLE / "inventory.toml"
TOKEN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
HUMAN = "maria.chen@finco.example"


Scoped = tuple[Path, dict[str, Any]]
OddExact = tuple[Path, Path, Scoped]


def _scoped(
    out: Path, paths: list[Path], seeds: list[str], inventory: list[Path], **kw: Any
) -> Scoped:
    # the narrow path on every file: the gate (tests/unit/test_scope_gate.py) is tested against it
    kw.setdefault("gate", False)
    return out, scope_duckdb(out, paths, seeds, inventory=inventory, **kw).manifest


def _same(fast: Scoped, exact: Scoped) -> None:
    """The same manifest (but its creation time) and the same bytes in every output file."""
    (fast_dir, fast_doc), (exact_dir, exact_doc) = fast, exact
    assert fast_doc["outputs"], "the scope keeps nothing: the comparison would be vacuous"
    drop = {"created_at"}
    assert {k: v for k, v in fast_doc.items() if k not in drop} == {
        k: v for k, v in exact_doc.items() if k not in drop
    }
    for o in fast_doc["outputs"]:
        assert (fast_dir / o["path"]).read_bytes() == (exact_dir / o["path"]).read_bytes()


def _same_output(tmp: Path, paths: list[Path], seeds: list[str], inventory: list[Path]) -> None:
    fast = _scoped(tmp / "narrow", paths, seeds, inventory)
    _same(fast, _scoped(tmp / "exact", paths, seeds, inventory, narrow=False))


@pytest.fixture(scope="module")
def token_exact(tmp_path_factory: pytest.TempPathFactory) -> Scoped:
    """The adapters' own scope of the sample from the token (read-only: two tests compare to it)."""
    out = tmp_path_factory.mktemp("exact") / "exact"
    return _scoped(out, [SAMPLE], [TOKEN], [INVENTORY], narrow=False)


def test_narrow_equals_the_adapters_on_the_sample(tmp_path: Path, token_exact: Scoped) -> None:
    _same(_scoped(tmp_path / "narrow", [SAMPLE], [TOKEN], [INVENTORY]), token_exact)


def test_narrow_equals_the_adapters_for_the_human(tmp_path: Path) -> None:
    _same_output(tmp_path, [SAMPLE], [HUMAN], [INVENTORY])


@pytest.fixture(scope="module")
def one_file_batches(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The narrow scope of the sample from the token with one CloudTrail file per batch, run once
    for the three tests that read it (read-only): its output (``scoped``), the in-memory
    databases the re-read made (``made``) and the files the bulk scan read (``scanned``). The
    wrappers call the real ``duckdb.connect`` and ``bulk_read``; each test ran this same scope
    under its own wrapper before."""
    from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter

    made: list[int] = []
    scanned: list[str] = []
    real_connect, real_bulk = duckdb.connect, pj.bulk_read

    def connect() -> duckdb.DuckDBPyConnection:
        made.append(1)
        return real_connect()

    def bulk(con: duckdb.DuckDBPyConnection, ctxs: list[Any]) -> Any:
        scanned.extend(c.path.name for c in ctxs)
        return real_bulk(con, ctxs)

    out = tmp_path_factory.mktemp("one-file-batches") / "narrow"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CloudTrailAdapter, "BATCH_FILES", 1)
        mp.setattr(pj, "duckdb", SimpleNamespace(connect=connect, Error=duckdb.Error))
        mp.setattr(pj, "bulk_read", bulk)
        scoped = _scoped(out, [SAMPLE], [TOKEN], [INVENTORY])
    return SimpleNamespace(scoped=scoped, made=len(made), scanned=scanned)


def test_record_texts_reread_in_batches(
    one_file_batches: SimpleNamespace, token_exact: Scoped
) -> None:
    """Kept records' texts are re-read a batch of files at a time (memory stays flat): one file
    per batch gives the same output as the adapters reading the default batches (the exact side
    is not re-run with one-file batches: that doubled the slowest scope test for no check)."""
    _same(one_file_batches.scoped, token_exact)


def test_record_texts_reread_in_one_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_file_batches: SimpleNamespace,
    token_exact: Scoped,
    odd_exact: OddExact,
) -> None:
    """The re-read shares one in-memory database, each file or batch on its own cursor (a
    database per batch cost about 37 ms of CPU each): the adapters' output; on the odd trail
    too, whose refused files fail their batch's parse on that database (the adapters' side is
    ``odd_exact``'s, read in default batches: the unchanged adapter makes no re-read database)."""
    from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter

    _same(one_file_batches.scoped, token_exact)
    assert one_file_batches.made == 1
    monkeypatch.setattr(CloudTrailAdapter, "BATCH_FILES", 1)
    made: list[int] = []
    real_connect = duckdb.connect

    def connect() -> duckdb.DuckDBPyConnection:
        made.append(1)
        return real_connect()

    monkeypatch.setattr(pj, "duckdb", SimpleNamespace(connect=connect, Error=duckdb.Error))
    trail, _plain, exact = odd_exact
    _same(_scoped(tmp_path / "odd", [trail], [TOKEN], [trail / "inventory.toml"]), exact)
    assert len(made) == 1


def test_kept_records_picked_not_staged(
    one_file_batches: SimpleNamespace, token_exact: Scoped, odd_trail: tuple[Path, Path]
) -> None:
    """A bulk-readable file's kept records are picked out of its document by their paths: the
    bulk scan (which serializes and stages every record of the file) reads none of the sample's
    files (the adapters' output all the same), and of the odd trail's only those the picking
    refuses (two documents, a truncated gzip): the scan reads those (test_odd_files_same_output)."""
    _same(one_file_batches.scoped, token_exact)
    assert one_file_batches.scanned == []
    trail, plain = odd_trail
    odd = sorted(trail.glob("AWSLogs/**/*.json.gz"))[:2]  # the two rewritten after ``plain``
    db = duckdb.connect()
    try:
        assert pj._picked(db, str(plain), [1, 2]) is not None
        assert [pj._picked(db, str(f), [1]) for f in odd] == [None, None]
    finally:
        db.close()


#: JSON whose serialization differs from its text: escapes, number spellings, blanks, secrets.
_ODD_SCALAR = st.sampled_from(
    [
        "-0",
        "1.50",
        "1e400",
        "-1E-2",
        "18446744073709551616",
        "123456789012345678901234567890",
        '"\\u00e9\\/\\n"',
        '"\\ud83d\\ude00"',
        '"caf\u00e9"',
        "true",
        "null",
        '"hvs.AAAAAAAAAAAAAAAAAAAAAAAA"',
        '"a\\"b"',
    ]
)
_ODD_KEY = st.sampled_from(['"k"', '"k"', '"secretAccessKey"', '"Records"', '"\\u006b"'])
_ODD_JSON = st.recursive(
    _ODD_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda v: "[ " + " ,".join(v) + "]")
        | st.lists(st.tuples(_ODD_KEY, inner), max_size=4).map(
            lambda kv: "{" + ",\n ".join(f"{k} : {v}" for k, v in kv) + "}"
        )
    ),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=st.lists(_ODD_JSON, min_size=1, max_size=6),
    keep=st.sets(st.integers(1, 8), min_size=1),
    gz=st.booleans(),
)
def test_picked_texts_are_the_scans(recs: list[str], keep: set[int], gz: bool) -> None:
    """The texts picked by path (:func:`~keytrail.scope.project._picked`, masked by
    ``_Masked``) are those the bulk scan states (:func:`~keytrail.scope.project._scan_batch`)
    for any document: number spellings kept or not as the scan keeps them, escapes, blanks,
    duplicate keys, non-object records, secrets masked; a kept record past the end makes the
    picking refuse the file (the scan then decides)."""
    import gzip
    import tempfile

    text = '{"Records" : [' + ",\n".join(recs) + '], "Records": [1]}'
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / ("t.json.gz" if gz else "t.json")
        f.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        nos = sorted(keep)
        db = duckdb.connect()
        try:
            scan = pj._scan_batch(db, [str(f)], {str(f): set(nos)})
            picked = pj._picked(db, str(f), nos)
            masked = pj._Masked(db)
            assert masked.add(str(f), picked) == (picked is not None)
            got = masked.done()
        finally:
            db.close()
    if max(nos) > len(recs):
        assert picked is None
    else:
        assert picked is not None and got == scan and len(got) == len(nos)


def test_narrow_equals_the_adapters_on_scale_data(tmp_path: Path) -> None:
    data = tmp_path / "scale"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_scale.py"), "--out", str(data)]
        + ["--events", "3000"],
        check=True,
        capture_output=True,
    )
    seed = _busiest_issued_key(tmp_path, data)
    _same_output(tmp_path, [data], [seed], [data / "inventory.toml"])


def _busiest_issued_key(tmp: Path, data: Path) -> str:
    proj = project(tmp / "probe.duckdb", [data])
    try:
        row = proj.store.con.execute(
            """SELECT i.credential_id FROM credential_issues i
               JOIN events e ON e.credential_id = i.credential_id
               GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"""
        ).fetchone()
    finally:
        proj.store.close()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def sample_projections(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[bool, duckdb.DuckDBPyConnection]]:
    """The sample projected narrow (``True``) and by the adapters (``False``), each scratch case
    open (read-only use: two tests query both)."""
    tmp = tmp_path_factory.mktemp("projections")
    projs = {n: project(tmp / f"p{n}.duckdb", [SAMPLE], narrow=n) for n in (True, False)}
    try:
        yield {n: p.store.con for n, p in projs.items()}
    finally:
        for p in projs.values():
            p.store.close()


def test_the_narrow_path_is_taken(
    sample_projections: dict[bool, duckdb.DuckDBPyConnection],
) -> None:
    """CloudTrail rows carry no details and, but for the classifier's samples, no record text;
    the issuance rows and the identity columns are the adapters' own."""
    cols = "event_uid, credential_id, actor_uid, actor_name, human_id, time, shared_event_id"

    def facts(narrow: bool) -> dict[str, Any]:
        con = sample_projections[narrow]
        return {
            "events": con.execute(
                f"SELECT {cols} FROM events ORDER BY event_uid, file_id, record_no"
            ).fetchall(),
            "issues": con.execute(
                "SELECT * EXCLUDE (attributes), CAST(attributes AS VARCHAR) "
                "FROM credential_issues ORDER BY credential_id, event_uid"
            ).fetchall(),
            "ct": con.execute(
                """SELECT count(*), count(details), count(raw),
                          count(*) FILTER (WHERE contains(raw, '"eventSource"'))
                   FROM events WHERE source = 'cloudtrail'"""
            ).fetchone(),
        }

    narrow, exact = facts(True), facts(False)
    assert narrow["events"] == exact["events"] and narrow["issues"] == exact["issues"]
    n, details, raw, whole = narrow["ct"]
    assert n == exact["ct"][0] > 0 and details == 0 and 0 < raw < n
    assert whole == 0, "Records files went through the per-record parse, not the one-parse path"


def _odd_trail(tmp: Path) -> tuple[Path, Path]:
    """The sample incident with three CloudTrail files rewritten: one stored uncompressed (the
    one-parse path reads it), one holding two ``Records`` documents and one truncated gzip (the
    unchanged adapter reads those). Returns the trail and the uncompressed file."""
    import gzip
    import json
    import shutil

    trail = tmp / "incident"
    shutil.copytree(SAMPLE, trail)
    files = sorted(trail.glob("AWSLogs/**/*.json.gz"))
    plain = files[0].with_suffix("")  # .json
    plain.write_bytes(gzip.decompress(files[0].read_bytes()))
    files[0].unlink()
    recs = json.loads(gzip.decompress(files[1].read_bytes()))["Records"]
    half = len(recs) // 2
    two = json.dumps({"Records": recs[:half]}) + json.dumps({"Records": recs[half:]})
    files[1].write_bytes(gzip.compress(two.encode()))
    blob = files[2].read_bytes()
    files[2].write_bytes(blob[: len(blob) * 2 // 3])
    return trail, plain


@pytest.fixture(scope="module")
def odd_trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """:func:`_odd_trail` once per module (read-only: three tests read it)."""
    return _odd_trail(tmp_path_factory.mktemp("odd"))


@pytest.fixture(scope="module")
def odd_exact(odd_trail: tuple[Path, Path]) -> OddExact:
    """The odd trail, its uncompressed file and the adapters' scope of it from the token
    (read-only: two tests compare to it)."""
    trail, plain = odd_trail
    exact = _scoped(
        trail.parent / "exact", [trail], [TOKEN], [trail / "inventory.toml"], narrow=False
    )
    return trail, plain, exact


def test_odd_files_same_output(tmp_path: Path, odd_exact: OddExact) -> None:
    """Files the one-parse path must refuse (two documents, a truncated gzip) go through the
    unchanged adapter, an uncompressed one through the one-parse path: same output as exact."""
    trail, plain, exact = odd_exact
    _same(_scoped(tmp_path / "narrow", [trail], [TOKEN], [trail / "inventory.toml"]), exact)
    proj = project(tmp_path / "probe.duckdb", [trail])
    try:
        n, whole = proj.store.con.execute(
            """SELECT count(*), count(*) FILTER (WHERE contains(e.raw, '"eventSource"'))
               FROM events e JOIN evidence v USING (file_id) WHERE v.path = ?""",
            [str(plain)],
        ).fetchone() or (0, 0)
    finally:
        proj.store.close()
    assert n > 0 and whole == 0, "the uncompressed Records file missed the one-parse path"


_KEYS = sorted(
    {k for m in narrow_spec.JSON_READ.finditer(narrow._READ_SQL) for k in re.findall(r"\w+", m[2])}
    - {"r"}
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({f: _JSON for f in narrow._JSON_FIELDS}))
def test_struct_paths_read_what_the_json_paths_read(values: dict[str, Any]) -> None:
    """Every ``json_extract_string(r.X, path)`` the scope runs, on the adapter's JSON-typed
    subtree, equals its struct path (``narrow_spec.as_struct``) on the narrow parse, and ``r.X IS
    NULL`` is the same, whatever the JSON: missing keys, non-objects, JSON null, numbers and
    objects at a leaf."""
    doc = json.dumps({"eventID": "e", **values})
    reads = [m[0] for m in narrow_spec.JSON_READ.finditer(narrow._READ_SQL)]
    reads += [f"r.{f} IS NULL" for f in narrow._JSON_FIELDS if f in narrow._SPEC]
    full_spec = json.dumps({f: "JSON" for f in narrow._JSON_FIELDS})
    cut_spec = json.dumps({f: narrow._SPEC[f] for f in narrow._JSON_FIELDS if f in narrow._SPEC})
    con = _con()
    full = con.execute(
        f"SELECT [{', '.join(f'({e})::VARCHAR' for e in reads)}] "
        "FROM (SELECT try(json_transform($d, $s)) AS r)",
        {"d": doc, "s": full_spec},
    ).fetchone()
    cut = con.execute(
        f"SELECT [{', '.join(f'({narrow_spec.as_struct(e)})::VARCHAR' for e in reads)}] "
        "FROM (SELECT try(json_transform($d, $s)) AS r)",
        {"d": doc, "s": cut_spec},
    ).fetchone()
    assert cut == full


_CON: list[Any] = []


def _con() -> Any:
    import duckdb

    if not _CON:
        _CON.append(duckdb.connect())
    return _CON[0]


def test_a_read_the_narrow_parse_cannot_carry_is_refused() -> None:
    """A JSON subtree read other than by a plain path (a whole subtree, an array index) must not
    be narrowed silently: the scope would compute it from a cut record."""
    with pytest.raises(ValueError, match="requestParameters"):
        narrow_spec.json_reads("SELECT r.requestParameters AS details", ["requestParameters"])
    with pytest.raises(ValueError, match="names"):
        narrow_spec.json_reads(
            "SELECT json_extract_string(r.requestParameters, '$.names[0]')", ["requestParameters"]
        )


def test_vault_and_agent_rows_carry_no_text(
    sample_projections: dict[bool, duckdb.DuckDBPyConnection],
) -> None:
    """The narrow projection's Vault and agent events are the adapters' rows without ``raw``."""
    cols = "event_uid, source, time, credential_id, actor_uid, human_id, agent_id, details"

    def rows(narrow_: bool) -> tuple[list[Any], int]:
        con = sample_projections[narrow_]
        got = con.execute(
            f"SELECT {cols} FROM events WHERE source IN ('vault', 'agent') "
            "ORDER BY event_uid, file_id, record_no"
        ).fetchall()
        n = con.execute(
            "SELECT count(raw) FROM events WHERE source IN ('vault', 'agent')"
        ).fetchone()
        return got, int(n[0]) if n else 0

    (cut, cut_raw), (full, full_raw) = rows(True), rows(False)
    assert cut == full and len(cut) > 0
    assert cut_raw == 0 < full_raw


def test_issuance_rows_scan_only_named_issuing_calls() -> None:
    """The narrow path scans only the records the issuance SQL names (``narrow._ISSUING``); an
    issuance SQL with a branch that names no ``eventName`` is refused at import, not pruned."""
    from keytrail.ingest.cloudtrail import sql as ct_sql

    names = narrow._issuing_names(ct_sql.issues_sql())
    assert set(ct_sql.STS_ISSUERS) | {"CreateAccessKey"} == set(names)
    with pytest.raises(ValueError, match="issuing calls"):
        narrow._issuing_names(
            "SELECT 1 FROM _kt_ct_t WHERE r.eventName = 'AssumeRole' "
            "UNION ALL SELECT 2 FROM _kt_ct_t WHERE svc = 'iam'"
        )
