"""What the command-line tools share: the run options, their names, clean one-line errors.

The options map onto :class:`~dlgsa_vs.settings.RunSettings` fields through ``OPTION_NAMES``,
the one table that words a settings error with the flag the user typed. Option defaults are
left to ``RunSettings`` (argparse's are None), so each is written once.

No torch here: ``--help`` and argument errors come back at once.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from ..arch.variants import SCALES
from ..packaged import MODELS, default_for
from ..settings import BACKENDS, CPU_ENGINES, KERNELS, PRECISIONS, Names, RunSettings, SettingsError

DEFAULTS = RunSettings()

OPTION_NAMES = Names({
    "model_path": "-m/--model", "variant": "--variant", "scale": "--scale", "tlc": "--no-tlc",
    "backend": "--backend", "device_index": "--device-index", "precision": "--precision",
    # --tile is typed W H; the field holds (H, W)
    "tile": lambda hw: "--tile" if hw is None else f"--tile {hw}" if isinstance(hw, str) else f"--tile {hw[1]} {hw[0]}",
    "tile_pad": "--tile-pad", "batch": "--batch", "num_streams": "--num-streams", "compile": "--compile",
    "cuda_graphs": "--cuda-graphs", "kernels": "--kernels", "threads": "--threads", "cpu_engine": "--cpu-engine",
}, style="option")


def add_model_options(ap: argparse.ArgumentParser, default_model: str, tiles: bool = True) -> None:
    """The network's options: which weights (``default_model``: this tool's packaged model when
    neither --variant nor -m is given), TLC, tiles and CPU threads."""
    g = ap.add_argument_group("network")
    g.add_argument("-s", "--scale", type=int, choices=SCALES, help="upscaling factor (default 2, or the model file's)")
    trained = "; ".join(f"{m.name}: {m.trained_on}" for m in MODELS.values() if not m.trained_on.startswith("("))
    gaps = [f"{default_for(default_model, sc)} at x{sc}" for sc in SCALES if default_for(default_model, sc) != default_model]
    g.add_argument("--variant", choices=list(MODELS),
                   help=f"packaged model (default {', '.join([default_model] + gaps)}); {trained}; "
                        f"tiny and full check a -m file")
    ap.set_defaults(default_model=default_model)
    g.add_argument("-m", "--model", metavar="PATH",
                   help="model file: the authors' .pth or a .safetensors (variant and scale are read from it)")
    if tiles:
        g.add_argument("--tile", nargs="+", metavar="W H|auto",
                       help="LR tiles of W x H pixels; 0 0 = whole frames; auto (default): the largest that "
                            "fits the device's memory and, on the CPU, runs fastest (said on stderr)")
        g.add_argument("--tile-pad", type=int, metavar="N",
                       help=f"LR context pixels around each tile (default {DEFAULTS.tile_pad})")
    g.add_argument("--no-tlc", action="store_true",
                   help="global attention over the whole frame instead of the authors' TLC windows")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: all cores)")


def add_device_options(ap: argparse.ArgumentParser, backends=BACKENDS, compile_options: bool = True,
                       streams_option: bool = False) -> None:
    """Where and how the network runs: backend, GPU, precision, batch, compile, kernels (and
    ``--num-streams`` where the tool has a stream of frames to keep in flight)."""
    g = ap.add_argument_group("device")
    g.add_argument("--backend", choices=list(backends),
                   help="where the network runs: trt (TensorRT engine, built once and cached), cuda "
                        "(PyTorch on the GPU), cpu, vulkan (ncnn on any Vulkan GPU); auto (default) takes the first "
                        "that works and says why")
    g.add_argument("--device-index", type=int, metavar="N", help="CUDA (or, for vulkan, Vulkan) device number "
                   "(default 0)")
    g.add_argument("--precision", choices=list(PRECISIONS),
                   help="arithmetic. GPU: default fp16 (a frame that overflows in fp16 is redone in "
                        "bf16/fp32, with a warning). CPU: default bf16 where the CPU has amx_bf16 or "
                        "avx512_bf16, else fp32; fp16 computes in fp32 there (noted, not refused)")
    g.add_argument("--fp16", action="store_const", const="fp16", dest="precision", help="same as --precision fp16")
    g.add_argument("--batch", type=int, metavar="N", help=f"frames per network call (default {DEFAULTS.batch})")
    if streams_option:
        g.add_argument("--num-streams", type=int, metavar="N",
                       help=f"cuda/trt: batches in flight at once, each on its own CUDA stream, so one "
                            f"batch's uploads and colour conversions overlap another's network "
                            f"(default {DEFAULTS.num_streams}; the CPU runs one pass at a time)")
    g.add_argument("--cpu-engine", choices=list(CPU_ENGINES),
                   help="cpu: what runs the network: torch (eager PyTorch), openvino (OpenVINO on our ONNX "
                        "export, exported once per frame size and cached: minutes the first time), auto "
                        "(default): openvino for bf16 where it is installed, else torch")
    g.add_argument("--kernels", choices=list(KERNELS),
                   help="the network's fused Triton GPU kernels or its plain PyTorch forms; auto (default): "
                        "triton on a CUDA GPU where triton imports, else torch")
    if compile_options:
        g.add_argument("--compile", action="store_true", help="cuda: torch.compile the network (slow first frame)")
        g.add_argument("--cuda-graphs", action="store_true", help="cuda: torch.compile with CUDA graphs")


def add_encoding_options(ap: argparse.ArgumentParser) -> None:
    """The encoder's options of dlgsa-upscale and dlgsa-upscale-ray: -c, --crf, --pix-fmt, -e."""
    g = ap.add_argument_group("encoding")
    g.add_argument("-c", "--encoder", metavar="NAME",
                   help="video encoder: libx264 (default; libvpx-vp9 for .webm), libx265, libsvtav1, "
                        "libvpx-vp9, ffv1, h264_nvenc, hevc_nvenc, ...")
    g.add_argument("--crf", type=float, metavar="Q",
                   help="quality, lower is better: CRF for x264/x265/SVT-AV1/VP9 (defaults 18/20/28/28), "
                        "CQ for NVENC")
    g.add_argument("--pix-fmt", metavar="FMT",
                   help="output pixel format (default: the input's, e.g. yuv420p10le stays 10-bit, "
                        "or the nearest the encoder takes)")
    g.add_argument("-e", "--encoder-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any encoder option, repeatable: -e preset=slow -e tune=film -e g=250")


_ARG_FIELDS = {  # argparse destination -> settings field
    "model": "model_path", "variant": "variant", "scale": "scale", "backend": "backend",
    "device_index": "device_index", "precision": "precision", "tile_pad": "tile_pad", "batch": "batch",
    "num_streams": "num_streams", "compile": "compile", "cuda_graphs": "cuda_graphs", "kernels": "kernels",
    "threads": "threads", "cpu_engine": "cpu_engine",
}


def settings_from_args(args: argparse.Namespace, **fixed) -> RunSettings:
    """The ``RunSettings`` of parsed options (absent ones keep the settings' defaults).

    Raises ``SettingsError``; word it with ``OPTION_NAMES`` (``usage_message``).
    """
    given = {field: value for dest, field in _ARG_FIELDS.items()
             if (value := getattr(args, dest, None)) is not None and value is not False}
    if "variant" not in given and "model_path" not in given and "variant" not in fixed:
        # add_model_options: this tool's packaged model, where it has this scale
        given["variant"] = default_for(args.default_model, given.get("scale"))
    if getattr(args, "tile", None) is not None:
        given["tile"] = _tile_arg(args.tile)
    if getattr(args, "no_tlc", False):
        given["tlc"] = False
    return RunSettings(**{**given, **fixed})


def model_label(settings: RunSettings) -> str:
    """Which weights run, for a summary line: the packaged model's name or the file's."""
    return os.path.basename(settings.model_path) if settings.model_path else str(settings.variant)


def _tile_arg(words: list[str]) -> tuple[int, int] | str:
    """--tile auto | W H -> the settings' "auto" | (H, W)."""
    if [w.lower() for w in words] == ["auto"]:
        return "auto"
    try:
        if len(words) == 2:
            return (int(words[1]), int(words[0]))
    except ValueError:
        pass
    raise SettingsError("tile", "is invalid: give W H in LR pixels (0 0 = whole frames) or auto", " ".join(words))


def encoder_options(pairs: list[str]) -> dict[str, str]:
    """-e KEY=VALUE options as a dict (VideoError, exit 2, for a malformed one)."""
    from ..video.errors import VideoError

    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise VideoError(f"-e {pair!r}: write encoder options as KEY=VALUE, e.g. -e preset=slow", code=2)
        opts[key.strip()] = value
    return opts


def usage_message(exc: SettingsError) -> str:
    """A settings error worded with this command line's flags."""
    return exc.render(OPTION_NAMES)


def weights_message(exc: Exception, option: str = "-m/--model") -> str:
    """A weights error worded for the command line (the library names its keyword argument)."""
    return str(exc).replace("with model_path", f"with {option}")


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``error: ... (see --help)``, exit code 2), worded
    like :func:`fail`, instead of the usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        raise SystemExit(fail(f"{message} (see --help)"))


def one_line(text: object) -> str:
    """A message on one line (library and TensorRT errors may span several)."""
    return " ".join(str(text).split())


class UsageError(ValueError):
    """Options that do not go together, or a value no settings field checks (exit code 2)."""


def fail_unexpected(exc: BaseException, verbose: bool) -> int:
    """Any other error (TensorRT and the exporters raise many kinds): one line, exit code 1, or
    the traceback too with -v."""
    if verbose:
        import traceback

        traceback.print_exc()
    return fail(f"{type(exc).__name__}: {one_line(exc)} (run with -v for the traceback)", 1)
