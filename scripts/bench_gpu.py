#!/usr/bin/env python
"""Benchmark the GPU backends: ms per frame, frames/s, achieved TFLOP/s, peak GPU memory.

Rows: backend (cuda, and trt where TensorRT is usable) x kernels (torch, triton) x variant x
scale x precision x input size, one frame per forward pass, TLC on, whole frames (no tiles),
the packaged weights, built through ``create_backend_upscaler`` as the front ends do. Then
``--compile`` / ``--cuda-graphs`` rows, a ``StreamRunner`` row (720p x2 fp16, 2 streams fed by
4 threads) and, with ``--profile``, the top CUDA kernels of one light x2 1080p fp16 frame per
kernel choice (``torch.profiler``), so the first GPU minute says where the time goes.
Timings: ``--warmup`` passes, then ``--repeats`` passes between CUDA events, input on the GPU.

``--kernel-sets``: only the rows that compare the kernel sets, light x2 per precision (fp16,
bf16): eager (torch forms), triton, triton + torch.compile; fps, peak memory, and the PSNR of
each output against the fp32 eager output of the same frame.

``--dry-run``: the same code on the CPU with tiny frames and Triton's interpreter (set
TRITON_INTERPRET=1 before running; the cpu backend computes fp16 rows in fp32 and bf16 rows
in its own bf16 path, ``cpu_runner``, with float32 frames in and out, which the rows record
as the dtype run; compile rows use torch.compile's aot_eager backend there, as the settings
allow compile only on cuda). It rehearses a GPU run where no GPU is; its numbers mean nothing.

    python scripts/bench_gpu.py --json bench/gpu.json --profile
    python scripts/bench_gpu.py --scales 2 --sizes 1280x720 --precisions fp16 --kernels triton
    python scripts/bench_gpu.py --kernel-sets --precisions fp16 bf16 --sizes 1080p --json ks.json
    TRITON_INTERPRET=1 python scripts/bench_gpu.py --dry-run --kernel-sets --json /tmp/ks.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import sys
import threading
import time

import torch

from bench_cpu import macs_per_frame  # scripts/ is on sys.path when this file runs
from dlgsa_vs.runtime.backends import Backend, StreamRunner, create_backend_upscaler, trt_problem
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.runtime.settings import PRECISIONS, RunSettings

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> float:
    """Peak memory so far: allocated on the GPU since the last reset, or the process's
    maximum resident set on the CPU (never reset: an upper bound)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def time_row(up: Upscaler, w: int, h: int, warmup: int, repeats: int, budget_s: float,
             device: torch.device | None = None) -> dict:
    device = device or torch.device("cuda")
    x = torch.rand(1, 3, h, w, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        up(x)
    _sync(device)
    t0 = time.perf_counter()
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    n = 0
    while n < repeats and (n == 0 or time.perf_counter() - t0 < budget_s):
        up(x)
        n += 1
    if device.type == "cuda":
        end.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(end) / n
    else:
        ms = (time.perf_counter() - t0) * 1000 / n
    return dict(ms_per_frame=round(ms, 2), fps=round(1000 / ms, 2), frames_timed=n, peak_gib=peak_gib(device))


def psnr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR of two [0, 1] frames in dB (inf where equal)."""
    mse = (out.float() - ref.float()).pow(2).mean().item()
    return math.inf if mse == 0 else round(10 * math.log10(1 / mse), 2)


KERNEL_SETS = (("eager", dict(kernels="torch")), ("triton", dict(kernels="triton")),
               ("triton+compile", dict(kernels="triton", compile=True)))


def kernel_set_rows(make, w: int, h: int, precisions: list[str], device: torch.device, warmup: int,
                    repeats: int, budget_s: float, report) -> list[dict]:
    """Per precision and kernel set: fps, peak memory and PSNR against fp32 eager.

    ``make(w, h, precision=..., kernels=..., compile=...)`` builds the upscaler; ``report(row)``
    receives each row as it is measured (a run cut short keeps what it had)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=gen).to(device)
    with torch.no_grad():
        ref = make(w, h, precision="fp32", kernels="torch").__call__(x).float()
    rows = []
    for prec in precisions:
        for label, extra in KERNEL_SETS:
            r = dict(mode=label, precision=prec, input=f"{w}x{h}", kernels=extra["kernels"])
            try:
                t0 = time.perf_counter()
                up = make(w, h, precision=prec, **extra)
                with torch.no_grad():
                    out = up(x)  # the first call: compiles, and checks the kernels against torch
                r["first_call_s"] = round(time.perf_counter() - t0, 2)
                r["dtype_ran"] = str(up.dtype).removeprefix("torch.")
                r["psnr_vs_fp32_db"] = psnr_db(out, ref)
                with torch.no_grad():
                    r.update(time_row(up, w, h, warmup, repeats, budget_s, device))
                from dlgsa_vs.arch import kernels

                r["kernels_bad"] = sorted({k[0] for k, ok in kernels.GUARD.verdicts.items() if not ok})
            except torch.OutOfMemoryError:
                r["error"] = "out of GPU memory"
            except Exception as e:  # one failing set must not lose the others' rows
                r["error"] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
            rows.append(r)
            report(r)
    return rows


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
    ap.add_argument("--kernel-sets", action="store_true",
                    help="only eager / triton / triton+compile per precision: fps, peak memory, PSNR vs fp32")
    ap.add_argument("--dry-run", action="store_true",
                    help="rehearse on the CPU: tiny frames, Triton's interpreter (TRITON_INTERPRET=1)")
    args = ap.parse_args(argv)
    if args.dry_run:
        if os.environ.get("TRITON_INTERPRET") != "1":
            print("bench_gpu: --dry-run needs TRITON_INTERPRET=1 in the environment", file=sys.stderr)
            return 2
        device = torch.device("cpu")
        gpu = "cpu (dry run, triton interpreter)"
        if args.sizes == list(SIZES):
            args.sizes = ["32x24"]
        args.warmup, args.repeats, args.row_seconds = 0, 1, 0.0
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; nothing to measure (--dry-run rehearses on the CPU)", file=sys.stderr)
        return 1
    else:
        device = torch.device("cuda", torch.cuda.current_device())
        torch.backends.cudnn.benchmark = True
        gpu = torch.cuda.get_device_name()
    backends = ["cpu"] if args.dry_run else ["cuda"] + ([] if trt_problem() else ["trt"])
    rows: list[dict] = []
    profiles: dict[str, list[dict]] = {}
    kernel_sets: list[dict] = []

    def save():  # after every row: a run cut short keeps what it measured
        if args.json:
            meta = dict(gpu=gpu, torch=torch.__version__, cuda=torch.version.cuda, dry_run=args.dry_run,
                        date=datetime.date.today().isoformat(), rows=rows, profiles=profiles,
                        kernel_sets=kernel_sets)
            with open(args.json, "w") as fh:
                json.dump(meta, fh, indent=1)

    def upscaler(backend: str, w: int, h: int, **settings) -> Upscaler:
        dry_compile = args.dry_run and settings.pop("compile", False)  # the settings allow it on cuda only
        if args.dry_run:
            settings.setdefault("tile", (0, 0))
        up = create_backend_upscaler(RunSettings(backend=backend, **settings), Backend(backend, device, "bench"),
                                     input_hw=(h, w))
        if dry_compile:  # dynamo + AOT autograd around the custom ops, no inductor codegen
            up.network = torch.compile(up.model, backend="aot_eager")
        return up

    if args.kernel_sets:
        w, h = SIZES.get(args.sizes[0]) or tuple(map(int, args.sizes[0].split("x")))
        print(f"{gpu}, torch {torch.__version__}: light x2 {w}x{h}, kernel sets")
        print(f"{'mode':15} {'prec':5} {'ran':9} {'first s':>8} {'ms/frame':>9} {'fps':>7} {'GiB':>6} {'PSNR':>7}")

        def report(r: dict) -> None:
            kernel_sets.append(r)
            print(f"{r['mode']:15} {r['precision']:5} {r.get('dtype_ran', '-'):9} {r.get('first_call_s', '-'):>8} "
                  + (f"{r['ms_per_frame']:9.1f} {r['fps']:7.2f} {r['peak_gib']:6.2f} {r['psnr_vs_fp32_db']:7}"
                     if "ms_per_frame" in r else r.get("error", "")), flush=True)
            save()

        kernel_set_rows(lambda w, h, **kw: upscaler(backends[0], w, h, variant=args.variants[0], scale=2, **kw),
                        w, h, [p for p in args.precisions if p != "fp32"] or ["fp16"], device, args.warmup,
                        args.repeats, args.row_seconds, report)
        save()
        return 0

    def row(backend: str, w: int, h: int, label: str, **settings) -> None:
        try:
            r = time_row(upscaler(backend, w, h, **settings), w, h, args.warmup, args.repeats, args.row_seconds,
                         device)
        except torch.OutOfMemoryError:
            r = dict(error="out of GPU memory")
        if device.type == "cuda":
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
    if args.dry_run:  # the streams and profile rows need CUDA streams and CUDA events
        save()
        return 0
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
