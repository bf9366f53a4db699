"""The graph on the sample incident: the lineage, blast radii and traces of docs/sample-incident.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keytrail.analysis.answers import blast_radius, rank_credentials
from keytrail.analysis.delegation import trace_event
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore

INCIDENT = Path(__file__).resolve().parents[2] / "sample_data" / "incident"
A, B = "418295730164", "730261958447"
ENGINE, SHARED, SUPPORT = "AKIATXJNATFQP43ZUU2J", "AKIACGKP7XY67AEMFYZE", "AKIA6FHUI6DILMBYEZHZ"
INCIDENT_KEY, EXPORTER, XACCT, BACKDOOR = (
    "ASIADKKHC6DWJIFTZP4G",
    "AKIASXXYGSQE4J3DBZD7",
    "ASIA6RTBRNDMVQTY5OFJ",
    "AKIAKS436WXXSPGUJ74N",
)
STRONG_KEY, ORPHAN = "ASIASRBIQ3HPD2MG57YG", "ASIACO5X7CQQTO3RCLLE"
LOGIN = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
CHILD = "hmac-sha256:6532b96ba16013f9f2db3671a1fd891e48e6590689b3a547851e9f21fecf71ab"
MARIA = "maria.chen@finco.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseStore]:
    if not INCIDENT.is_dir():
        pytest.skip("sample_data/incident not present")
    path = tmp_path_factory.mktemp("sample") / "demo.duckdb"
    ingest(path, [INCIDENT], inventory=[INCIDENT / "inventory.toml"])
    s = CaseStore.open(path)
    yield s
    s.close()


def _minted(store: CaseStore) -> dict[tuple[str, str], str]:
    return {
        (r["src"], r["dst"]): r["confidence"]
        for r in store.query("SELECT src, dst, confidence FROM links WHERE kind = 'MINTED'")
    }


def test_lineage_edges(store: CaseStore) -> None:
    m = _minted(store)
    assert m[(LOGIN, CHILD)] == "proven"
    assert m[(INCIDENT_KEY, XACCT)] == "proven" and m[(INCIDENT_KEY, BACKDOOR)] == "proven"
    assert m[(ENGINE, INCIDENT_KEY)] == "proven" and m[(ENGINE, EXPORTER)] == "proven"
    lease = (
        "aws/sts/reconciler/XDg2FGY8dnaZwAYM6hCy02SS"  # 03-09: key id HMAC'd, name template only
    )
    assert m[(lease, STRONG_KEY)] == "strong"
    assert m[("aws/sts/reconciler/fNqvbTbezcetklqPKPnDsjzn", INCIDENT_KEY)] == "proven"
    # Every daily reconciler key hangs under a Vault lease.
    daily = store.query(
        """SELECT credential_id, parent_credential_id FROM credentials
                           WHERE credential_id IN (SELECT dst FROM links WHERE kind = 'MINTED' AND src = ?)
                             AND kind = 'aws-temporary-key'""",
        [ENGINE],
    )
    assert len(daily) >= 9 and all(
        r["parent_credential_id"].startswith("aws/sts/reconciler/") for r in daily
    )


def test_every_edge_is_explained(store: CaseStore) -> None:
    assert (
        store.scalar("""SELECT count(*) FROM links WHERE reason IS NULL OR reason = '' OR evidence IS NULL
                           OR len(evidence) = 0 OR evidence_count IS NULL OR evidence_count < len(evidence)""")
        == 0
    )


def test_origin_unknown_roots(store: CaseStore) -> None:
    roots = {
        r["credential_id"]
        for r in store.query("SELECT credential_id FROM credentials WHERE origin = 'unknown'")
    }
    assert roots == {
        ENGINE,
        SHARED,
        SUPPORT,
        "ASIAKZXHRBTR3FDXXBKW",
        "ASIAPWBXYZZP45VEIFM4",
        ORPHAN,
    }


def test_blast_of_the_incident_key(store: CaseStore) -> None:
    b = blast_radius(store, INCIDENT_KEY)
    assert b.derived_credentials == [BACKDOOR, XACCT]
    assert set(b.accounts) == {A, B}
    assert b.counts["denied"] == 15
    res = {r["resource"] for r in b.resources}
    assert any("finco-analytics-exports/customers/" in r for r in res)
    assert b.humans and b.humans[0]["human"] == MARIA


def test_blast_of_the_login_reaches_everything(store: CaseStore) -> None:
    b = blast_radius(store, LOGIN)
    assert {CHILD, INCIDENT_KEY, EXPORTER, XACCT, BACKDOOR} <= set(b.derived_credentials)
    assert set(b.accounts) >= {A, B}
    vault_secrets = {
        r["resource"] for r in b.resources if r["resource"].startswith("vault:secret/")
    }
    assert len(vault_secrets) == 14
    assert sum(r["denied"] for r in b.resources if r["resource"] in vault_secrets) == 5


def test_shared_key_and_backdoor(store: CaseStore) -> None:
    assert {a["agent"] for a in blast_radius(store, SHARED).agents} == {
        "invoice-triage",
        "vendor-sync",
    }
    b = blast_radius(store, BACKDOOR)
    assert b.derived_credentials == [] and b.agents == [] and b.counts["denied"] == 1
    ranked = rank_credentials(store)

    def reach(c: str) -> float:  # the terms over D(c); findings and two own terms left out
        r = next(x for x in ranked if x.credential == c)
        return sum(
            t.points
            for t in r.score_terms
            if t.name not in ("findings", "long_lived", "origin_unknown")
        )

    assert reach(LOGIN) > reach(INCIDENT_KEY) > reach(BACKDOOR)
    # the findings term lifts the key the attacker used into the top 3 (docs/blast-radius.md)
    assert BACKDOOR in [r.credential for r in ranked[:3]]


@pytest.mark.parametrize(
    ("event", "chain"),
    [
        (
            "157d6db7-a815-40e2-a55d-547d0c9e1e7c",
            [MARIA, "ledger-reconciler", LOGIN, CHILD, None, INCIDENT_KEY, XACCT],
        ),
        (
            "5a63bdde-a774-4c01-85af-2c1a8b39de5b",
            [MARIA, "ledger-reconciler", LOGIN, CHILD, None, INCIDENT_KEY, BACKDOOR],
        ),
        (
            "69f934dd-35ab-4ad3-a7de-9a71ef86bd49",
            [MARIA, "ledger-reconciler", LOGIN, CHILD, None, EXPORTER],
        ),
        (
            "c5c317cb-b662-4884-b6b7-88e9b06782e5",
            ["dev.okafor@finco.example", "support-copilot", SUPPORT],
        ),
        ("088baecd-f6ac-4f6e-a61d-6eb1252da81e", ["vendor-sync", SHARED]),
        ("01d262d7-a934-4171-afdf-98d5434f2761", [ORPHAN]),
    ],
)
def test_traces(store: CaseStore, event: str, chain: list[str | None]) -> None:
    t = trace_event(store, event)
    ids = [c.id for c in t.chain[:-1]]
    assert len(ids) == len(chain) and all(
        want is None or want == got for want, got in zip(chain, ids)
    ), ids
    assert t.chain[-1].kind == "event" and t.chain[-1].id == f"cloudtrail:{event}"


def test_trace_confidences_and_gaps(store: CaseStore) -> None:
    t = trace_event(store, "da964f93-6e30-4563-bec8-b24c6788f3d2")
    key = next(c for c in t.chain if c.id == STRONG_KEY)
    assert key.confidence == "strong"
    t = trace_event(store, "c5c317cb-b662-4884-b6b7-88e9b06782e5")
    assert t.chain[1].confidence == "inferred"
    assert any(g.startswith(f"origin unknown: no issuing event for {SUPPORT}") for g in t.gaps)
    t = trace_event(store, "01d262d7-a934-4171-afdf-98d5434f2761")
    assert len(t.gaps) == 3 and t.gaps[0].startswith("origin unknown")
    t = trace_event(store, "088baecd-f6ac-4f6e-a61d-6eb1252da81e")
    assert t.chain[0].confidence == "inferred" and {a["agent"] for a in t.candidates["agents"]} == {
        "invoice-triage",
        "vendor-sync",
    }
    assert any(g == "no human delegated to agent vendor-sync" for g in t.gaps)
