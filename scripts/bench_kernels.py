#!/usr/bin/env python
"""Benchmark the fused Triton kernels against the torch forms they replace (needs a CUDA GPU).

Rows (default: DLGSANet-light x2 at 1920x1080 input, fp16, one frame):
- dyn_conv: ``dlgsa::dyn_conv`` vs the torch inference form ``dynamic_dw_conv_fused_1x1``
  (and the unfused 1x1 conv + dynamic conv, what training runs);
- attention_tlc / attention_global: the copy-free sparse attention vs SparseGSA's torch form
  (TLC windows of 96 px; the whole map);
- *_train rows: forward + backward at the training shape (light x4: batch 32 x 48 px);
- network: the whole light x2 network, ``set_kernels("triton")`` vs ``"torch"``: fps, peak GiB.

For each kernel the table gives the bytes it must move at least (every input read once, the
output written once) and its FLOPs, and the GB/s that the Triton time achieves next to the
card's memory bandwidth, so a reader sees how close to the memory limit it runs.

    python scripts/bench_kernels.py --json bench/kernels.json
    python scripts/bench_kernels.py --tiny            # small shapes, quick (with TRITON_INTERPRET=1 on a CPU)

Without a GPU (and without ``--tiny`` under the interpreter) it says so and exits 0.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# Peak memory bandwidth in GB/s by card name (public spec sheets), for the "of peak" column.
PEAK_GBPS = {"H200": 4800, "H100 SXM": 3350, "H100 PCIe": 2000, "H100": 3350, "A100": 2039,
             "L40S": 864, "RTX 4090": 1008, "RTX 5090": 1792}


def peak_gbps(name: str) -> float | None:
    return next((v for k, v in PEAK_GBPS.items() if k in name), None)


def time_ms(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds of ``fn()`` (CUDA events on a GPU, wall clock otherwise)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def row(name: str, shape: str, triton_ms: float, torch_ms: float, nbytes: int, flops: int,
        err: float, peak: float | None, **extra) -> dict:
    gbps = nbytes / triton_ms / 1e6
    return dict(kernel=name, shape=shape, triton_ms=round(triton_ms, 3), torch_ms=round(torch_ms, 3),
                speedup=round(torch_ms / triton_ms, 2), min_bytes=nbytes, gflop=round(flops / 1e9, 2),
                triton_gbps=round(gbps, 1), peak_gbps=peak,
                of_peak=round(gbps / peak, 3) if peak else None, max_abs_err=float(f"{err:.3g}"), **extra)


def bench_dyn_conv(n, c, h, w, dtype, device, warmup, repeats, peak, train=False) -> dict:
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv, dynamic_dw_conv_fused_1x1
    from dlgsa_vs.arch.kernels.dynamic_conv_triton import dyn_conv

    k, groups, ch = 7, c // 6, c // 4
    x = torch.rand(n, c, h, w, device=device, dtype=dtype)
    hidden = torch.randn(n, ch, h, w, device=device, dtype=dtype)
    weight = (torch.randn(groups * k * k, ch, 1, 1, device=device) * 0.1).to(dtype)
    bias = (torch.randn(groups * k * k, device=device) * 0.1).to(dtype)
    size = x.element_size()
    px = n * h * w
    flops = px * (groups * k * k * ch * 2 + c * k * k * 2)
    nbytes = px * (2 * c + ch) * size
    shape = f"{n}x{c}x{h}x{w} {str(dtype).removeprefix('torch.')}"
    if not train:
        with torch.no_grad():
            err = (dyn_conv(x, hidden, weight, bias, k).float()
                   - dynamic_dw_conv_fused_1x1(x, hidden, weight, bias, k).float()).abs().max().item()
            t_triton = time_ms(lambda: dyn_conv(x, hidden, weight, bias, k), device, warmup, repeats)
            t_torch = time_ms(lambda: dynamic_dw_conv_fused_1x1(x, hidden, weight, bias, k), device, warmup, repeats)
            t_unfused = time_ms(lambda: dynamic_dw_conv(x, F.conv2d(hidden, weight, bias), k), device, warmup, repeats)
        return row("dyn_conv", shape, t_triton, t_torch, nbytes, flops, err, peak, torch_unfused_ms=round(t_unfused, 3))
    leaves = [t.requires_grad_() for t in (x, hidden, weight, bias)]
    grad = torch.randn_like(x)

    def step_triton():
        torch.autograd.grad(dyn_conv(*leaves, k), leaves, grad)

    def step_torch():
        torch.autograd.grad(dynamic_dw_conv(leaves[0], F.conv2d(leaves[1], leaves[2], leaves[3]), k), leaves, grad)

    a = torch.autograd.grad(dyn_conv(*leaves, k), leaves, grad)
    b = torch.autograd.grad(dynamic_dw_conv(leaves[0], F.conv2d(leaves[1], leaves[2], leaves[3]), k), leaves, grad)
    err = max((p.float() - q.float()).abs().max().item() for p, q in zip(a, b))
    # forward + backward: the backward reads go, x, hidden again and writes the grads (+ fp32 taps).
    nbytes_train = nbytes + px * (3 * c + 2 * ch) * size + px * groups * k * k * 4 * 2
    return row("dyn_conv_train", shape, time_ms(step_triton, device, warmup, repeats),
               time_ms(step_torch, device, warmup, repeats), nbytes_train, 3 * flops, err, peak)


def bench_attention(n, c, h, w, tlc_kernel, dtype, device, warmup, repeats, peak, train=False) -> dict:
    from dlgsa_vs.arch.dlgsanet import SparseGlobalAttention
    from dlgsa_vs.arch.kernels.global_attention_triton import sparse_attention

    heads = 6
    m = SparseGlobalAttention(c, heads, tlc_kernel is not None, tlc_kernel or 96, "relu").to(device, dtype)
    m.train(train)
    qkv = torch.randn(n, 3 * c, h, w, device=device, dtype=dtype)
    d = c // heads
    px = n * h * w
    flops = px * (2 * c * d + 4 * c + 2 * c * d)
    nbytes = px * 4 * c * qkv.element_size()

    def torch_form(qkv):
        if train or tlc_kernel is None:
            return m._attend(qkv)
        from dlgsa_vs.arch.tlc import from_windows, pad_to_window, tlc_windows, to_windows

        windows = tlc_windows(h, w, tlc_kernel, device)
        padded = pad_to_window(qkv, tlc_kernel)
        out = m._attend(to_windows(padded, *windows))
        return from_windows(out, *windows, padded.shape[-2], padded.shape[-1])[..., :h, :w]

    def triton_form(qkv):
        return sparse_attention(qkv, m.temperature, heads, m.act, None if train else tlc_kernel)

    name = "attention_" + ("train" if train else "tlc" if tlc_kernel else "global")
    shape = f"{n}x{3 * c}x{h}x{w} {str(dtype).removeprefix('torch.')}" + (f" k={tlc_kernel}" if tlc_kernel else "")
    if not train:
        with torch.no_grad():
            err = (triton_form(qkv).float() - torch_form(qkv).float()).abs().max().item()
            return row(name, shape, time_ms(lambda: triton_form(qkv), device, warmup, repeats),
                       time_ms(lambda: torch_form(qkv), device, warmup, repeats), nbytes, flops, err, peak)
    qkv.requires_grad_()
    grad = torch.randn(n, c, h, w, device=device, dtype=dtype)
    a = torch.autograd.grad(triton_form(qkv), qkv, grad)[0]
    b = torch.autograd.grad(torch_form(qkv), qkv, grad)[0]
    return row(name, shape,
               time_ms(lambda: torch.autograd.grad(triton_form(qkv), qkv, grad), device, warmup, repeats),
               time_ms(lambda: torch.autograd.grad(torch_form(qkv), qkv, grad), device, warmup, repeats),
               3 * nbytes, 3 * flops, (a.float() - b.float()).abs().max().item(), peak)


def bench_network(h, w, scale, dtype, device, warmup, repeats, tlc_kernel=None) -> dict:
    from dlgsa_vs.arch.dlgsanet import DLGSANet
    from dlgsa_vs.arch.variants import variant_config

    cfg = variant_config("light", scale)
    if tlc_kernel:
        cfg.update(tlc_kernel=tlc_kernel, groups=1, blocks=1)  # --tiny: a one-block network
    net = DLGSANet(**cfg).to(device, dtype).eval()
    x = torch.rand(1, 3, h, w, device=device, dtype=dtype)
    out, res = {}, {}
    for kind in ("torch", "triton"):
        net.set_kernels(kind)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            out[kind] = net(x).float()
            ms = time_ms(lambda: net(x), device, warmup, repeats)
        res[kind] = dict(ms=round(ms, 2), fps=round(1000 / ms, 2))
        if device.type == "cuda":
            res[kind]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return dict(kernel="network", shape=f"light x{scale} {w}x{h} {str(dtype).removeprefix('torch.')} tlc",
                triton=res["triton"], torch=res["torch"], speedup=round(res["torch"]["ms"] / res["triton"]["ms"], 2),
                max_abs_err=float(f"{(out['triton'] - out['torch']).abs().max().item():.3g}"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--tiny", action="store_true", help="small shapes (a smoke test; with TRITON_INTERPRET=1 on a CPU)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--no-network", action="store_true", help="skip the whole-network row")
    ap.add_argument("--dtypes", nargs="+", choices=["fp32", "fp16", "bf16"],
                    help="kernel rows per dtype (default: fp16 on a GPU, fp32 on the CPU)")
    args = ap.parse_args(argv)

    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    if not torch.cuda.is_available() and not (args.tiny and interpret):
        print("bench_kernels: needs a CUDA GPU (none here); nothing measured. "
              "For a CPU smoke run: TRITON_INTERPRET=1 python scripts/bench_kernels.py --tiny")
        return 0
    device = torch.device("cpu" if interpret else "cuda")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (triton interpreter)"
    peak = peak_gbps(name)
    import triton

    from dlgsa_vs.arch import kernels
    kernels.set_strict(True)  # a failing kernel is an error here, not a silent torch row
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if args.tiny:
        warmup, repeats = 1, 1
        h, w, tlc, train = 9, 13, 8, (2, 6, 8)
    else:
        warmup, repeats = args.warmup, args.repeats
        h, w, tlc, train = 1080, 1920, 96, (32, 48, 48)
    names = dict(fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16)
    rows = []
    for dtype in [names[d] for d in args.dtypes] if args.dtypes else [dtype]:
        rows += [
            bench_dyn_conv(1, 48, h, w, dtype, device, warmup, repeats, peak),
            bench_attention(1, 48, h, w, tlc, dtype, device, warmup, repeats, peak),
            bench_attention(1, 48, h, w, None, dtype, device, warmup, repeats, peak),
            bench_dyn_conv(train[0], 48, train[1], train[2], dtype, device, warmup, repeats, peak, train=True),
            bench_attention(train[0], 48, train[1], train[2], None, dtype, device, warmup, repeats, peak, train=True),
        ]
    if not args.no_network:
        rows.append(bench_network(h, w, 2, dtype, device, 1 if args.tiny else 2, repeats,
                                  tlc_kernel=tlc if args.tiny else None))

    print(f"# {name}, torch {torch.__version__}, triton {triton.__version__}, peak {peak or '?'} GB/s")
    print(f"{'kernel':<18} {'shape':<34} {'triton ms':>9} {'torch ms':>9} {'x':>6} "
          f"{'min MB':>8} {'GFLOP':>7} {'GB/s':>7} {'of peak':>7} {'max err':>9}")
    for r in rows:
        if r["kernel"] == "network":
            print(f"{'network':<18} {r['shape']:<34} {r['triton']['ms']:>9} {r['torch']['ms']:>9} "
                  f"{r['speedup']:>6}  fps {r['triton']['fps']} vs {r['torch']['fps']}, peak GiB "
                  f"{r['triton'].get('peak_gib', '-')} vs {r['torch'].get('peak_gib', '-')}, max err {r['max_abs_err']}")
            continue
        print(f"{r['kernel']:<18} {r['shape']:<34} {r['triton_ms']:>9} {r['torch_ms']:>9} {r['speedup']:>6} "
              f"{r['min_bytes'] / 1e6:>8.1f} {r['gflop']:>7} {r['triton_gbps']:>7} "
              f"{r['of_peak'] if r['of_peak'] is not None else '-':>7} {r['max_abs_err']:>9}")
    if args.json:
        record = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
                      device=name, torch=torch.__version__, triton=triton.__version__,
                      cuda=torch.version.cuda, tiny=args.tiny, rows=rows)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
