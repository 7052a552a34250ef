"""What the command-line tools share: model options, clean one-line errors."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


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


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255)


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8."""
    return frame.mul(255).round_().clamp_(0, 255).byte().permute(1, 2, 0).cpu().numpy()


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
