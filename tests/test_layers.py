"""The layers, read from the source: imports only go down, compute cores never import Inspect, and no
module imports itself back through others. Function-level (lazy) imports count like any other.

Run ``pytest tests/test_layers.py -q -rA`` to see the counts it checks (printed by the last test).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "af_tasks"

# folder in the checkout -> (import package, layer); lowest layer first
FOLDERS = {
    "core": ("af_tasks.core", 0),
    "engine": ("af_tasks.engine", 1),
    "training": ("af_tasks.training", 1),
    "sae": ("af_tasks.sae", 1),
    "af_tasks": ("af_tasks", 2),
    "solvers": ("af_tasks.solvers", 2),
    "scorers": ("af_tasks.scorers", 2),
    "app": ("af_tasks.app", 3),
}
LAYER_NAMES = ("core", "compute", "inspect adapters", "app")
FORBIDDEN = {
    0: ("torch", "transformers", "peft", "trl", "sae_lens", "accelerate", "inspect_ai"),
    1: ("inspect_ai",),
}


def modules() -> dict[str, tuple[Path, int]]:
    found = {}
    for folder, (package, layer) in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = (path, layer)
    return found


MODULES = modules()


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement, top-level or inside functions."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            # `from af_tasks.core import protocol` imports the module af_tasks.core.protocol
            found += [
                (f"{base}.{alias.name}", node.lineno)
                for alias in node.names
                if f"{base}.{alias.name}" in MODULES
            ]
    return found


def project_target(name: str) -> str | None:
    """The longest project module that ``name`` is or lies in."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def edges() -> list[tuple[str, str, int]]:
    result = []
    for module, (path, _) in MODULES.items():
        for imported, line in imports_of(path, module):
            target = project_target(imported)
            if target and target != module and target != NAMESPACE:
                result.append((module, target, line))
    return result


def uphill(all_edges) -> list[str]:
    return [
        f"{MODULES[a][0].relative_to(ROOT)}:{line} imports {b} "
        f"({LAYER_NAMES[MODULES[a][1]]} -> {LAYER_NAMES[MODULES[b][1]]})"
        for a, b, line in all_edges
        if MODULES[b][1] > MODULES[a][1]
    ]


def cycles(all_edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for a, b, _ in all_edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_every_folder_is_read():
    assert all(any(MODULES[m][1] == layer for m in MODULES) for layer in range(4))
    assert "af_tasks.core.protocol" in MODULES and "af_tasks.app.cli" in MODULES


def test_imports_only_go_down():
    assert uphill(edges()) == []


def test_no_import_cycles():
    assert cycles(edges()) == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_heavy_or_inspect_packages(layer):
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, (path, module_layer) in MODULES.items()
        if module_layer == layer
        for name, line in imports_of(path, module)
        if name.split(".")[0] in FORBIDDEN[layer]
    ]
    assert bad == []


def test_namespace_root_imports_nothing():
    """Every import of any layer runs ``af_tasks/__init__.py`` first: it must not pull anything in."""
    path, _ = MODULES[NAMESPACE]
    assert imports_of(path, NAMESPACE) == []


def test_checker_sees_violations():
    """The checks above can fail: a planted uphill import and a planted cycle are both found."""
    planted = [
        ("af_tasks.core.protocol", "af_tasks.app.cli", 1),
        ("af_tasks.app.cli", "af_tasks.core.protocol", 1),
    ]
    assert len(uphill(planted)) == 1
    assert cycles(planted) == [["af_tasks.app.cli", "af_tasks.core.protocol"]]


def test_report_counts(capsys):
    all_edges = edges()
    layers = {name: sum(1 for m in MODULES.values() if m[1] == i) for i, name in enumerate(LAYER_NAMES)}
    with capsys.disabled():
        print(
            f"\nlayers (modules): {layers}; import edges: {len(all_edges)}; "
            f"uphill: {len(uphill(all_edges))}; cycles: {len(cycles(all_edges))}"
        )
