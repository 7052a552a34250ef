#!/usr/bin/env python
"""Y-PSNR / SSIM of DLGSANet (or bicubic only) on an SR benchmark such as Set5 or Set14.

    python scripts/eval_sr.py --hr ../shared/data/benchmarks/Set5/HR \\
        --lr ../shared/data/benchmarks/Set5/LR_bicubic/X4 --scale 4 --model bicubic --json out.json

* ``--lr``: folder of ``<name>x{s}.png`` LR files; without it, LR is made from the
  mod-cropped HR with MATLAB-compatible bicubic ``imresize``.
* ``--crop``: border removed before measuring (default: the scale).
* ``--model``: a weights file, ``bicubic`` for the bicubic baseline only, or left out
  for the packaged weights of ``--variant`` (default light) at ``--scale``.

Prints a table (per image: bicubic and model PSNR/SSIM, then the mean) and, with
``--json``, writes the full result (see :func:`dlgsa_vs.evaluate.evaluate`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from dlgsa_vs.cli.common import weights_message
from dlgsa_vs.evaluate import evaluate


def make_model_upscaler(model_path: str | None, variant: str | None, scale: int, device: str):
    """Load DLGSANet lazily and wrap it as ``f(lr_uint8) -> sr_uint8`` (fp32 on the ``device``
    backend, cpu or cuda)."""
    from dlgsa_vs.backends import create_upscaler
    from dlgsa_vs.inference import image_to_tensor, tensor_to_image

    upscaler = create_upscaler(model_path=model_path, variant=variant, scale=scale, backend=device, precision="fp32")
    return (lambda lr: tensor_to_image(upscaler(image_to_tensor(lr))[0])), upscaler.model


def _remember(upscaler):
    cache: dict[bytes, np.ndarray] = {}

    def upscale(lr: np.ndarray) -> np.ndarray:
        key = lr.tobytes() + bytes(str(lr.shape), "ascii")
        if key not in cache:
            cache[key] = upscaler(lr)
        return cache[key]

    return upscale


def _fmt(v: dict | None) -> str:
    if v is None:
        return f"{'-':>8} {'-':>7}"
    p = "inf" if math.isinf(v["psnr"]) else f"{v['psnr']:.3f}"
    return f"{p:>8} {v['ssim']:.4f}"


def format_table(result: dict, model_label: str | None) -> str:
    names = [r["name"] + (" (gray)" if r["gray"] else "") for r in result["images"]]
    w = max([len(n) for n in names] + [len("mean"), 5])
    head2 = f"{model_label or 'model'} PSNR/SSIM" if model_label else ""
    lines = [f"x{result['scale']}, crop {result['crop_border']}, LR from {result['lr_source']}",
             f"{'image':<{w}}  {'bicubic PSNR/SSIM':>16}  {head2}".rstrip()]
    lines.append("-" * len(lines[-1]))
    for n, r in zip(names, result["images"]):
        line = f"{n:<{w}}  {_fmt(r['bicubic'])}"
        if model_label:
            line += f"  {_fmt(r['model'])}"
        lines.append(line)
    lines.append("-" * len(lines[1]))
    line = f"{'mean':<{w}}  {_fmt(result['mean']['bicubic'])}"
    if model_label:
        line += f"  {_fmt(result['mean']['model'])}"
    lines.append(line)
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hr", required=True, help="folder of HR images")
    ap.add_argument("--lr", help="folder of LR images <name>x{s}.png (default: bicubic-downscale HR)")
    ap.add_argument("--scale", type=int, required=True, choices=(2, 3, 4))
    ap.add_argument("--crop", type=int, nargs="+", default=[None],
                    help="border(s) to remove (default: the scale); e.g. --crop 2 4 for both conventions")
    ap.add_argument("--model", default=None,
                    help="weights file, or 'bicubic' for the bicubic baseline only "
                         "(default: packaged weights of --variant)")
    ap.add_argument("--variant", default=None,
                    help="tiny / light / full (default: light for packaged weights; "
                         "with a file, read from it and checked if given)")
    ap.add_argument("--gray-as-y", action="store_true",
                    help="measure grayscale images on their grey values (classic MATLAB tables) "
                         "instead of BT.601 Y of the expanded RGB image")
    ap.add_argument("--device", default="cpu", help="backend for the model: cpu (default) or cuda (fp32 on either)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)

    upscaler = None
    label = None
    info: dict = {"model": "bicubic"}
    if args.model != "bicubic":
        try:
            upscaler, model = make_model_upscaler(args.model, args.variant, args.scale, args.device)
        except (ImportError, OSError, ValueError) as e:  # WeightsError is a ValueError
            print(f"error: cannot load the model: {weights_message(e, '--model')}\n(use --model bicubic for the bicubic "
                  "baseline only)", file=sys.stderr)
            return 2
        label = "model"
        info = {"model": args.model or "packaged", "variant": args.variant or "from weights",
                "device": args.device,
                "params": int(sum(p.numel() for p in model.parameters()))}

    if upscaler is not None and len(args.crop) > 1:
        upscaler = _remember(upscaler)  # each image is upscaled once for all crop borders
    results = []
    for crop in args.crop:
        t0 = time.perf_counter()
        result = evaluate(args.hr, args.scale, upscaler, lr_dir=args.lr, crop_border=crop,
                          gray_as_y=args.gray_as_y)
        result["model_info"] = info
        result["seconds"] = round(time.perf_counter() - t0, 3)
        print(format_table(result, label))
        results.append(result)
    if args.json:
        write_json(args.json, results[0] if len(results) == 1 else {"results": results})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
