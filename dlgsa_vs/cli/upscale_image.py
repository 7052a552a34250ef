"""Upscale an image file with DLGSANet on the CPU (or a GPU) and write a PNG.

    dlgsa-upscale-image photo.png                 -> photo_x2.png
    dlgsa-upscale-image photo.png -s 4 -o big.png
    dlgsa-upscale-image --demo                    -> makes demo.png, writes demo_x2.png
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..backends import create_backend_upscaler, select_backend
from ..imageio import read_image, write_png
from ..inference import image_to_tensor, tensor_to_image
from ..packaged import DEFAULT_MODEL
from ..settings import SettingsError
from ..weights import WeightsError
from .common import (OPTION_NAMES, Parser, add_device_options, add_model_options, fail, settings_from_args, usage_message,
                     weights_message)


def demo_image(width: int = 192, height: int = 128) -> np.ndarray:
    """A test picture made here: a zone plate, colour ramps and hard-edged shapes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
    zone = 0.5 + 0.5 * np.cos(r2 / (0.9 * width))
    img = np.stack([zone * (x / width), zone * 0.8 + 0.2 * (y / height), 1 - zone * (x / width)], axis=-1)
    img[20:50, 20:60] = (0.9, 0.2, 0.1)            # a red block
    img[(x - 150) ** 2 + (y - 90) ** 2 < 18 ** 2] = (0.1, 0.3, 0.9)  # a blue disc
    img[100:104, 10:180] = 1.0                       # a thin white bar
    return (img * 255).round().clip(0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="dlgsa-upscale-image", description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", help="image file (PNG, BMP, JPEG, ...)")
    ap.add_argument("-o", "--output", help="output PNG (default: <input>_x<scale>.png)")
    ap.add_argument("--demo", action="store_true", help="make a test picture (demo.png) and upscale it")
    add_model_options(ap, DEFAULT_MODEL)
    add_device_options(ap)
    args = ap.parse_args(argv)
    if args.demo == bool(args.input):
        return fail("give an image file, or --demo (not both)")
    try:
        settings = settings_from_args(args)
        backend = select_backend(settings)
    except SettingsError as exc:
        return fail(usage_message(exc))
    if settings.threads:
        torch.set_num_threads(settings.threads)

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if args.demo:
        src = Path(args.output or "demo_x.png").with_name("demo.png")
        write_png(src, demo_image())
    else:
        src = Path(args.input)
        if not src.is_file():
            return fail(f"input image not found: {src}")
    try:
        rgb = read_image(src)
    except Exception as exc:  # PyAV raises several kinds for unreadable files
        return fail(f"cannot read {src} as an image: {exc}")
    try:
        upscaler = create_backend_upscaler(settings, backend, input_hw=rgb.shape[:2],
                                           log=lambda m: print(m, file=sys.stderr), names=OPTION_NAMES)
    except SettingsError as exc:
        return fail(usage_message(exc))
    except WeightsError as exc:
        return fail(weights_message(exc))
    out = Path(args.output) if args.output else src.with_name(f"{src.stem}_x{upscaler.scale}.png")
    if out.resolve() == src.resolve():
        return fail(f"the output would overwrite the input {src}: choose another -o")

    start = time.perf_counter()
    result = tensor_to_image(upscaler(image_to_tensor(rgb))[0])
    seconds = time.perf_counter() - start
    write_png(out, result)
    if upscaler.tile_for(*rgb.shape[:2]) != (0, 0):
        print(f"note: {upscaler.tile_summary(*rgb.shape[:2])}", file=sys.stderr)
    h, w = rgb.shape[:2]
    print(f"{src} ({w}x{h}) -> {out} ({result.shape[1]}x{result.shape[0]}), x{upscaler.scale} "
          f"in {seconds:.1f} s on {upscaler.plan.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
