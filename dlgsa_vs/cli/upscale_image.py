"""Upscale image files with DLGSANet on the CPU (or a GPU).

    dlgsa-upscale-image photo.png                 -> photo_x2.png
    dlgsa-upscale-image photo.jpg -s 4 -o big.jpg -> a JPEG: the format -o's extension names
    dlgsa-upscale-image a.png b.jpg --output-dir big/   -> big/a_x2.png, big/b_x2.png
    dlgsa-upscale-image shots/ --format webp      -> shots_x2/<name>_x2.webp for each picture in shots/
    dlgsa-upscale-image --demo                    -> makes demo.png, writes demo_x2.png

Output formats: PNG (the default), JPEG, WebP, BMP, TIFF, by the extension of -o (or --format).
Grey pictures stay grey. An alpha channel is kept: the network upscales the colour, the alpha
is resized (bicubic, FFmpeg's swscale); JPEG and BMP have no alpha, so a picture with one is
refused there. An existing output is never replaced without -y/--overwrite. Exit status:
0 done, 1 the run failed, 2 unusable options or input (after the other pictures, for several).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..image.imageio import (ALPHA_EXTENSIONS, IMAGE_FORMATS, Picture, encode_png, read_picture, resize_alpha,
                             write_image, write_png)
from ..runtime.backends import open_runner, select_backend
from ..runtime.inference import image_to_tensor, tensor_to_image
from ..runtime.packaged import DEFAULT_MODEL
from ..runtime.settings import SettingsError
from ..runtime.weights import WeightsError
from .common import (OPTION_NAMES, Parser, add_device_options, add_model_options, fail, settings_from_args, usage_message,
                     weights_message)

READ_EXTENSIONS = (*IMAGE_FORMATS, ".gif", ".tga", ".ppm", ".pgm", ".jxl", ".avif")
"""The files of a folder input that are taken as pictures (each file given by name is tried)."""
FORMATS = sorted({ext.lstrip(".") for ext in IMAGE_FORMATS})


def demo_image(width: int = 192, height: int = 128) -> np.ndarray:
    """A test picture made here: a zone plate, colour ramps and hard-edged shapes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
    zone = 0.5 + 0.5 * np.cos(r2 / (0.9 * width))
    img = np.stack([zone * (x / width), zone * 0.8 + 0.2 * (y / height), 1 - zone * (x / width)], axis=-1)
    img[20:50, 20:60] = (0.9, 0.2, 0.1)            # a red block
    img[(x - 150) ** 2 + (y - 90) ** 2 < 18 ** 2] = (0.1, 0.3, 0.9)  # a blue disc
    img[100:104, 10:180] = 1.0                       # a thin white bar
    return (img * 255).round().clip(0, 255).astype(np.uint8)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="dlgsa-upscale-image", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("input", nargs="*", help="image files (PNG, JPEG, WebP, BMP, TIFF, ...) and folders of them")
    ap.add_argument("-o", "--output", metavar="FILE", help="the output for one input; its extension picks the "
                    "format (default: <input>_x<scale>.png beside the input)")
    ap.add_argument("--output-dir", metavar="DIR", help="write <name>_x<scale>.<format> here (default: beside "
                    "each input file; <folder>_x<scale> for a folder)")
    ap.add_argument("--format", choices=FORMATS, help="the output format without -o (default png)")
    ap.add_argument("-y", "--overwrite", action="store_true", help="replace existing outputs (default: refuse)")
    ap.add_argument("--demo", action="store_true", help="make a test picture (demo.png) and upscale it")
    add_model_options(ap, DEFAULT_MODEL)
    add_device_options(ap)
    return ap


def input_files(names: list[str]) -> list[tuple[Path, Path | None]]:
    """(file, the folder it was found in or None) for each picture named: a folder gives its
    picture files (by extension, not its subfolders), sorted. Raises ValueError (one line)."""
    found: list[tuple[Path, Path | None]] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in READ_EXTENSIONS)
            if not files:
                raise ValueError(f"no pictures in the folder {path} (looked for {', '.join(READ_EXTENSIONS)})")
            found += [(f, path) for f in files]
        elif path.is_file():
            found.append((path, None))
        else:
            raise ValueError(f"input image not found: {path}")
    return found


def output_paths(inputs: list[tuple[Path, Path | None]], args: argparse.Namespace, scale: int) -> list[Path]:
    """Each input's output path (-o, or <name>_x<scale>.<format> in --output-dir, beside the
    input, or in <folder>_x<scale> for a folder's pictures). Raises ValueError (one line) for
    two inputs with one output, an output that is an input, or an existing one without -y."""
    if args.output:
        outs = [Path(args.output)]
    else:
        ext = "." + (args.format or "png")
        outs = []
        for src, folder in inputs:
            if args.output_dir:
                where = Path(args.output_dir)
            elif folder is not None:  # <folder>_x<scale> beside it ('.' too: its resolved name)
                base = folder if folder.name else folder.resolve()
                where = base.with_name(f"{base.name}_x{scale}")
            else:
                where = src.parent
            outs.append(where / f"{src.stem}_x{scale}{ext}")
    seen: dict[Path, Path] = {}
    sources = {src.resolve() for src, _ in inputs}
    for (src, _), out in zip(inputs, outs):
        key = out.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {src} would both be written to {out}: rename one, or use "
                             f"--output-dir for one of them")
        seen[key] = src
        if key in sources:
            raise ValueError(f"the output would overwrite the input {out}: choose another "
                             f"{'-o' if args.output else '--output-dir'}")
        if out.exists() and not args.overwrite:
            raise ValueError(f"{out} exists: add -y/--overwrite to replace it")
    return outs


def check_alpha(src: Path, picture: Picture, out: Path) -> None:
    """A picture with an alpha channel cannot go to a format without one (ValueError, one line)."""
    if picture.alpha is not None and out.suffix.lower() not in ALPHA_EXTENSIONS:
        raise ValueError(f"{src} has an alpha channel and {out.suffix} files have none: write "
                         f"{', '.join(ALPHA_EXTENSIONS)} to keep it (-o or --format)")


def check_size(backend: str, src: Path, picture: Picture, first: Picture) -> None:
    """The trt backend's engine is built for one input size (the first picture's): another
    size is one line (ValueError), not a failed engine call."""
    (h, w), (fh, fw) = picture.rgb.shape[:2], first.rgb.shape[:2]
    if backend == "trt" and (h, w) != (fh, fw):
        raise ValueError(f"{src} is {w}x{h}: --backend trt runs one picture size per call (its engine is "
                         f"static, built for {fw}x{fh}); upscale it in a call of its own")


def upscale_picture(upscaler, picture: Picture) -> tuple[np.ndarray, np.ndarray | None]:
    """The upscaled picture (H x W x 3, or H x W for a grey one) and its alpha channel (resized)."""
    out = upscaler(image_to_tensor(picture.rgb))[0]
    if picture.gray:  # three equal channels in; their mean out, so that grey stays grey
        result = out.mean(0).mul(255).round_().clamp_(0, 255).byte().cpu().numpy()
    else:
        result = tensor_to_image(out)
    alpha = None if picture.alpha is None else resize_alpha(picture.alpha, result.shape[1], result.shape[0])
    return result, alpha


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.demo == bool(args.input):
        return fail("give image files or folders, or --demo (not both)")
    if args.output and (len(args.input) > 1 or any(Path(i).is_dir() for i in args.input)):
        return fail("-o names one output file: for several pictures or a folder use --output-dir DIR")
    if args.output and (args.format or args.output_dir):
        return fail("-o names the output (its extension the format): leave out --format and --output-dir")
    if args.output and Path(args.output).suffix.lower() not in IMAGE_FORMATS:
        return fail(f"cannot write {args.output}: give -o a {', '.join(IMAGE_FORMATS)} name")
    try:
        settings = settings_from_args(args)
        backend = select_backend(settings)
    except SettingsError as exc:
        return fail(usage_message(exc))
    if settings.threads:
        torch.set_num_threads(settings.threads)

    if args.demo:
        src = Path(args.output or "demo_x.png").with_name("demo.png")
        picture = demo_image()
        if src.exists() and src.read_bytes() != encode_png(picture):
            if not args.overwrite:
                return fail(f"{src} exists and is not the demo picture: add -y/--overwrite to replace it")
            write_png(src, picture)
        elif not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            write_png(src, picture)
        names = [str(src)]
    else:
        names = args.input
    try:
        inputs = input_files(names)
        first = read_picture(inputs[0][0])  # before the weights load: an unreadable single file fails fast
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    try:
        upscaler = open_runner(settings, first.rgb.shape[:2], log=lambda m: print(m, file=sys.stderr),
                               names=OPTION_NAMES)
    except SettingsError as exc:
        return fail(usage_message(exc))
    except WeightsError as exc:
        return fail(weights_message(exc))
    try:
        outs = output_paths(inputs, args, upscaler.scale)
        if len(inputs) == 1:
            check_alpha(inputs[0][0], first, outs[0])  # before any folder is made
    except ValueError as exc:
        return fail(str(exc))
    for folder in {out.parent for out in outs}:
        folder.mkdir(parents=True, exist_ok=True)

    failed = 0
    for i, ((src, _), out) in enumerate(zip(inputs, outs)):
        try:
            picture = first if i == 0 else read_picture(src)
            check_alpha(src, picture, out)
            check_size(backend.name, src, picture, first)
        except (ValueError, OSError) as exc:  # one line, and on to the next picture
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        start = time.perf_counter()
        result, alpha = upscale_picture(upscaler, picture)
        seconds = time.perf_counter() - start
        write_image(out, result, alpha)
        h, w = picture.rgb.shape[:2]
        if upscaler.tile_for(h, w) != (0, 0):
            print(f"note: {upscaler.tile_summary(h, w)}", file=sys.stderr)
        kept = (" grey" if picture.gray else "") + (" with its alpha (resized)" if alpha is not None else "")
        print(f"{src} ({w}x{h}) -> {out} ({result.shape[1]}x{result.shape[0]}{kept}), x{upscaler.scale} "
              f"in {seconds:.1f} s on {upscaler.plan.summary()}", file=sys.stderr)
    if failed:
        return fail(f"{failed} of {len(inputs)} pictures could not be upscaled (said above); the others were")
    return 0


if __name__ == "__main__":
    sys.exit(main())
