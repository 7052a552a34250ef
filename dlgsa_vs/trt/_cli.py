"""What dlgsa-build-engine and dlgsa-export-onnx share: options, sizes, one-line errors."""
from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from ..arch import DLGSANet
from ..export import ShapeRange

DEFAULT_RANGE = ShapeRange()


class UsageError(ValueError):
    """Bad command-line usage (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2) instead of usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def fail_unexpected(prog: str, exc: Exception, verbose: bool) -> int:
    """Any other error (TensorRT and the exporters raise many kinds): one line, or the traceback with -v."""
    if verbose:
        import traceback

        traceback.print_exc()
    return fail(prog, f"{type(exc).__name__}: {exc} (run with -v for the traceback)", 1)


def parse_hw(text: str) -> tuple[int, int]:
    """'540x960' -> (540, 960): height x width in LR pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size HxW (height x width, e.g. 540x960)")
    h, w = int(m.group(1)), int(m.group(2))
    if h < 2 or w < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: the smallest supported LR size is 2x2")
    return h, w


def add_model_options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("network")
    g.add_argument("--variant", choices=["tiny", "light", "full"],
                   help="packaged weights of this variant (default light; not with a --model of another one)")
    g.add_argument("-s", "--scale", type=int, choices=[2, 3, 4], help="upscaling factor (default 2, or the model file's)")
    g.add_argument("-m", "--model", metavar="PATH",
                   help="weights file: the authors' .pth or a .safetensors (variant and scale are read from it)")
    g.add_argument("--no-tlc", action="store_true",
                   help="global attention over the whole frame instead of the authors' TLC windows")


def add_shape_options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("input size (LR pixels, HxW = height x width)")
    g.add_argument("--size", type=parse_hw, metavar="HxW", help="one fixed size (a static graph)")
    g.add_argument("--min", type=parse_hw, metavar="HxW", help="smallest size of a dynamic graph (default %dx%d)"
                   % DEFAULT_RANGE.min_hw)
    g.add_argument("--opt", type=parse_hw, metavar="HxW", help="size TensorRT tunes a dynamic graph for "
                   "(default %dx%d, within min..max)" % DEFAULT_RANGE.opt_hw)
    g.add_argument("--max", type=parse_hw, metavar="HxW", help="largest size of a dynamic graph (default %dx%d)"
                   % DEFAULT_RANGE.max_hw)
    g.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")


def shape_from_args(args: argparse.Namespace, default_dynamic: bool) -> tuple[int | None, int | None,
                                                                              ShapeRange | None]:
    """(height, width, None) for --size, (None, None, range) for --min/--opt/--max (missing
    ones from the defaults, kept within the given ones)."""
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    ranged = any(v is not None for v in (args.min, args.opt, args.max))
    if args.size is not None:
        if ranged:
            raise UsageError("give --size HxW (static) or --min/--opt/--max HxW (dynamic), not both")
        return args.size[0], args.size[1], None
    if not ranged and not default_dynamic:
        raise UsageError("choose the input size: --size HxW for a static graph, or --min/--opt/--max HxW "
                         "for a dynamic one")
    lo = args.min or tuple(min([d, *(v[i] for v in (args.opt, args.max) if v)]) for i, d in
                           enumerate(DEFAULT_RANGE.min_hw))
    hi = args.max or tuple(max([d, *(v[i] for v in (args.min, args.opt) if v)]) for i, d in
                           enumerate(DEFAULT_RANGE.max_hw))
    opt = args.opt or tuple(min(max(d, lo[i]), hi[i]) for i, d in enumerate(DEFAULT_RANGE.opt_hw))
    try:
        return None, None, ShapeRange(tuple(lo), tuple(opt), tuple(hi))
    except ValueError as exc:
        raise UsageError(f"--min/--opt/--max: {exc}") from None


def load_from_args(args: argparse.Namespace) -> DLGSANet:
    """The network the options name (raises WeightsError with the reason and the fix)."""
    from ..weights import load_model

    return load_model(args.model, args.variant, args.scale, tlc=not args.no_tlc)


def hw_text(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"
