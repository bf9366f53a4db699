"""A second ingest of Vault audit or agent-log files derives incrementally, with the rows of a
full rebuild (the oracles of ``test_derive_incremental``: a full rebuild of the grown case, and
one ingest of both parts).

Cases: the Vault and agent logs a day after the CloudTrail; a Vault log cut in two with a
request/response pair split each way; the sample incident's agent logs or Vault log second; an
OTLP record that renames old agent events; a Vault and agent ingest that died in its
end-of-ingest steps; an inventory with the Vault and agent logs after the CloudTrail, or alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest import finalize as finalize_mod
from keytrail.ingest.runner import ingest

from . import test_derive_incremental as base
from .test_derive_incremental import (
    DERIVED,
    INGESTED,
    SAMPLE,
    _assert_same,
    _check,
    _dump,
    _full_rederive,
    _gen,
    _others,
    _trail,
)

# the oracle's fixtures, shared by name
gen_root = base.gen_root
incremental = base.incremental


def _scalar(case: Path, sql: str) -> Any:
    con = duckdb.connect(str(case), read_only=True)
    try:
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def test_vault_and_agent_files_after_the_cloudtrail(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """The Vault log and the agent logs a day after the CloudTrail: Vault issues of keys that
    already sign old CloudTrail events (the AWS engine's names matched against old events),
    agent logs naming old credentials, tool calls followed by old API calls."""
    a = _gen(gen_root, 5, 6000)
    case = _check(tmp_path, _trail(a), _others(a), incremental, None)
    vault_named = _scalar(
        case,
        """SELECT count(*) FROM links WHERE kind = 'MINTED'
           AND starts_with(reason, 'Vault AWS secrets engine issued a key named')
           AND dst IN (SELECT credential_id FROM events WHERE source = 'cloudtrail')""",
    )
    logged = _scalar(
        case,
        """SELECT count(*) FROM links WHERE kind = 'USES' AND src_kind = 'agent'
           AND dst IN (SELECT credential_id FROM events WHERE source = 'cloudtrail')""",
    )
    caused = _scalar(
        case,
        """SELECT count(*) FROM event_links l JOIN events e ON e.event_uid = l.effect_uid
           WHERE e.source = 'cloudtrail'""",
    )
    assert vault_named > 0 and logged > 0 and caused > 0, (vault_named, logged, caused)


def _split_vault(log: Path, out: Path) -> tuple[Path, Path]:
    """The Vault log in two files cut in the middle, and across one request/response pair each
    way: the first file holds a response whose request is in the second, and a request whose
    response is in the second (the pairing across files changes an old event)."""
    lines = log.read_text().splitlines(keepends=True)
    req = [
        i
        for i, line in enumerate(lines[:-1])
        if '"type":"request"' in line and '"type":"response"' in lines[i + 1]
    ]
    mid = len(lines) // 2
    early = next(i for i in req if i >= mid // 2)  # its response goes to the second file
    late = next(i for i in req if i >= mid + 1)  # its response goes to the first file
    first = [ln for i, ln in enumerate(lines[:mid]) if i != early + 1] + [lines[late + 1]]
    second = [lines[early + 1]] + [ln for i, ln in enumerate(lines[mid:], mid) if i != late + 1]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vault-1.log").write_text("".join(first))
    (out / "vault-2.log").write_text("".join(second))
    return out / "vault-1.log", out / "vault-2.log"


def test_vault_log_split_across_two_ingests(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """Child tokens of old tokens, old tokens used by new requests, and request/response pairs
    cut across the two ingests (either way round): the same rows as one ingest of both."""
    a = _gen(gen_root, 5, 6000)
    agents = [p for p in _others(a) if "/agents/" in p.as_posix()]
    one, two = _split_vault(next((a / "vault").rglob("*.log")), tmp_path / "vsplit")
    case = _check(tmp_path, _trail(a) + agents + [one], [two], incremental, None)
    child_of_old = _scalar(
        case,
        """SELECT count(*) FROM links m
           JOIN credential_issues ci ON ci.credential_id = m.dst
           JOIN events e ON e.event_uid = ci.event_uid
           WHERE m.kind = 'MINTED' AND e.file_id = (SELECT max(file_id) FROM evidence)
             AND m.src IN (SELECT ci2.credential_id FROM credential_issues ci2
                           JOIN events e2 ON e2.event_uid = ci2.event_uid
                           WHERE e2.file_id < (SELECT max(file_id) FROM evidence))""",
    )
    paired = _scalar(
        case,
        """SELECT count(*) FROM events WHERE source = 'vault' AND details->>'entry' = 'pair'
           AND TRY_CAST(details->>'request_file_id' AS BIGINT) <> file_id""",
    )
    assert child_of_old > 0 and paired == 2, (child_of_old, paired)


def _vault_and_agents(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files of ``folder`` that are not CloudTrail: its Vault logs, then the agents' logs."""
    others = _others(folder)
    vault = [p for p in others if "/vault/" in p.as_posix()]
    return vault, [p for p in others if p not in vault]


def test_sample_incident_agents_after_cloudtrail_and_vault(
    tmp_path: Path, incremental: list[int]
) -> None:
    vault, agents = _vault_and_agents(SAMPLE)
    _check(tmp_path, _trail(SAMPLE) + vault, agents, incremental, SAMPLE / "inventory.toml")


def test_sample_incident_vault_after_cloudtrail_and_agents(
    tmp_path: Path, incremental: list[int]
) -> None:
    vault, agents = _vault_and_agents(SAMPLE)
    _check(tmp_path, _trail(SAMPLE) + agents, vault, incremental, SAMPLE / "inventory.toml")


def test_a_new_agent_record_renames_old_events(tmp_path: Path, incremental: list[int]) -> None:
    """Old native-log events name the agent by its display name; a new OTLP file has a record
    naming both its id and that name: the old events move to the id (SAME_AGENT), and every
    agent-keyed row with them, as a full rebuild has it."""
    native = SAMPLE / "agents" / "native" / "vendor-sync.jsonl"
    renamed = []
    for n, line in enumerate(native.read_text().splitlines()):
        rec = json.loads(line)
        rec.update(agent_id="Ledger Reconciler", event_id=f"lr-alias-{n:04d}")
        renamed.append(json.dumps(rec))
    alias = tmp_path / "alias" / "ledger.jsonl"
    alias.parent.mkdir()
    alias.write_text("\n".join(renamed) + "\n")
    others = _others(SAMPLE)
    otel = [p for p in others if "/otel/" in p.as_posix()]
    rest = [p for p in others if p not in otel]
    case = _check(tmp_path, _trail(SAMPLE) + rest + [alias], otel, incremental, None)
    moved = _scalar(
        case,
        """SELECT count(*) FROM events WHERE source = 'agent' AND agent_id = 'ledger-reconciler'
           AND details->>'agent_id_logged' = 'Ledger Reconciler'
           AND file_id < (SELECT max(file_id) FROM evidence)""",
    )
    same = _scalar(
        case,
        "SELECT count(*) FROM links WHERE kind = 'SAME_AGENT' AND src = 'Ledger Reconciler'",
    )
    assert moved == len(renamed) and same == 1, (moved, same)


@pytest.mark.parametrize("with_inventory", [False, True])
def test_a_vault_and_agent_ingest_stopped_before_its_finalize(
    tmp_path: Path,
    gen_root: Path,
    incremental: list[int],
    monkeypatch: pytest.MonkeyPatch,
    with_inventory: bool,
) -> None:
    """Vault and agent files (and an inventory) committed by an ingest that died in its
    end-of-ingest steps (as after a kill -9 there: the cross-file pairing rolled back with them)
    are derived by the next ingest, which finds them loaded: the rows of a full rebuild and of
    one ingest of all."""
    a = _gen(gen_root, 5, 6000)
    one, two = _split_vault(next((a / "vault").rglob("*.log")), tmp_path / "vsplit")
    agents = [p for p in _others(a) if "/agents/" in p.as_posix()]
    inv = [a / "inventory.toml"] if with_inventory else []
    case = tmp_path / "case.duckdb"
    ingest(case, _trail(a) + [one])
    real = finalize_mod.derive_since

    def dies(con: duckdb.DuckDBPyConnection, since: int) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(finalize_mod, "derive_since", dies)
    with pytest.raises(KeyboardInterrupt):
        ingest(case, [two, *agents], inventory=inv)
    monkeypatch.setattr(finalize_mod, "derive_since", real)
    summary = ingest(case, [two, *agents], inventory=inv)
    assert {f.status for f in summary.files} == {"already-ingested"}
    assert incremental == [1]
    got = _dump(case, DERIVED)
    _assert_same(got, _full_rederive(case, tmp_path))
    once = tmp_path / "once.duckdb"
    ingest(once, [*_trail(a), one, two, *agents], inventory=inv)
    _assert_same(got | _dump(case, INGESTED), _dump(once, (*DERIVED, *INGESTED)))


# An inventory with the Vault and agent logs, after the CloudTrail (the usual order of an
# investigation). Its rows are read by the agents' merge (aliases by name), the inventory USES,
# the principals and their decisions (all rebuilt whole then), and by the console-session rule of
# the credential decisions (an identity declared for an agent: a person used it), which reads a
# role's name whatever its account: a declared role of another account changes a console
# session's decision with no USES edge to show it. The one-ingest oracle loads its inventory
# last as well, so the file ids line up.

#: An Identity Center console session of the sample (its role is in account 418295730164).
SSO_KEY = "ASIAPWBXYZZP45VEIFM4"
SSO_ROLE = "AWSReservedSSO_AdministratorAccess_5b1c0e7f3a2d9c41"


def _grown(
    tmp: Path, first: list[Path], second: list[Path], inventory: Path, full: list[int]
) -> Path:
    """Ingest ``first``, then ``second`` with ``inventory`` (incrementally: ``full`` counts the
    full derives): the same rows as a full rebuild and as one ingest of all of it."""
    case = tmp / "grown.duckdb"
    ingest(case, first)
    ingest(case, second, inventory=[inventory])
    assert full == [1], "the second ingest rebuilt the graph in full"
    got = _dump(case, DERIVED)
    assert sum(len(v) for v in got.values()) > 0
    _assert_same(got, _full_rederive(case, tmp))
    once = tmp / "once.duckdb"
    ingest(once, first + second, inventory=[inventory])
    _assert_same(
        got | _dump(case, (*INGESTED, "evidence")),
        _dump(once, (*DERIVED, *INGESTED, "evidence")),
    )
    return case


def test_sample_inventory_vault_and_agents_after_the_cloudtrail(
    tmp_path: Path, incremental: list[int]
) -> None:
    """The sample incident's CloudTrail, then its Vault and agent logs with its inventory, plus
    an agent declaring a role of another account named as an Identity Center role the trail has
    a console session of: that session's decision changes (declared), nothing else says so."""
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        (SAMPLE / "inventory.toml").read_text()
        + '\n[[agents]]\nid = "sso-helper"\nname = "SSO Helper"\n'
        + f'identities = ["arn:aws:iam::999999999999:role/{SSO_ROLE}"]\n'
    )
    case = _grown(tmp_path, _trail(SAMPLE), _others(SAMPLE), inventory, incremental)
    con = duckdb.connect(str(case), read_only=True)
    try:
        row = con.execute(
            "SELECT person, reason FROM principal_classes WHERE subject = ?", [SSO_KEY]
        ).fetchone()
        uses = con.execute(
            "SELECT count(*) FROM links WHERE kind = 'USES' AND dst = ?", [SSO_KEY]
        ).fetchone()
    finally:
        con.close()
    assert row is not None and "declared for an agent" in row[1], row
    assert uses == (0,)


def test_generated_inventory_vault_and_agents_after_the_cloudtrail(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """A generated set (agents named by the inventory, tool calls on old targets): the same."""
    a = _gen(gen_root, 5, 6000)
    _grown(tmp_path, _trail(a), _others(a), a / "inventory.toml", incremental)


def test_an_inventory_alone_after_the_whole_case(
    tmp_path: Path, gen_root: Path, incremental: list[int]
) -> None:
    """Only an inventory, after the logs it names (its agents' names merge old agent events):
    still incremental, the rows of a full rebuild."""
    a = _gen(gen_root, 3, 4000)
    case = tmp_path / "case.duckdb"
    ingest(case, _trail(a) + _others(a))
    ingest(case, [], inventory=[a / "inventory.toml"])
    assert incremental == [1]
    _assert_same(_dump(case, DERIVED), _full_rederive(case, tmp_path))


def test_an_inventory_alone_renames_old_agent_events(
    tmp_path: Path, incremental: list[int]
) -> None:
    """Old native-log events name an agent by the name an inventory gives it later: the
    inventory alone moves them to its id (SAME_AGENT, every agent-keyed row and the calls'
    causes with them), incrementally, as a full rebuild and one ingest of all have it."""
    native = SAMPLE / "agents" / "native" / "vendor-sync.jsonl"
    lines = native.read_text().splitlines()
    alias = tmp_path / "alias" / "ledger.jsonl"
    alias.parent.mkdir()
    alias.write_text(
        "".join(
            json.dumps(json.loads(line) | {"agent_id": "Ledger Reconciler", "event_id": f"a{n}"})
            + "\n"
            for n, line in enumerate(lines)
        )
    )
    case = _grown(
        tmp_path,
        _trail(SAMPLE) + _others(SAMPLE) + [alias],
        [],
        SAMPLE / "inventory.toml",
        incremental,
    )
    moved = _scalar(
        case,
        "SELECT count(*) FROM events WHERE agent_id = 'ledger-reconciler' "
        "AND details->>'agent_id_logged' = 'Ledger Reconciler'",
    )
    same = _scalar(
        case,
        "SELECT count(*) FROM links WHERE kind = 'SAME_AGENT' AND src = 'Ledger Reconciler'",
    )
    assert moved == len(lines) and same == 1, (moved, same)
