"""Vault's request/response pairing rules (keytrail.ingest.vault.pairing), which the adapter
and the scope's Vault gate both follow; their agreement on real files is held by
tests/unit/test_scope_vault_gate.py."""

from __future__ import annotations

from keytrail.ingest.vault.pairing import Pairing


def _run(entries: list[tuple[str, str]]) -> tuple[Pairing[int], list[int | None]]:
    pairs: Pairing[int] = Pairing()
    taken: list[int | None] = []
    for no, (typ, rid) in enumerate(entries):
        if typ == "request":
            pairs.request(rid, no)
        else:
            taken.append(pairs.response(rid))
    return pairs, taken


def test_a_response_takes_its_waiting_request() -> None:
    pairs, taken = _run([("request", "a"), ("request", "b"), ("response", "a")])
    assert taken == [0]
    assert pairs.pending == {"b": 1}
    assert (pairs.merged, pairs.repeated, pairs.late, pairs.skipped) == (1, 0, 0, 1)


def test_a_response_without_a_request_takes_nothing() -> None:
    pairs, taken = _run([("response", "a")])
    assert taken == [None]
    assert (pairs.merged, pairs.skipped) == (0, 0)


def test_a_repeated_request_keeps_the_first() -> None:
    pairs, taken = _run([("request", "a"), ("request", "a"), ("response", "a")])
    assert taken == [0]
    assert (pairs.merged, pairs.repeated, pairs.late, pairs.skipped) == (1, 1, 0, 2)
    assert not pairs.pending


def test_a_request_after_its_response_is_late_and_never_waits() -> None:
    pairs, taken = _run([("response", "a"), ("request", "a"), ("response", "a")])
    assert taken == [None, None]
    assert (pairs.merged, pairs.repeated, pairs.late, pairs.skipped) == (0, 0, 1, 1)
    assert not pairs.pending
