"""Reading the installed torch-tensorrt's Python source without importing it.

``import torch_tensorrt`` fails where TensorRT is missing (it loads libnvinfer), but `make`
installs the package's source anyway (``pip install --no-deps``), so the tests can check what
dlgsa_vs/runtime/trt calls against the real API of that version: function signatures (``ast``), and
which aten ops have converters that take dynamic shapes.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "torch_tensorrt"
PINNED = "2.14."  # setup.cfg's trt extra and the Makefile pin torch-tensorrt==2.14.*


def package_root() -> Path | None:
    """The installed torch_tensorrt folder, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version() -> str | None:
    try:
        return importlib.metadata.version("torch-tensorrt")
    except importlib.metadata.PackageNotFoundError:
        return None


def require_source() -> Path:
    """The package folder, or skip: the contract tests need the source of the pinned version."""
    root = package_root()
    if root is None:
        pytest.skip("torch-tensorrt's source is not installed: `make` installs it with "
                    "pip install --no-deps 'torch-tensorrt==2.14.*' (no TensorRT needed)")
    version = installed_version() or "?"
    if not version.startswith(PINNED):
        pytest.skip(f"torch-tensorrt {version} is installed; these checks are for the pinned {PINNED}*")
    return root


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_file(root: Path, dotted: str) -> Path | None:
    """torch_tensorrt.dynamo -> .../torch_tensorrt/dynamo/__init__.py (or a .py module)."""
    parts = dotted.split(".")[1:]
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _top_level(body: list[ast.stmt]):
    """Statements of a module body, looking into if/try blocks (guarded imports)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _top_level(stmt.body)
            yield from _top_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_level(stmt.body)
            for h in stmt.handlers:
                yield from _top_level(h.body)
            yield from _top_level(stmt.orelse)


def _absolute(module: str, level: int, name: str | None, is_package: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def resolve(root: Path, dotted: str, _seen: frozenset = frozenset()):
    """The ast definition (FunctionDef / ClassDef) that ``torch_tensorrt.a.b`` names, following
    the package's re-exports (``from ._compiler import compile``); a module's ast.Module; None."""
    if dotted in _seen:
        return None
    seen = _seen | {dotted}
    if _module_file(root, dotted) is not None:
        return parse(_module_file(root, dotted))
    module, _, name = dotted.rpartition(".")
    path = _module_file(root, module)
    if path is None:
        parent = resolve(root, module, seen)  # an attribute of a class, say
        if isinstance(parent, ast.ClassDef):
            return next((n for n in parent.body if getattr(n, "name", None) == name), None)
        return None
    tree = parse(path)
    is_package = path.name == "__init__.py"
    for stmt in _top_level(tree.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            return stmt
    for stmt in _top_level(tree.body):
        if isinstance(stmt, ast.ImportFrom):
            source = _absolute(module, stmt.level, stmt.module, is_package)
            for alias in stmt.names:
                if alias.name == "*":
                    found = resolve(root, f"{source}.{name}", seen)
                    if found is not None:
                        return found
                elif (alias.asname or alias.name) == name:
                    return resolve(root, f"{source}.{alias.name}", seen)
    return None


@dataclass(frozen=True)
class Signature:
    """What a function takes by keyword: its named parameters, and for one with ``**kwargs``
    the keys its body reads from that dict (``kwargs["shape"]``, ``"dtype" in kwargs``)."""

    named: frozenset[str]
    var_keyword: str | None
    read_from_kwargs: frozenset[str]

    @property
    def accepted(self) -> frozenset[str]:
        return self.named | self.read_from_kwargs


def signature(node) -> Signature:
    """The keyword interface of a FunctionDef, or of a ClassDef's ``__init__``."""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            raise LookupError(f"class {node.name} has no __init__ in its own body")
        node = init
    a = node.args
    named = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs} - {"self", "cls"}
    kw = a.kwarg.arg if a.kwarg else None
    reads = set()
    if kw:
        for n in ast.walk(node):
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == kw \
                    and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
                reads.add(n.slice.value)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("get", "pop") \
                    and isinstance(n.func.value, ast.Name) and n.func.value.id == kw and n.args \
                    and isinstance(n.args[0], ast.Constant):
                reads.add(n.args[0].value)
            elif isinstance(n, ast.Compare) and len(n.ops) == 1 and isinstance(n.ops[0], ast.In) \
                    and isinstance(n.left, ast.Constant) and isinstance(n.comparators[0], ast.Name) \
                    and n.comparators[0].id == kw:
                reads.add(n.left.value)
    return Signature(frozenset(named), kw, frozenset(reads))


def function_signature(root: Path, dotted: str) -> Signature:
    node = resolve(root, dotted)
    if node is None or isinstance(node, ast.Module):
        raise LookupError(f"{dotted} is not a function or class in the installed torch-tensorrt")
    return signature(node)


def defaults_names(root: Path) -> frozenset[str]:
    """The names torch_tensorrt/dynamo/_defaults.py defines (USE_EXPLICIT_TYPING, ...)."""
    tree = parse(root / "dynamo" / "_defaults.py")
    return frozenset(t.id for s in tree.body if isinstance(s, ast.Assign) for t in s.targets
                     if isinstance(t, ast.Name))


def converter_registrations(root: Path) -> dict[str, list[bool]]:
    """Every ``@dynamo_tensorrt_converter(target, ...)`` under dynamo/conversion: the target as
    written without ``torch.ops.`` ("aten.index_copy.default", "operator.mod", "torch.sym_min")
    -> the ``supports_dynamic_shapes`` of each registration (default False)."""
    found: dict[str, list[bool]] = {}
    for path in sorted((root / "dynamo" / "conversion").rglob("*.py")):
        for node in ast.walk(parse(path)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", None))
                        == "dynamo_tensorrt_converter" and deco.args):
                    continue
                target = ast.unparse(deco.args[0]).removeprefix("torch.ops.")
                dynamic = False
                for kw in deco.keywords:
                    if kw.arg == "supports_dynamic_shapes" and isinstance(kw.value, ast.Constant):
                        dynamic = bool(kw.value.value)
                found.setdefault(target, []).append(dynamic)
    return found


def target_names(target) -> list[str]:
    """How a graph node's target may be written in a registration: an aten overload and its
    packet ("aten.index_put.default", "aten.index_put"), or a Python function ("operator.mod")."""
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return [str(target), str(target).rsplit(".", 1)[0]]
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    if module in ("_operator", "operator"):
        return [f"operator.{name}"]
    if module.startswith("torch"):
        return [f"torch.{name}"]
    return [f"{module}.{name}"]
