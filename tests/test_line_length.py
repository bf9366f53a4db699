"""A ratchet on lines over 100 columns (issue 11): no file may gain any.

``ruff format`` cannot split SQL text and long messages, so 800-odd lines were over the limit when
the formatter was adopted; they are counted per file in ``tests/line_length_baseline.json``. A
file may only go down (then lower its number: ``KEYTRAIL_UPDATE_LINE_BASELINE=1 pytest
tests/test_line_length.py`` rewrites the baseline, and refuses to raise any count); a new file
starts at zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "line_length_baseline.json"
LIMIT = 100
TREES = ("src", "tests", "benchmarks", "scripts")


def _long_lines() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            long = [i for i, line in enumerate(lines, start=1) if len(line) > LIMIT]
            if long:
                out[path.relative_to(ROOT).as_posix()] = long
    return out


def test_no_file_gains_long_lines() -> None:
    found = _long_lines()
    baseline: dict[str, int] = json.loads(BASELINE.read_text(encoding="utf-8"))
    if os.environ.get("KEYTRAIL_UPDATE_LINE_BASELINE") == "1":
        raised = [p for p, lines in found.items() if len(lines) > baseline.get(p, 0)]
        assert not raised, f"the baseline only goes down; over it: {raised}"
        BASELINE.write_text(
            json.dumps({p: len(v) for p, v in found.items()}, indent=1, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        return
    over = {
        p: f"{len(lines)} > {baseline.get(p, 0)} (lines {lines[-5:]})"
        for p, lines in found.items()
        if len(lines) > baseline.get(p, 0)
    }
    assert not over, f"lines over {LIMIT} columns grew: {over}"
