"""Layering of the package: no module uses another module's private (``_name``) names, and the
subpackages (``dlgsa_vs/video/``, ``dlgsa_vs/cluster/``, ...) import each other one way only.

Private names are what a module keeps free to change; another module that imports one (or
reads ``module._name``) ties the two together without saying so. The scan covers the package,
``scripts/`` and the top-level ``trt/`` tools. Folder level: a module of ``video/`` importing
``cluster/`` while a module of ``cluster/`` imports ``video/`` is a loop even when no single
module closes a circle (which ``test_imports`` would catch)."""
from __future__ import annotations

import ast
from pathlib import Path

from test_imports import PACKAGE, cycles, import_graph, module_name

ROOT = PACKAGE.parent
SCANNED = [*sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "scripts").glob("*.py")),
           *sorted((ROOT / "trt").glob("*.py"))]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def _own_module(path: Path) -> tuple[str | None, str | None]:
    """(module name, its package) for a file of the package; (None, None) for scripts."""
    if PACKAGE not in path.parents:
        return None, None
    name = module_name(path)
    return name, name if path.name == "__init__.py" else name.rpartition(".")[0]


def private_uses(path: Path, modules: set[str]) -> list[str]:
    """``from m import _x`` and ``m._x`` in ``path`` where ``m`` is another module of the package.

    A private submodule may be imported from its own package (``from . import _common`` in
    ``kernels/``), not from outside it."""
    name, package = _own_module(path)
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    bound: dict[str, str] = {}          # local name -> package module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    bound[a.asname or a.name.partition(".")[0]] = a.name if a.asname else a.name.partition(".")[0]
                if a.name.startswith("dlgsa_vs.") and any(_private(p) for p in a.name.split(".")[1:]):
                    found.append(f"{_where(path)}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if package is None:
                    continue
                anchor = package.split(".")
                base = ".".join(anchor[:len(anchor) - (node.level - 1)] + ([base] if base else []))
            if base != "dlgsa_vs" and not base.startswith("dlgsa_vs."):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in modules:
                    bound[a.asname or a.name] = sub
                    if _private(a.name) and base != package:
                        found.append(f"{_where(path)}:{node.lineno}: from {base} import {a.name}")
                elif _private(a.name) and base != name:
                    found.append(f"{_where(path)}:{node.lineno}: from {base} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = bound.get(node.value.id)
            if target is not None and target != name:
                found.append(f"{_where(path)}:{node.lineno}: {node.value.id}.{node.attr} ({target})")
    return found


def folder(module: str) -> str:
    """The unit of the folder-level graph: ``dlgsa_vs.video.output`` -> ``dlgsa_vs.video``;
    a top-level module (``dlgsa_vs.runtime.backends``) is its own unit."""
    return ".".join(module.split(".")[:2])


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        if source == "dlgsa_vs":        # the package's __init__ only re-exports, lazily
            continue
        edges = out.setdefault(folder(source), set())
        edges.update(folder(t) for t in targets if folder(t) not in (folder(source), "dlgsa_vs"))
    return out


def test_the_scan_finds_private_uses(tmp_path):
    modules = {"dlgsa_vs", "dlgsa_vs.video", "dlgsa_vs.video.output", "dlgsa_vs.arch.kernels", "dlgsa_vs.arch.kernels._common"}
    script = tmp_path / "script.py"
    script.write_text("from dlgsa_vs.video.output import _clean_tags, open_output\n"
                      "from dlgsa_vs.video import output as o\n"
                      "from dlgsa_vs.arch.kernels import _common\n"
                      "from dlgsa_vs import __version__\n"
                      "o._copy_streams(1, 2, 3)\n"
                      "o.open_output()\n")
    found = [f.partition(": ")[2] for f in private_uses(script, modules)]
    assert found == ["from dlgsa_vs.video.output import _clean_tags", "from dlgsa_vs.arch.kernels import _common",
                     "o._copy_streams (dlgsa_vs.video.output)"]


def test_a_folder_loop_is_found():
    graph = {"dlgsa_vs.video.resume": {"dlgsa_vs.cluster.run"}, "dlgsa_vs.cluster.plan": {"dlgsa_vs.video.probe"},
             "dlgsa_vs.video.probe": set(), "dlgsa_vs.cluster.run": set(), "dlgsa_vs": {"dlgsa_vs.video"}}
    assert cycles(folder_graph(graph)) == [["dlgsa_vs.cluster", "dlgsa_vs.video"]]


def test_no_module_uses_another_modules_private_names():
    modules = {module_name(f) for f in PACKAGE.rglob("*.py")}
    found = sorted({line for path in SCANNED for line in private_uses(path, modules)})
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_no_import_loop_between_subpackages():
    graph = import_graph()
    loops = cycles(folder_graph(graph))
    edges = [f"  {m} -> {t}" for loop in loops for m, targets in sorted(graph.items()) for t in sorted(targets)
             if folder(m) in loop and folder(t) in loop and folder(m) != folder(t) and m != "dlgsa_vs"]
    assert not loops, f"folder-level import loops {loops}, through:\n" + "\n".join(edges)


# The layers, lowest first: a module imports its own layer and the ones below, never one above.
# network: DLGSANet with its kernels (arch/), and the image helpers that import nothing of ours;
# runtime: settings, run plan, weights, backends, inference, tiling, CPU engines, export, trt;
# media and training: the video pipeline, segments, the cluster, training and evaluation;
# front ends: the command lines, the VapourSynth filter and the integrations.
LAYERS = {
    "network": {"arch", "image", "_version"},
    "runtime": {"runtime"},
    "media": {"video", "segments", "cluster", "train"},
    "front ends": {"cli", "vapoursynth", "integrations"},
}
ORDER = list(LAYERS)


def layer(unit: str) -> str | None:
    """The layer of a folder-level unit (``dlgsa_vs.video`` -> "media")."""
    name = unit.split(".")[1] if "." in unit else ""
    return next((k for k, names in LAYERS.items() if name in names), None)


def test_every_unit_has_a_layer():
    """The package's top level holds folders by role only (and __init__ / _version)."""
    units = {folder(m) for m in import_graph() if m != "dlgsa_vs"}
    assert not sorted(u for u in units if layer(u) is None), "put the new module in a folder of LAYERS"


def test_imports_go_down_the_layers_only():
    """network below runtime below media below front ends: the network never knows how it is
    loaded or run, the runtime never knows who calls it."""
    upward = [f"{source} ({layer(source)}) -> {target} ({layer(target)})"
              for source, targets in sorted(folder_graph(import_graph()).items()) for target in sorted(targets)
              if layer(source) and layer(target) and ORDER.index(layer(target)) > ORDER.index(layer(source))]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_front_ends_open_runners_one_way():
    """Runners are made in backends.open_runner only: no front end, pipeline or worker builds one."""
    makers = ("create_backend_upscaler", "StreamRunner(")
    found = [f"{_where(p)}: {m}" for p in PACKAGE.rglob("*.py") if layer(folder(module_name(p))) in ("media", "front ends")
             for m in makers if m in p.read_text()]
    assert not found, "runners built outside backends.open_runner:\n" + "\n".join(found)
