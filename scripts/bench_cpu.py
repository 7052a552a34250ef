#!/usr/bin/env python
"""Benchmark the CPU inference path: frames/s, megapixels/s, peak memory, achieved GFLOP/s.

Each (variant, scale, size) runs in its own process so that peak memory is its own.
Achieved GFLOP/s = 2 x the analytic multiply-adds of the network (shared/docs/dlgsanet.md:
light x2 at 1280x720 output = 170 G, i.e. ~738 k per LR pixel) / seconds per frame.

    python scripts/bench_cpu.py --json bench/cpu.json
    python scripts/bench_cpu.py --variants light --scales 4 --sizes 320x180 --repeats 1
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

# Analytic multiply-adds per LR pixel, from the paper's numbers at 1280x720 output.
MACS_AT_720P = {("tiny", 2): 128e9, ("tiny", 3): 57e9, ("tiny", 4): 32e9,
                ("light", 2): 170e9, ("light", 3): 75e9, ("light", 4): 42.5e9,
                ("full", 2): 1097e9, ("full", 3): 486e9, ("full", 4): 274e9}


def macs_per_frame(variant: str, scale: int, w: int, h: int) -> float:
    lr_pixels_720p = (1280 // scale) * (720 // scale)
    return MACS_AT_720P[(variant, scale)] / lr_pixels_720p * w * h


def run_one(variant: str, scale: int, w: int, h: int, repeats: int, tlc: bool) -> dict:
    import torch

    from dlgsa_vs.arch import build_model
    from dlgsa_vs.runtime.inference import Upscaler

    torch.manual_seed(0)
    up = Upscaler(build_model(variant, scale, tlc=tlc))
    x = torch.rand(1, 3, h, w)
    t0 = time.perf_counter()
    up(x)  # warm-up
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        up(x)
        times.append(time.perf_counter() - t0)
    sec = min(times) if times else first
    return dict(variant=variant, scale=scale, lr_size=f"{w}x{h}", out_size=f"{w * scale}x{h * scale}",
                seconds_per_frame=round(sec, 3), fps=round(1 / sec, 4),
                out_megapixels_per_s=round(w * h * scale * scale / sec / 1e6, 4),
                peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                gflop=round(2 * macs_per_frame(variant, scale, w, h) / 1e9, 1),
                achieved_gflops=round(2 * macs_per_frame(variant, scale, w, h) / sec / 1e9, 2),
                threads=torch.get_num_threads(), tlc=tlc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["light"])
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--sizes", nargs="+", default=["160x90", "320x180", "640x360"], help="LR WxH")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up (best is kept)")
    ap.add_argument("--no-tlc", action="store_true")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--one", nargs=4, metavar=("VARIANT", "SCALE", "W", "H"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        v, s, w, h = args.one
        print(json.dumps(run_one(v, int(s), int(w), int(h), args.repeats, not args.no_tlc)))
        return 0

    rows = []
    header = f"{'model':10s} {'LR size':>9s} {'s/frame':>8s} {'fps':>7s} {'out MP/s':>9s} {'peak MiB':>9s} {'GFLOP':>7s} {'GFLOP/s':>8s}"
    print(header)
    for variant in args.variants:
        for scale in args.scales:
            for size in args.sizes:
                w, h = size.split("x")
                cmd = [sys.executable, __file__, "--one", variant, str(scale), w, h,
                       "--repeats", str(args.repeats)] + (["--no-tlc"] if args.no_tlc else [])
                row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                rows.append(row)
                print(f"{variant + ' x' + str(scale):10s} {row['lr_size']:>9s} {row['seconds_per_frame']:8.2f} "
                      f"{row['fps']:7.3f} {row['out_megapixels_per_s']:9.3f} {row['peak_rss_mib']:9d} "
                      f"{row['gflop']:7.1f} {row['achieved_gflops']:8.2f}", flush=True)
    if args.json:
        info = dict(date=time.strftime("%Y-%m-%d"), machine=platform.machine(), processor=platform.processor(),
                    cpu_count=os.cpu_count(), python=platform.python_version())
        try:
            import torch
            info["torch"] = torch.__version__
        except ImportError:
            pass
        with open(args.json, "w") as fh:
            json.dump(dict(info=info, rows=rows), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
