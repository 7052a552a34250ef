"""The network to an ncnn graph (.param/.bin) with pnnx: the only module that imports pnnx.

``arch.export_form.FixedSizeForm`` (the network for one input size, in <= 4-D tensors) is traced
with ``torch.jit.trace`` and handed to the pnnx converter, which writes the ncnn files. pnnx
runs in a temporary folder (it writes several side files); only the two ncnn files are kept.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

from ...arch.dlgsanet import DLGSANet
from ...arch.export_form import FixedSizeForm

INPUT_NAME, OUTPUT_NAME = "in0", "out0"  # pnnx's names for the graph's one input and output


class ConversionError(RuntimeError):
    """pnnx could not convert the network (the message ends with its last output lines)."""


def pnnx_version() -> str:
    """The installed pnnx's version ("none" without it), read without importing it."""
    from importlib import metadata

    try:
        return metadata.version("pnnx")
    except metadata.PackageNotFoundError:
        return "none"


def convert(model: DLGSANet, height: int, width: int, precision: str, param_path: str | os.PathLike,
            bin_path: str | os.PathLike, dynamic_conv: str = "shift") -> None:
    """Write the ncnn graph of ``model`` for (1, 3, height, width) inputs: weights stored in
    fp16 for ``precision`` "fp16", else fp32."""
    try:
        import pnnx
    except ImportError:
        raise ConversionError('converting the network for ncnn needs pnnx: pip install "dlgsa-vs[vulkan]"') from None
    net = copy.deepcopy(model).float().cpu().eval().requires_grad_(False)
    form = FixedSizeForm(net, height, width, dynamic_conv=dynamic_conv)
    x = torch.rand(1, 3, height, width)
    with tempfile.TemporaryDirectory(prefix="dlgsa-pnnx-") as tmp:
        traced = Path(tmp) / "net.pt"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on sizes turned constants: intended
            torch.jit.trace(form, (x,), check_trace=False).save(str(traced))
        out = {name: str(Path(tmp) / f"net.{name}") for name in ("ncnn.param", "ncnn.bin", "pnnx.param",
                                                                  "pnnx.bin", "pnnx.py", "ncnn.py")}
        command = [pnnx.EXEC_PATH, str(traced), f"inputshape=[1,3,{height},{width}]f32",
                   f"fp16={1 if precision == 'fp16' else 0}", f"ncnnparam={out['ncnn.param']}",
                   f"ncnnbin={out['ncnn.bin']}", f"pnnxparam={out['pnnx.param']}", f"pnnxbin={out['pnnx.bin']}",
                   f"pnnxpy={out['pnnx.py']}", f"ncnnpy={out['ncnn.py']}"]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip() and not ln.startswith("ignore ")]
        if done.returncode != 0 or not Path(out["ncnn.param"]).is_file():
            raise ConversionError(f"pnnx failed (exit status {done.returncode}): " + " | ".join(lines[-5:]))
        param = Path(out["ncnn.param"]).read_text()
        unsupported = [ln.split()[0] for ln in param.splitlines()[2:] if ln.split() and "." in ln.split()[0]]
        if unsupported:  # torch ops pnnx could not map to ncnn layers stay as "torch.x"/"Tensor.x"
            raise ConversionError(f"pnnx left operations ncnn does not have: {', '.join(sorted(set(unsupported)))}")
        shutil.move(out["ncnn.param"], param_path)  # (another file system: copied)
        shutil.move(out["ncnn.bin"], bin_path)
