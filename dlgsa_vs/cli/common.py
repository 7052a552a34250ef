"""What the command-line tools share: model options, clean one-line errors.

No torch here: ``--help`` and argument errors come back at once.
"""
from __future__ import annotations

import argparse
import sys


def add_model_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-s", "--scale", type=int, choices=[2, 3, 4],
                    help="upscaling factor (default 2, or the model file's)")
    ap.add_argument("--variant", choices=["tiny", "light", "full"],
                    help="packaged model variant (default light)")
    ap.add_argument("-m", "--model", metavar="PATH",
                    help="model file: the authors' .pth or a .safetensors (variant and scale are read from it)")
    ap.add_argument("--tile", type=int, nargs=2, metavar=("W", "H"), default=(0, 0),
                    help="process in LR tiles of W x H pixels (0 0 = whole frame)")
    ap.add_argument("--tile-pad", type=int, default=16, help="LR context pixels around each tile")
    ap.add_argument("--no-tlc", action="store_true",
                    help="global attention over the whole frame instead of the authors' TLC windows")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")


def weights_message(exc: Exception, option: str = "-m/--model") -> str:
    """A weights error worded for the command line (the library names its keyword argument)."""
    return str(exc).replace("with model_path", f"with {option}")


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
