#!/usr/bin/env python
"""CPU precision benchmark (issue #24): torch fp32 (today's default) vs onnxruntime, OpenVINO and bf16.

One process, one run: every speed row is timed in the same rounds (round-robin, so a load
change on a shared machine hits all rows alike), on one real frame (a 320x180 crop of
../shared/data/video/realshort.mp4, random pixels where absent), whole frame, light x2 (packaged
weights), TLC on. Quality: PSNR of each row's output against torch fp32 on that frame, and of
the default CPU path (``cpu_runner.prepare_cpu_model`` with ``cpu_features.cpu_precision``)
against torch fp32 on Set5 and Set14 (LR x2, centre 112x112 crops: one size, so one cached
export) and on a crop of a real clip frame, with the >= 50 dB floor.

    python scripts/bench_cpu_precision.py                       # table + bench/cpu_precision.json
    python scripts/bench_cpu_precision.py --repeats 1 --no-quality --json /tmp/x.json

The OpenVINO rows export ONNX once per size into the cpu_runner cache (about 100 s per size on a
2-core CPU; ``DLGSA_CACHE_DIR`` moves it); that time is reported, not counted in s/frame.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlgsa_vs.runtime.cpu_features import cpu_flags, cpu_model_name, cpu_precision  # noqa: E402
from dlgsa_vs.runtime.cpu_runner import choose_engine, openvino_problem, prepare_cpu_model  # noqa: E402
from dlgsa_vs.runtime.inference import Upscaler, image_to_tensor  # noqa: E402
from dlgsa_vs.runtime.weights import load_model  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CLIP = DATA / "video" / "realshort.mp4"
FLOOR_DB = 50.0
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                  "amx_tile", "amx_bf16", "amx_int8")
QUALITY_CROP = 112


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def clip_frame(index: int = 10) -> torch.Tensor | None:
    """Frame ``index`` of the real clip, (1, 3, H, W) float in [0, 1]; None without the data."""
    if not CLIP.is_file():
        return None
    import av

    with av.open(str(CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return image_to_tensor(frame.to_ndarray(format="rgb24"))
    return None


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return x[..., top:top + h, left:left + w].contiguous()


def openvino_raw(onnx: Path, hint: str | None, threads: int) -> tuple[Callable, str]:
    """OpenVINO's CPU plugin on our ONNX file, as a user would run it: ``hint`` None = its default."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    compiled = core.compile_model(core.read_model(str(onnx)), "CPU", config)
    request = compiled.create_infer_request()
    chosen = str(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(request.infer({0: x.numpy()})[0], copy=True))

    return run, chosen


def onnxruntime_raw(onnx: Path, threads: int) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def build_rows(model, threads: int, h: int, w: int, log) -> tuple[list[dict], dict]:
    """(label, callable) of every speed row; the callables take (1, 3, h, w) fp32 frames."""
    precision, reason = cpu_precision(None)
    rows: list[dict] = []
    extra: dict = dict(default_precision=precision, default_precision_reason=reason)

    def add(label: str, fn: Callable, note: str = "") -> None:
        rows.append(dict(row=label, fn=fn, note=note))

    add("torch fp32 eager (today's default)", Upscaler(model))

    def autocast(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return model(x.contiguous(memory_format=torch.channels_last)).float()

    add("torch bf16 autocast", autocast)
    add("torch bf16 weights, fp32 head+tail (cpu_runner engine=torch)",
        prepare_cpu_model(model, "bf16", "torch"))
    problem = openvino_problem()
    engine, engine_reason = choose_engine(precision)  # what the cpu backend's plan decides (run_plan)
    if problem is None:
        t0 = time.perf_counter()
        ours = prepare_cpu_model(model, precision, engine, engine_reason, threads=threads, log=log)
        onnx = ours.onnx_path(h, w) if hasattr(ours, "onnx_path") else None
        if onnx is not None:
            ours._export(h, w)  # the one-time export, outside the timings
            extra["onnx_export_s"] = round(time.perf_counter() - t0, 1)
            add("onnxruntime fp32 (our ONNX)", onnxruntime_raw(onnx, threads))
            run, chosen = openvino_raw(onnx, "f32", threads)
            add("OpenVINO f32 (our ONNX)", run)
            run, chosen = openvino_raw(onnx, None, threads)
            add("OpenVINO default precision (our ONNX)", run, f"OpenVINO chose {chosen}")
            extra["openvino_default_precision"] = chosen
    else:
        extra["openvino"] = problem
        ours = prepare_cpu_model(model, precision, engine, engine_reason, threads=threads)
    add("our default CPU path (cpu_runner, auto)", Upscaler(model, network=ours), ours.describe())
    extra["default_path"] = ours.describe()
    return rows, extra


def time_rows(rows: list[dict], x: torch.Tensor, repeats: int) -> torch.Tensor:
    """Warm-up (compile, first-call costs) then ``repeats`` rounds over all rows; returns fp32's output."""
    for row in rows:
        t0 = time.perf_counter()
        with torch.inference_mode():
            row["out"] = row["fn"](x)
        row["first_s"] = round(time.perf_counter() - t0, 2)
        row["times"] = []
    for _ in range(repeats):
        for row in rows:
            t0 = time.perf_counter()
            with torch.inference_mode():
                row["fn"](x)
            row["times"].append(time.perf_counter() - t0)
    ref = rows[0]["out"]
    base = statistics.median(rows[0]["times"])
    for row in rows:
        row["s_per_frame_median"] = round(statistics.median(row["times"]), 3)
        row["s_per_frame_min"] = round(min(row["times"]), 3)
        row["speedup_vs_fp32"] = round(base / statistics.median(row["times"]), 2)
        row["psnr_vs_fp32_db"] = round(psnr(row.pop("out"), ref), 2)
        row["times"] = [round(t, 3) for t in row["times"]]
    return ref


def quality(model, net) -> dict:
    """PSNR of ``net`` against torch fp32 on Set5, Set14 (x2 LR crops) and a real clip frame crop."""
    from dlgsa_vs.image.imageio import read_image

    fp32 = Upscaler(model)
    out: dict = {}
    sets = {name: sorted((DATA / "benchmarks" / name / "LR_bicubic" / "X2").glob("*.png")) for name in ("Set5", "Set14")}
    frame = clip_frame(20)
    for name, files in sets.items():
        if not files:
            out[name] = dict(skipped=f"not found: {DATA / 'benchmarks' / name}")
            continue
        per = {}
        for f in files:
            x = centre_crop(image_to_tensor(read_image(f)), QUALITY_CROP, QUALITY_CROP)
            with torch.inference_mode():
                per[f.stem] = round(psnr(net(x), fp32(x)), 2)
        out[name] = dict(images=per, min_db=min(per.values()), mean_db=round(statistics.mean(per.values()), 2))
    if frame is None:
        out["clip"] = dict(skipped=f"not found: {CLIP}")
    else:
        x = centre_crop(frame, QUALITY_CROP, QUALITY_CROP)
        with torch.inference_mode():
            db = round(psnr(net(x), fp32(x)), 2)
        out["clip"] = dict(file=CLIP.name, frame=20, min_db=db, mean_db=db)
    measured = [v["min_db"] for v in out.values() if "min_db" in v]
    out["floor_db"] = FLOOR_DB
    out["meets_floor"] = bool(measured) and min(measured) >= FLOOR_DB
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x180", help="LR WxH of the timed frame (default 320x180)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (median kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch and OpenVINO threads (default: torch's)")
    ap.add_argument("--no-quality", action="store_true", help="skip the Set5/Set14/clip quality part")
    ap.add_argument("--json", default=str(REPO / "bench" / "cpu_precision.json"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    w, h = (int(v) for v in args.size.split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    torch.manual_seed(0)
    model = load_model(variant="light", scale=2).eval()
    frame = clip_frame(10)
    x = torch.rand(1, 3, h, w) if frame is None or frame.shape[2] < h or frame.shape[3] < w else centre_crop(frame, h, w)
    rows, extra = build_rows(model, threads, h, w, lambda m: print(m, file=sys.stderr, flush=True))
    time_rows(rows, x, args.repeats)
    load_after_speed = os.getloadavg()
    qual = None
    if not args.no_quality:
        qual = dict(default_path=quality(model, rows[-1]["fn"]), torch_engine=quality(model, rows[2]["fn"]))
    flags = cpu_flags()
    info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                cpu=cpu_model_name(), cpu_flags={f: f in flags for f in RELEVANT_FLAGS},
                logical_cpus=os.cpu_count(), torch_threads=threads, torch=torch.__version__,
                python=platform.python_version(), load_avg_before=[round(v, 2) for v in load_before],
                load_avg_after_speed=[round(v, 2) for v in load_after_speed],
                input=f"{w}x{h} LR, whole frame, light x2, TLC on, batch 1, "
                      + ("random pixels" if frame is None or frame.shape[2] < h or frame.shape[3] < w else
                         f"centre crop of {CLIP.name} frame 10"), **extra)
    for name in ("onnxruntime", "openvino"):
        try:
            info[f"{name}_version"] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            info[f"{name}_version"] = None
    print(f"{info['cpu']}, {threads} torch threads, load {info['load_avg_before']} -> "
          f"{info['load_avg_after_speed']}, {info['date']}; default precision: {extra['default_precision']} "
          f"({extra['default_precision_reason']})")
    print(f"{'row':66s} {'s/frame':>8s} {'min':>7s} {'x fp32':>7s} {'dB vs fp32':>10s}")
    for row in rows:
        row.pop("fn")
        print(f"{row['row'][:66]:66s} {row['s_per_frame_median']:8.3f} {row['s_per_frame_min']:7.3f} "
              f"{row['speedup_vs_fp32']:7.2f} {row['psnr_vs_fp32_db']:10.2f}  {row['note']}")
    for which, q in (qual or {}).items():
        for name in ("Set5", "Set14", "clip"):
            v = q[name]
            print(f"quality {which:12s} {name:6s}: " + (v["skipped"] if "skipped" in v else
                  f"min {v['min_db']:.2f} dB, mean {v['mean_db']:.2f} dB vs fp32 ({QUALITY_CROP}x{QUALITY_CROP} crops)"))
        print(f"quality {which:12s} floor {FLOOR_DB} dB: {'met' if q['meets_floor'] else 'NOT MET'}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(dict(info=info, rows=rows, quality=qual), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
