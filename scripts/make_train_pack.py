#!/usr/bin/env python
"""Pack training images into one compact ``.npz`` for a machine that lacks them (the lent GPU).

    python scripts/make_train_pack.py -o .gpu/train_pack.npz              # T91 + BSD200, whole
    python scripts/train.py --data .gpu/train_pack.npz --out runs/x ...   # train from the pack

Lossless for the pixels it keeps (see ``dlgsa_vs.train.loop.save_image_pack``). T91 + BSD200
whole make 44.5 MB, under the GPU machine's 64 MiB transfer; ``--max-side`` centre-crops each
image for a tighter limit (~38 MB at 432x288, which trained x4 worse per sample).

**Degradation pack** (compressed-input training, issue 17)::

    python scripts/make_train_pack.py -o .gpu/degrade_pack_x2.npz --degrade --scale 2 --seed 0

Besides the clean HR images (stored as above, so ``load_image_pack`` still reads the pack as
a plain HR pack), each image gets an LR input per ``--scale``: the HR mod-cropped to the
scale, MATLAB-bicubic downscaled (as the benchmark LR and today's training LR), then passed
through :mod:`dlgsa_vs.train.degrade` (libx264 / libx265 / libsvtav1 / libvpx-vp9 round trips at
per-encoder CRF ranges, intra or a P/B frame of a sequence of shifted crops, 8-bit 4:2:0 at
the LR size; a ``--clean-share`` left as the clean bicubic LR). The target is the clean
(mod-cropped) HR. Image ``i`` at scale ``s`` draws from ``default_rng([seed, s * 100000 + i])``,
so the pack is reproducible from its config: the arrays ``config`` (JSON: seed, degradation
settings, library versions, the image labels and digests) and ``lr_x{s}_degradations`` (what
was done to each image) record it. Stored arrays: ``lr_x{s}_image{i}`` (encoded like the HR),
``lr_x{s}_shapes``; ``dlgsa_vs.train.loop.read_degradation_pack`` reads them back, and
``scripts/train.py --data PACK`` trains on these pairs (degraded LR -> clean HR).

``--draws N`` stores N degraded LR per image and scale, each drawn on its own
(``default_rng([seed, s * 100000 + i, d])`` for draw d > 0, under ``lr_x{s}_draw{d}_*``;
the first draw is the 1-draw pack's): a long (GPU) run then sees each image under several
codecs and strengths, for the price of the LR only (the HR is stored once).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from dlgsa_vs.train.loop import (TrainingImage, encode_pixels, image_pack_arrays, load_training_images,
                               lr_array_prefix, pixel_digest, save_image_pack)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"


def centre_crop(image: TrainingImage, long_side: int, short_side: int) -> TrainingImage:
    h, w = image.pixels.shape[:2]
    max_h, max_w = (long_side, short_side) if h > w else (short_side, long_side)
    ch, cw = min(h, max_h), min(w, max_w)
    y, x = (h - ch) // 2, (w - cw) // 2
    pixels = image.pixels[y:y + ch, x:x + cw]
    return TrainingImage(image.label, pixel_digest(pixels), pixels)


def degradation_arrays(images: list[TrainingImage], scales: list[int], config,
                       draws: int = 1) -> tuple[dict, dict]:
    """The LR arrays of a degradation pack (``draws`` degraded LR per image and scale) and a
    count of what was drawn, per scale (over all draws)."""
    from dlgsa_vs.train.degrade import degrade_images
    from dlgsa_vs.image.imresize import bicubic_downscale, modcrop

    arrays, summary = {}, {}
    for s in scales:
        lrs = [bicubic_downscale(modcrop(im.pixels, s), s) for im in images]
        all_done = []
        for draw in range(draws):
            degraded, done = degrade_images(lrs, config, start=s * 100000, draw=draw)
            prefix = lr_array_prefix(s, draw)
            arrays[f"{prefix}_shapes"] = np.array([d.shape[:2] for d in degraded], dtype=np.int64).reshape(-1, 2)
            arrays[f"{prefix}_degradations"] = np.array([d.describe() for d in done])
            for i, d in enumerate(degraded):
                arrays[f"{prefix}_image{i}"] = encode_pixels(d)
            all_done += done
        counts = Counter(d.encoder or "clean" for d in all_done)
        summary[s] = dict(counts, inter=sum(d.frames > 1 for d in all_done))
    return arrays, summary


def save_degradation_pack(path: Path, images: list[TrainingImage], scales: list[int], config,
                          sources: list[str], draws: int = 1) -> dict:
    import av

    arrays = image_pack_arrays(images)  # the HR part, exactly an image pack's (nothing is written until the end)
    lr_arrays, summary = degradation_arrays(images, scales, config, draws)
    arrays.update(lr_arrays)
    meta = {"kind": "degradation", "scales": scales, "draws": draws, "degrade": config.to_dict(),
            "lr": "HR mod-cropped to the scale, MATLAB bicubic downscale, then dlgsa_vs.train.degrade",
            "target": "clean HR (mod-cropped to the scale)", "rng": "default_rng([seed, scale * 100000 + i]), draw d > 0: default_rng([seed, scale * 100000 + i, d])",
            "sources": sources, "images": [f"{im.label} {im.digest}" for im in images],
            "pyav": av.__version__, "ffmpeg": {k: ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
                                              for k, v in av.library_versions.items()},
            "drawn": {str(s): v for s, v in summary.items()}}
    arrays["config"] = np.array(json.dumps(meta))
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", default=[str(DATA / "T91"), str(DATA / "BSD200")],
                    help="image folders (default: ../shared/data/train/{T91,BSD200})")
    ap.add_argument("-o", "--output", required=True, help="the .npz file to write")
    ap.add_argument("--max-side", type=int, nargs=2, default=(0, 0), metavar=("LONG", "SHORT"),
                    help="centre-crop each image to at most LONG x SHORT pixels "
                         "(default 0 0: whole images)")
    ap.add_argument("--degrade", action="store_true",
                    help="a degradation pack: add compressed-video LR inputs (dlgsa_vs.train.degrade) per --scale")
    ap.add_argument("--scale", type=int, action="append", choices=(2, 3, 4),
                    help="with --degrade: scale(s) of the LR inputs (repeatable; default 2)")
    ap.add_argument("--seed", type=int, default=0, help="with --degrade: seed of all draws (default 0)")
    ap.add_argument("--clean-share", type=float, default=0.15,
                    help="with --degrade: share of LR inputs left clean bicubic (default 0.15)")
    ap.add_argument("--encoders", nargs="+", default=None,
                    help="with --degrade: encoders to draw from (default all four)")
    ap.add_argument("--draws", type=int, default=None,
                    help="with --degrade: degraded LR inputs per image and scale, each its own draw "
                         "(default 1; the first is the one a 1-draw pack of the same seed has)")
    args = ap.parse_args(argv)
    if not args.degrade and (args.scale or args.encoders or args.draws):
        ap.error("--scale, --encoders and --draws need --degrade")
    if args.draws is not None and args.draws < 1:
        ap.error(f"--draws {args.draws}: give 1 or more")
    images = load_training_images(args.sources)
    if min(args.max_side) > 0:
        images = [centre_crop(im, *args.max_side) for im in images]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.degrade:
        from dlgsa_vs.train.degrade import ENCODERS, DegradeConfig

        encoders = tuple(args.encoders or ENCODERS)
        bad = [e for e in encoders if e not in ENCODERS]
        if bad or not 0 <= args.clean_share <= 1:
            ap.error(f"unknown encoder(s) {bad} (of {', '.join(ENCODERS)})" if bad else "--clean-share is 0..1")
        config = DegradeConfig(seed=args.seed, clean_share=args.clean_share, encoders=encoders)
        meta = save_degradation_pack(out, images, sorted(set(args.scale or [2])), config, args.sources,
                                     args.draws or 1)
        print(f"degradations (seed {args.seed}): {json.dumps(meta['drawn'])}")
    else:
        save_image_pack(out, images)
    pixels = sum(im.pixels.nbytes for im in images)
    print(f"{out}: {len(images)} images, {pixels / 1e6:.1f} MB of pixels in {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
