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
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

from ..arch.forms import KERNELS
from ..arch.variants import SCALES
from .packaged import MODELS

BACKENDS = ("auto", "trt", "cuda", "cpu", "vulkan")
GPU_DEFAULT_PRECISION = "fp16"
"""What a GPU backend computes in when no precision is given (the CPU's own rule:
``cpu_features.cpu_precision``, bf16 where the CPU has native bf16, else fp32)."""
CPU_ENGINES = ("auto", "torch", "openvino")
"""What runs the network on the CPU backend (decided by ``cpu_runner.choose_engine``)."""
REUSE_MODES = ("exact", "auto", "off")
"""Reusing the upscale of unchanged tiles (``dlgsa_vs/runtime/reuse.py``): always, until the first
frames show nothing repeats, or never."""

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


MIN_TILE = 16
"""The smallest tile side (LR pixels) a run takes, and that out-of-memory recovery goes down to
(``tiling``): below it a tile is mostly context (a 16-pixel tile with the default tile_pad 16
computes 9x its own pixels), so the run would crawl."""


def check_tile_size(tile: tuple[int, int]) -> None:
    """The rule for a tile the user asks for: each side 0 (the whole frame) or >= ``MIN_TILE``."""
    if any(0 < t < MIN_TILE for t in tile):
        raise SettingsError("tile", f"is invalid: each side must be 0 (the whole frame) or >= {MIN_TILE} LR "
                            f"pixels (smaller tiles are mostly context and run many times slower)", tile)


def check_tiling(tile: tuple[int, int], tile_pad: int, batch: int) -> None:
    """The rules for tile (H, W), tile_pad and batch (also what ``inference.Upscaler`` takes)."""
    if len(tile) != 2 or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in tile):
        raise SettingsError("tile", "is invalid: it must be >= 0 (0 = no tiling)", tile)
    check_at_least("tile_pad", tile_pad, 0)
    check_at_least("batch", batch, 1)


@dataclass(frozen=True)
class Option:
    """How the front ends name and describe one ``RunSettings`` field: the option table's row.

    flags: the command lines' flag(s) (the first one long or short, the last the long one);
        ``kind`` says how it is typed: "value" (``--batch 2``), "choice" (one of ``choices``),
        "true" (a switch that sets True), "false" (a switch that sets False: ``--no-tlc``),
        "size" (``--tile W H`` or ``auto``: the field holds (H, W)).
    keywords: the VapourSynth filter's (and vsscale's) keyword(s); "tile" takes two
        (``tile_w``, ``tile_h``). vs_type: the keyword's VapourSynth type ("int", "data").
    group: the ``--help`` group ("network" or "device"); metavar: the value's name there.
    help: one sentence for every front end; ``{field}`` placeholders become each front end's
        name for that field and ``{default}`` the field's default (``help_text``), so the text
        and the default are written once.
    """

    flags: tuple[str, ...]
    help: str
    group: str = "device"
    kind: str = "value"
    metavar: str | None = None
    choices: tuple | None = None
    keywords: tuple[str, ...] | None = None  # None: the field's own name
    vs_type: str = "data"


def _option(default: Any, *flags: str, **meta: Any):
    """A ``RunSettings`` field with its row of the option table (``Option``) as metadata."""
    return field(default=default, metadata={"option": Option(flags, **meta)})


@dataclass(frozen=True)
class RunSettings:
    """Every option of a run, from the model to the kernels, with its default.

    The one table of the options: each field below carries its ``Option`` row (flags,
    keywords, help, choices); the command lines' argparse groups (``cli/common.py``), the
    VapourSynth filter's signature and docstring, ``plugin.c``'s registration string (held
    equal by a test) and ``vsscale.DLGSA``'s options come from it (``options()``). Adding an
    option is one field here, plus what it does.

    ``tile`` is (height, width) in Python, as tensors are; the command lines type it W H.
    """

    scale: int | None = _option(
        None, "-s", "--scale", group="network", kind="choice", choices=SCALES, vs_type="int",
        help="upscaling factor: 2, 3 or 4 (default 2, or the model file's)")
    variant: str | None = _option(
        None, "--variant", group="network", kind="choice", choices=tuple(MODELS),
        help="packaged weights: light-video (trained on frames through H.264, HEVC, AV1 and VP9: "
             "compressed sources; the video tools' default) or light (the paper's clean bicubic "
             "protocol: clean sources; the library's default); tiny and full only check a "
             "{model_path} file")
    model_path: str | None = _option(
        None, "-m", "--model", group="network", metavar="PATH",
        help="model file: the authors' .pth or a .safetensors (variant and scale are read from it); "
             "without it, the packaged weights of {variant}")
    backend: str = _option(
        "auto", "--backend", kind="choice", choices=BACKENDS,
        help="where the network runs: trt (TensorRT engine, built once and cached), cuda (PyTorch on "
             "the GPU), vulkan (ncnn on any Vulkan GPU: AMD, Intel, Apple, NVIDIA), cpu; auto (default) "
             "takes the first that works here and says why")
    device_index: int = _option(0, "--device-index", metavar="N", vs_type="int", help="GPU number: the CUDA device, or the Vulkan device for vulkan (default {default})")
    tile: tuple[int, int] | str = _option(
        "auto", "--tile", group="network", kind="size", metavar="W H|auto", keywords=("tile_w", "tile_h"),
        vs_type="int",
        help="LR tiles of this many pixels (0 = whole frames); auto (default): the largest that fits "
             "the device's memory and, on the CPU, runs fastest (said on stderr)")
    tile_pad: int = _option(16, "--tile-pad", group="network", metavar="N", vs_type="int",
                            help="LR context pixels around each tile (default {default})")
    batch: int = _option(1, "--batch", metavar="N", vs_type="int", help="frames per network call (default {default})")
    num_streams: int = _option(
        1, "--num-streams", metavar="N", vs_type="int",
        help="cuda/trt: batches in flight at once, each on its own CUDA stream, so one batch's copies "
             "and colour conversions overlap another's network (default {default}; the CPU runs one pass at "
             "a time)")
    tlc: bool = _option(
        True, "--no-tlc", group="network", kind="false", vs_type="int",
        help="the authors' test-time local converter windows (on by default, as the authors evaluate; "
             "off: global attention over the whole frame)")
    kernels: str = _option(
        "auto", "--kernels", kind="choice", choices=KERNELS,
        help="the network's fused Triton GPU kernels or its plain PyTorch forms; auto (default): "
             "triton on a CUDA GPU where triton imports, else torch")
    precision: str | None = _option(
        None, "--precision", kind="choice", choices=PRECISIONS,
        help="arithmetic. GPU default: fp16 (a frame that overflows in fp16 is redone in bf16/fp32, "
             "with a warning), fp32 for float32 input (VapourSynth RGBS). CPU default: bf16 where "
             "the CPU has amx_bf16 or avx512_bf16, else fp32; fp16 computes in fp32 there (noted, "
             "not refused)")
    cpu_engine: str = _option(
        "auto", "--cpu-engine", kind="choice", choices=CPU_ENGINES,
        help="cpu: what runs the network: torch (eager PyTorch), openvino (OpenVINO on our ONNX "
             "export, exported once per frame size and cached: minutes the first time), auto "
             "(default): openvino for bf16 where it is installed, else torch")
    compile: bool = _option(False, "--compile", kind="true", vs_type="int",
                            help="cuda: torch.compile the network (slow first frame)")
    cuda_graphs: bool = _option(False, "--cuda-graphs", kind="true", vs_type="int",
                                help="cuda: torch.compile with CUDA graphs")
    threads: int | None = _option(None, "--threads", group="network", metavar="N", vs_type="int",
                                  help="CPU threads for torch (default: all cores)")
    reuse: str = _option(
        "exact", "--reuse", group="reuse", kind="choice", choices=REUSE_MODES,
        help="reuse the upscale of tiles whose padded input did not change: exact (default; the same "
             "output as off on the same tiles), auto (exact, switched off when the first frames repeat "
             "nothing), off")
    reuse_tolerance: int = _option(
        0, "--reuse-tolerance", group="reuse", metavar="N", vs_type="int",
        help="also reuse a tile whose input differs by at most N 8-bit code values from the input its "
             "cached output was computed from, never chained (default {default}: exact)")
    reuse_cache_mib: int = _option(
        512, "--reuse-cache-mib", group="reuse", metavar="MIB", vs_type="int",
        help="memory for reused tiles, inputs and outputs on their devices, least recently used out "
             "(default {default})")

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
        if self.tile != "auto":
            check_tile_size(self.tile)
        check_at_least("num_streams", self.num_streams, 1)
        if self.kernels not in KERNELS:
            raise SettingsError("kernels", f"is unknown: use one of {', '.join(KERNELS)}", self.kernels)
        if self.threads is not None:
            check_at_least("threads", self.threads, 1)
        if self.cpu_engine not in CPU_ENGINES:
            raise SettingsError("cpu_engine", f"is unknown: use one of {', '.join(CPU_ENGINES)}", self.cpu_engine)
        if self.reuse not in REUSE_MODES:
            raise SettingsError("reuse", f"is unknown: use one of {', '.join(REUSE_MODES)}", self.reuse)
        check_at_least("reuse_tolerance", self.reuse_tolerance, 0)
        if self.reuse_tolerance > 255:
            raise SettingsError("reuse_tolerance", "is invalid: it must be <= 255 (8-bit code values)",
                                self.reuse_tolerance)
        if self.reuse_tolerance and self.reuse == "off":
            raise SettingsError("reuse_tolerance", "applies only with reuse on: leave it out, or use "
                                "{reuse} exact", self.reuse_tolerance)
        check_at_least("reuse_cache_mib", self.reuse_cache_mib, 1)
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


def options() -> list[tuple[Field, Option]]:
    """The option table: every ``RunSettings`` field with its ``Option`` row, in field order."""
    return [(f, f.metadata["option"]) for f in fields(RunSettings)]


def help_text(f: Field, option: Option, names: Names) -> str:
    """A field's help in a front end's words: its default filled in, the fields named as there."""
    return names.format(option.help.replace("{default}", str(f.default)))


def keywords(f: Field, option: Option) -> tuple[str, ...]:
    """The VapourSynth filter's keyword(s) of a field."""
    return option.keywords or (f.name,)
