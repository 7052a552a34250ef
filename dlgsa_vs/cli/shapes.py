"""The input-size options of dlgsa-build-engine and dlgsa-export-onnx: --size, --min/--opt/--max
(LR pixels, written WxH = width x height as FFmpeg and --tile W H), and what they give: one
static size or a ``ShapeRange``. Inside, sizes are (height, width) tuples, tensor order."""
from __future__ import annotations

import argparse
import re

from .common import UsageError

# export.ShapeRange's defaults, written here so that --help needs no torch (a test compares them)
DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = (16, 16), (540, 960), (1088, 1920)


def hw_text(hw: tuple[int, int]) -> str:
    """(height, width) -> 'WxH', as the command lines write sizes: (540, 960) -> '960x540'."""
    return f"{hw[1]}x{hw[0]}"


def parse_hw(text: str) -> tuple[int, int]:
    """'960x540' (width x height in LR pixels, as FFmpeg) -> (540, 960), (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size WxH (width x height, e.g. 960x540)")
    w, h = int(m.group(1)), int(m.group(2))
    if h < 2 or w < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: the smallest supported LR size is 2x2")
    return h, w


def add_shape_options(ap: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--size, --min, --opt, --max and --batch (its default and its rule are the settings')."""
    g = ap.add_argument_group("input size (LR pixels, WxH = width x height, as FFmpeg)")
    g.add_argument("--size", type=parse_hw, metavar="WxH", help="one fixed size (a static graph)")
    g.add_argument("--min", type=parse_hw, metavar="WxH",
                   help="smallest size of a dynamic graph (default %s)" % hw_text(DEFAULT_MIN))
    g.add_argument("--opt", type=parse_hw, metavar="WxH", help="size TensorRT tunes a dynamic graph for "
                   "(default %s, within min..max)" % hw_text(DEFAULT_OPT))
    g.add_argument("--max", type=parse_hw, metavar="WxH",
                   help="largest size of a dynamic graph (default %s)" % hw_text(DEFAULT_MAX))
    g.add_argument("--batch", type=int, metavar="N", help="frames per call (default 1)")
    return g


def ranged(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in ("min", "opt", "max"))


def shape_from_args(args: argparse.Namespace, default_dynamic: bool):
    """(height, width, None) for --size, (None, None, ShapeRange) for --min/--opt/--max (missing
    ones from the defaults, kept within the given ones). Raises UsageError."""
    from ..runtime.export import ShapeRange

    if args.size is not None:
        if ranged(args):
            raise UsageError("give --size WxH (static) or --min/--opt/--max WxH (dynamic), not both")
        return args.size[0], args.size[1], None
    if not ranged(args) and not default_dynamic:
        raise UsageError("choose the input size: --size WxH for a static graph, or --min/--opt/--max WxH "
                         "for a dynamic one")
    lo = args.min or tuple(min([d, *(v[i] for v in (args.opt, args.max) if v)]) for i, d in enumerate(DEFAULT_MIN))
    hi = args.max or tuple(max([d, *(v[i] for v in (args.min, args.opt) if v)]) for i, d in enumerate(DEFAULT_MAX))
    opt = args.opt or tuple(min(max(d, lo[i]), hi[i]) for i, d in enumerate(DEFAULT_OPT))
    try:
        return None, None, ShapeRange(tuple(lo), tuple(opt), tuple(hi))
    except ValueError as exc:
        raise UsageError(f"--min/--opt/--max: {exc}") from None
