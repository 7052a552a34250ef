"""One set of run settings, validated once: what every front end hands to the backends.

A front end (the VapourSynth filter, ``dlgsa-upscale``, the Ray workers, ``dlgsa-upscale-image``,
the engine and ONNX tools) turns its own parameters into a :class:`RunSettings`; the backends,
the inference core and the network never check an option again. Each default is written here
once, as the field's default, and each rule once, in ``RunSettings.__post_init__``.

An invalid value raises :class:`SettingsError`, which knows the *field* and the value. Each
front end renders it with its own parameter names through one :class:`Names` table, so
``core.dlgsa.Upscale`` says ``tile_w=-8 is invalid`` and the shell says ``--tile -8 is invalid``
from the same rule, without string surgery on messages.

No torch here: command lines build their settings (and their ``--help``) without loading it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

from .forms import KERNELS
from .arch.variants import SCALES
from .packaged import MODELS

BACKENDS = ("auto", "trt", "cuda", "cpu", "vulkan")
GPU_DEFAULT_PRECISION = "fp16"
"""What a GPU backend computes in when no precision is given (the CPU's own rule:
``cpu_features.cpu_precision``, bf16 where the CPU has native bf16, else fp32)."""
CPU_ENGINES = ("auto", "torch", "openvino")
"""What runs the network on the CPU backend (decided by ``cpu_runner.choose_engine``)."""

_NO_VALUE = object()


class SettingsError(ValueError):
    """An invalid run setting: the field, the value, and what is wrong with it.

    ``text`` follows the subject (``"is invalid: it must be >= 1"``); with ``value`` left out
    it is the whole sentence. ``{field}`` placeholders in it (``"use {backend} cpu"``) become
    the front end's parameter names. ``str()`` uses the library's keyword names.
    """

    def __init__(self, field: str, text: str, value: Any = _NO_VALUE):
        self.field, self.text, self.value = field, text, value
        super().__init__(self.render(Names()))

    def render(self, names: "Names") -> str:
        text = names.format(self.text)
        if self.value is _NO_VALUE:
            return text
        return f"{names.subject(self.field, self.value)} {text}"


class _NameLookup(dict):
    def __init__(self, names: "Names"):
        super().__init__()
        self.names = names

    def __missing__(self, field: str) -> str:
        return self.names.name(field)


@dataclass(frozen=True)
class Names:
    """How one front end names the fields: ``table`` maps a field to its parameter name.

    style "keyword" writes a subject as ``name=value`` (Python and VapourSynth keywords),
    "option" as ``name value`` (command lines). A field missing from the table keeps its own
    name. ``table`` values may also be functions of the value, for parameters that do not map
    one to one (VapourSynth's ``tile_w``/``tile_h`` for the field ``tile``).
    """

    table: Mapping[str, str | Callable[[Any], str]] | None = None
    style: str = "keyword"

    def format(self, text: str) -> str:
        """``text`` with each ``{field}`` replaced by this front end's name for it."""
        return text.format_map(_NameLookup(self))

    def name(self, field: str) -> str:
        entry = (self.table or {}).get(field, field)
        return entry if isinstance(entry, str) else entry(None)

    def subject(self, field: str, value: Any) -> str:
        entry = (self.table or {}).get(field, field)
        if not isinstance(entry, str):
            return entry(value)
        if self.style == "option":
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            return f"{entry} {shown}"
        return f"{entry}={value!r}"


_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
PRECISIONS = tuple(_DTYPES)


def torch_dtype(precision: str):
    """The ``torch.dtype`` of a precision name (torch is imported here, on first use)."""
    import torch

    return getattr(torch, _DTYPES[precision])


def check_precision(precision: str) -> None:
    """The rule for a precision name (the settings' and the TensorRT tools' one check)."""
    if precision not in PRECISIONS:
        raise SettingsError("precision", "is unknown: use fp16, bf16 or fp32", precision)


def check_at_least(field: str, value: int, minimum: int) -> None:
    """The rule for a count or size: ``value >= minimum`` (every such rule of a run is this one)."""
    if value < minimum:
        raise SettingsError(field, f"is invalid: it must be >= {minimum}", value)


def check_tiling(tile: tuple[int, int], tile_pad: int, batch: int) -> None:
    """The rules for tile (H, W), tile_pad and batch (also what ``inference.Upscaler`` takes)."""
    if len(tile) != 2 or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in tile):
        raise SettingsError("tile", "is invalid: it must be >= 0 (0 = no tiling)", tile)
    check_at_least("tile_pad", tile_pad, 0)
    check_at_least("batch", batch, 1)


@dataclass(frozen=True)
class RunSettings:
    """Every option of a run, from the model to the kernels, with its default.

    model_path: an authors' .pth or a .safetensors (variant and scale read from it); without
        it the packaged weights of ``variant`` at ``scale`` (default 2): a model name of
        ``packaged.MODELS`` (None = the library's default, light; light-video = the weights for
        compressed video, the video command lines' default).
    tlc: the authors' test-time local converter windows (off = global attention).
    backend: auto, trt, cuda, vulkan (any Vulkan GPU, through ncnn) or cpu; device_index: the CUDA
        device, or the Vulkan device for vulkan.
    precision: fp16, bf16 or fp32; None = the backend's own: fp16 on a GPU; on the CPU bf16
        where it has native bf16 (amx_bf16 / avx512_bf16), else fp32 (``cpu_features``). fp16
        asked on the CPU computes in fp32 (said once in the log, never an error).
    cpu_engine: auto, torch or openvino: what runs the network on the CPU backend
        (``cpu_runner.choose_engine``; auto: OpenVINO for bf16 where it is installed).
    tile: "auto" (default: the largest tile that fits the device's memory and, on the CPU, runs
        fastest; ``dlgsa_vs/tiling.py``), or (height, width) of LR tiles, (0, 0) = whole frames;
        tile_pad: LR context around each.
    batch: frames (or tiles) per forward pass; num_streams: CUDA streams in flight.
    compile / cuda_graphs: torch.compile the network (cuda backend).
    kernels: auto, triton or torch (the network's fused GPU kernels or its plain PyTorch forms).
    threads: CPU threads for torch (None = all cores).
    """

    model_path: str | None = None
    variant: str | None = None
    scale: int | None = None
    tlc: bool = True
    backend: str = "auto"
    device_index: int = 0
    precision: str | None = None
    tile: tuple[int, int] | str = "auto"
    tile_pad: int = 16
    batch: int = 1
    num_streams: int = 1
    compile: bool = False
    cuda_graphs: bool = False
    kernels: str = "auto"
    threads: int | None = None
    cpu_engine: str = "auto"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen
        if self.model_path is not None:
            path = os.fspath(self.model_path)
            if not os.path.isfile(path):
                raise SettingsError("model_path", "is not a file: pass the path of a DLGSANet .pth or "
                                    ".safetensors file, or leave {model_path} out to use the packaged weights",
                                    path)
            set_("model_path", os.path.realpath(path))
        if self.variant is not None and self.variant not in MODELS:
            raise SettingsError("variant", f"is unknown: use one of {', '.join(map(repr, MODELS))}", self.variant)
        if self.scale is not None and self.scale not in SCALES:
            raise SettingsError("scale", "is not available: DLGSANet models upscale by 2, 3 or 4", self.scale)
        backend = str(self.backend).lower()
        if backend not in BACKENDS:
            raise SettingsError("backend", f"is unknown: use one of {', '.join(BACKENDS)}", self.backend)
        set_("backend", backend)
        check_at_least("device_index", self.device_index, 0)
        if self.precision is not None:
            check_precision(self.precision)
        if isinstance(self.tile, str):
            if self.tile.lower() != "auto":
                raise SettingsError("tile", "is invalid: use 'auto' or (height, width) >= 0 (0 = no tiling)",
                                    self.tile)
            set_("tile", "auto")
        else:
            set_("tile", tuple(self.tile))
        check_tiling((0, 0) if self.tile == "auto" else self.tile, self.tile_pad, self.batch)
        check_at_least("num_streams", self.num_streams, 1)
        if self.kernels not in KERNELS:
            raise SettingsError("kernels", f"is unknown: use one of {', '.join(KERNELS)}", self.kernels)
        if self.threads is not None:
            check_at_least("threads", self.threads, 1)
        if self.cpu_engine not in CPU_ENGINES:
            raise SettingsError("cpu_engine", f"is unknown: use one of {', '.join(CPU_ENGINES)}", self.cpu_engine)
        if backend != "auto":
            self.check_backend(backend)

    def check_backend(self, name: str) -> None:
        """The rules that depend on the backend: checked here, and again once ``auto`` resolves."""
        if (self.compile or self.cuda_graphs) and name != "cuda":
            raise SettingsError("compile", "{compile} and {cuda_graphs} apply to the cuda backend only")
        if self.cpu_engine != "auto" and name != "cpu":
            raise SettingsError("cpu_engine", "applies to the cpu backend only: leave it out, or use {backend} cpu",
                                self.cpu_engine)

    def replace(self, **changes: Any) -> "RunSettings":
        """A copy with some fields changed (validated again)."""
        return RunSettings(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for manifests and for Ray workers); ``RunSettings.from_dict`` reverses it."""
        data = asdict(self)
        data["tile"] = self.tile if self.tile == "auto" else list(self.tile)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "tile" and not isinstance(v, str) else v
                      for k, v in data.items() if k in known})
