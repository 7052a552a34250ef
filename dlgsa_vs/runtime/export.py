"""Graph export of the network: torch.export programs (for torch-tensorrt) and ONNX files.

Static shapes bake everything in, TLC windows included. Dynamic height/width: the TLC window
placement depends on the frame size in ways the symbolic shape solver cannot prove safe, so
the window indices become two extra graph inputs (``DLGSANet.tlc_windows(h, w)`` computes
them); the graph itself then holds no size-dependent logic. With TLC off the graph takes
the image alone.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.fx.experimental._config as fx_config

from ..arch import DLGSANet


@dataclass(frozen=True)
class ShapeRange:
    """LR height/width range of a dynamic export; ``opt`` is what TensorRT tunes for."""

    min_hw: tuple[int, int] = (16, 16)
    opt_hw: tuple[int, int] = (540, 960)
    max_hw: tuple[int, int] = (1088, 1920)

    def __post_init__(self):
        for i in range(2):
            if not self.min_hw[i] <= self.opt_hw[i] <= self.max_hw[i]:
                raise ValueError(f"shape range needs min <= opt <= max, got {self}")
        if min(self.min_hw) < 2:
            raise ValueError(f"the smallest supported LR size is 2 pixels, got {self.min_hw}")


def example_inputs(model: DLGSANet, batch: int, height: int, width: int, dynamic: bool,
                   dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple:
    """What the exported graph is called with: (x,) or (x, windows)."""
    x = torch.rand(batch, 3, height, width, dtype=dtype, device=device)
    if dynamic and model.uses_tlc():
        return x, model.tlc_windows(height, width, torch.device(device))
    return (x,)


def dynamic_shapes_spec(model: DLGSANet, shapes: ShapeRange) -> dict:
    """The ``torch.export`` dynamic-shape spec of a frame-size range: height and width of the
    input, and with TLC on the window counts of the two window-index inputs."""
    h = torch.export.Dim("height", min=shapes.min_hw[0], max=shapes.max_hw[0])
    w = torch.export.Dim("width", min=shapes.min_hw[1], max=shapes.max_hw[1])
    spec = {"x": {2: h, 3: w}}
    if model.uses_tlc():
        k = model.tlc_kernel
        # at least 2 windows per axis (tlc.window_starts), at most one per k/2 pixels
        nh = torch.export.Dim("windows_h", min=2, max=max(3, 2 * shapes.max_hw[0] // k + 2))
        nw = torch.export.Dim("windows_w", min=2, max=max(3, 2 * shapes.max_hw[1] // k + 2))
        spec["windows"] = ({0: nh}, {0: nw})
    return spec


def size_oblivious():
    """A context in which tracing treats sizes as never 0/1, so a width of, say, 16 px does not
    specialise the graph (the window count is kept >= 2 for the same reason)."""
    return fx_config.patch(backed_size_oblivious=True)


def export_program(model: DLGSANet, height: int, width: int, batch: int = 1,
                   shapes: ShapeRange | None = None, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> torch.export.ExportedProgram:
    """``torch.export`` of the network in eval mode: static (``shapes`` None) or dynamic H/W."""
    model = model.eval().to(device, dtype)
    if shapes is not None:
        height, width = shapes.opt_hw
    args = example_inputs(model, batch, height, width, shapes is not None, dtype, device)
    with torch.no_grad(), (size_oblivious() if shapes is not None else contextlib.nullcontext()):
        return torch.export.export(model, args,
                                   dynamic_shapes=dynamic_shapes_spec(model, shapes) if shapes else None)


def export_onnx(model: DLGSANet, path: str | os.PathLike, height: int, width: int,
                batch: int = 1, shapes: ShapeRange | None = None, fp16: bool = False,
                opset: int = 18, four_d: bool = False) -> Path:
    """Write an ONNX file (input ``input``, output ``output``; plus ``windows_h``/``windows_w``
    for a dynamic export with TLC). Written to a temporary name, renamed when complete.

    ``four_d``: the network's static <= 4-D form (``arch.export_form.FixedSizeForm``: no 5-D
    tensor, no scatter, TLC windows as constants), the graph ncnn holds, for runtimes that
    take only that (vs-mlrt's NCNN_VK, OV_GPU, ORT_DML); one size, no ``shapes``."""
    path = Path(path)
    dtype = torch.float16 if fp16 else torch.float32
    if four_d:
        if shapes is not None:
            raise ValueError("the <= 4-D form is for one static size: no shapes")
        from ..arch.export_form import FixedSizeForm

        model = FixedSizeForm(model.eval(), height, width)
    program = export_program(model, height, width, batch, shapes, dtype)
    names = ["input"] + (["windows_h", "windows_w"] if shapes is not None and model.uses_tlc() else [])
    tmp = path.with_name(f".{path.name}.part")
    try:
        with (size_oblivious() if shapes is not None else contextlib.nullcontext()):
            torch.onnx.export(program, f=str(tmp), input_names=names, output_names=["output"],
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
