"""The run plan: every choice of a run, decided once, for one backend and input size.

``RunSettings`` holds what was asked and is valid; ``resolve`` turns it into a frozen
:class:`RunPlan` of decided values: the backend and device (``select_backend``, ``auto``
included), the precision and its torch dtype, the network's kernel forms, the tile (a fixed
(height, width) or the ``AutoTiles`` budget of this device), the static TensorRT engine's
input size, and the streams. Each choice and its reason is made here and nowhere else: the
CLIs, the VapourSynth filter and ``dlgsa-build-engine`` resolve their settings with it, and
``backends.create_backend_upscaler`` and ``inference.Upscaler`` take only the plan's values.

Asking for a backend by name where it cannot run is a ``BackendError`` naming what is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .settings import GPU_DEFAULT_PRECISION, Names, RunSettings, SettingsError, torch_dtype
from .tiling import AutoTiles, network_input_hw

if TYPE_CHECKING:
    from ..arch.dlgsanet import DLGSANet


class BackendError(SettingsError):
    """A backend that cannot run here, or settings it does not take (names the field at fault)."""


@dataclass(frozen=True)
class Backend:
    name: str  # "trt", "cuda", "vulkan" or "cpu"
    device: torch.device  # where the frames' tensors live (the CPU for vulkan: ncnn holds the GPU's)
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
        return f"dlgsa_vs.runtime.trt cannot be imported ({exc})"
    ok, why = trt_available()
    return None if ok else why


def vulkan_device(index: int):
    """The Vulkan device ``index`` that ncnn sees (``vulkan.devices.VulkanDevice``) and None, or
    None and why not (one phrase). Imports ncnn, and only where a run may use it."""
    from .vulkan.devices import vulkan_devices, vulkan_problem

    problem = vulkan_problem()
    if problem is not None:
        return None, problem
    devices = vulkan_devices()
    if index >= len(devices):
        return None, f"there is no Vulkan device {index} ({len(devices)} visible)"
    return devices[index], None


def select_backend(settings: RunSettings | str = "auto", device_index: int = 0) -> Backend:
    """Resolve the settings' backend (``auto`` included) to a usable one, or raise ``BackendError``.

    A name (and device index) may be given instead of settings: they are validated as settings.
    ``auto`` takes trt, then cuda, then vulkan on a real GPU, then the CPU.
    """
    if not isinstance(settings, RunSettings):
        settings = RunSettings(backend=settings or "auto", device_index=device_index)
    name, index = settings.backend, settings.device_index
    cpu = torch.device("cpu")
    if name == "cpu":
        return Backend("cpu", cpu, "asked for")
    if name == "vulkan":
        from .vulkan.devices import vulkan_devices, vulkan_problem

        problem = vulkan_problem()
        if problem is not None:
            raise BackendError("backend", f"{{backend}} vulkan needs a Vulkan device through ncnn, but {problem}: "
                               f"use {{backend}} cpu")
        count = len(vulkan_devices())
        if index >= count:
            raise BackendError("device_index", f"does not exist: {count} Vulkan device(s) are visible, use "
                               f"0..{count - 1}", index)
        return Backend("vulkan", cpu, "asked for")
    problem = cuda_problem()
    if problem is not None:
        if name == "auto":  # vulkan on a real GPU; a CPU emulating one (llvmpipe) is never chosen by itself
            device, why_not = vulkan_device(index)
            if device is not None and not device.is_cpu:
                return Backend("vulkan", cpu, f"no CUDA GPU ({problem}); Vulkan on {device.name} through ncnn")
            if device is not None:
                why_not = f"the Vulkan device {device.name} is a CPU, never chosen automatically (ask for backend vulkan)"
            return Backend("cpu", cpu, f"no CUDA GPU: {problem}; no Vulkan GPU: {why_not}")
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


@dataclass(frozen=True)
class RunPlan:
    """A run's decided values (``resolve`` makes it; nothing downstream decides again).

    precision: what the network computes in; precision_reason: why. cpu_engine: on the CPU
    backend, what runs the network ("torch" or "openvino", ``cpu_runner.choose_engine``) and
    cpu_engine_reason why ("" for the plain fp32 case); None elsewhere.
    kernels: "triton" or "torch", the network's forms (an engine holds the torch forms).
    tile: (height, width) of LR tiles, (0, 0) = whole frames, or the device's ``AutoTiles``
    budget (the tile then follows each frame size). engine_hw: the trt backend's static engine
    input (height, width), the tile crop of ``input_hw`` when tiling; None for other backends
    or without an input size.
    """

    settings: RunSettings
    backend: Backend
    precision: str
    precision_reason: str
    kernels: str
    kernels_reason: str
    tile: tuple[int, int] | AutoTiles
    engine_hw: tuple[int, int] | None
    cpu_engine: str | None = None
    cpu_engine_reason: str = ""

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def dtype(self) -> torch.dtype:
        return torch_dtype(self.precision)

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the model's weights and of the network's input and output."""
        return model_dtype(self.backend, self.precision)

    @property
    def batch(self) -> int:
        return self.settings.batch

    @property
    def tile_pad(self) -> int:
        return self.settings.tile_pad

    @property
    def num_streams(self) -> int:
        return self.settings.num_streams

    @property
    def streams(self) -> int:
        """Forward passes kept in flight: ``num_streams`` on a GPU, one on the CPU (its
        intra-op threads already use every core)."""
        return self.settings.num_streams if self.backend.device.type == "cuda" else 1

    @property
    def compile(self) -> bool:
        """Whether the network is ``torch.compile``d (cuda backend)."""
        return self.settings.compile or self.settings.cuda_graphs

    @property
    def compile_mode(self) -> str | None:
        """``torch.compile``'s mode: with CUDA graphs "reduce-overhead", else its default."""
        return "reduce-overhead" if self.settings.cuda_graphs else None

    def notes(self, names: Names = Names()) -> list[str]:
        """The log lines of the plan's choices, worded with a front end's ``names``: a precision
        asked for and not used (fp16 on the CPU), and the kernels (on a GPU, or when asked for).
        What the CPU computes in, why and in which engine is in ``summary``/``compute``."""
        lines = []
        asked = self.settings.precision
        if asked not in (None, self.precision):
            lines.append(f"{names.name('precision')} {asked} -> {self.precision} ({self.precision_reason})")
        if self.backend.name != "trt" and (self.backend.name != "cpu" or self.settings.kernels != "auto"):
            lines.append(f"kernels {self.settings.kernels} -> {self.kernels} ({self.kernels_reason})")
        return lines

    def compute(self) -> str:
        """What the network computes in, and on the CPU why and in which engine, e.g. ``bfloat16
        (the CPU has avx512_bf16) in torch (openvino is not installed: pip install openvino)``."""
        text = str(self.dtype).removeprefix("torch.")
        if self.cpu_engine is None:
            return text
        engine_reason = f" ({self.cpu_engine_reason})" if self.cpu_engine_reason else ""
        return f"{text} ({self.precision_reason}) in {self.cpu_engine}{engine_reason}"

    def brief(self) -> str:
        """The backend, the precision and the CPU engine, without reasons (``cpu bf16 in torch``)."""
        return f"{self.backend.name} {self.precision}" + (f" in {self.cpu_engine}" if self.cpu_engine else "")

    def summary(self) -> str:
        """``backend compute`` and, for an automatic backend, why (the CLIs' summary line)."""
        text = f"{self.backend.name} {self.compute()}"
        return text + (f"; auto: {self.backend.reason}" if self.settings.backend == "auto" else "")


def model_dtype(backend: Backend, precision: str) -> torch.dtype:
    """The dtype the model is held in and the network takes and returns: the precision's,
    except on the CPU, where ``cpu_runner`` takes and returns float32 and converts its own
    copy of the model (so the float32 model stays for exports and fallbacks), and on vulkan, where
    ncnn holds its own (``vulkan.runner``)."""
    return torch.float32 if backend.name in ("cpu", "vulkan") else torch_dtype(precision)


def default_precision_input(backend: Backend, settings: RunSettings, input_dtype: torch.dtype | None) -> str | None:
    """What of the input's sample type the default precision depends on: on a GPU with no
    precision asked, whether the frames are float32 (else None: it does not matter)."""
    if backend.name == "cpu" or settings.precision is not None:
        return None
    return "float32" if input_dtype == torch.float32 else "other"


def resolve_precision(backend: Backend, settings: RunSettings,
                      input_dtype: torch.dtype | None = None) -> tuple[str, str]:
    """The precision the backend computes in, and why.

    The CPU: ``cpu_features.cpu_precision`` (automatic: bf16 where the CPU has native bf16,
    else fp32; fp16 asked there computes in fp32, one note in ``RunPlan.notes``, never an
    error: VapourSynth users pass RGBH clips and a script moved between machines keeps
    working). A GPU computes in the asked precision; by default fp16 (with the overflow
    guard), except for float32 frames (``input_dtype``: a VapourSynth RGBS clip, whose
    convention is RGBS = fp32, RGBH = fp16), which compute in fp32. Every front end follows
    this one rule. bf16 where the GPU lacks it is an error.
    """
    if backend.name == "cpu":
        from .cpu_features import cpu_precision

        return cpu_precision(settings.precision)
    if default_precision_input(backend, settings, input_dtype) == "float32":  # every GPU backend
        return "fp32", "float32 input (RGBS): fp32"
    if backend.name == "vulkan":
        return vulkan_precision(settings)
    if settings.precision is None:
        return GPU_DEFAULT_PRECISION, "the GPU default"
    if settings.precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise BackendError("precision", f"is not supported by {torch.cuda.get_device_name(backend.device)}: "
                           f"use fp16 or fp32", settings.precision)
    return settings.precision, "as asked"


def vulkan_precision(settings: RunSettings) -> tuple[str, str]:
    """fp16 (the GPU default) where the Vulkan device has fp16 storage and arithmetic, else fp32;
    bf16 is an error (ncnn computes fp16 or fp32 on Vulkan)."""
    device, _problem = vulkan_device(settings.device_index)
    name = device.name if device is not None else "the Vulkan device"
    if settings.precision == "bf16":
        raise BackendError("precision", "is not available on the vulkan backend (ncnn computes fp16 or fp32): "
                           "use fp16 or fp32", settings.precision)
    if settings.precision == "fp32":
        return "fp32", "as asked"
    if device is not None and not device.fp16:
        return "fp32", f"{name} has no fp16 storage and arithmetic"
    return "fp16", "as asked" if settings.precision == "fp16" else "the GPU default"


def resolve_cpu_engine(settings: RunSettings, precision: str) -> tuple[str, str]:
    """What runs the network on the CPU backend, and why (``cpu_runner.choose_engine``); the
    openvino engine asked for where it cannot run is a ``BackendError``."""
    from .cpu_runner import EngineUnavailable, choose_engine

    try:
        return choose_engine(precision, settings.cpu_engine)
    except EngineUnavailable as exc:
        raise BackendError("cpu_engine", f"{{cpu_engine}} openvino cannot run: {exc}, or use "
                           f"{{cpu_engine}} torch") from None


def resolve(settings: RunSettings, backend: Backend | None = None, *, input_hw: tuple[int, int] | None = None,
            model: "DLGSANet | None" = None, input_dtype: torch.dtype | None = None) -> RunPlan:
    """The plan of ``settings`` on ``backend`` (selected from the settings when not given).

    input_hw: the (height, width) of the frames, where known: the trt backend builds one
    static engine for it (for its tile crop when tiling), so it needs it, and for it ``auto``
    tiles become the one tile of that size. model: the network that will run; it is moved to
    the plan's device and dtype and given its kernel forms here, so that the ``auto`` tile
    budget (``tiling.plan``) is measured on what runs (needed for ``auto`` tiles). Raises
    ``BackendError`` / ``SettingsError`` for what cannot run. input_dtype: the frames'
    sample type, where known (``resolve_precision``).
    """
    backend = backend or select_backend(settings)
    settings.check_backend(backend.name)
    precision, precision_reason = resolve_precision(backend, settings, input_dtype)
    held = model_dtype(backend, precision)
    if model is not None:  # as it will run: the auto tile budget is measured on that
        model.eval().to(backend.device, held)
    if backend.name == "trt":
        kernels, kernels_reason = "torch", "a TensorRT engine holds the exported torch forms"
    elif backend.name == "vulkan":
        kernels, kernels_reason = "torch", "an ncnn graph holds the network's <= 4-D form (arch/export_form.py)"
    else:
        from ..arch.kernels import resolve_kernels

        kernels, kernels_reason = resolve_kernels(settings.kernels, backend.device)
        if model is not None:  # the network takes the decided forms
            model.set_kernels(kernels, kernels_reason)
    tile: tuple[int, int] | AutoTiles = settings.tile
    if tile == "auto":
        if model is None:
            raise TypeError("resolve: tile 'auto' is measured on the model: pass model=")
        from .tiling import plan as tile_budget

        if backend.name == "vulkan":  # ncnn's memory, not the CPU's
            from .tiling import GPU_MEMORY_SHARE, tlc_window
            from .vulkan.runner import auto_tile_pixels

            tile = AutoTiles(*auto_tile_pixels(model, settings.device_index, precision, settings.batch,
                                               GPU_MEMORY_SHARE), tlc_window(model))
        else:
            tile = tile_budget(model, backend.device, held, settings.batch)
        if backend.name in ("trt", "vulkan") and input_hw is not None:  # a graph of one size: one tile size
            tile = tile.tile_for(*input_hw, settings.tile_pad)
    engine_hw = None
    if backend.name == "trt":
        if input_hw is None:
            raise BackendError("backend", "the trt backend needs the frame size up front (input_hw) to build "
                               "its engine")
        engine_hw = network_input_hw(*input_hw, tile, settings.tile_pad)
    cpu_engine, cpu_engine_reason = resolve_cpu_engine(settings, precision) if backend.name == "cpu" else (None, "")
    return RunPlan(settings, backend, precision, precision_reason, kernels, kernels_reason, tile, engine_hw,
                   cpu_engine, cpu_engine_reason)
