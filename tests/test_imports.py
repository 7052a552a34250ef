"""The package's imports go one way (front ends -> settings/backends -> inference -> network):
no module imports, directly or through others, a module that imports it back. Function-level
(lazy) imports count too: a circle through them still ties the modules together."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dlgsa_vs"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import dlgsa_vs.x.y` -> the deepest module known
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph = {module_name(f): imported_modules(f, modules) for f in files}
    # a package's __init__ runs before its submodules: importing a.b imports a first, which is
    # not an edge of a.b's own (a package importing its submodules is the normal case)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "dlgsa_vs.runtime.settings" in graph["dlgsa_vs.runtime.backends"]
    assert "dlgsa_vs.runtime.inference" in graph["dlgsa_vs.runtime.backends"]
    assert "dlgsa_vs.cli.ray" in graph["dlgsa_vs.cli.video"]          # a function-level import
    assert "dlgsa_vs.arch.variants" in graph["dlgsa_vs.runtime.settings"]      # `from .arch.variants import`


def test_a_circle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_network_and_the_inference_core_know_no_front_end():
    graph = import_graph()
    front = ("dlgsa_vs.cli", "dlgsa_vs.video", "dlgsa_vs.vapoursynth", "dlgsa_vs.cluster", "dlgsa_vs.runtime.backends")
    for module in ("dlgsa_vs.runtime.inference", "dlgsa_vs.runtime.settings") + tuple(m for m in graph if m.startswith("dlgsa_vs.arch")):
        bad = [t for t in graph[module] if t.startswith(front)]
        assert not bad, f"{module} imports {bad}"
