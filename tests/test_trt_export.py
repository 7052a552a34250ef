"""The programs torch-tensorrt compiles (dlgsa_vs.runtime.trt.program), checked against eager PyTorch
on the CPU for every published variant and scale, static and dynamic.

Tracing a published network is slow on 2 cores (the dynamic convolution is 49 shifted
products per block): tiny or light ~18 s static and ~45 s dynamic, full ~40 s and ~90 s;
all 18 cases take ~13 minutes. The default run therefore exports tiny and light once each way
(~2.5 minutes; the scale only changes the last convolution and the TLC window size); every
other case, full included, runs with DLGSA_SLOW_TESTS=1.
"""
import os

import pytest
import torch

from dlgsa_vs.arch import DLGSANet, build_model
from dlgsa_vs.runtime.export import ShapeRange
from dlgsa_vs.runtime.trt.program import FlatWindows, TrtProgram, graph_inputs, trt_program, window_count_range
from conftest import randomize_, small_config

SIZE = (24, 30)
RANGE = ShapeRange((16, 16), SIZE, (64, 80))
OTHER_SIZE = (61, 17)  # a second size inside RANGE: x4's 48-pixel TLC windows overlap along H

# (variant, scale, mode) run by default
DEFAULT = {("tiny", 2, "static"), ("tiny", 4, "dynamic"), ("light", 4, "static"), ("light", 3, "dynamic")}
SLOW = pytest.mark.skipif(os.environ.get("DLGSA_SLOW_TESTS") != "1",
                          reason="slow (a published network traced on the CPU); set DLGSA_SLOW_TESTS=1 to run")


def run_program(program: TrtProgram | torch.export.ExportedProgram, model, x: torch.Tensor,
                dynamic: bool) -> torch.Tensor:
    """Run an exported program (not a TensorRT engine) on ``x``."""
    ep = program.program if isinstance(program, TrtProgram) else program
    with torch.no_grad():
        return ep.module()(*graph_inputs(model, x, dynamic))


def cases() -> list:
    params = []
    for variant in ("tiny", "light", "full"):
        for scale in (2, 3, 4):
            for mode in ("static", "dynamic"):
                marks = () if (variant, scale, mode) in DEFAULT else (SLOW,)
                params.append(pytest.param(variant, scale, mode, marks=marks, id=f"{variant}-x{scale}-{mode}"))
    return params


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    # randomised deep nets reach large values: compare relative to them (as tests/test_export.py)
    return ((out - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("variant,scale,mode", cases())
def test_program_matches_eager(variant, scale, mode):
    torch.manual_seed(scale)
    model = randomize_(build_model(variant, scale)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    if mode == "static":
        graph = trt_program(model, height=SIZE[0], width=SIZE[1])
        sizes = [SIZE]
        assert graph.input_names == ("input",) and graph.dynamic_shapes is None
    else:
        graph = trt_program(model, shapes=RANGE)
        sizes = [SIZE, OTHER_SIZE]
        assert graph.input_names == ("input", "windows_h", "windows_w")
        assert isinstance(graph.program.module(), torch.nn.Module)
    assert graph.inputs[0].min_shape == (1, 3, *(SIZE if mode == "static" else RANGE.min_hw))
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = model(x)
        out = run_program(graph, model, x, dynamic=mode == "dynamic")
        assert out.shape == (1, 3, h * scale, w * scale)
        assert relative_error(out, ref) <= 1e-5, (variant, scale, mode, h, w)
    # the caller's model is not touched (the export works on a copy)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32


def test_dynamic_program_without_tlc_takes_the_image_alone():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_flag=False))).eval()
    graph = trt_program(model, shapes=RANGE)
    assert graph.input_names == ("input",) and len(graph.dynamic_shapes) == 1
    x = torch.rand(1, 3, *OTHER_SIZE)
    with torch.no_grad():
        ref = model(x)
    assert relative_error(run_program(graph, model, x, dynamic=True), ref) <= 1e-5


def test_window_count_ranges_cover_every_size():
    # the TensorRT profile of windows_h/_w must hold the count of every frame size in range
    k = 48
    lo, opt, hi = window_count_range(16, 1088, 540, k)
    from dlgsa_vs.arch.tlc import window_starts

    counts = {int(window_starts(max(n, k), k, torch.device("cpu")).shape[0]) for n in range(16, 1089)}
    assert (lo, hi) == (min(counts), max(counts))
    assert opt == int(window_starts(540, k, torch.device("cpu")).shape[0])
    assert lo >= 2  # the exported graphs keep at least two windows per axis


def test_batch_and_half_precision_inputs_are_described():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config())).eval()
    graph = trt_program(model, batch=3, shapes=RANGE, dtype=torch.float16)
    x, wh, ww = graph.inputs
    assert (x.min_shape, x.opt_shape, x.max_shape) == ((3, 3, 16, 16), (3, 3, 24, 30), (3, 3, 64, 80))
    assert x.dtype == torch.float16 and wh.dtype == torch.int64 and ww.dtype == torch.int64
    assert wh.min_shape[1] == model.tlc_kernel and not x.static
    assert graph.example_inputs[0].dtype == torch.float16
    assert next(model.parameters()).dtype == torch.float32  # the copy was cast, not the model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("h,w,k", [(37, 50, 16), (96, 96, 96), (200, 131, 48), (16, 16, 16), (61, 17, 48)])
def test_exported_window_sum_equals_the_eager_scatter_add(h, w, k, dtype):
    # exported graphs sum the overlapping TLC windows without repeated writes (tlc.from_windows)
    from dlgsa_vs.arch.tlc import from_windows, tlc_windows

    wh, ww = tlc_windows(h, w, k, torch.device("cpu"))
    windows = torch.randn(2 * wh.shape[0] * ww.shape[0], 5, k, k).to(dtype)
    hh, ww_ = max(h, k), max(w, k)
    eager = from_windows(windows, wh, ww, hh, ww_)
    assert torch.equal(from_windows(windows, wh, ww, hh, ww_, unique_writes=True), eager)
    assert eager.dtype == dtype and eager.shape == (2, 5, hh, ww_)


def test_flat_wrapper_forwards_the_windows():
    torch.manual_seed(0)
    model = randomize_(build_model("tiny", 3)).eval()
    x = torch.rand(2, 3, *OTHER_SIZE)
    with torch.no_grad():
        assert torch.equal(FlatWindows(model)(x, *model.tlc_windows(*OTHER_SIZE)), model(x))


def test_bad_arguments_are_refused():
    model = build_model("tiny", 2)
    with pytest.raises(ValueError, match="either height and width"):
        trt_program(model, height=24, width=30, shapes=RANGE)
    with pytest.raises(ValueError, match="either height and width"):
        trt_program(model)
    with pytest.raises(ValueError, match="batch"):
        trt_program(model, height=24, width=30, batch=0)


# --- a dynamic TLC graph converts to TensorRT in one piece (no PyTorch between segments) ---

@pytest.fixture(scope="module")
def dynamic_tlc_targets():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_kernel=16))).eval()
    graph = trt_program(model, shapes=ShapeRange((16, 16), (24, 30), (64, 80)))
    return {n.target for n in graph.program.graph.nodes if n.op == "call_function"}


def test_dynamic_tlc_graph_has_no_index_copy_and_no_sym_max(dynamic_tlc_targets):
    # index_copy's converters are static-shape only and sym_max has none (torch-tensorrt 2.14):
    # either one left the TLC sums and what depends on them to PyTorch in a dynamic engine
    import trt_support as ts

    names = {name for t in dynamic_tlc_targets for name in ts.target_names(t)}
    assert "aten.index_copy.default" not in names and "torch.sym_max" not in names
    assert "aten.index_put.default" in names  # the overlap-add's scatter (without accumulation)


def test_dynamic_tlc_graph_ops_have_dynamic_shape_converters(dynamic_tlc_targets):
    # against the installed torch-tensorrt's registrations (read from its source, not imported):
    # an op with converters needs one that takes dynamic shapes; ops without converters are ones
    # torch-tensorrt decomposes first, except Python-level size arithmetic, which it cannot
    import trt_support as ts

    registrations = ts.converter_registrations(ts.require_source())
    problems = []
    for target in dynamic_tlc_targets:
        found = [dynamic for name in ts.target_names(target) for dynamic in registrations.get(name, [])]
        size_arithmetic = not isinstance(target, torch._ops.OpOverload)
        if (found or size_arithmetic) and not any(found):
            problems.append(f"{ts.target_names(target)[0]}: {'static-shape converters only' if found else 'no converter'}")
    assert sorted(problems) == []
