"""Throughput of the cluster mode on this machine: 1 vs 2 Ray workers (CPU), against the
single-process dlgsa-upscale, on a generated clip with the micro network (a real DLGSANet,
tiny: it measures the chunking, Ray and join overheads more than the network).

    .venv/bin/python scripts/bench_cluster.py --json bench/cluster.json
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", type=int, nargs=2, default=(96, 64), metavar=("W", "H"))
    ap.add_argument("--chunk-seconds", type=float, default=2.0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    import ray
    import torch

    from dlgsa_vs.cli.ray import main as ray_main
    from dlgsa_vs.cli.video import main as cli_main
    from video_support import save_micro_model, video_facts, write_clip

    d = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    model = save_micro_model(d / "micro.safetensors")
    w, h = args.size
    clip = write_clip(d / "clip.mkv", width=w, height=h, pts=[i * 83 for i in range(args.frames)],
                      options={"crf": "18", "bf": "3", "g": "12", "keyint_min": "12", "sc_threshold": "0"})
    rows = []
    t = time.perf_counter()
    assert cli_main([str(clip), "-m", str(model), "-c", "ffv1", "--threads", "1", "-q", "-o",
                     str(d / "single.mkv")]) == 0
    single = time.perf_counter() - t
    rows.append(dict(mode="single process, 1 thread", workers=1, seconds=single, fps=args.frames / single))
    torch.set_num_threads(os.cpu_count() or 1)
    for workers in (1, 2):
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        results = []
        for run in ("cold", "warm"):   # cold: workers start and load torch + the network
            out = d / f"ray{workers}_{run}.mkv"
            t = time.perf_counter()
            assert ray_main([str(clip), "-m", str(model), "-c", "ffv1", "-o", str(out), "-q",
                             "--chunk-seconds", str(args.chunk_seconds), "--keep-chunks"]) == 0
            secs = time.perf_counter() - t
            m = json.loads((d / f"ray{workers}_{run}.mkv.chunks" / "manifest.json").read_text())
            assert video_facts(out)["frames"] == args.frames
            results.append((run, secs, m))
        ray.shutdown()
        for run, secs, m in results:
            chunk_secs = [c["seconds"] for c in m["chunks"]]
            rows.append(dict(mode=f"ray, {workers} worker(s), {run}", workers=workers, seconds=secs,
                             fps=args.frames / secs, chunks=len(m["chunks"]), join_seconds=m["joined"]["seconds"],
                             chunk_task_seconds=sum(chunk_secs) / len(chunk_secs), ray_start_seconds=start))
    print(f"{args.frames} frames {w}x{h} -> x2, FFV1, chunks of >= {args.chunk_seconds} s "
          f"(keyframe every 1 s), {os.cpu_count()} CPU cores")
    print(f"{'mode':34} {'seconds':>8} {'fps':>7} {'join s':>7} {'s/chunk':>8}")
    for r in rows:
        print(f"{r['mode']:34} {r['seconds']:8.2f} {r['fps']:7.2f} {r.get('join_seconds', 0):7.3f} "
              f"{r.get('chunk_task_seconds', 0):8.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(frames=args.frames, size=[w, h], chunk_seconds=args.chunk_seconds,
                                                   cpus=os.cpu_count(), machine=platform.machine(),
                                                   ray=ray.__version__, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
