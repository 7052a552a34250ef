"""The graph TensorRT compiles: a ``torch.export`` program with flat tensor inputs.

``dlgsa_vs.runtime.export.export_program`` gives a static program (TLC windows baked in) that takes
the image alone, or a dynamic one whose TLC window indices come in as a pair ``(x,
(windows_h, windows_w))``. TensorRT's inputs are a flat list of tensors, each with its own
min/opt/max shape, so for the dynamic TLC case the network is wrapped to take
``(x, windows_h, windows_w)``; everything else is exactly ``export_program``'s graph. The
input ranges TensorRT needs (``InputSpec``) are computed here too, window counts included.

Nothing here needs TensorRT: ``tests/test_trt_export.py`` checks these programs against
eager PyTorch on the CPU for every published variant and scale.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ...arch import DLGSANet
from ...arch.dlgsanet import SparseGlobalAttention
from ...arch.tlc import window_starts
from ..export import ShapeRange, dynamic_shapes_spec, export_program, size_oblivious
from ..settings import check_at_least


@dataclass(frozen=True)
class InputSpec:
    """One graph input as TensorRT sees it (min = opt = max for static dimensions)."""

    name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def static(self) -> bool:
        return self.min_shape == self.opt_shape == self.max_shape


@dataclass(frozen=True)
class TrtProgram:
    """What ``torch_tensorrt.dynamo.compile`` gets, and how to call the result."""

    program: torch.export.ExportedProgram
    inputs: tuple[InputSpec, ...]
    example_inputs: tuple[torch.Tensor, ...]
    dynamic_shapes: tuple | None  # positional torch.export spec, None when static

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)


class FlatWindows(nn.Module):
    """DLGSANet taking the TLC window indices as two separate tensors."""

    def __init__(self, net: DLGSANet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, windows_h: torch.Tensor, windows_w: torch.Tensor) -> torch.Tensor:
        return self.net(x, (windows_h, windows_w))


def window_count_range(low: int, high: int, opt: int, k: int) -> tuple[int, int, int]:
    """(min, opt, max) number of TLC windows along an axis whose length is in [low, high]."""
    def count(length: int) -> int:
        return int(window_starts(max(length, k), k, torch.device("cpu")).shape[0])

    counts = [count(n) for n in range(low, high + 1)]
    return min(counts), count(opt), max(counts)


def graph_inputs(model: DLGSANet, x: torch.Tensor, dynamic: bool) -> tuple[torch.Tensor, ...]:
    """The arguments of a ``trt_program`` graph for a batch of frames ``x``."""
    if dynamic and tlc_on(model):
        wh, ww = model.tlc_windows(x.shape[-2], x.shape[-1], x.device)
        return x, wh, ww
    return (x,)


def tlc_on(model: DLGSANet) -> bool:
    """Whether the model's attention runs in TLC windows at inference (eval mode)."""
    return any(m.tlc for m in model.modules() if isinstance(m, SparseGlobalAttention))


def trt_program(model: DLGSANet, *, batch: int = 1, height: int | None = None, width: int | None = None,
                shapes: ShapeRange | None = None, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> TrtProgram:
    """Export ``model`` for TensorRT: static ``height`` x ``width``, or dynamic over ``shapes``.

    The caller's model is left as it is (the export works on a copy moved to ``device`` and
    ``dtype``).
    """
    if (shapes is None) == (height is None or width is None):
        raise ValueError("trt_program: give either height and width (static) or shapes (dynamic), not both")
    check_at_least("batch", batch, 1)
    net = copy.deepcopy(model).eval().to(device, dtype)
    if shapes is None:
        if height < 2 or width < 2:
            raise ValueError(f"the smallest supported LR size is 2x2 pixels, got {width}x{height}")
        program = export_program(net, height, width, batch, None, dtype, device)
        spec = InputSpec("input", *(3 * ((batch, 3, height, width),)), dtype)
        x = torch.rand(batch, 3, height, width, dtype=dtype, device=device)
        return TrtProgram(program, (spec,), (x,), None)

    (h0, w0), (h1, w1), (h2, w2) = shapes.min_hw, shapes.opt_hw, shapes.max_hw
    x_spec = InputSpec("input", (batch, 3, h0, w0), (batch, 3, h1, w1), (batch, 3, h2, w2), dtype)
    if not tlc_on(net):
        program = export_program(net, 0, 0, batch, shapes, dtype, device)
        x = torch.rand(batch, 3, h1, w1, dtype=dtype, device=device)
        return TrtProgram(program, (x_spec,), (x,), (dynamic_shapes_spec(net, shapes)["x"],))

    k = net.tlc_kernel
    nh, nw = window_count_range(h0, h2, h1, k), window_count_range(w0, w2, w1, k)
    specs = (x_spec,
             InputSpec("windows_h", (nh[0], k), (nh[1], k), (nh[2], k), torch.int64),
             InputSpec("windows_w", (nw[0], k), (nw[1], k), (nw[2], k), torch.int64))
    spec = dynamic_shapes_spec(net, shapes)
    dynamic_shapes = (spec["x"], spec["windows"][0], spec["windows"][1])
    x = torch.rand(batch, 3, h1, w1, dtype=dtype, device=device)
    args = graph_inputs(net, x, dynamic=True)
    with torch.no_grad(), size_oblivious():
        program = torch.export.export(FlatWindows(net), args, dynamic_shapes=dynamic_shapes)
    return TrtProgram(program, specs, args, dynamic_shapes)
