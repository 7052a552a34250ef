#!/usr/bin/env python
"""Pack training images into one compact ``.npz`` for a machine that lacks them (the lent GPU).

    python scripts/make_train_pack.py -o .gpu/train_pack.npz              # T91 + BSD200, whole
    python scripts/train.py --data .gpu/train_pack.npz --out runs/x ...   # train from the pack

Lossless for the pixels it keeps (see ``dlgsa_vs.training.save_image_pack``). T91 + BSD200
whole make 44.5 MB, under the GPU machine's 64 MiB transfer; ``--max-side`` centre-crops each
image for a tighter limit (~38 MB at 432x288, which trained x4 worse per sample).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlgsa_vs.training import TrainingImage, load_training_images, pixel_digest, save_image_pack

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"


def centre_crop(image: TrainingImage, long_side: int, short_side: int) -> TrainingImage:
    h, w = image.pixels.shape[:2]
    max_h, max_w = (long_side, short_side) if h > w else (short_side, long_side)
    ch, cw = min(h, max_h), min(w, max_w)
    y, x = (h - ch) // 2, (w - cw) // 2
    pixels = image.pixels[y:y + ch, x:x + cw]
    return TrainingImage(image.label, pixel_digest(pixels), pixels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", default=[str(DATA / "T91"), str(DATA / "BSD200")],
                    help="image folders (default: ../shared/data/train/{T91,BSD200})")
    ap.add_argument("-o", "--output", required=True, help="the .npz file to write")
    ap.add_argument("--max-side", type=int, nargs=2, default=(0, 0), metavar=("LONG", "SHORT"),
                    help="centre-crop each image to at most LONG x SHORT pixels "
                         "(default 0 0: whole images)")
    args = ap.parse_args(argv)
    images = load_training_images(args.sources)
    if min(args.max_side) > 0:
        images = [centre_crop(im, *args.max_side) for im in images]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image_pack(out, images)
    pixels = sum(im.pixels.nbytes for im in images)
    print(f"{out}: {len(images)} images, {pixels / 1e6:.1f} MB of pixels in {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
