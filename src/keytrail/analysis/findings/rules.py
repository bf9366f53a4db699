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
    offboarding,
    privilege,
    recon,
    reuse,
    sigma,
    unattributed,
    unused_privilege,
)

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

RULE_FAMILIES: list[tuple[str, Callable[[Context], None]]] = [
    ("offboarding", offboarding.run),
    ("credential_reuse", reuse.run),
    ("long_lived", longlived.run),
    ("human_use", human_use.run),
    ("privilege", privilege.run),
    ("privilege", unused_privilege.run),
    ("environment_crossing", environment.run),
    ("unattributed", unattributed.run),
    ("scope_drift", drift.run),
    (
        "reconnaissance",
        declared.section("reconnaissance"),
    ),  # denied-burst: data/rules/denied-burst.toml
    ("secret_sprawl", recon.run_sprawl),
    ("nhi_attack", declared.section("nhi_attack")),
    ("sigma", sigma.run),
]
