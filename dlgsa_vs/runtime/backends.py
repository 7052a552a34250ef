"""The network's runner on each backend, built from a resolved :class:`~dlgsa_vs.runtime.run_plan.RunPlan`.

* ``trt``: a TensorRT engine of the network (torch-tensorrt), built once per settings and
  kept in the engine cache (``dlgsa_vs.runtime.trt``);
* ``cuda``: PyTorch on an NVIDIA GPU in fp16, bf16 or fp32, optionally ``torch.compile``d
  (and with CUDA graphs);
* ``vulkan``: ncnn on a Vulkan GPU (AMD, Intel, Apple, NVIDIA without CUDA) in fp16 or fp32: the
  network's <= 4-D form converted once per input size and cached (``dlgsa_vs.runtime.vulkan``);
* ``cpu``: the CPU, always available: in bf16 where the CPU computes it natively (OpenVINO or
  eager PyTorch, ``cpu_runner``), else PyTorch in fp32.

Which backend, precision, kernels and tile is decided in ``run_plan`` (``select_backend``,
``resolve``; re-exported here); this module only builds what the plan says, and runs it from
many threads (``StreamRunner``). Every front end opens its runner one way, ``open_runner``:
the video command line, the VapourSynth filter, the segment encoder and the Ray workers.
"""
from __future__ import annotations

import collections
import queue
import threading
import weakref
from typing import Callable, TypeVar

import torch

from .inference import Upscaler
from .reuse import cache_for
from .run_plan import (Backend, BackendError, RunPlan, cuda_problem, default_precision_input, resolve,  # noqa: F401
                       resolve_precision, select_backend, trt_problem)
from .settings import Names, RunSettings, check_at_least
from .weights import load_model

T = TypeVar("T")


def create_backend_upscaler(settings: RunSettings, backend: Backend | None = None,
                            input_hw: tuple[int, int] | None = None,
                            log: Callable[[str], None] | None = None, names: Names = Names(),
                            input_dtype: torch.dtype | None = None) -> Upscaler:
    """An ``Upscaler`` for ``settings`` on ``backend`` (selected from the settings when not
    given), constructed with the network it runs: the model, its compiled form or an engine.
    Its ``plan`` is the :class:`RunPlan` it was built from (for the front ends' summary line).

    input_hw: the (height, width) frames will have (the trt backend builds a static engine
    for it, or for its tile crop when tiling); input_dtype: their sample type, where known
    (the GPU's default precision follows it: ``run_plan.resolve_precision``). ``log`` receives the plan's notes (a precision
    not used; the kernels, on a GPU or when asked) and progress, worded with ``names``.
    """
    backend = backend or select_backend(settings)
    settings.check_backend(backend.name)  # before the weights load: a wrong combination fails fast
    model = load_model(settings.model_path, variant=settings.variant, scale=settings.scale, tlc=settings.tlc)
    plan = resolve(settings, backend, input_hw=input_hw, model=model, input_dtype=input_dtype)  # model: now on the device, in the dtype
    for line in plan.notes(names) if log is not None else ():
        log(line)
    network: Callable[[torch.Tensor], torch.Tensor] = model
    network_for = None  # a static engine's way to another crop size (out-of-memory recovery)
    # (the front ends say the tile chosen, Upscaler.tile_summary, where it fits their output)
    if plan.cpu_engine is not None and (plan.precision != "fp32" or plan.cpu_engine != "torch"):
        from .cpu_runner import prepare_cpu_model

        network = prepare_cpu_model(model, plan.precision, plan.cpu_engine, plan.cpu_engine_reason,
                                    threads=settings.threads, log=log)
    elif plan.compile:
        network = torch.compile(model, mode=plan.compile_mode)
    elif backend.name == "vulkan":
        from .vulkan.runner import NcnnNetwork

        # its own fp16 guard (it redoes a frame with its fp32 graph); the Upscaler holds the model in
        # float32 for it (plan.model_dtype), so the Upscaler's guard never widens around it
        network = NcnnNetwork(model, plan.precision, settings.device_index, log=log)
    elif backend.name == "trt":
        from .trt.engine import engine_for

        def network_for(hw: tuple[int, int]):
            return engine_for(model, precision=plan.precision, batch=plan.batch, height=hw[0], width=hw[1],
                              device=backend.device, log=log)

        network = network_for(plan.engine_hw)
    # the fp16 overflow guard's way out, whatever ran before: the model itself, eagerly, in a wider type
    return Upscaler(model, device=backend.device, dtype=plan.model_dtype, tile=plan.tile, tile_pad=plan.tile_pad,
                    batch=plan.batch, network=network, fallback=lambda wider: model.to(backend.device, wider),
                    network_for=network_for, plan=plan,
                    reuse=cache_for(settings.reuse, settings.reuse_tolerance, settings.reuse_cache_mib))


def create_upscaler(**settings) -> Upscaler:
    """``create_backend_upscaler(RunSettings(**settings))``: the short form for Python callers,
    e.g. ``create_upscaler(variant="light", scale=4, tile=(384, 512))``.

    Sizes here are in tensor order, (height, width): ``tile=(384, 512)`` is 512 wide, 384 high
    (the command lines write width x height: ``--tile 512 384``). The upscaler takes float
    frames (N, 3, H, W) in [0, 1] and returns them (N, 3, sH, sW); uint8 frames are refused
    (divide by 255 first), values far outside [0, 1] warn once."""
    return create_backend_upscaler(RunSettings(**settings))


_OPEN: "weakref.WeakValueDictionary[tuple, StreamRunner]" = weakref.WeakValueDictionary()
_RECENT: collections.deque = collections.deque(maxlen=2)  # kept while no caller holds them (Ray workers)
_OPEN_LOCK = threading.Lock()


def open_runner(settings: RunSettings, input_hw: tuple[int, int] | None = None,
                input_dtype: torch.dtype | None = None, log: Callable[[str], None] | None = None,
                names: Names = Names()) -> "StreamRunner":
    """The one way a front end gets the network: a ``StreamRunner`` for ``settings`` on frames of
    ``input_hw`` (height, width) and sample type ``input_dtype`` (integer video, or a float
    type), shared by every caller alive that asks for the same, and the two most recent kept
    for a caller that comes back (a Ray worker's next chunk). Sets torch's CPU threads where
    ``settings.threads`` says. Raises ``BackendError`` / ``SettingsError`` / ``WeightsError``
    for what cannot run; ``log`` gets the plan's notes, worded with ``names``."""
    backend = select_backend(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    # the runner depends on the frame size only through a static engine, and on the sample
    # type only through the GPU's default precision
    key = (settings, backend, input_hw if backend.name == "trt" else None,
           default_precision_input(backend, settings, input_dtype))
    with _OPEN_LOCK:
        runner = _OPEN.get(key)
        if runner is None:  # (its notes are logged as it is made)
            upscaler = create_backend_upscaler(settings, backend, input_hw=input_hw, log=log, names=names,
                                               input_dtype=input_dtype)
            runner = _OPEN[key] = StreamRunner(upscaler, upscaler.plan.streams)
        elif log is not None:  # every caller is told the plan's notes
            for line in runner.upscaler.plan.notes(names):
                log(line)
        if runner not in _RECENT:
            _RECENT.append(runner)
    return runner


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
