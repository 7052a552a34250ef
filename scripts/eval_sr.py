#!/usr/bin/env python
"""Y-PSNR / SSIM of DLGSANet (or bicubic only) on an SR benchmark such as Set5 or Set14.

    python scripts/eval_sr.py --hr ../shared/data/benchmarks/Set5/HR \\
        --lr ../shared/data/benchmarks/Set5/LR_bicubic/X4 --scale 4 --model bicubic --json out.json

* ``--lr``: folder of ``<name>x{s}.png`` LR files; without it, LR is made from the
  mod-cropped HR with MATLAB-compatible bicubic ``imresize``.
* ``--crop``: border removed before measuring (default: the scale).
* ``--model``: a weights file, ``bicubic`` for the bicubic baseline only, or left out
  for the packaged weights of ``--variant`` (default light; light-video for the weights
  trained on compressed video) at ``--scale``.
* ``--degrade ENCODER:CRF`` (repeatable; ``clean`` for the untouched LR): compressed input.
  Each LR image (from ``--lr`` or made from HR) goes through that encoder
  (:mod:`dlgsa_vs.train.degrade`: 8-bit 4:2:0 at the LR size, BT.709 limited range) and back before
  the network *and* the bicubic baseline; PSNR/SSIM are against the clean HR as always. By
  default each image is encoded alone, as one key frame (intra: deterministic, no random
  draws, the artefacts of a video's I frames). ``--degrade-frames N`` (N > 1) instead encodes
  a sequence of N shifted crops of the image (a seeded random walk of up to 2 px a frame,
  ``--degrade-seed``) and measures frame N // 2, a P/B frame: the artefacts of most frames
  of a video.

    python scripts/eval_sr.py --hr ../shared/data/benchmarks/Set5/HR \\
        --lr ../shared/data/benchmarks/Set5/LR_bicubic/X2 --scale 2 \\
        --degrade clean --degrade libx264:23 --degrade libx264:30 --json out.json

Prints a table (per image: bicubic and model PSNR/SSIM, then the mean) and, with
``--json``, writes the full result (see :func:`dlgsa_vs.train.evaluate.evaluate`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import tempfile

import numpy as np

from dlgsa_vs.cli.common import weights_message
from dlgsa_vs.train.evaluate import evaluate
from dlgsa_vs.runtime.packaged import MODELS


def make_model_upscaler(model_path: str | None, variant: str | None, scale: int, device: str):
    """Load DLGSANet lazily and wrap it as ``f(lr_uint8) -> sr_uint8`` (fp32 on the ``device``
    backend, cpu or cuda)."""
    from dlgsa_vs.runtime.backends import create_upscaler
    from dlgsa_vs.runtime.inference import image_to_tensor, tensor_to_image

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


def degraded_lr_dir(hr_dir: str, lr_dir: str | None, scale: int, spec: str, out_dir: Path,
                    frames: int = 1, seed: int = 0) -> dict:
    """Write ``<name>x{scale}.png`` LR images degraded by ``spec`` (ENCODER:CRF) into ``out_dir``;
    returns the degradation's description for the result."""
    from dlgsa_vs.train.degrade import Degradation, degrade_image, parse_spec
    from dlgsa_vs.train.evaluate import find_lr, list_images
    from dlgsa_vs.image.imageio import read_image_info, write_png
    from dlgsa_vs.image.imresize import bicubic_downscale, modcrop

    encoder, crf = parse_spec(spec)
    target = frames // 2 if frames > 1 else 0
    d = Degradation(encoder, crf, frames=max(frames, 1), target=target, max_shift=2 if frames > 1 else 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, hr_path in enumerate(list_images(hr_dir)):
        if lr_dir is not None:
            lr = read_image_info(find_lr(Path(lr_dir), hr_path.stem, scale))[0]
        else:
            lr = bicubic_downscale(modcrop(read_image_info(hr_path)[0], scale), scale)
        rng = np.random.default_rng([seed, i])
        write_png(out_dir / f"{hr_path.stem}x{scale}.png", degrade_image(lr, d, rng))
    return {"spec": spec, "encoder": encoder, "crf": crf, "frames": d.frames, "measured_frame": d.target,
            "seed": seed if frames > 1 else None, "description": d.describe(),
            "yuv": "yuv420p 8-bit, BT.709 matrix, limited range, left chroma siting"}


def format_summary(results: list[dict]) -> str:
    rows = [(r.get("degradation", {}).get("spec", "clean"), r["mean"]["bicubic"], r["mean"]["model"])
            for r in results]
    w = max(len(r[0]) for r in rows + [("input",)])
    lines = [f"x{results[0]['scale']} means, crop {results[0]['crop_border']}",
             f"{'input':<{w}}  {'bicubic PSNR/SSIM':>16}  model PSNR/SSIM"]
    lines.append("-" * len(lines[-1]))
    lines += [f"{n:<{w}}  {_fmt(b)}  {_fmt(m)}" for n, b, m in rows]
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
    ap.add_argument("--variant", default=None, choices=list(MODELS),
                    help="a packaged model: light (clean bicubic training) or light-video (compressed "
                         "video) (default: light); with a file, its architecture is checked if given")
    ap.add_argument("--gray-as-y", action="store_true",
                    help="measure grayscale images on their grey values (classic MATLAB tables) "
                         "instead of BT.601 Y of the expanded RGB image")
    ap.add_argument("--device", default="cpu", help="backend for the model: cpu (default) or cuda (fp32 on either)")
    ap.add_argument("--degrade", action="append", metavar="ENCODER:CRF",
                    help="compressed input: pass the LR through this encoder first (libx264, libx265, "
                         "libsvtav1, libvpx-vp9; e.g. libx264:30); repeatable; 'clean' for the LR as is")
    ap.add_argument("--degrade-frames", type=int, default=1,
                    help="1 (default): each LR encoded alone as a key frame; N > 1: as frame N//2 of a "
                         "sequence of N shifted crops (P/B-frame artefacts)")
    ap.add_argument("--degrade-seed", type=int, default=0, help="seed of the crops' shifts (--degrade-frames > 1)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    if args.degrade:
        from dlgsa_vs.train.degrade import parse_spec

        try:
            for spec in args.degrade:
                if spec != "clean":
                    parse_spec(spec)
        except ValueError as e:
            ap.error(str(e))
        if len(args.crop) > 1:
            ap.error("--degrade takes one --crop")

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
    if args.degrade:
        with tempfile.TemporaryDirectory(prefix="eval_sr_degrade_") as tmp:
            for k, spec in enumerate(args.degrade):
                t0 = time.perf_counter()
                degradation = None
                lr_dir = args.lr
                if spec != "clean":
                    lr_dir = Path(tmp) / str(k)
                    degradation = degraded_lr_dir(args.hr, args.lr, args.scale, spec, lr_dir,
                                                  args.degrade_frames, args.degrade_seed)
                result = evaluate(args.hr, args.scale, upscaler, lr_dir=lr_dir, crop_border=args.crop[0],
                                  gray_as_y=args.gray_as_y)
                result["lr_dir"] = args.lr
                result["degradation"] = degradation or {"spec": "clean"}
                if degradation:
                    result["lr_source"] += f", then {degradation['description']}"
                result["model_info"] = info
                result["seconds"] = round(time.perf_counter() - t0, 3)
                print(format_table(result, label), flush=True)
                results.append(result)
        print(format_summary(results))
    else:
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
