#!/usr/bin/env python
"""Training-step knobs on this machine: memory layout, bf16 autocast, threads.

    python scripts/bench_train.py --json bench/train.json

One Adam step (L1 loss, as in scripts/train.py) of a default-initialised network on a random
batch, best of ``--repeats`` after a warm-up, for each setting. bf16 autocast is also checked
for what it does to the step: the cosine similarity of its gradient with the fp32 gradient of
the same batch (1.0 = the same direction).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from dlgsa_vs.arch import build_model

SETTINGS = {  # name: (channels-last input, bf16 autocast)
    "fp32 NCHW": (False, False),
    "fp32 channels-last input (train.py)": (True, False),
    "bf16 autocast, channels-last input": (True, True),
}


def step_seconds(variant: str, scale: int, batch: int, patch: int, channels_last: bool,
                 bf16: bool, repeats: int) -> tuple[float, torch.Tensor]:
    """Best step time and the flattened gradient of the first step."""
    torch.manual_seed(0)
    model = build_model(variant, scale).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(1)
    lr_img = torch.rand(batch, 3, patch, patch, generator=gen)
    hr_img = torch.rand(batch, 3, patch * scale, patch * scale, generator=gen)
    if channels_last:
        lr_img = lr_img.contiguous(memory_format=torch.channels_last)
    times, grad = [], None
    for _ in range(repeats + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(lr_img)
        loss = torch.nn.functional.l1_loss(out.float(), hr_img)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad is None:
            grad = torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])
        optimizer.step()
        times.append(time.perf_counter() - t)
    return min(times[1:]), grad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="light")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32, help="LR patch side")
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        reference = None
        for name, (channels_last, bf16) in SETTINGS.items():
            seconds, grad = step_seconds(args.variant, args.scale, args.batch, args.patch,
                                         channels_last, bf16, args.repeats)
            if reference is None:
                reference = grad
            cosine = torch.nn.functional.cosine_similarity(grad, reference, dim=0).item()
            rows.append(dict(setting=name, threads=threads, step_s=round(seconds, 3),
                             lr_px_per_s=round(args.batch * args.patch ** 2 / seconds),
                             grad_cosine_vs_fp32=round(cosine, 5)))
            print(f"{threads} thread(s)  {name:38s} {seconds:7.3f} s/step  "
                  f"{rows[-1]['lr_px_per_s']:6d} LR px/s  grad cosine {cosine:.5f}", flush=True)

    print(f"\n{args.variant} x{args.scale}, batch {args.batch} x {args.patch} px LR, "
          f"best of {args.repeats} after a warm-up\n")
    print("| setting | threads | s/step | LR px/s | gradient cosine vs fp32 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['threads']} | {r['step_s']:.3f} | {r['lr_px_per_s']} | "
              f"{r['grad_cosine_vs_fp32']:.5f} |")
    if args.json:
        info = dict(vars(args), torch=torch.__version__, machine=platform.platform(),
                    processor=platform.processor(), cpu_count=os.cpu_count())
        with open(args.json, "w") as fh:
            json.dump(dict(config=info, rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
