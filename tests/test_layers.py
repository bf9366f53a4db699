"""Module layering: the import graph of keytrail has no cycles and no arrow pointing up.

An ast walk over ``src/keytrail`` (no import of the package, so a module that would fail to
import still gets checked) collects every ``import`` / ``from ... import`` of a keytrail module,
function-level imports included, except those under ``if TYPE_CHECKING:`` (type-only, never
executed). Each module gets a layer from the table below; an import may point to the same layer
or lower, never higher. Why: ``store`` is the case file and knows nothing of what is derived from
it; ``ingest`` writes through ``store``; ``graph`` derives from loaded rows; ``analysis`` answers
questions over the graph; ``report`` renders answers; the front ends (cli, tui, web) sit on top.
A failure names the offending import (file, line, target) so it can be fixed, not re-learned.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import keytrail

ROOT = Path(keytrail.__file__).parent

# Lower number = lower layer. The longest matching prefix wins.
LAYERS: dict[str, int] = {
    "keytrail": 0,  # package root, errors, config, timefmt, levels, redact
    "keytrail.store": 1,
    "keytrail.ingest": 2,
    "keytrail.graph": 2,
    "keytrail.analysis": 3,
    "keytrail.scope": 3,  # walks analysis.lineage's MINTED closure over ingest's rows; cli calls it
    "keytrail.report": 4,
    "keytrail.cli": 5,
    "keytrail.tui": 5,
    "keytrail.web": 5,
    "keytrail.__main__": 6,
}
# Peers in one layer that must not import each other (graph derives from rows; ingest loads
# rows and then asks graph to derive - the one allowed direction is ingest -> graph).
FORBIDDEN_PEERS = {("keytrail.graph", "keytrail.ingest"), ("keytrail.analysis", "keytrail.scope")}
FRONT_ENDS = ("keytrail.cli", "keytrail.tui", "keytrail.web")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.src} imports {self.dst}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_pkg: bool) -> list[tuple[str, int]]:
    """(target, line) for every runtime import of a keytrail module in ``tree``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` imports the submodule when it is one.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if _exists(sub) else target, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(t, line) for t, line in found if t == "keytrail" or t.startswith("keytrail.")]


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    base = ROOT.parent / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _edges() -> list[Edge]:
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = str(path.relative_to(ROOT.parent.parent))
        for target, line in _imports(tree, module, path.name == "__init__.py"):
            edge = Edge(module, target, rel, line)
            if target != module and edge not in edges:  # `from m import a, b` is one import
                edges.append(edge)
    return edges


def _layer(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_import_graph_is_found() -> None:
    edges = _edges()
    assert any(e.src == "keytrail.cli.main" for e in edges)
    assert any(
        e.src.startswith("keytrail.analysis") and e.dst.startswith("keytrail.store") for e in edges
    )


def test_no_import_cycles() -> None:
    edges = _edges()
    cycles = _cycles(edges)
    detail = []
    for comp in cycles:
        members = set(comp)
        detail.append(" <-> ".join(comp))
        detail.extend(f"    {e}" for e in edges if e.src in members and e.dst in members)
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_layers_point_down() -> None:
    bad = []
    for e in _edges():
        (src_pkg, src_layer), (dst_pkg, dst_layer) = _layer(e.src), _layer(e.dst)
        if dst_layer > src_layer or (src_pkg, dst_pkg) in FORBIDDEN_PEERS:
            bad.append(f"{e}  ({src_pkg} -> {dst_pkg})")
        elif (
            src_pkg in FRONT_ENDS
            and dst_pkg in FRONT_ENDS
            and src_pkg != dst_pkg
            and not (src_pkg == "keytrail.cli" and dst_pkg in ("keytrail.tui", "keytrail.web"))
        ):
            bad.append(f"{e}  (front end {src_pkg} -> {dst_pkg})")
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)
