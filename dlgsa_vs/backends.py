"""Where the network runs: the backends, the automatic choice, and the runner for each.

* ``trt``: a TensorRT engine of the network (torch-tensorrt), built once per settings and
  kept in the engine cache (``dlgsa_vs.trt``);
* ``cuda``: PyTorch on an NVIDIA GPU in fp16, bf16 or fp32, optionally ``torch.compile``d
  (and with CUDA graphs);
* ``cpu``: PyTorch on the CPU in fp32. Always available.

``auto`` takes the first of trt, cuda, cpu that works here and says which one and why.
Asking for one by name where it cannot run is a ``BackendError`` that names what is missing.
Every option arrives as one validated :class:`~dlgsa_vs.settings.RunSettings`.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from .inference import Upscaler, network_input_hw
from .settings import GPU_DEFAULT_PRECISION, Names, RunSettings, SettingsError, check_at_least, torch_dtype
from .weights import load_model

T = TypeVar("T")


class BackendError(SettingsError):
    """A backend that cannot run here, or settings it does not take (names the field at fault)."""


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


def select_backend(settings: RunSettings | str = "auto", device_index: int = 0) -> Backend:
    """Resolve the settings' backend (``auto`` included) to a usable one, or raise ``BackendError``.

    A name (and device index) may be given instead of settings: they are validated as settings.
    """
    if not isinstance(settings, RunSettings):
        settings = RunSettings(backend=settings or "auto", device_index=device_index)
    name, index = settings.backend, settings.device_index
    cpu = torch.device("cpu")
    if name == "cpu":
        return Backend("cpu", cpu, "asked for")
    problem = cuda_problem()
    if problem is not None:
        if name == "auto":
            return Backend("cpu", cpu, f"no CUDA GPU: {problem}")
        raise BackendError("backend", f"{{backend}} {name} needs an NVIDIA GPU, but {problem}: use {{backend}} cpu")
    count = torch.cuda.device_count()
    if index >= count:
        raise BackendError("device_index", f"does not exist: {count} CUDA device(s) are visible, use "
                           f"0..{count - 1}", index)
    gpu = torch.device("cuda", index)
    gpu_name = torch.cuda.get_device_name(gpu)
    if name == "cuda":
        return Backend("cuda", gpu, "asked for")
    problem = trt_problem()
    if name == "trt":
        if problem is not None:
            raise BackendError("backend", f"{{backend}} trt needs TensorRT, but {problem}: use {{backend}} cuda "
                               f"(PyTorch on the GPU) or install the trt extra")
        return Backend("trt", gpu, "asked for")
    if problem is None:
        return Backend("trt", gpu, f"TensorRT on {gpu_name}")
    return Backend("cuda", gpu, f"PyTorch on {gpu_name}; TensorRT not used: {problem}")


def resolve_precision(backend: Backend, settings: RunSettings) -> str:
    """The precision the backend computes in: on the CPU always fp32 (see
    ``create_backend_upscaler`` for the note), on a GPU the asked one, default fp16."""
    if backend.name == "cpu":
        return "fp32"
    precision = settings.precision or GPU_DEFAULT_PRECISION
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise BackendError("precision", f"is not supported by {torch.cuda.get_device_name(backend.device)}: "
                           f"use fp16 or fp32", precision)
    return precision


def create_backend_upscaler(settings: RunSettings, backend: Backend | None = None,
                            input_hw: tuple[int, int] | None = None,
                            log: Callable[[str], None] | None = None, names: Names = Names()) -> Upscaler:
    """An ``Upscaler`` for ``settings`` on ``backend`` (selected from the settings when not
    given), constructed with the network it runs: the model, its compiled form or an engine.

    input_hw: the (height, width) frames will have (the trt backend builds a static engine
    for it, or for the tile size when tiling). ``tile="auto"`` becomes an ``AutoTiles`` budget
    for this device (the Upscaler picks the tile per frame size; the trt backend fixes the
    tile for ``input_hw``, so its one engine serves that size), said in one ``log`` line.
    ``log`` receives progress and notes, worded with the front end's ``names``.

    fp16 or bf16 asked for on the CPU is one note and fp32, never an error: VapourSynth users
    pass RGBH clips and expect them to work, and a script moved between machines keeps working.
    """
    backend = backend or select_backend(settings)
    settings.check_backend(backend.name)
    precision = resolve_precision(backend, settings)
    if log is not None and settings.precision not in (None, precision):  # only the CPU overrides a request
        log(f"{names.subject('precision', settings.precision)} is ignored on the CPU: it computes in fp32")
    dtype = torch_dtype(precision)
    model = load_model(settings.model_path, variant=settings.variant, scale=settings.scale, tlc=settings.tlc)
    model = model.eval().to(backend.device, dtype)  # as the Upscaler keeps it; the engine is built from it
    if backend.name != "trt":  # an engine holds the exported (torch) forms
        model.set_kernels(settings.kernels)
        if log is not None and (backend.name != "cpu" or settings.kernels != "auto"):
            log(f"kernels {settings.kernels} -> {model.kernels} ({model.kernels_reason})")
    network: Callable[[torch.Tensor], torch.Tensor] = model
    network_for = None  # a static engine's way to another crop size (out-of-memory recovery)
    tile = settings.tile
    if tile == "auto":  # the budget for this device; the tile itself per frame size (tiling.py)
        from .tiling import plan

        tile = plan(model, backend.device, dtype, settings.batch)
        # (the front ends say the tile chosen, Upscaler.tile_summary, where it fits their output)
        if backend.name == "trt" and input_hw is not None:  # one static engine: one tile size
            tile = tile.tile_for(*input_hw, settings.tile_pad)
    if settings.compile or settings.cuda_graphs:
        network = torch.compile(model, mode="reduce-overhead" if settings.cuda_graphs else None)
    elif backend.name == "trt":
        if input_hw is None:
            raise BackendError("backend", "the trt backend needs the frame size up front (input_hw) to build "
                               "its engine")
        from .trt.engine import engine_for

        def network_for(hw: tuple[int, int]):
            return engine_for(model, precision=precision, batch=settings.batch, height=hw[0], width=hw[1],
                              device=backend.device, log=log)

        network = network_for(network_input_hw(*input_hw, tile, settings.tile_pad))
    # the fp16 overflow guard's way out, whatever ran before: the model itself, eagerly, in a wider type
    return Upscaler(model, device=backend.device, dtype=dtype, tile=tile, tile_pad=settings.tile_pad,
                    batch=settings.batch, network=network, fallback=lambda wider: model.to(backend.device, wider),
                    network_for=network_for)


def create_upscaler(**settings) -> Upscaler:
    """``create_backend_upscaler(RunSettings(**settings))``: the short form for Python callers,
    e.g. ``create_upscaler(variant="light", scale=4, tile=(512, 512))``."""
    return create_backend_upscaler(RunSettings(**settings))


_CPU_LOCK = threading.Lock()  # one forward pass at a time on the CPU, for the whole process


class StreamRunner:
    """Calls an ``Upscaler`` from many threads: on a GPU, each call on its own CUDA stream.

    ``num_streams`` streams are handed out to callers (a caller waits while all are busy), so
    that many forward passes are in flight and one frame's copies overlap another's kernels.
    On the CPU, one pass at a time: torch's intra-op threads already use every core.

    Any other attribute is the upscaler's (``scale``, ``batch``, ``tile_for``, ...), so a
    front end hands a ``StreamRunner`` wherever it would hand the ``Upscaler``; a consumer
    with work to overlap (the video pipeline) sees ``num_streams`` and keeps that many
    ``apply`` calls in flight.
    """

    def __init__(self, upscaler: Upscaler, num_streams: int = 1):
        check_at_least("num_streams", num_streams, 1)
        self.upscaler = upscaler
        self.num_streams = num_streams
        self.scale = upscaler.scale
        self.device = upscaler.device
        self._streams: queue.SimpleQueue | None = None
        if self.device.type == "cuda":
            self._streams = queue.SimpleQueue()
            for _ in range(num_streams):
                self._streams.put(torch.cuda.Stream(self.device))

    def __getattr__(self, name: str):
        # only reached for names not set in __init__ (and not while unpickling: no upscaler yet)
        if name == "upscaler":
            raise AttributeError(name)
        return getattr(self.upscaler, name)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float on the CPU -> (N, 3, sH, sW) float32 on the CPU, in [0, 1]."""
        return self.apply(lambda upscaler: upscaler(frames))

    def apply(self, work: Callable[[Upscaler], T]) -> T:
        """``work(upscaler)`` on a free stream (on the CPU, under the process's one lock): the
        caller's uploads, conversions and downloads run on the stream with the network."""
        if self._streams is None:
            with _CPU_LOCK:
                return work(self.upscaler)
        stream = self._streams.get()
        try:
            with torch.cuda.stream(stream):
                # upload, network and download all run on this stream; the download waits for
                # this stream only, so the other streams' frames keep the GPU busy meanwhile
                return work(self.upscaler)
        finally:
            self._streams.put(stream)
