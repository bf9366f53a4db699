"""The rule families in the order they run; each is a ``run(ctx)`` adding drafts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keytrail.analysis.findings import (
    declared,
    drift,
    environment,
    human_use,
    longlived,
    privilege,
    sigma,
    unused_privilege,
)

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

RULE_FAMILIES: list[tuple[str, Callable[[Context], None]]] = [
    ("offboarding", declared.section("offboarding")),
    # Families named by their config section alone run rule files (keytrail/data/rules/*.toml
    # with `config = "<section>"`): moved from Python with identical output.
    ("credential_reuse", declared.section("credential_reuse")),
    ("long_lived", declared.section("long_lived")),
    ("long_lived", longlived.run),
    ("human_use", human_use.run),
    ("privilege", privilege.run),
    ("privilege", unused_privilege.run),
    ("environment_crossing", environment.run),
    ("unattributed", declared.section("unattributed")),
    ("scope_drift", drift.run),
    ("reconnaissance", declared.section("reconnaissance")),
    ("secret_sprawl", declared.section("secret_sprawl")),
    ("nhi_attack", declared.section("nhi_attack")),
    ("sigma", sigma.run),
]
