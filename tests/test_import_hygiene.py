"""The engine never loads the UI: importing any non-UI module leaves textual (and rich) unloaded."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import keytrail

ENGINE_PACKAGES = ("ingest", "store", "graph", "analysis", "report")


def _modules(prefix: str) -> list[str]:
    root = Path(keytrail.__file__).parent
    names = []
    for info in pkgutil.walk_packages([str(root)], prefix="keytrail."):
        if info.name.startswith(prefix) or prefix == "keytrail.":
            names.append(info.name)
    return sorted(
        n for n in names if not n.startswith("keytrail.tui") and not n.endswith("__main__")
    )


def _loaded_after_import(modules: list[str], watch: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(w for w in {watch!r} if w in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.strip().split(",") if w]


def test_engine_modules_do_not_load_textual_or_rich() -> None:
    modules = [m for p in ENGINE_PACKAGES for m in _modules(f"keytrail.{p}")]
    assert modules, "no engine modules found"
    assert _loaded_after_import(modules, ("textual", "rich")) == []


def test_cli_does_not_load_textual() -> None:
    modules = _modules("keytrail.cli")
    assert "keytrail.cli.main" in modules
    assert _loaded_after_import(modules, ("textual",)) == []


def test_cli_help_is_light() -> None:
    """Building the parser must not import duckdb, networkx or textual (fast --help)."""
    code = (
        "import sys\nfrom keytrail.cli.main import build_parser\nbuild_parser()\n"
        "print(','.join(m for m in ('duckdb','networkx','textual','polars') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
