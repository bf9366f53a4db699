"""``keytrail scope`` (DuckDB engine) on the sample incident: a scoped case answers like the full.

Scoping from the reconciler's Vault login token, and separately from the human who delegates to
it, must give a case whose ``blast`` (for the seed credentials) and ``trace`` (for every kept
CloudTrail/Vault event) answers equal the full case's, up to where the records sit (file ids,
record numbers), while dropping the unrelated events. The records are checked byte for byte
against the input files, and the manifest must come back as provenance on ingest.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from keytrail.analysis import snapshot
from keytrail.analysis.answers import run_findings
from keytrail.analysis.blast_detail import BlastRadius
from keytrail.analysis.blast_detail import blast_radius as blast_detail
from keytrail.analysis.delegation import trace_event
from keytrail.analysis.summary import case_info
from keytrail.cli.main import main
from keytrail.ingest.runner import ingest
from keytrail.scope.engine_duckdb import scope_duckdb
from keytrail.store.case import CaseStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"
INVENTORY = SAMPLE / "inventory.toml"
TOKEN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
HUMAN = "maria.chen@finco.example"
_LOCATION_KEYS = {"file_id", "record_no", "byte_offset"}
_INVENTORY_REF = re.compile(r"^inventory:\d+:")
_TIED_LISTS = {"sensitive_actions"}


def _normal(x: Any, key: str = "") -> Any:
    """An answer without where its records sit (the scoped case has other files). Lists that
    the analysis orders only by time (``sensitive_actions``: first_seen, action; their evidence:
    time) are compared as sets: equal times tie, and ties fall in file order."""
    if isinstance(x, dict):
        return {k: _normal(v, k) for k, v in x.items() if k not in _LOCATION_KEYS}
    if isinstance(x, list):
        items = [_normal(v) for v in x]
        return sorted(items, key=repr) if key in _TIED_LISTS else items
    if isinstance(x, str):
        return _INVENTORY_REF.sub("inventory:N:", x)
    return x


@pytest.fixture(scope="module")
def full_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("full") / "full.duckdb"
    ingest(case, [SAMPLE], inventory=[INVENTORY])
    return case


def _scoped(tmp: Path, seed: str) -> tuple[dict[str, Any], Path, Path]:
    out = tmp / "scope"
    result = scope_duckdb(out, [SAMPLE], [seed], inventory=[INVENTORY])
    case = tmp / "scoped.duckdb"
    ingest(case, [out], inventory=[INVENTORY])
    return result.manifest, out, case


def _blasts(store: CaseStore, credentials: list[str], found: Any = None) -> dict[str, BlastRadius]:
    """``answers.blast_radius`` of each credential, with the case's findings run once: it runs
    every findings rule for each call (these cases have no snapshot), the same list each time,
    and that made this the slowest DuckDB test (36 runs of every rule)."""
    found = run_findings(store) if found is None else found
    return {
        cid: blast_detail(store, cid, stored_row=snapshot.rank_row, findings=lambda: found)
        for cid in credentials
    }


class _FullAnswers:
    """The full case's normalised answers, each computed once per module: the full case is
    never written after the fixture ingested it, and both seeds' tests compare against it
    (their credentials and events overlap), so a second computation only repeated the first."""

    def __init__(self, case: Path) -> None:
        self.case = case
        self.found: Any = None
        self.blasts: dict[str, Any] = {}
        self.traces: dict[str, Any] = {}

    def blast(self, store: CaseStore, credentials: list[str]) -> dict[str, Any]:
        if self.found is None:
            self.found = run_findings(store)
        new = [c for c in credentials if c not in self.blasts]
        for cid, radius in _blasts(store, new, self.found).items():
            self.blasts[cid] = _normal(radius.as_dict())
        return {cid: self.blasts[cid] for cid in credentials}

    def trace(self, store: CaseStore, uid: str) -> Any:
        if uid not in self.traces:
            self.traces[uid] = _normal(trace_event(store, uid).as_dict())
        return self.traces[uid]


@pytest.fixture(scope="module")
def full_answers(full_case: Path) -> _FullAnswers:
    return _FullAnswers(full_case)


def _check_equal_answers(full_answers: _FullAnswers, scoped: Path, credentials: list[str]) -> int:
    with CaseStore.open(full_answers.case) as full, CaseStore.open(scoped) as part:
        in_part, in_full = _blasts(part, credentials), full_answers.blast(full, credentials)
        for cid in credentials:
            assert _normal(in_part[cid].as_dict()) == in_full[cid], cid
        uids = [
            r[0]
            for r in part.con.execute(
                "SELECT event_uid FROM events WHERE source <> 'agent' ORDER BY event_uid"
            ).fetchall()
        ]
        for uid in uids:
            assert _normal(trace_event(part, uid).as_dict()) == full_answers.trace(full, uid), uid
        n_full = full.scalar("SELECT count(*) FROM events")
        n_part = part.scalar("SELECT count(*) FROM events")
    assert 0 < n_part < n_full  # unrelated events dropped
    return len(uids)


def _check_bytes(out: Path, doc: dict[str, Any]) -> None:
    """Every output record stands as it was in its input (CloudTrail text, or whole lines)."""
    for o in doc["outputs"]:
        data = gzip.decompress((out / o["path"]).read_bytes())
        source = Path(o["input"]).read_bytes()
        source = gzip.decompress(source) if source[:2] == b"\x1f\x8b" else source
        if o["source"] == "cloudtrail":
            for rec in json.loads(data)["Records"]:
                assert json.dumps(rec) not in ("", None)
            inner = data.decode()[len('{"Records":[') : -3]
            assert inner[:200] in source.decode()
        else:
            lines = source.split(b"\n")
            assert all(line in lines for line in data.split(b"\n") if line)


def test_scope_from_the_agents_vault_token(full_answers: _FullAnswers, tmp_path: Path) -> None:
    doc, out, case = _scoped(tmp_path, TOKEN)
    assert doc["engine"] == "duckdb" and doc["seeds"][0]["matched_as"] == "credential"
    members = {c["credential_id"]: c for c in doc["closure"]}
    # The story's chain: login token -> child token -> leases -> STS key -> cross-account key,
    # backdoor key
    for cid in (
        "ASIADKKHC6DWJIFTZP4G",
        "ASIA6RTBRNDMVQTY5OFJ",
        "AKIAKS436WXXSPGUJ74N",
        "AKIASXXYGSQE4J3DBZD7",
    ):
        assert members[cid]["relation"] == "minted from a seed" and members[cid]["why"].startswith(
            "minted from"
        )
    assert "AKIACGKP7XY67AEMFYZE" not in members  # invoice-triage's key: another story
    descendants = [c for c, m in members.items() if m["relation"] != "ancestor of a seed"]
    assert _check_equal_answers(full_answers, case, descendants) > 20
    _check_bytes(out, doc)
    with CaseStore.open(case) as store:
        info = case_info(store)
        ev = store.scalar("SELECT count(*) FROM evidence WHERE status = 'provenance'")
    assert ev == 1
    (prov,) = info["provenance"]
    assert prov["engine"] == "duckdb" and prov["seeds"][0]["seed"] == TOKEN
    assert prov["outputs"] == len(doc["outputs"]) and prov["inputs"] == 35
    assert doc["counts"]["cloudtrail"]["events_out"] < doc["counts"]["cloudtrail"]["events_in"]
    assert all(len(o["sha256"]) == 64 for o in doc["outputs"])
    assert all(len(i["sha256"]) == 64 and i["bytes"] > 0 for i in doc["inputs"])


def test_scope_from_the_human(full_answers: _FullAnswers, tmp_path: Path) -> None:
    doc, _out, case = _scoped(tmp_path, HUMAN)
    (seed,) = doc["seeds"]
    assert seed["matched_as"] == "human" and TOKEN in seed["credentials"]
    _check_equal_answers(full_answers, case, seed["credentials"])


def test_window_keeps_lineage_and_cuts_usage(tmp_path: Path) -> None:
    doc = scope_duckdb(tmp_path / "all", [SAMPLE], ["ASIADKKHC6DWJIFTZP4G"]).manifest
    from keytrail.timefmt import to_utc

    late = scope_duckdb(
        tmp_path / "late", [SAMPLE], ["ASIADKKHC6DWJIFTZP4G"], since=to_utc("2026-03-10T10:00:00Z")
    ).manifest
    assert late["window"]["since"] == "2026-03-10T10:00:00Z"
    assert late["counts"]["cloudtrail"]["events_out"] < doc["counts"]["cloudtrail"]["events_out"]
    case = tmp_path / "late.duckdb"
    ingest(case, [tmp_path / "late"])
    with CaseStore.open(
        case
    ) as store:  # the AssumeRole that issued the seed (09:04) is still there
        assert (
            store.scalar(
                "SELECT count(*) FROM events WHERE event_uid = "
                "'cloudtrail:04be15ca-b511-4fd6-b38b-45b1bdaf6a2d'"
            )
            == 1
        )


def test_unknown_seed_exits_1_with_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["scope", str(tmp_path / "o"), str(SAMPLE / "vault"), "--seed", "hmac-sha256:4b900e35"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "matches no credential" in err and TOKEN in err
    assert not (tmp_path / "o").exists()


def test_bad_files_are_listed_as_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "vault.log").write_bytes((SAMPLE / "vault" / "vault_audit.log").read_bytes())
    (src / "notes.txt").write_text("not a log\n")
    (src / "empty.json").write_text("")
    rc = main(["scope", str(tmp_path / "o"), str(src), "--seed", TOKEN, "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    skipped = {Path(i["path"]).name: i["note"] for i in doc["inputs"] if i["status"] == "skipped"}
    assert skipped == {"notes.txt": pytest.approx(skipped["notes.txt"]), "empty.json": "empty file"}
    assert "matches no known format" in skipped["notes.txt"]
    assert doc["counts"]["vault"]["events_out"] > 0


def test_principal_and_agent_seeds(tmp_path: Path) -> None:
    """A principal ARN stands for its keys (AUTHENTICATES_AS); an inventory name for the agent's
    credentials (USES: the inventory's Vault role -> its AppRole logins, and so on down)."""
    arn = "arn:aws:iam::418295730164:user/svc-backup-export"
    doc = scope_duckdb(tmp_path / "p", [SAMPLE], [arn]).manifest
    (seed,) = doc["seeds"]
    assert seed["matched_as"] == "principal" and "AKIAKS436WXXSPGUJ74N" in seed["credentials"]
    doc = scope_duckdb(
        tmp_path / "a", [SAMPLE], ["Ledger Reconciler"], inventory=[INVENTORY]
    ).manifest
    (seed,) = doc["seeds"]
    assert seed["matched_as"] == "agent" and TOKEN in seed["credentials"]
    members = {c["credential_id"] for c in doc["closure"]}
    assert {"ASIADKKHC6DWJIFTZP4G", "AKIASXXYGSQE4J3DBZD7"} <= members
    assert "AKIACGKP7XY67AEMFYZE" not in members
    assert doc["counts"]["agent"]["events_out"] > 0


def test_output_folder_must_be_new_or_empty(tmp_path: Path) -> None:
    from keytrail.errors import UsageError

    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep me")
    with pytest.raises(UsageError, match="not an empty folder"):
        scope_duckdb(tmp_path / "o", [SAMPLE / "vault"], [TOKEN])
    assert (tmp_path / "o" / "x").read_text() == "keep me"
