"""Live agent scenarios: real frameworks, stand-in models, real tools on a real OpenBao server.

Each test runs one scenario (``tests/agents/scenarios.py``) and holds ``keytrail trace`` of every
Vault and MCP action it caused to the person, agent and credential chain the scenario defines.
Skipped with the reason when a framework (the ``agents-test`` extra) or the ``bao`` binary is
missing; the kept evidence in ``tests/fixtures/agents`` pins the same answers without them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.expect import check
from tests.openbao import OpenBao

_NEEDS = {
    "shared-agent": ("pydantic_ai", "opentelemetry.sdk"),
    "handoff": ("pydantic_ai", "opentelemetry.sdk"),
    "retry": ("pydantic_ai", "opentelemetry.sdk"),
    "unknown-tool": ("pydantic_ai", "opentelemetry.sdk"),
    "mcp": ("pydantic_ai", "mcp", "opentelemetry.sdk"),
    "langgraph": ("langgraph", "openinference.instrumentation.langchain", "opentelemetry.sdk"),
    "strands": ("strands", "opentelemetry.sdk"),
}


#: what the harness itself imports (tests/agents/otel_files.py), whatever the framework
_HARNESS = ("google.protobuf", "opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.common")


def _need(modules: tuple[str, ...]) -> None:
    for module in modules:
        pytest.importorskip(
            module, reason=f"{module} not installed (pip install -e '.[agents-test]')"
        )


def test_every_scenario_runs_live() -> None:
    _need(_HARNESS)
    from tests.agents.scenarios import SCENARIOS  # imports no framework at module level

    assert sorted(SCENARIOS) == sorted(_NEEDS)


@pytest.mark.parametrize("name", sorted(_NEEDS))
def test_scenario(name: str, openbao: OpenBao, tmp_path: Path) -> None:
    _need(_HARNESS + _NEEDS[name])
    from tests.agents.scenarios import SCENARIOS

    folder = tmp_path / name
    SCENARIOS[name](openbao, folder)
    assert (folder / "traces.otlp.jsonl").stat().st_size > 0
    assert check(folder, tmp_path / "case.duckdb") == []
