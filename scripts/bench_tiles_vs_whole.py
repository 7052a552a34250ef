#!/usr/bin/env python
"""Auto tiles against whole frames on the CPU at one frame size: seconds and the PSNR between
the two outputs (issue 19: "not slower than whole frames", "above 60 dB").

    python scripts/bench_tiles_vs_whole.py --size 1920x1080 --json bench/tiles_vs_whole.json

The LR frame is real texture: Set14's HR pictures mirrored side by side up to the size
(a synthetic pattern would flatter both). Light x2, packaged weights, fp32, TLC on, in one
process: whole, auto, whole again, so that a change in the machine's load shows as a gap
between the two whole-frame runs instead of passing for a tiling effect.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlgsa_vs.runtime.backends import create_upscaler
from dlgsa_vs.image.imageio import read_image

SET14 = Path(__file__).resolve().parents[1].parent / "shared/data/benchmarks/Set14/HR"


def texture(width: int, height: int) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: Set14 HR pictures placed side by side (mirrored rows of them)."""
    pics = [read_image(p) for p in sorted(SET14.glob("*.png"))]
    rows, y = [], 0
    while y < height:
        row, x, i = [], 0, len(rows)
        while x < width:
            pic = pics[i % len(pics)]
            pic = pic[:, ::-1] if (i // len(pics)) % 2 else pic
            row.append(pic[:min(480, pic.shape[0])])
            x += row[-1].shape[1]
            i += 1
        h = min(p.shape[0] for p in row)
        rows.append(np.concatenate([p[:h] for p in row], axis=1)[:, :width])
        y += h
    frame = np.concatenate(rows, axis=0)[:height]
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(frame[..., :3])).permute(2, 0, 1)[None].float() / 255


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080", help="LR frame WxH (default 1920x1080)")
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if not SET14.is_dir():
        print(f"skipped: {SET14} is not here (../shared/data/benchmarks)", file=sys.stderr)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    x = texture(w, h)
    whole = create_upscaler(variant="light", scale=2, backend="cpu", tile=(0, 0))
    auto = create_upscaler(variant="light", scale=2, backend="cpu", tile="auto")
    runs, outs = [], {}
    load = os.getloadavg()[0]
    for name, up in (("whole", whole), ("auto", auto), ("whole", whole)):
        t = time.perf_counter()
        with torch.inference_mode():
            outs[name] = up(x)
        runs.append((name, time.perf_counter() - t))
        print(f"{name:6s} {runs[-1][1]:8.1f} s", flush=True)
    mse = float(((outs["whole"] - outs["auto"]) ** 2).mean())
    whole_s = [s for n, s in runs if n == "whole"]
    auto_s = next(s for n, s in runs if n == "auto")
    row = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=platform.machine(),
               cpus=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
               size=args.size, tile=auto.tile_summary(h, w), whole_seconds=[round(s, 1) for s in whole_s],
               auto_seconds=round(auto_s, 1), auto_over_whole=round(auto_s / (sum(whole_s) / 2), 3),
               psnr_auto_vs_whole_db=round(10 * math.log10(1 / mse), 2) if mse else None,
               load_average_1min=[round(load, 2), round(os.getloadavg()[0], 2)])
    print(f"{row['tile']}\nauto / whole = {row['auto_over_whole']} (whole {whole_s[0]:.1f} s and "
          f"{whole_s[1]:.1f} s), PSNR auto vs whole {row['psnr_auto_vs_whole_db']} dB")
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
