#!/usr/bin/env python
"""Benchmark the formulations of the per-pixel dynamic depth-wise convolution on this machine.

Times one DLGSANet-light layer's dynamic conv (C=48, 8 kernel groups, 7x7) at a given LR
size, forward only (inference) and forward+backward (training), eager and under
``torch.compile``; checks every formulation against the default. Prints a table, writes JSON.

    python scripts/bench_dynamic_conv.py --size 320x180 --json bench/dynamic_conv.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from dlgsa_vs.arch.dynamic_conv import FORMULATIONS


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up (and compilation)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x180", help="LR width x height (default 320x180)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--skip", default="", help="comma-separated formulations to skip (e.g. unfold)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    c, groups, k = 48, 8, 7
    torch.manual_seed(0)
    x = torch.randn(1, c, h, w)
    weight = torch.randn(1, groups * k * k, h, w)
    ref = FORMULATIONS["functional"](x, weight, k)

    rows = []
    modes = [("eager", False)] + ([] if args.no_compile else [("compile", True)])
    for name, fn in FORMULATIONS.items():
        if name in args.skip.split(","):
            continue
        for mode, compiled in modes:
            f = torch.compile(fn, dynamic=False) if compiled else fn
            with torch.no_grad():
                err = (f(x, weight, k) - ref).abs().max().item()
                fwd = timeit(lambda: f(x, weight, k), args.repeats)
            bwd = float("nan")
            if name != "inplace":
                xg, wg = x.clone().requires_grad_(), weight.clone().requires_grad_()
                bwd = timeit(lambda: f(xg, wg, k).sum().backward(), args.repeats)
            rows.append(dict(formulation=name, mode=mode, forward_ms=fwd * 1e3,
                             forward_backward_ms=bwd * 1e3, max_abs_err=err))
            print(f"{name:16s} {mode:8s} fwd {fwd*1e3:9.1f} ms  fwd+bwd {bwd*1e3:9.1f} ms  "
                  f"max|diff| {err:.2e}", flush=True)

    info = dict(size=f"{w}x{h}", channels=c, groups=groups, kernel=k, torch=torch.__version__,
                threads=torch.get_num_threads(), machine=platform.machine(),
                processor=platform.processor(), date=time.strftime("%Y-%m-%d"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(info=info, rows=rows), fh, indent=2)


if __name__ == "__main__":
    main()
