#!/usr/bin/env python
"""What --deinterlace costs the decode stage: detection time and filter throughput.

On an interlaced clip (default: 720x480 MPEG-2, TFF, 29.97i, 120 frames, made here, as a
DVD holds), without the network:
  detect       ``fields.plan(info, "auto")``: the flags and idet over the first 60 frames;
  decode       the run's reader alone (``Source``), frames per second;
  bwdif, ...   the reader with each treatment's FFmpeg filters (``FieldSource``): input
               frames read per second, and output frames made.
The network takes seconds per such frame on a CPU, so the filters should stay far faster.

    python scripts/bench_fields.py
    python scripts/bench_fields.py --clip capture.ts --json bench/fields.json
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def make_clip(path: Path, frames: int = 120, width: int = 720, height: int = 480) -> Path:
    """Interlaced MPEG-2: a textured picture panning 3 px a field, fields woven top first
    and flagged so (setfield)."""
    import av
    import numpy as np

    from dlgsa_vs.video.fields import FilterChain

    rng = np.random.default_rng(38)
    cols = width + 6 * frames + 8
    blocks = rng.random((height // 8 + 1, cols // 8 + 1)).repeat(8, 0).repeat(8, 1)[:height, :cols]
    y, x = np.mgrid[0:height, 0:cols]
    wide = np.clip(40 + 140 * blocks + 40 * np.sin(x / 5.0 + y / 9.0), 16, 235).astype(np.uint8)
    rate = Fraction(30000, 1001)
    flag = None
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg2video", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        cc = s.codec_context
        cc.time_base = 1 / rate
        cc.flags = cc.flags | av.codec.context.Flags.interlaced_me | av.codec.context.Flags.interlaced_dct
        cc.options = {"b": "6M"}
        for i in range(frames):
            img = wide[:, 6 * i:6 * i + width].copy()
            img[1::2] = wide[1::2, 6 * i + 3:6 * i + 3 + width]
            chroma = np.full((height // 2, width), 128, np.uint8)
            f = av.VideoFrame.from_ndarray(np.concatenate([img, chroma]), format="yuv420p")
            f.pts = i
            flag = flag or FilterChain(f, 1 / rate, rate, [("setfield", "tff")])
            for g in flag.push(f):
                g.pts = i
                out.mux(s.encode(g))
        out.mux(s.encode(None))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", help="input video (default: make a 720x480 interlaced MPEG-2 clip)")
    ap.add_argument("--json", default="bench/fields.json", help="where to write the results")
    args = ap.parse_args()

    from dlgsa_vs.video.fields import FieldSource, decide, measure, plan
    from dlgsa_vs.video.probe import Source, probe, set_log_mode

    set_log_mode(False)
    tmp = tempfile.TemporaryDirectory(prefix="bench_fields_")
    clip = Path(args.clip) if args.clip else make_clip(Path(tmp.name) / "interlaced.mpg")

    def timed(fn):
        t = time.perf_counter()
        value = fn()
        return value, time.perf_counter() - t

    info = probe(clip)
    found, detect_s = timed(lambda: plan(info, "auto"))
    info.container.close()
    rows = [dict(step="detect", seconds=round(detect_s, 3), note=found.summary())]

    def read(mode: str | None) -> dict:
        info = probe(clip)
        try:
            source = Source(info)
            stream = source if mode is None else FieldSource(source, decide(measure(info), mode, info.rate))
            n, seconds = timed(lambda: sum(ev[0] == "frame" for ev in stream.events()))
        finally:
            info.container.close()
        return dict(step=mode or "decode", seconds=round(seconds, 3), frames_in=source.frames, frames_out=n,
                    fps_in=round(source.frames / seconds, 1))

    rows += [read(None), read("bwdif"), read("bwdif-frame"), read("ivtc")]
    print(f"{'step':<12} {'seconds':>8} {'in':>5} {'out':>5} {'fps in':>8}")
    for r in rows:
        print(f"{r['step']:<12} {r['seconds']:>8.3f} {r.get('frames_in', ''):>5} {r.get('frames_out', ''):>5} "
              f"{r.get('fps_in', ''):>8}")
    print(rows[0]["note"])
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    result = dict(clip=str(args.clip or "720x480 MPEG-2 TFF 29.97i, 120 frames, made here"), cpu=cpu,
                  rows=rows, date=time.strftime("%Y-%m-%d"))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
