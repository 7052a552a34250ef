#!/usr/bin/env python
"""Tile size on the CPU: seconds per pixel vs crop size, and peak memory per pixel.

Two measurements feed ``dlgsa_vs/runtime/tiling.py``:

* speed: one forward pass of light x2 (fp32, channels-last, TLC on, as the ``Upscaler`` runs
  it) on square LR crops of each size, ``--repeats`` times after one warm-up pass; seconds
  per crop pixel, and per *owned* pixel (the crop less ``--pad`` context on each side, what a
  tile contributes to the frame). The crop with the lowest seconds per owned pixel is the
  CPU's speed cap (``CPU_FASTEST_CROP_PIXELS``).
* memory: for each variant/scale, peak RSS growth of a fresh process over one forward pass at
  two sizes (``resource.getrusage(...).ru_maxrss``, after a warm-up at 32x32 so torch's own
  buffers are counted in the baseline); the slope is bytes per LR crop pixel
  (``CPU_BYTES_PER_PIXEL``).

    .venv/bin/python scripts/bench_tiles.py --json bench/tiles.json
    .venv/bin/python scripts/bench_tiles.py --sizes 96,128 --repeats 1 --no-memory
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def _model(variant: str, scale: int):
    import torch

    from dlgsa_vs.arch import build_model

    torch.manual_seed(0)
    return build_model(variant, scale).eval()


def _pass(model, size: int) -> float:
    import torch

    x = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    t = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - t


def speed(sizes: list[int], repeats: int, pad: int) -> list[dict]:
    import torch

    model = _model("light", 2).to(memory_format=torch.channels_last)
    rows = []
    for size in sizes:
        _pass(model, size)  # warm-up: allocations, TLC window indices
        times = [_pass(model, size) for _ in range(repeats)]
        best = min(times)
        owned = max(size - 2 * pad, 1) ** 2
        row = dict(crop=size, crop_pixels=size * size, seconds=times, best_s=best,
                   us_per_crop_px=best / size ** 2 * 1e6, us_per_owned_px=best / owned * 1e6,
                   spread=(max(times) - best) / best)
        rows.append(row)
        print(f"{size:5d}x{size:<5d} {best:8.2f} s  {row['us_per_crop_px']:7.1f} us/crop px  "
              f"{row['us_per_owned_px']:7.1f} us/owned px (pad {pad})  spread {row['spread']:.0%}",
              flush=True)
    return rows


def _child(variant: str, scale: int, size: int) -> None:
    """In a fresh process: print the peak RSS growth (bytes) of one pass at size x size."""
    model = _model(variant, scale)
    _pass(model, 32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _pass(model, size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(base=base * 1024, growth=(peak - base) * 1024)))


def memory(configs: list[tuple[str, int]], sizes: tuple[int, int]) -> list[dict]:
    rows = []
    for variant, scale in configs:
        growth = []
        for size in sizes:
            out = subprocess.run([sys.executable, __file__, "--child", variant, str(scale), str(size)],
                                 capture_output=True, text=True, check=True)
            growth.append(json.loads(out.stdout.strip().splitlines()[-1])["growth"])
        a, b = sizes
        slope = (growth[1] - growth[0]) / (b * b - a * a)
        row = dict(variant=variant, scale=scale, sizes=list(sizes), growth_bytes=growth,
                   bytes_per_pixel=slope, bytes_per_pixel_at_largest=growth[1] / (b * b))
        rows.append(row)
        print(f"{variant} x{scale}: peak RSS growth {growth[0] / 2**20:.0f} MiB at {a}^2, "
              f"{growth[1] / 2**20:.0f} MiB at {b}^2 -> {slope:.0f} B/px (slope), "
              f"{row['bytes_per_pixel_at_largest']:.0f} B/px (at {b}^2)", flush=True)
    return rows


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,96,128,160,192,256,320,384,512",
                    help="square LR crop sizes for the speed curve")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pad", type=int, default=16, help="tile_pad for the per-owned-pixel column")
    ap.add_argument("--memory-sizes", default="128,384")
    ap.add_argument("--memory-configs", default="light:2,light:4,full:2")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    result = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=platform.machine(),
                  cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                  load_average_at_start=os.getloadavg())
    if not args.no_speed:
        result["speed"] = speed([int(s) for s in args.sizes.split(",")], args.repeats, args.pad)
        best = min(result["speed"], key=lambda r: r["us_per_owned_px"])
        result["fastest_crop"] = best["crop"]
        print(f"fastest per owned pixel: {best['crop']}x{best['crop']} crops "
              f"({best['us_per_owned_px']:.1f} us/owned px)")
    if not args.no_memory:
        configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.memory_configs.split(",")]
        a, b = (int(s) for s in args.memory_sizes.split(","))
        result["memory"] = memory(configs, (a, b))
    result["load_average_at_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
