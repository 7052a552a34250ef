#!/usr/bin/env python
"""How far tiled output is from whole-frame output, with crops placed on or off the whole
frame's TLC window grid (issue 19's 60 dB floor).

    python scripts/bench_tile_alignment.py --json bench/tile_alignment.json

Set14 baboon (x2 LR, 250x240: the most textured picture of the set), light x2 packaged
weights, CPU fp32, TLC on. The picture is cut into horizontal strips only (full width), so
along the columns every crop has the whole frame's windows and the rows alone say what the
crop placement costs. Each row of the table: the strips as ``tiling.tile_spans`` lays them out
for a tile and tile_pad, or ``aligned``: crops of k + j * step rows starting on multiples of
the whole frame's window step, so that every window of a crop is a window of the whole frame.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from dlgsa_vs.image.imageio import read_image
from dlgsa_vs.arch.tlc_grid import tlc_window_starts
from dlgsa_vs.runtime.tiling import tile_spans, tlc_window
from dlgsa_vs.runtime.weights import load_model

BABOON = Path(__file__).resolve().parents[1].parent / "shared/data/benchmarks/Set14/LR_bicubic/X2/baboonx2.png"


def aligned_strips(length: int, k: int, j: int) -> list[tuple[int, int, int, int]] | None:
    """(crop, size, own_start, own_end) of crops of k + j * step rows on the window grid, or
    None when the grid does not allow it (the last crop must land on the grid too)."""
    starts = tlc_window_starts(length, k)
    step = starts[1] - starts[0]
    size = k + j * step
    if size >= length or tlc_window_starts(size, k) != [i * step for i in range(j + 1)] or (length - size) % step:
        return None
    crops = list(range(0, length - size + 1, j * step))
    if crops[-1] != length - size:
        return None
    bounds = [0] + [c + k // 2 for c in crops[1:]] + [length]   # mid-overlap: k // 2 rows of context
    return [(c, size, bounds[i], bounds[i + 1]) for i, c in enumerate(crops)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=BABOON)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if not args.image.is_file():
        print(f"skipped: {args.image} is not here (../shared/data/benchmarks)", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    model = load_model(variant="light", scale=2)
    k = tlc_window(model)
    x = torch.from_numpy(read_image(args.image)).permute(2, 0, 1)[None].float() / 255
    h = x.shape[-2]
    rows = []
    with torch.no_grad():
        t = time.perf_counter()
        whole = model(x)
        whole_s = time.perf_counter() - t

        def measure(label: str, strips) -> None:
            out = torch.zeros_like(whole)
            t0 = time.perf_counter()
            for crop, size, a, b in strips:
                y = model(x[:, :, crop:crop + size])
                out[:, :, 2 * a:2 * b] = y[:, :, 2 * (a - crop):2 * (b - crop)]
            mse = ((out - whole) ** 2).mean().item()
            rows.append(dict(layout=label, strips=[list(s) for s in strips], seconds=round(time.perf_counter() - t0, 2),
                             computed_rows=sum(s[1] for s in strips), psnr_db=round(10 * math.log10(1 / mse), 2)))
            print(f"{label:24s} {len(strips)} strips of {strips[0][1]} rows  {rows[-1]['psnr_db']:6.2f} dB  "
                  f"{rows[-1]['computed_rows']} rows computed", flush=True)

        for tile, pad in ((64, 16), (100, 16), (80, 24), (120, 24)):
            measure(f"tile {tile}, tile_pad {pad}", [(s.crop, s.size, s.own_start, s.own_end)
                                                     for s in tile_spans(h, tile, pad)])
        for j in (1, 2):
            strips = aligned_strips(h, k, j)
            if strips:
                measure(f"aligned, k + {j} steps", strips)
    print(f"whole frame: {h} rows, {whole_s:.1f} s; TLC window {k}, whole-frame window starts "
          f"{tlc_window_starts(h, k)}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=platform.machine(),
            torch=torch.__version__, threads=args.threads, image=args.image.name, tlc_window=k,
            whole_seconds=round(whole_s, 2), rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
