"""dlgsa_vs/runtime/trt against the API of the torch-tensorrt it pins (2.14), without TensorRT.

`make` installs torch-tensorrt's source with ``pip install --no-deps`` (it cannot be imported
without TensorRT); these tests read it with ``ast``. They check that every torch_tensorrt
function dlgsa_vs/runtime/trt calls exists, that every keyword argument it passes is one that function
takes (not one its ``**kwargs`` would swallow: ``dynamo.compile`` silently ignores unknown
options, which is how fp16 engines once came out fp32), and that the options dlgsa_vs/runtime/trt
passes only to older versions (``engine.REMOVED_OPTIONS``) are really gone.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import trt_support as ts
from dlgsa_vs.runtime.trt import engine

TRT_DIR = Path(__file__).resolve().parents[1] / "dlgsa_vs" / "runtime" / "trt"
ROOTS = ("ttrt", "torch_tensorrt")  # the names dlgsa_vs/runtime/trt binds the torch_tensorrt module to


@pytest.fixture(scope="module")
def root() -> Path:
    return ts.require_source()


def _chain(node: ast.AST) -> str | None:
    """ttrt.dynamo.compile -> "torch_tensorrt.dynamo.compile"; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in ROOTS and parts:
        return ".".join(["torch_tensorrt", *reversed(parts)])
    return None


def _dict_keys(func: ast.FunctionDef) -> dict[str, set[str]]:
    """Per variable of ``func``: the string keys it is given as a dict (``x = dict(a=...)``,
    ``x = {"a": ...}``, ``x["a"] = ...``), and ``x = f(...)`` as ``{"<call f>"}``."""
    keys: dict[str, set[str]] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 or isinstance(node, ast.AnnAssign):
            target, value = (node.targets[0] if isinstance(node, ast.Assign) else node.target), node.value
            if isinstance(target, ast.Name):
                if isinstance(value, ast.Dict):
                    keys.setdefault(target.id, set()).update(
                        k.value for k in value.keys if isinstance(k, ast.Constant))
                elif isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict":
                    keys.setdefault(target.id, set()).update(k.arg for k in value.keywords if k.arg)
                elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                    keys.setdefault(target.id, set()).add(f"<call {value.func.id}>")
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) \
                    and isinstance(target.slice, ast.Constant):
                keys.setdefault(target.value.id, set()).add(target.slice.value)
    return keys


def torch_tensorrt_uses(paths) -> list[tuple[str, str, int, set[str]]]:
    """(file, torch_tensorrt name, line, keyword names) of every call into torch_tensorrt in
    ``paths``, ``**`` dicts followed to the keys they are built with (also through the
    module's own functions that return them); every other reference with no keywords."""
    uses = []
    for path in paths:
        tree = ast.parse(Path(path).read_text())
        funcs = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
        per_func = {name: _dict_keys(f) for name, f in funcs.items()}

        def returned(name: str, depth: int = 0) -> set[str]:
            f = funcs.get(name)
            if f is None or depth > 5:
                return {f"<unknown {name}>"}
            out = set()
            for r in ast.walk(f):
                if isinstance(r, ast.Return) and isinstance(r.value, ast.Name):
                    out |= expand(per_func[name].get(r.value.id, {f"<unknown {r.value.id}>"}), depth + 1)
            return out

        def expand(keys: set[str], depth: int = 0) -> set[str]:
            out = set()
            for k in keys:
                out |= returned(k[6:-1], depth) if k.startswith("<call ") else {k}
            return out

        def splat(expr: ast.AST, local: dict[str, set[str]]) -> set[str]:
            if isinstance(expr, ast.Name):
                return expand(local.get(expr.id, {f"<unknown {expr.id}>"}))
            if isinstance(expr, ast.Call):  # a filter such as _accepted(func, **options)
                out = {k.arg for k in expr.keywords if k.arg}
                for k in expr.keywords:
                    if k.arg is None:
                        out |= splat(k.value, local)
                if isinstance(expr.func, ast.Name) and expr.func.id in funcs and not out:
                    out = returned(expr.func.id)
                return out
            return {f"<unknown {ast.unparse(expr)}>"}

        for fname, f in funcs.items():
            for node in ast.walk(f):
                if isinstance(node, ast.Call) and _chain(node.func):
                    names = set()
                    for kw in node.keywords:
                        names |= {kw.arg} if kw.arg else splat(kw.value, per_func[fname])
                    uses.append((Path(path).name, _chain(node.func), node.lineno, names))
                elif isinstance(node, ast.Attribute) and _chain(node) and not any(
                        isinstance(p, ast.Attribute) and p.value is node for p in ast.walk(f)):
                    uses.append((Path(path).name, _chain(node), node.lineno, set()))
    return uses


def contract_problems(root: Path, paths, removed: dict[str, str]) -> list[str]:
    """What in ``paths`` does not match the installed torch-tensorrt: names it lacks, keyword
    arguments its functions do not take (unless listed in ``removed``: passed only to the
    versions that have them)."""
    problems = []
    for file, name, line, keywords in torch_tensorrt_uses(paths):
        node = ts.resolve(root, name)
        if node is None:
            problems.append(f"{file}:{line}: {name} does not exist in torch-tensorrt {ts.installed_version()}")
            continue
        if not keywords or isinstance(node, ast.Module):
            continue
        accepted = ts.signature(node).accepted
        for kw in sorted(keywords):
            if kw.startswith("<"):
                problems.append(f"{file}:{line}: cannot tell which options {name} gets ({kw})")
            elif kw not in accepted and kw not in removed:
                problems.append(f"{file}:{line}: {name} takes no {kw!r} in torch-tensorrt "
                                f"{ts.installed_version()}")
    return problems


def test_every_torch_tensorrt_call_matches_the_installed_api(root):
    paths = sorted(TRT_DIR.glob("*.py"))
    uses = torch_tensorrt_uses(paths)
    called = {name for _, name, _, kw in uses}
    # what the engine module is known to use: if this shrinks, the analysis lost track
    assert {"torch_tensorrt.dynamo.compile", "torch_tensorrt.Input", "torch_tensorrt.save",
            "torch_tensorrt.load"} <= called, called
    removed = getattr(engine, "REMOVED_OPTIONS", {})
    assert contract_problems(root, paths, removed) == []


def test_options_passed_only_to_older_versions_are_gone(root):
    # use_explicit_typing (2.6-2.12) and enabled_precisions: removed in 2.13 (pytorch/TensorRT#4195)
    compile_sig = ts.function_signature(root, "torch_tensorrt.dynamo.compile")
    assert engine.REMOVED_OPTIONS.keys() >= {"use_explicit_typing", "enabled_precisions"}
    for option in engine.REMOVED_OPTIONS:
        assert option not in compile_sig.accepted, f"{option} is back in torch-tensorrt {ts.installed_version()}"
        assert option.upper() not in ts.defaults_names(root)
    # and the network is strongly typed by itself now (what the export in the target dtype relies on)
    interpreter = (root / "dynamo" / "conversion" / "_TRTInterpreter.py").read_text()
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" in interpreter


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_compile_options_are_all_parameters_of_the_installed_compile(root, precision):
    named = ts.function_signature(root, "torch_tensorrt.dynamo.compile").named
    notes = []
    options = engine.compile_options(named, precision=precision, arg_inputs=[], device=torch.device("cuda", 0),
                                     workspace_gib=2, optimization_level=5, log=notes.append)
    assert set(options) <= named and notes == []
    assert {"arg_inputs", "device", "truncate_double", "workspace_size", "optimization_level"} <= set(options)
    assert not set(options) & set(engine.REMOVED_OPTIONS)


def test_compile_options_of_older_versions():
    # signatures as of torch-tensorrt 2.12 (use_explicit_typing, default True since 2.10) and 2.5
    common = {"arg_inputs", "device", "truncate_double", "workspace_size", "optimization_level"}
    v212 = engine.compile_options(common | {"use_explicit_typing", "enabled_precisions"}, precision="fp16",
                                  arg_inputs=[], device=torch.device("cuda", 0))
    assert v212["use_explicit_typing"] is True and "enabled_precisions" not in v212
    v25 = engine.compile_options(common | {"enabled_precisions"}, precision="bf16", arg_inputs=[],
                                 device=torch.device("cuda", 0))
    assert v25["enabled_precisions"] == {torch.bfloat16} and "use_explicit_typing" not in v25
    notes = []
    bare = engine.compile_options({"arg_inputs", "device"}, precision="fp16", arg_inputs=[],
                                  device=torch.device("cuda", 0), workspace_gib=1, log=notes.append)
    assert set(bare) == {"arg_inputs", "device"} and any("workspace_size" in n for n in notes)


def test_the_checker_finds_what_the_old_engine_passed(root, tmp_path):
    # engine.py as it was before these tests: probes for use_explicit_typing, falls back to
    # enabled_precisions, and hands both to compile through a filter; against 2.14 both are
    # options compile does not take (it would have dropped them and built fp32)
    old = tmp_path / "old_engine.py"
    old.write_text('''
def build_engine(ttrt, graph, dtype, dev, explicit_typing):
    options = dict(arg_inputs=_trt_inputs(ttrt, graph), device=dev, truncate_double=True)
    if explicit_typing:
        options["use_explicit_typing"] = True
    else:
        options["enabled_precisions"] = {dtype}
    compiled = ttrt.dynamo.compile(graph.program, **_accepted(ttrt.dynamo.compile, **options))
    save = dict(output_format="exported_program", arg_inputs=[])
    ttrt.save(compiled, "x.ep", **save)
    ttrt.Input(shape=(1, 3, 8, 8), dtype=dtype, no_such_option=1)
    ttrt.dynamo.no_such_function()
''')
    problems = contract_problems(root, [old], removed={})
    assert any("'enabled_precisions'" in p for p in problems), problems
    assert any("'use_explicit_typing'" in p for p in problems), problems
    assert any("Input takes no 'no_such_option'" in p for p in problems), problems
    assert any("no_such_function does not exist" in p for p in problems), problems
    assert not any("save" in p or "'device'" in p for p in problems), problems
