"""The analysis code's fingerprint covers every graph module whose rules the analysis embeds.

A stored snapshot is trusted while the fingerprint it was written under is current
(:mod:`keytrail.analysis.snapshot`); a graph module the analysis imports SQL or rules from,
left out of it, would let an upgrade that changes those rules keep serving the old answers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keytrail
from keytrail.analysis.code_hash import code_fingerprint, fingerprinted

PACKAGE = Path(keytrail.__file__).resolve().parent


def _graph_modules_imported_by_analysis() -> set[Path]:
    found = set()
    for f in (PACKAGE / "analysis").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "keytrail.graph."
            ):
                found.add(PACKAGE / "graph" / f"{node.module.split('.')[2]}.py")
    return found


def test_every_graph_module_the_analysis_imports_is_fingerprinted() -> None:
    imported = _graph_modules_imported_by_analysis()
    assert PACKAGE / "graph" / "principal_class.py" in imported  # the check sees real imports
    assert imported <= set(fingerprinted())


def test_the_fingerprint_reads_the_files() -> None:
    files = fingerprinted()
    assert all(f.is_file() for f in files)
    assert PACKAGE / "analysis" / "ranking.py" in files
    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) >= 16
