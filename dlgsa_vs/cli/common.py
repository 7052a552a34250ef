"""What the command-line tools share: the run options, their names, clean one-line errors.

The run options are made from the option table (``settings.options()``: each
:class:`~dlgsa_vs.runtime.settings.RunSettings` field's flags, help and choices), and ``OPTION_NAMES``,
which words a settings error with the flag the user typed, comes from the same table. Option
defaults are left to ``RunSettings`` (argparse's are None), so each is written once.

No torch here: ``--help`` and argument errors come back at once.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import Field
from typing import Iterable, NoReturn

from .._version import __version__
from ..arch.variants import SCALES
from ..runtime.packaged import MODELS, default_for, packaged_file
from ..runtime.settings import BACKENDS, Names, Option, RunSettings, SettingsError, help_text, options

DEFAULTS = RunSettings()


def _tile_name(hw) -> str:
    """--tile is typed W H; the field holds (H, W)."""
    if hw is None:
        return "--tile"
    return f"--tile {hw}" if isinstance(hw, str) else f"--tile {hw[1]} {hw[0]}"


OPTION_NAMES = Names({f.name: _tile_name if o.kind == "size" else "/".join(o.flags) if len(o.flags) > 1
                      and not o.flags[0].startswith("--") else o.flags[-1] for f, o in options()},
                     style="option")

_GROUPS = {"network": "network", "reuse": "reuse of unchanged tiles", "device": "device"}
TOOL_FIELDS = {  # fields a tool leaves out of its --help, and why (the rest of the table is there)
    "tiles": {"tile", "tile_pad", "reuse", "reuse_tolerance", "reuse_cache_mib"},  # a tool that takes no
                                                  # frames (ONNX export)
    "compile": {"compile", "cuda_graphs"},        # tools that run no cuda backend
    "streams": {"num_streams"},                   # tools without a stream of frames to overlap
}


def dest(option: Option) -> str:
    """argparse's name for a field's flag (``--model`` -> ``model``, ``--no-tlc`` -> ``no_tlc``)."""
    return option.flags[-1].lstrip("-").replace("-", "_")


def _add(group: argparse._ArgumentGroup, f: Field, option: Option, choices: Iterable | None = None) -> None:
    """One field's flag(s), from its row of the option table."""
    text = help_text(f, option, OPTION_NAMES)
    if option.kind in ("true", "false"):  # a switch: True where typed (--no-tlc: the field False)
        group.add_argument(*option.flags, action="store_true", help=text)
    elif option.kind == "size":
        group.add_argument(*option.flags, nargs="+", metavar=option.metavar, help=text)
    elif option.kind == "choice":
        values = list(choices if choices is not None else option.choices)
        kind = int if values and isinstance(values[0], int) else str
        group.add_argument(*option.flags, type=kind, choices=values, help=text)
    else:  # a number, or a path (the field's annotation says which)
        kind = str if "str" in str(f.type) else int
        group.add_argument(*option.flags, type=kind, metavar=option.metavar, help=text)


def _add_group(ap: argparse.ArgumentParser, group: str, leave_out: set[str], choices: dict | None = None):
    g = ap.add_argument_group(_GROUPS[group])
    for f, option in options():
        if option.group == group and f.name not in leave_out:
            _add(g, f, option, (choices or {}).get(f.name))
    return g


def add_model_options(ap: argparse.ArgumentParser, default_model: str, tiles: bool = True) -> None:
    """The network's options (the table's "network" group): which weights (``default_model``:
    this tool's packaged model when neither --variant nor -m is given), TLC, tiles and threads."""
    ap.set_defaults(default_model=default_model)
    g = _add_group(ap, "network", set() if tiles else TOOL_FIELDS["tiles"])
    g.add_argument("--list-models", action=_ListModels, default_model=default_model,
                   help="list the packaged models (scales, what each is for) and stop")
    if tiles:
        _add_group(ap, "reuse", set())
    gaps = [f"{default_for(default_model, sc)} at x{sc}" for sc in SCALES if default_for(default_model, sc) != default_model]
    ap.epilog = ((ap.epilog + "\n") if ap.epilog else "") + \
        f"Packaged weights of this tool: {', '.join([default_model] + gaps)} (--variant changes them)."


def add_device_options(ap: argparse.ArgumentParser, backends=BACKENDS, compile_options: bool = True,
                       streams_option: bool = False) -> None:
    """Where and how the network runs (the table's "device" group): backend, GPU, precision,
    batch, kernels, CPU engine (``--compile`` where the tool runs the cuda backend, and
    ``--num-streams`` where it has a stream of frames to keep in flight)."""
    leave_out = (set() if compile_options else TOOL_FIELDS["compile"]) | \
        (set() if streams_option else TOOL_FIELDS["streams"])
    g = _add_group(ap, "device", leave_out, {"backend": backends})
    g.add_argument("--fp16", action="store_const", const="fp16", dest="precision", help="same as --precision fp16")


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


def models_table(default_model: str) -> str:
    """The packaged models, one a line: name, the scales it has weights for, what it is for."""
    lines = [f"{'--variant':<22} {'scales':<12} for"]
    for m in MODELS.values():
        scales = [f"x{sc}" for sc in SCALES if packaged_file(m.name, sc).is_file()]
        mark = " (default)" if m.name == default_model else ""
        lines.append(f"{m.name + mark:<22} {', '.join(scales) or '-':<12} {m.trained_on}")
    gaps = [f"x{sc}: {default_for(default_model, sc)}" for sc in SCALES if default_for(default_model, sc) != default_model]
    if gaps:
        lines.append(f"(where {default_model} has no weights the default is {', '.join(gaps)}; "
                     f"-m FILE runs any DLGSANet .pth or .safetensors)")
    else:
        lines.append("(-m FILE runs any DLGSANet .pth or .safetensors)")
    return "\n".join(lines)


class _ListModels(argparse.Action):
    """--list-models: print ``models_table`` and exit 0, like --version (no input needed)."""

    def __init__(self, option_strings, dest, default_model: str, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)
        self.default_model = default_model

    def __call__(self, parser, namespace, values, option_string=None):
        print(models_table(self.default_model))
        parser.exit(0)


def settings_from_args(args: argparse.Namespace, **fixed) -> RunSettings:
    """The ``RunSettings`` of parsed options (absent ones keep the settings' defaults).

    Raises ``SettingsError``; word it with ``OPTION_NAMES`` (``usage_message``).
    """
    given = {}
    for f, option in options():
        value = getattr(args, dest(option), None)
        if option.kind in ("true", "false"):
            if value:  # the switch was typed
                given[f.name] = option.kind == "true"
        elif value is not None:
            given[f.name] = value
    if "variant" not in given and "model_path" not in given and "variant" not in fixed:
        # add_model_options: this tool's packaged model, where it has this scale
        given["variant"] = default_for(args.default_model, given.get("scale"))
    if "tile" in given:
        given["tile"] = _tile_arg(given["tile"])
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
    like :func:`fail`, instead of the usage text plus a line; and every command has --version."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s {__version__} (dlgsa-vs)")

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
