"""Compare two model files on the same input: do they compute the same function?

    dlgsa-compare net_g_authors.pth dlgsanet_light_x2.safetensors
    dlgsa-compare a.pth b.pth --image photo.png --no-tlc

Prints the largest absolute difference of the raw outputs and the PSNR between them.
Typical use: check that a converted or re-saved checkpoint is the authors' network.
"""
from __future__ import annotations

import math
import sys

import torch

from ..image.imageio import read_image
from ..runtime.inference import image_to_tensor
from ..runtime.weights import WeightsError, load_model
from .common import Parser, fail
from .upscale_image import demo_image


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="dlgsa-compare", description=__doc__.splitlines()[0])
    ap.add_argument("model_a")
    ap.add_argument("model_b")
    ap.add_argument("--image", help="input picture (default: a generated test picture)")
    ap.add_argument("--no-tlc", action="store_true", help="compare with global attention")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="max abs difference accepted as 'the same' (default 1e-4)")
    args = ap.parse_args(argv)
    try:
        a = load_model(args.model_a, tlc=not args.no_tlc)
        b = load_model(args.model_b, tlc=not args.no_tlc)
        x = image_to_tensor(read_image(args.image) if args.image else demo_image(96, 64))
    except (WeightsError, OSError, ValueError) as exc:
        return fail(str(exc))
    if a.upscale != b.upscale:
        return fail(f"the models upscale differently: x{a.upscale} vs x{b.upscale}")
    with torch.inference_mode():
        ya, yb = a(x), b(x)
    diff = (ya - yb).abs().max().item()
    mse = ((ya.clamp(0, 1) - yb.clamp(0, 1)) ** 2).mean().item()
    psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
    same = diff <= args.tolerance
    print(f"x{a.upscale} on {tuple(x.shape[-2:])}: max |a - b| = {diff:.3g}, PSNR(a, b) = {psnr:.2f} dB "
          f"-> {'same function' if same else 'DIFFERENT'} (tolerance {args.tolerance:g})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
