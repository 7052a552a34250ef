"""Where the network runs: the backends, the automatic choice, and the runner for each.

* ``trt``: a TensorRT engine of the network (torch-tensorrt), built once per settings and
  kept in the engine cache (``dlgsa_vs.trt``);
* ``cuda``: PyTorch on an NVIDIA GPU in fp16, bf16 or fp32, optionally ``torch.compile``d
  (and with CUDA graphs);
* ``cpu``: PyTorch on the CPU in fp32. Always available.

``auto`` takes the first of trt, cuda, cpu that works here and says which one and why.
Asking for one by name where it cannot run is a ``BackendError`` that names what is missing.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from .inference import Upscaler
from .weights import load_model

BACKENDS = ("auto", "trt", "cuda", "cpu")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class BackendError(ValueError):
    """A backend that cannot run here, or settings it does not take."""


@dataclass(frozen=True)
class Backend:
    name: str  # "trt", "cuda" or "cpu"
    device: torch.device
    reason: str  # why this one: for the log line of an automatic choice


def cuda_problem() -> str | None:
    """None where PyTorch can use a CUDA GPU, else why not (one phrase)."""
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides the GPU)"
    return None


def trt_problem() -> str | None:
    """None where TensorRT engines can be built and run, else why not."""
    try:
        from .trt.engine import trt_available
    except Exception as exc:  # a broken installation; trt_available() itself never raises
        return f"dlgsa_vs.trt cannot be imported ({exc})"
    ok, why = trt_available()
    return None if ok else why


def select_backend(requested: str | None = "auto", device_index: int = 0) -> Backend:
    """Resolve a backend name (``auto`` included) to a usable backend, or raise ``BackendError``."""
    name = (requested or "auto").lower()
    if name not in BACKENDS:
        raise BackendError(f"backend {requested!r} is unknown: use one of {', '.join(BACKENDS)}")
    cpu = torch.device("cpu")
    if name == "cpu":
        return Backend("cpu", cpu, "asked for")
    problem = cuda_problem()
    if problem is not None:
        if name == "auto":
            return Backend("cpu", cpu, f"no CUDA GPU: {problem}")
        raise BackendError(f"backend {name} needs an NVIDIA GPU, but {problem}: use backend cpu")
    count = torch.cuda.device_count()
    if not 0 <= device_index < count:
        raise BackendError(f"device index {device_index} does not exist: {count} CUDA device(s) are "
                           f"visible, use 0..{count - 1}")
    gpu = torch.device("cuda", device_index)
    gpu_name = torch.cuda.get_device_name(gpu)
    if name == "cuda":
        return Backend("cuda", gpu, "asked for")
    problem = trt_problem()
    if name == "trt":
        if problem is not None:
            raise BackendError(f"backend trt needs TensorRT, but {problem}: use backend cuda "
                               f"(PyTorch on the GPU) or install the trt extra")
        return Backend("trt", gpu, "asked for")
    if problem is None:
        return Backend("trt", gpu, f"TensorRT on {gpu_name}")
    return Backend("cuda", gpu, f"PyTorch on {gpu_name}; TensorRT not used: {problem}")


def resolve_precision(backend: Backend, precision: str | None) -> torch.dtype:
    """The compute dtype: fp32 on the CPU; on a GPU the given one (default fp16)."""
    if precision is not None and precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r} is unknown: use fp16, bf16 or fp32")
    if backend.name == "cpu":
        if precision not in (None, "fp32"):
            raise BackendError(f"precision {precision} needs a GPU backend: the CPU computes in fp32")
        return torch.float32
    dtype = PRECISIONS[precision or "fp16"]
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise BackendError(f"precision bf16 is not supported by {torch.cuda.get_device_name(backend.device)}: "
                           f"use fp16 or fp32")
    return dtype


def create_backend_upscaler(backend: Backend, model_path: str | os.PathLike | None = None,
                            variant: str | None = None, scale: int | None = None,
                            precision: str | None = None, tile: tuple[int, int] = (0, 0),
                            tile_pad: int = 16, batch: int = 1, tlc: bool = True,
                            compile: bool = False, cuda_graphs: bool = False,
                            input_hw: tuple[int, int] | None = None,
                            log: Callable[[str], None] | None = None) -> Upscaler:
    """An ``Upscaler`` on ``backend``: the model loaded, compiled or turned into an engine.

    input_hw: the (height, width) frames will have (the trt backend builds a static engine
    for it, or for the tile size when tiling). compile / cuda_graphs: cuda backend only.
    """
    dtype = resolve_precision(backend, precision)
    if (compile or cuda_graphs) and backend.name != "cuda":
        raise BackendError("compile and cuda_graphs apply to the cuda backend only")
    model = load_model(model_path, variant=variant, scale=scale, tlc=tlc)
    upscaler = Upscaler(model, device=backend.device, dtype=dtype, tile=tile, tile_pad=tile_pad, batch=batch)
    if compile or cuda_graphs:
        upscaler.network = torch.compile(upscaler.model, mode="reduce-overhead" if cuda_graphs else None)
    elif backend.name == "trt":
        if input_hw is None:
            raise BackendError("the trt backend needs the frame size up front (input_hw) to build its engine")
        from .trt.engine import engine_for

        h, w = upscaler.network_input_hw(*input_hw)
        upscaler.network = engine_for(upscaler.model, precision=precision or "fp16", batch=batch,
                                      height=h, width=w, device=backend.device, log=log)
    return upscaler


_CPU_LOCK = threading.Lock()  # one forward pass at a time on the CPU, for the whole process


class StreamRunner:
    """Calls an ``Upscaler`` from many threads: on a GPU, each call on its own CUDA stream.

    ``num_streams`` streams are handed out to callers (a caller waits while all are busy), so
    that many forward passes are in flight and one frame's copies overlap another's kernels.
    On the CPU, one pass at a time: torch's intra-op threads already use every core.
    """

    def __init__(self, upscaler: Upscaler, num_streams: int = 1):
        if num_streams < 1:
            raise BackendError(f"num_streams must be >= 1, got {num_streams}")
        self.upscaler = upscaler
        self.scale = upscaler.scale
        self.device = upscaler.device
        self._streams: queue.SimpleQueue | None = None
        if self.device.type == "cuda":
            self._streams = queue.SimpleQueue()
            for _ in range(num_streams):
                self._streams.put(torch.cuda.Stream(self.device))

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float on the CPU -> (N, 3, sH, sW) float32 on the CPU, in [0, 1]."""
        if self._streams is None:
            with _CPU_LOCK:
                return self.upscaler(frames)
        stream = self._streams.get()
        try:
            with torch.cuda.stream(stream):
                # upload, network and download all run on this stream; the download waits for
                # this stream only, so the other streams' frames keep the GPU busy meanwhile
                return self.upscaler(frames)
        finally:
            self._streams.put(stream)
