#!/usr/bin/env python
"""Benchmark the GPU backends: ms per frame, frames/s, achieved TFLOP/s, peak GPU memory.

Rows: backend (cuda, and trt where TensorRT is usable) x kernels (torch, triton) x variant x
scale x precision x input size, one frame per forward pass, TLC on, whole frames (no tiles),
the packaged weights, built through ``create_backend_upscaler`` as the front ends do. Then
``--compile`` / ``--cuda-graphs`` rows, a ``StreamRunner`` row (720p x2 fp16, 2 streams fed by
4 threads) and, with ``--profile``, the top CUDA kernels of one light x2 1080p fp16 frame per
kernel choice (``torch.profiler``), so the first GPU minute says where the time goes.
Timings: ``--warmup`` passes, then ``--repeats`` passes between CUDA events, input on the GPU.

    python scripts/bench_gpu.py --json bench/gpu.json --profile
    python scripts/bench_gpu.py --scales 2 --sizes 1280x720 --precisions fp16 --kernels triton
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
from dlgsa_vs.backends import Backend, StreamRunner, create_backend_upscaler, trt_problem
from dlgsa_vs.inference import Upscaler
from dlgsa_vs.settings import PRECISIONS, RunSettings

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


def profile_table(up: Upscaler, w: int, h: int, top: int = 12) -> list[dict]:
    """The CUDA kernels that take the most time in one frame (after a warm-up pass)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(1, 3, h, w, device="cuda")
    up(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        up(x)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]
    total = sum(e.device_time_total for e in events) or 1
    events.sort(key=lambda e: e.device_time_total, reverse=True)
    return [dict(kernel=e.key[:90], calls=e.count, ms=round(e.device_time_total / 1000, 2),
                 share=round(e.device_time_total / total, 3)) for e in events[:top]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["light"])
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--precisions", nargs="+", default=["fp16", "fp32"], choices=list(PRECISIONS))
    ap.add_argument("--kernels", nargs="+", default=["torch", "triton"], choices=["torch", "triton"])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="480p 720p 1080p or WxH")
    ap.add_argument("--compile-rows", action="store_true",
                    help="also time --compile and --cuda-graphs (light x2 1080p fp16; a minute or more of compiling)")
    ap.add_argument("--profile", action="store_true", help="top CUDA kernels of one light x2 1080p fp16 frame")
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
    rows: list[dict] = []
    profiles: dict[str, list[dict]] = {}

    def save():  # after every row: a run cut short keeps what it measured
        if args.json:
            meta = dict(gpu=gpu, torch=torch.__version__, cuda=torch.version.cuda,
                        date=datetime.date.today().isoformat(), rows=rows, profiles=profiles)
            with open(args.json, "w") as fh:
                json.dump(meta, fh, indent=1)

    def upscaler(backend: str, w: int, h: int, **settings) -> Upscaler:
        dev = torch.device("cuda", torch.cuda.current_device())
        return create_backend_upscaler(RunSettings(backend=backend, **settings), Backend(backend, dev, "bench"),
                                       input_hw=(h, w))

    def row(backend: str, w: int, h: int, label: str, **settings) -> None:
        try:
            r = time_row(upscaler(backend, w, h, **settings), w, h, args.warmup, args.repeats, args.row_seconds)
        except torch.OutOfMemoryError:
            r = dict(error="out of GPU memory")
        torch.cuda.empty_cache()
        variant, scale = settings["variant"], settings["scale"]
        if "ms_per_frame" in r:
            r["tflops"] = round(2 * macs_per_frame(variant, scale, w, h) / r["ms_per_frame"] / 1e9, 1)
        r.update(backend=backend, variant=variant, scale=scale, precision=settings["precision"], input=f"{w}x{h}",
                 kernels=settings.get("kernels", "torch"), mode=label)
        rows.append(r)
        print(f"{backend:7} {label:11} {r['kernels']:6} {variant + ' x' + str(scale):9} {r['precision']:5} "
              f"{w:>5}x{h:<4} " + (f"{r['ms_per_frame']:9.1f} {r['fps']:7.2f} {r['tflops']:8.1f} {r['peak_gib']:6.2f}"
                                   if "ms_per_frame" in r else r["error"]), flush=True)
        save()

    print(f"{gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}, backends: {', '.join(backends)}")
    print(f"{'backend':7} {'mode':11} {'kernel':6} {'model':9} {'prec':5} {'input':>10} {'ms/frame':>9} {'fps':>7} "
          f"{'TFLOP/s':>8} {'GiB':>6}")
    for backend in backends:
        for kernels in (args.kernels if backend == "cuda" else ["torch"]):
            for variant in args.variants:
                for scale in args.scales:
                    for prec in args.precisions:
                        for size in args.sizes:
                            w, h = SIZES.get(size) or tuple(map(int, size.split("x")))
                            row(backend, w, h, "eager" if backend == "cuda" else "engine", variant=variant,
                                scale=scale, precision=prec, kernels=kernels)
    if args.compile_rows:
        for kernels in args.kernels:
            for mode, extra in (("compile", dict(compile=True)), ("cuda-graphs", dict(cuda_graphs=True))):
                w, h = SIZES["1080p"]
                row("cuda", w, h, mode, variant=args.variants[0], scale=2, precision="fp16", kernels=kernels, **extra)
    for kernels in args.kernels:
        up = upscaler("cuda", 1280, 720, variant=args.variants[0], scale=2, precision="fp16", kernels=kernels)
        r = streams_row(up, 1280, 720, frames=24, num_streams=2, threads=4)
        r.update(backend="cuda", variant=args.variants[0], scale=2, precision="fp16", input="1280x720",
                 kernels=kernels, mode="streams")
        rows.append(r)
        print(f"cuda    streams     {kernels:6} {args.variants[0] + ' x2':9} fp16   1280x720 {r['ms_per_frame']:9.1f} "
              f"{r['fps']:7.2f}   ({r['note']})", flush=True)
        save()
    if args.profile:
        for kernels in args.kernels:
            up = upscaler("cuda", 1920, 1080, variant="light", scale=2, precision="fp16", kernels=kernels)
            profiles[kernels] = table = profile_table(up, 1920, 1080)
            print(f"== top CUDA kernels, light x2 1920x1080 fp16, kernels={kernels}")
            for t in table:
                print(f"  {t['ms']:8.2f} ms {100 * t['share']:5.1f}% {t['calls']:5}x  {t['kernel']}")
            save()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
