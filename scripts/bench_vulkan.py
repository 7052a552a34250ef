"""The vulkan backend (ncnn) on this machine's Vulkan device: fps per precision and frame size.

    python scripts/bench_vulkan.py --sizes 1080p --precisions fp16 --json bench/vulkan_gpu.json   # a GPU
    python scripts/bench_vulkan.py --sizes 96x64 --frames 2 --json bench/vulkan.json            # llvmpipe

Each row: the backend as the front ends build it (auto tiles for the device's memory; the ncnn
graph converted once and cached, its time reported apart), fps over ``--frames`` frames after a
first one, and PSNR against the fp32 PyTorch output of the same crops. On a CPU device
(llvmpipe) the numbers say the path is correct, not how fast a GPU is: a CPU emulating one.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dlgsa_vs.runtime.backends import create_backend_upscaler
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.runtime.settings import RunSettings
from dlgsa_vs.runtime.vulkan.devices import vulkan_devices, vulkan_problem

NAMED = {"720p": (720, 1280), "1080p": (1080, 1920)}


def parse_size(text: str, scale: int) -> tuple[int, int]:
    """An output size name (1080p: the LR frame is 1080p / scale) or an LR WxH; (height, width)."""
    if text in NAMED:
        h, w = NAMED[text]
        return h // scale, w // scale
    w, h = (int(v) for v in text.lower().split("x"))
    return h, w


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).double().pow(2).mean().item()
    return float("inf") if mse == 0 else round(10 * torch.log10(torch.tensor(1 / mse)).item(), 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="light")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["1080p"], help="1080p, 720p (output) or LR WxH, as on every command line")
    ap.add_argument("--precisions", nargs="+", default=["fp16"], choices=["fp16", "fp32"])
    ap.add_argument("--frames", type=int, default=5, help="timed frames after the first")
    ap.add_argument("--device-index", type=int, default=0)
    ap.add_argument("--no-psnr", action="store_true", help="skip the PyTorch reference (slow on big frames)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    problem = vulkan_problem()
    if problem:
        print(f"bench_vulkan: no Vulkan device: {problem}")
        return 1
    device = vulkan_devices()[args.device_index]
    note = ("a CPU emulating a GPU: correctness, not speed" if device.is_cpu else "a real GPU")
    print(f"Vulkan device {device.index}: {device.name} ({device.kind}; fp16 {device.fp16}) -- {note}")
    rows = []
    for size in args.sizes:
        h, w = parse_size(size, args.scale)
        for precision in args.precisions:
            settings = RunSettings(variant=args.variant, scale=args.scale, backend="vulkan", precision=precision,
                                   device_index=args.device_index)
            start = time.monotonic()
            up = create_backend_upscaler(settings, input_hw=(h, w))
            frame = torch.rand(1, 3, h, w)
            up(frame)  # converts (or loads the cached graph) and compiles the device's pipelines
            first = time.monotonic() - start
            start = time.monotonic()
            for _ in range(args.frames):
                out = up(frame)
            seconds = (time.monotonic() - start) / max(args.frames, 1)
            row = dict(size=size, lr_hw=[h, w], precision=up.plan.precision, tile=up.tile_summary(h, w),
                       first_frame_s=round(first, 2), s_per_frame=round(seconds, 3), fps=round(1 / seconds, 3))
            if not args.no_psnr:
                ref = Upscaler(up.model, tile=up.tile_for(h, w), tile_pad=up.tile_pad, network=lambda x: up.model(x))
                row["psnr_vs_torch_fp32_db"] = psnr(out, ref(frame))
            rows.append(row)
            print(json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(
            device=device.name, device_kind=device.kind, note=note, cpu=cpu_name(), variant=args.variant,
            scale=args.scale, torch=torch.__version__, rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
