#!/usr/bin/env python
"""Does decoding and encoding hide behind the network? End-to-end fps over model-only fps.

On the same clip and the same (warmed-up) network:
  model only   the network on the clip's frames, already decoded and converted to RGB;
  end to end   dlgsa-upscale's whole run (probe, decode, convert, network, convert back,
               encode, mux, copy the audio, rename), timed around the library call.
The ratio end-to-end fps / model-only fps is 1.0 when the pipeline costs nothing; issue 5
asks for >= 0.9 on the CPU path.

    python scripts/bench_video.py                         # the sample clip (160x90), light x2
    python scripts/bench_video.py --clip in.mp4 --frames 24 --threads 1 --json bench/video.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", help="input video (default: make the 160x90 sample clip)")
    ap.add_argument("--frames", type=int, default=24, help="frames to upscale (default 24)")
    ap.add_argument("-m", "--model", help="model file (default: packaged light x2, else a random light x2)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, all cores)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--convert", choices=["auto", "device", "cpu"], default="auto",
                    help="where the colour conversions run: on the network's device or in the CPU "
                         "threads (default auto: on the device when it is a CUDA GPU)")
    ap.add_argument("--json", default="bench/video.json", help="where to write the results")
    args = ap.parse_args()

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as dlgsa-upscale does (see its cli.py)
    import numpy as np
    import torch

    from dlgsa_vs.runtime.backends import create_upscaler, select_backend
    from dlgsa_vs.runtime.inference import Upscaler
    from dlgsa_vs.video.colour import frame_to_rgb
    from dlgsa_vs.video.job import upscale_video
    from dlgsa_vs.video.probe import first_frame_colour
    from dlgsa_vs.video.probe import Source, probe, set_log_mode
    from dlgsa_vs.video.sample import make_sample
    from dlgsa_vs.runtime.weights import WeightsError

    set_log_mode(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="bench_video_")   # the sample and the output; removed at exit
    work = Path(tmp.name)
    clip = Path(args.clip) if args.clip else make_sample(work / "sample.mp4")
    try:
        upscaler = create_upscaler(model_path=args.model, backend=args.device, batch=args.batch)
        model_name = args.model or "packaged light x2"
    except WeightsError:
        from dlgsa_vs.arch import build_model

        upscaler = Upscaler(build_model("light", 2), device=select_backend(args.device).device, batch=args.batch)
        model_name = "light x2, random weights (same cost)"

    # the frames, decoded and converted once, for the model-only run
    info = probe(clip)
    source = Source(info, limit=args.frames)
    frames = []
    colour = None
    for ev in source.events():
        if ev[0] == "frame":
            colour = colour or first_frame_colour(info, ev[1])
            frames.append(frame_to_rgb(ev[1], colour))
    info.container.close()
    n = len(frames)
    h, w = frames[0].shape[1:]
    upscaler(torch.from_numpy(frames[0][None]))           # warm-up, shared by both runs

    def model_only() -> float:
        t = time.perf_counter()
        for i in range(0, n, args.batch):
            upscaler(torch.from_numpy(np.stack(frames[i:i + args.batch])))
        return time.perf_counter() - t

    # model only, end to end, model only again: the mean of the two model-only runs brackets
    # the end-to-end one, so a change in the machine's load counts less
    before = model_only()
    t = time.perf_counter()
    on_device = None if args.convert == "auto" else args.convert == "device"
    result = upscale_video(clip, upscaler, work / "out.mp4", frames=args.frames, batch=args.batch,
                           on_device=on_device)
    e2e_seconds = time.perf_counter() - t
    after = model_only()
    model_seconds = (before + after) / 2
    stats = result.stats

    row = dict(clip=str(clip) if args.clip else "sample.mp4 (made by --make-sample)", frames=n,
               lr_size=f"{w}x{h}", out_size=f"{w * upscaler.scale}x{h * upscaler.scale}", model=model_name,
               device=args.device, threads=torch.get_num_threads(), batch=args.batch,
               colour_conversions=args.convert,
               model_only_seconds=round(model_seconds, 2), model_only_fps=round(n / model_seconds, 4),
               model_only_runs_seconds=[round(before, 2), round(after, 2)],
               end_to_end_seconds=round(e2e_seconds, 2), end_to_end_fps=round(n / e2e_seconds, 4),
               ratio=round(model_seconds / e2e_seconds, 3),
               pipeline_network_seconds=round(stats.model_seconds, 2),
               pipeline_network_waited_for_frames_seconds=round(stats.model_waits, 2),
               encoder=result.encoder, output_bytes=stats.out_bytes,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
               cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
               load_average_1min=round(os.getloadavg()[0], 2), torch=torch.__version__)
    print(f"{'clip':<22}{'frames':>7}{'size':>10}{'model fps':>11}{'e2e fps':>10}{'ratio':>8}"
          f"{'net waited':>12}")
    print(f"{Path(row['clip'].split(' ')[0]).name[:21]:<22}{n:>7}{row['lr_size']:>10}{row['model_only_fps']:>11.3f}"
          f"{row['end_to_end_fps']:>10.3f}{row['ratio']:>8.3f}{row['pipeline_network_waited_for_frames_seconds']:>11.2f}s")
    print(f"model-only runs before/after: {before:.1f} s / {after:.1f} s; end to end {e2e_seconds:.1f} s, "
          f"of which the network {stats.model_seconds:.1f} s")
    print(f"model: {model_name}; {row['threads']} torch thread(s) on {row['cores']} cores, "
          f"load average {row['load_average_1min']} (other work on the machine counts against both runs)")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(row, indent=2) + "\n")
        print(f"wrote {out}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
