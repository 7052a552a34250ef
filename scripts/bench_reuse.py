#!/usr/bin/env python
"""Reuse of unchanged tiles (issue #37): end-to-end fps with reuse off / exact / tolerance 2.

For each clip, ``dlgsa-upscale`` runs three times in fresh processes (same tile grid: the
default, ``--tile auto``), writing lossless FFV1 so that the frames can be compared:

  share      tiles and frames reused (the summary line's figures)
  fps        end to end: frames over the summary line's seconds (first frame read -> file complete)
  CPU time   of the whole process (user + system, model loading included): on a shared
             machine the wall clock moves with the other programs' load, CPU time much less
  identical  exact reuse's frames equal reuse off's, bit for bit (the issue's "Done when")
  PSNR       of each mode's frames against reuse off (inf: identical)
  flicker    over pixels whose LR input is static (|delta luma| <= 1 between consecutive input
             frames), the mean |delta luma| of the output between those frames

Clips: made here with libx264 (a still scene with a moving cursor, a 2.39:1 picture
letterboxed in 16:9 with animation held on twos, a slide show), plus the shared clips in
../shared/data/video (their first ``--shared-frames`` frames).

    python scripts/bench_reuse.py                       # table on stdout, bench/reuse.json
    python scripts/bench_reuse.py --size 320x180 --frames 12 --threads 2
    python scripts/bench_reuse.py --size 640x360 --frames 4 --only "still scene + cursor" \
        --only "2.39:1 letterboxed, held on twos" --json bench/reuse_640x360.json
        # frames large enough for auto tiles on the CPU (4 strips of 219x360 LR crops)
    python scripts/bench_reuse.py --overhead --frames 11    # exact vs off, nothing repeating
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (the tests' place), or beside a worktree's parent folder
SHARED_VIDEO = next((p / "shared" / "data" / "video" for p in (REPO.parent, REPO.parent.parent)
                     if (p / "shared" / "data" / "video").is_dir()), REPO.parent / "shared" / "data" / "video")
MODES = {"off": ["--reuse", "off"], "exact": ["--reuse", "exact"],
         "tolerance 2": ["--reuse", "exact", "--reuse-tolerance", "2"]}
SUMMARY = re.compile(r"(\d+) frames .*? in ([\d.]+) s \(([\d.]+) fps;.*?(?:reuse [^:]+: (\d+)% of tiles \((\d+)/(\d+)\) and "
                     r"(\d+)% of frames \((\d+)/(\d+)\) reused)?$")


def _background(w: int, h: int, seed: int) -> np.ndarray:
    """A still, textured RGB picture (H, W, 3) uint8: smooth shapes plus a fixed fine grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.03, 0.12, 3)
    pic = np.stack([0.5 + 0.3 * np.sin(x * f[0] + y * f[1] + c) for c in range(3)], axis=-1)
    pic += 0.04 * rng.standard_normal((h, w, 3))
    return (np.clip(pic, 0, 1) * 255).astype(np.uint8)


def still_cursor(i: int, w: int, h: int) -> np.ndarray:
    """A still screen with a small cursor that moves 3 pixels right every frame."""
    pic = _background(w, h, 1)
    cx, cy = 10 + 3 * i, h // 2
    pic[cy:cy + 7, cx:cx + 5] = 0
    pic[cy + 1:cy + 6, cx + 1:cx + 4] = 255
    return pic


def letterbox_held(i: int, w: int, h: int) -> np.ndarray:
    """A 2.39:1 picture letterboxed in 16:9 (black bars), its animation held on twos."""
    active = round(w / 2.39)
    top = (h - active) // 2
    pic = np.zeros((h, w, 3), np.uint8)
    inner = _background(w, active, 2)
    step = i // 2  # held on twos
    y, x = np.mgrid[0:active, 0:w]
    blob = (x - (20 + 9 * step)) ** 2 + (y - active // 2) ** 2 < (active // 4) ** 2
    inner[blob] = (230, 180, 40)
    pic[top:top + active] = inner
    return pic


def slide_show(i: int, w: int, h: int) -> np.ndarray:
    """Slides held for 3 frames each: a picture with a few 'lines of text'."""
    slide = i // 3
    pic = _background(w, h, 10 + slide)
    for line in range(3):
        y0 = h // 5 + line * h // 5
        pic[y0:y0 + 3, w // 8:w // 8 + (w // 2 + 13 * ((slide + line) % 3))] = 20
    return pic


MADE = {"still scene + cursor": still_cursor, "2.39:1 letterboxed, held on twos": letterbox_held,
        "slide show": slide_show}


def make_clip(path: Path, draw, frames: int, w: int, h: int) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {"crf": "18"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(draw(i, w, h), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def lumas(path: Path, limit: int) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="gray").astype(np.int16))
            if len(out) >= limit:
                break
    return out


def planes(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [np.concatenate([np.asarray(p).ravel() for p in f.to_ndarray(format="yuv444p")]).astype(np.float64)
                for f in c.decode(video=0)]


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = float(np.mean([np.mean((x - y) ** 2) for x, y in zip(a, b)]))
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def flicker(inputs: list[np.ndarray], outputs: list[np.ndarray], scale: int) -> float:
    """Mean |delta| of the output luma between consecutive frames, over the pixels whose input
    luma moved by at most 1 (upsampled to the output)."""
    total, count = 0.0, 0
    for t in range(1, min(len(inputs), len(outputs))):
        static = np.abs(inputs[t] - inputs[t - 1]) <= 1
        static = static.repeat(scale, 0).repeat(scale, 1)
        delta = np.abs(outputs[t] - outputs[t - 1])[:static.shape[0], :static.shape[1]]
        total += float(delta[static].sum())
        count += int(static.sum())
    return total / count if count else 0.0


def _db(value: float | None) -> str:
    return "identical" if value is None else f"{value:.1f} dB"


def run(src: Path, out: Path, frames: int, mode: list[str], extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "dlgsa_vs.cli.video", str(src), "-o", str(out), "-c", "ffv1",
           "--frames", str(frames), *mode, *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    line = [ln for ln in p.stderr.splitlines() if " fps; network alone" in ln][-1]
    m = SUMMARY.search(line)
    # CPU seconds of the whole process (model loading included): less moved by other programs
    # on a shared machine than the wall clock
    r = {"fps": int(m.group(1)) / float(m.group(2)), "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}
    if m.group(4) is not None:
        r.update(tiles_reused=int(m.group(5)), tiles=int(m.group(6)), frames_reused=int(m.group(8)),
                 frames=int(m.group(9)))
    return r


def overhead(args, w: int, h: int) -> int:
    """In one process, exact reuse against off on frames that never repeat, interleaved (ABBA),
    CPU time of the calls alone: what reuse costs where it cannot pay."""
    import time

    import torch

    from dlgsa_vs.runtime.backends import create_upscaler

    torch.set_num_threads(args.threads)
    ups = {mode: create_upscaler(variant=args.variant, scale=2, backend="cpu", reuse=mode) for mode in ("off", "exact")}
    frames = [torch.rand(1, 3, h, w) for _ in range(args.frames + 1)]
    for up in ups.values():
        up(frames[0])  # warm-up (its own frame)
    spent = dict.fromkeys(ups, 0.0)
    for i, x in enumerate(frames[1:]):
        for mode in (("off", "exact") if i % 2 else ("exact", "off")):
            start = time.process_time()
            ups[mode](x)
            spent[mode] += time.process_time() - start
    print(f"{w}x{h}, {args.frames} frames each, never repeating: CPU time off {spent['off']:.2f} s, exact "
          f"{spent['exact']:.2f} s ({spent['exact'] / spent['off']:.3f}x); {ups['exact'].reuse_summary()}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="160x90", help="W x H of the clips made here (default 160x90)")
    ap.add_argument("--frames", type=int, default=8, help="frames of each clip made here (default 8)")
    ap.add_argument("--shared-frames", type=int, default=6, help="frames of each shared clip (default 6)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the box is shared)")
    ap.add_argument("--variant", default="light-video", help="packaged model (default light-video, x2)")
    ap.add_argument("--only", choices=list(MADE), action="append",
                    help="only this clip made here (repeatable), no shared clips")
    ap.add_argument("--overhead", action="store_true",
                    help="only the cost of exact reuse where nothing repeats, in one process (no clips)")
    ap.add_argument("--json", default=str(REPO / "bench" / "reuse.json"))
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    if args.overhead:
        return overhead(args, w, h)
    extra = ["--variant", args.variant, "--scale", "2", "--threads", str(args.threads)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_reuse_") as tmp:
        work = Path(tmp)
        clips = [(name, make_clip(work / f"made{i}.mp4", draw, args.frames, w, h), args.frames)
                 for i, (name, draw) in enumerate(MADE.items()) if args.only is None or name in args.only]
        if args.only is None:
            clips += [(p.name, p, args.shared_frames) for p in sorted(SHARED_VIDEO.glob("*.mp4"))]
        for name, src, frames in clips:
            row: dict = {"clip": name, "frames": frames}
            outs = {}
            for label, mode in MODES.items():
                out = work / f"{src.stem}_{label.replace(' ', '')}.mkv"
                row[label] = run(src, out, frames, mode, extra)
                outs[label] = out
                print(f"  {name}: {label}: {row[label]}", file=sys.stderr, flush=True)
            ref = planes(outs["off"])
            inputs = lumas(src, frames)
            with av.open(str(src)) as c:
                row["size"] = f"{c.streams.video[0].codec_context.width}x{c.streams.video[0].codec_context.height}"
            for label in MODES:
                got = planes(outs[label])
                value = psnr(got, ref)
                row[label]["psnr_vs_off"] = None if value == float("inf") else value  # None: identical
                row[label]["identical_to_off"] = all(np.array_equal(a, b) for a, b in zip(got, ref))
                row[label]["flicker"] = flicker(inputs, lumas(outs[label], frames), 2)
                row[label]["speedup"] = row[label]["fps"] / row["off"]["fps"]
                row[label]["cpu_speedup"] = row["off"]["cpu_s"] / row[label]["cpu_s"]
            results.append(row)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    meta = {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "model": f"{args.variant} x2", "threads": args.threads,
            "tile": "auto (default)", "command": " ".join(sys.argv)}
    Path(args.json).write_text(json.dumps({"meta": meta, "clips": results}, indent=1, default=str) + "\n")
    print(f"| clip | size, frames | reused tiles / frames (exact) | fps off | exact | tol 2 | exact = off | "
          f"CPU time off -> exact / tol 2 | PSNR tol 2 vs off | flicker off / exact / tol 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        e, t, o = r["exact"], r["tolerance 2"], r["off"]
        share = (f"{e['tiles_reused']}/{e['tiles']} / {e['frames_reused']}/{e['frames']}"
                 if "tiles" in e else "-")
        print(f"| {r['clip']} | {r['size']}, {r['frames']} | {share} | {o['fps']:.3f} | {e['fps']:.3f} "
              f"({e['speedup']:.2f}x) | {t['fps']:.3f} ({t['speedup']:.2f}x) | "
              f"{'yes' if e['identical_to_off'] else 'NO'} | {o['cpu_s']:.0f} s -> {e['cpu_speedup']:.2f}x / "
              f"{t['cpu_speedup']:.2f}x | {_db(t['psnr_vs_off'])} | "
              f"{o['flicker']:.2f} / {e['flicker']:.2f} / {t['flicker']:.2f} |")
    print(f"\n{meta['cpu']}, {meta['cores']} cores, {meta['date']}, {meta['model']}, threads {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
