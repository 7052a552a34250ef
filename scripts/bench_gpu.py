#!/usr/bin/env python
"""Benchmark the GPU backends: ms per frame, frames/s, achieved TFLOP/s, peak GPU memory.

Rows: backend (cuda, and trt where TensorRT is usable) x variant x scale x precision x input
size, one frame per forward pass, TLC on, whole frames (no tiles). A last row per backend runs
720p x2 fp16 through ``StreamRunner`` with 2 streams fed by 4 threads (frames in flight).
Timings: ``--warmup`` passes, then ``--repeats`` passes between CUDA events, input already on
the GPU; weights are the default initialisation (speed does not depend on their values).

    python scripts/bench_gpu.py --json bench/gpu.json
    python scripts/bench_gpu.py --scales 2 --sizes 1280x720 --precisions fp16
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time

import torch

from bench_cpu import macs_per_frame  # scripts/ is on sys.path when this file runs
from dlgsa_vs.arch import build_model
from dlgsa_vs.backends import PRECISIONS, StreamRunner, trt_problem
from dlgsa_vs.inference import Upscaler

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def time_row(up: Upscaler, w: int, h: int, warmup: int, repeats: int, budget_s: float) -> dict:
    x = torch.rand(1, 3, h, w, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        up(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    start.record()
    n = 0
    while n < repeats and (n == 0 or time.perf_counter() - t0 < budget_s):
        up(x)
        n += 1
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / n
    return dict(ms_per_frame=round(ms, 2), fps=round(1000 / ms, 2), frames_timed=n,
                peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))


def streams_row(up: Upscaler, w: int, h: int, frames: int, num_streams: int, threads: int) -> dict:
    runner = StreamRunner(up, num_streams)
    x = torch.rand(1, 3, h, w)  # on the CPU, as a front end hands frames over
    runner(x)
    todo = list(range(frames))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            runner(x)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    s = (time.perf_counter() - t0) / frames
    return dict(ms_per_frame=round(1000 * s, 2), fps=round(1 / s, 2), frames_timed=frames,
                note=f"{num_streams} streams, {threads} threads, host frames in and out")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["light"])
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--precisions", nargs="+", default=["fp16", "fp32"], choices=list(PRECISIONS))
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="480p 720p 1080p or WxH")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--row-seconds", type=float, default=2.0, help="stop timing a row after this long")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; nothing to measure", file=sys.stderr)
        return 1
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name()
    backends = ["cuda"] + ([] if trt_problem() else ["trt"])
    rows = []

    def save():  # after every row: a run cut short keeps what it measured
        if args.json:
            meta = dict(gpu=gpu, torch=torch.__version__, cuda=torch.version.cuda,
                        date=datetime.date.today().isoformat(), rows=rows)
            with open(args.json, "w") as fh:
                json.dump(meta, fh, indent=1)
    print(f"{gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}, backends: {', '.join(backends)}")
    print(f"{'backend':7} {'model':9} {'prec':5} {'input':>10} {'ms/frame':>9} {'fps':>7} {'TFLOP/s':>8} {'GiB':>6}")
    for backend in backends:
        for variant in args.variants:
            for scale in args.scales:
                model = build_model(variant, scale)
                for prec in args.precisions:
                    for size in args.sizes:
                        w, h = SIZES.get(size) or tuple(map(int, size.split("x")))
                        up = Upscaler(model, "cuda", PRECISIONS[prec])
                        if backend == "trt":
                            from dlgsa_vs.trt.engine import engine_for

                            up.network = engine_for(up.model, precision=prec, batch=1, height=h, width=w,
                                                    device=torch.device("cuda"))
                        try:
                            r = time_row(up, w, h, args.warmup, args.repeats, args.row_seconds)
                        except torch.OutOfMemoryError:
                            r = dict(error="out of GPU memory")
                        torch.cuda.empty_cache()
                        if "ms_per_frame" in r:
                            r["tflops"] = round(2 * macs_per_frame(variant, scale, w, h) / r["ms_per_frame"] / 1e9, 1)
                        r.update(backend=backend, variant=variant, scale=scale, precision=prec, input=f"{w}x{h}")
                        rows.append(r)
                        print(f"{backend:7} {variant + ' x' + str(scale):9} {prec:5} {w:>5}x{h:<4} "
                              + (f"{r['ms_per_frame']:9.1f} {r['fps']:7.2f} {r['tflops']:8.1f} {r['peak_gib']:6.2f}"
                                 if "ms_per_frame" in r else r["error"]), flush=True)
                        save()
        if backend == "cuda" and 2 in args.scales and "fp16" in args.precisions:
            up = Upscaler(build_model(args.variants[0], 2), "cuda", torch.float16)
            r = streams_row(up, 1280, 720, frames=24, num_streams=2, threads=4)
            r.update(backend=backend, variant=args.variants[0], scale=2, precision="fp16", input="1280x720")
            rows.append(r)
            print(f"{backend:7} {args.variants[0] + ' x2':9} fp16   1280x720 {r['ms_per_frame']:9.1f} "
                  f"{r['fps']:7.2f}   ({r['note']})", flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
