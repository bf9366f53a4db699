"""Regenerate tests/fixtures/agents/: run every agent scenario against a fresh OpenBao dev server.

    .venv/bin/pip install -e '.[test,agents-test]'
    .venv/bin/python scripts/make_agent_fixtures.py [SCENARIO...]

Each scenario folder gets the evidence a responder would be handed (OTLP JSON lines from the
framework's own instrumentation, the Vault audit log, the MCP gateway log), the inventory and
expect.json (tests/agents/scenarios.py). tests/unit/test_agent_fixtures.py holds keytrail to
expect.json on these files, so the behaviour stays pinned where the frameworks are not installed.
Times, ids and HMACs differ on every run: regenerate only when a scenario changes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.agents.scenarios import SCENARIOS
from tests.openbao import OpenBao

OUT = REPO / "tests" / "fixtures" / "agents"


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        bao = OpenBao.start(Path(tmp) / "openbao")
        try:
            for name in names or sorted(SCENARIOS):
                folder = OUT / name
                shutil.rmtree(folder, ignore_errors=True)
                SCENARIOS[name](bao, folder)
                print(f"{name}: {', '.join(sorted(p.name for p in folder.iterdir()))}")
        finally:
            bao.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
