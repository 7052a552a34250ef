#!/usr/bin/env python
"""Side-by-side crops of ``dlgsa-upscale --preview`` PNGs of one frame by several models:
bicubic, then each model, cut to one box (for docs: small files).

    dlgsa-upscale clip.mp4 --preview 18 --variant light -o light.png
    dlgsa-upscale clip.mp4 --preview 18 --variant light-video -o video.png
    python scripts/preview_crops.py light.png video.png --box 200 120 240 160 -o docs/images/clip.png

Each preview is bicubic (left half) | network (right half); the bicubic half is taken from
the first file (all are the same frame). ``--box X Y W H`` in output pixels.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from dlgsa_vs.image.imageio import read_image, write_png


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("previews", nargs="+", help="--preview PNGs of the same frame, one per model")
    ap.add_argument("--box", nargs=4, type=int, required=True, metavar=("X", "Y", "W", "H"))
    ap.add_argument("--gap", type=int, default=4, help="white pixels between the crops")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    sides = [read_image(p) for p in args.previews]
    half = sides[0].shape[1] // 2
    if any(s.shape != sides[0].shape for s in sides):
        ap.error("the previews differ in size: give previews of the same frame at the same scale")
    x, y, w, h = args.box
    if x < 0 or y < 0 or x + w > half or y + h > sides[0].shape[0]:
        ap.error(f"--box {x} {y} {w} {h} does not fit a {half}x{sides[0].shape[0]} frame")
    crops = [sides[0][y:y + h, x:x + w]] + [s[y:y + h, half + x:half + x + w] for s in sides]
    gap = np.full((h, args.gap, 3), 255, np.uint8)
    parts = []
    for c in crops:
        parts += [c, gap]
    write_png(args.output, np.concatenate(parts[:-1], axis=1))
    print(f"wrote {args.output}: bicubic | " + " | ".join(args.previews), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
