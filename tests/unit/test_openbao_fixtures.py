"""The Vault adapter on audit logs a real OpenBao server wrote (tests/fixtures/openbao/).

The logs and their ``*.ids.json`` come from ``python -m tests.fixtures.openbao.make`` (never edited
by hand); the checks are the ones the live scenario tests run (tests/openbao_checks.py), so a
behaviour pinned here is one a real server was seen to need.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import openbao_checks as check
from tests.conftest import case_rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openbao"


def _load(tmp: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, Any]]:
    log = (FIXTURES / f"{name}.audit.log").read_bytes()
    ids = json.loads((FIXTURES / f"{name}.ids.json").read_text())
    return check.ingest_log(tmp.mktemp(name), f"{name}.audit.log", log), ids


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _load(tmp_path_factory, "lineage")


def test_bootstrap_root_token_has_no_parent(lineage: tuple[Path, dict[str, Any]]) -> None:
    case, ids = lineage
    assert check.check_bootstrap(case) == ids["root_accessor"]


def test_userpass(lineage: tuple[Path, dict[str, Any]]) -> None:
    check.check_userpass(lineage[0], lineage[1]["userpass"])


def test_approle(lineage: tuple[Path, dict[str, Any]]) -> None:
    check.check_approle(lineage[0], lineage[1]["approle"], lineage[1]["root_accessor"])


def test_jwt(lineage: tuple[Path, dict[str, Any]]) -> None:
    check.check_jwt(lineage[0], lineage[1]["jwt"])


def test_tokens(lineage: tuple[Path, dict[str, Any]]) -> None:
    check.check_tokens(lineage[0], lineage[1]["tokens"], lineage[1]["root_accessor"])


def test_wrapping(lineage: tuple[Path, dict[str, Any]]) -> None:
    check.check_wrapping(lineage[0], lineage[1]["wrapping"], lineage[1]["root_accessor"])


def test_every_login_is_the_root_of_its_tree(lineage: tuple[Path, dict[str, Any]]) -> None:
    # four logins (userpass, approle, two JWT mounts), three made while the client held the root
    # token: none has a parent token; only the AppRole token has a parent, its secret id
    case, _ = lineage
    rows = case_rows(
        case,
        """SELECT c.credential_id, c.parent_credential_id, p.kind AS parent_kind,
                                     ci.attributes->>'caller_token_accessor' AS sent
                              FROM credential_issues ci JOIN credentials c USING (credential_id)
                              LEFT JOIN credentials p ON p.credential_id = c.parent_credential_id
                              WHERE ci.attributes->>'login_path' IS NOT NULL""",
    )
    assert len(rows) == 4
    assert sorted(str(r["parent_kind"]) for r in rows) == [
        "None",
        "None",
        "None",
        "vault-secret-id",
    ]
    assert sum(r["sent"] is not None for r in rows) == 3


def test_engines(tmp_path_factory: pytest.TempPathFactory) -> None:
    case, ids = _load(tmp_path_factory, "engines")
    check.check_engines(case, ids["engines"], ids["root_accessor"], raw=False)


def test_secrets_on_the_elide_device(tmp_path_factory: pytest.TempPathFactory) -> None:
    case, ids = _load(tmp_path_factory, "secrets-elide")
    check.check_secrets(case, ids["secrets"])


def test_github_actions_jwt_login_is_a_workload_not_a_person(
    lineage: tuple[Path, dict[str, Any]],
) -> None:
    # sub repo:acme/app:ref:refs/heads/main, actor dependabot[bot]: a CI workload; the person's OIDC
    # login on the other mount (email claim) stays a person (check_jwt)
    case, ids = lineage
    assert check.humans_of(case, ids["jwt"]["gha"]["accessor"]) == []
