"""Benchmark evaluation (Set5, Set14, ...): Y-PSNR / SSIM of an upscaler vs bicubic.

:func:`evaluate` is model-agnostic: it takes any callable
``upscaler(lr_uint8_HxWx3) -> sr_uint8_HxWx3``. The protocol is the usual one
of the SR literature (EDSR / BasicSR):

1. HR is mod-cropped (bottom/right) to a multiple of the scale.
2. LR comes from ``lr_dir`` (``<name>x{s}.png``, e.g. the ``LR_bicubic/X{s}``
   folders of the EDSR benchmark layout) or, without ``lr_dir``, from
   :func:`dlgsa_vs.image.imresize.bicubic_downscale` (MATLAB ``imresize`` bicubic,
   which reproduces those files bit-exactly).
3. PSNR and SSIM on the BT.601 Y channel, ``crop_border`` (default: the
   scale) pixels removed on every side.
4. The bicubic baseline is MATLAB-bicubic enlargement of the same LR.

Grayscale images (Set14 ``bridge``) are loaded as three equal channels and
evaluated like that; their Y is the grey value mapped to 16..235, exactly as
for a one-channel evaluation. They are marked ``"gray": true`` in the result.
``gray_as_y=True`` instead measures grayscale images on their grey values
(Y rescaled to 0..255), as the classic MATLAB evaluation did: that is what
the published Set14 bicubic numbers (30.24 / 27.55 / 26.00 dB) assume; the
default BT.601 mapping gives bridge +1.32 dB and the Set14 mean +0.094 dB.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..image.imageio import read_image_info
from ..image.imresize import bicubic_downscale, bicubic_upscale, modcrop
from .metrics import psnr_y, ssim_y

__all__ = ["evaluate", "list_images", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

Upscaler = Callable[[np.ndarray], np.ndarray]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_lr(lr_dir: Path, stem: str, scale: int) -> Path:
    """The LR image of HR image ``stem`` in ``lr_dir``: ``<stem>x<scale>.<ext>`` (the benchmark
    sets' naming) or ``<stem>.<ext>``."""
    for name in (f"{stem}x{scale}", stem):
        for ext in IMAGE_EXTENSIONS:
            p = lr_dir / f"{name}{ext}"
            if p.is_file():
                return p
    raise FileNotFoundError(f"no LR image for {stem!r} in {lr_dir} (expected {stem}x{scale}.png)")


def _check_sr(sr: np.ndarray, hr: np.ndarray, name: str) -> np.ndarray:
    sr = np.asarray(sr)
    if sr.dtype != np.uint8:
        raise TypeError(f"{name}: upscaler returned {sr.dtype}, expected uint8")
    if sr.shape != hr.shape:
        raise ValueError(f"{name}: upscaler returned shape {sr.shape}, HR is {hr.shape}")
    return sr


def _mean(rows: list[dict], key: str) -> dict | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None
    return {m: float(np.mean([v[m] for v in vals])) for m in ("psnr", "ssim")}


def evaluate(hr_dir: str | os.PathLike, scale: int, upscaler: Upscaler | None,
             lr_dir: str | os.PathLike | None = None,
             crop_border: int | None = None, gray_as_y: bool = False) -> dict:
    """Evaluate ``upscaler`` (``None``: bicubic baseline only) on the HR images in ``hr_dir``.

    Returns a JSON-serialisable dict::

        {"scale", "crop_border", "hr_dir", "lr_dir", "lr_source",
         "images": [{"name", "gray", "hr_shape", "lr_shape",
                     "bicubic": {"psnr", "ssim"}, "model": {"psnr", "ssim"} | None}, ...],
         "mean": {"bicubic": {"psnr", "ssim"}, "model": {...} | None},
         "notes": [...]}
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    crop = scale if crop_border is None else int(crop_border)
    hr_paths = list_images(hr_dir)
    if not hr_paths:
        raise FileNotFoundError(f"no images in {hr_dir}")
    lr_path_dir = Path(lr_dir) if lr_dir is not None else None

    rows = []
    for hr_path in hr_paths:
        name = hr_path.stem
        hr, gray = read_image_info(hr_path)
        hr = modcrop(hr, scale)
        if lr_path_dir is not None:
            lr = read_image_info(find_lr(lr_path_dir, name, scale))[0]
            want = (hr.shape[0] // scale, hr.shape[1] // scale)
            if lr.shape[:2] != want:
                raise ValueError(f"{name}: LR is {lr.shape[:2]}, expected {want} "
                                 f"for HR {hr.shape[:2]} at x{scale}")
        else:
            lr = bicubic_downscale(hr, scale)
        bic = _check_sr(bicubic_upscale(lr, scale), hr, f"{name} (bicubic)")
        full = bool(gray and gray_as_y)
        row = {
            "name": name,
            "gray": bool(gray),
            "hr_shape": list(hr.shape[:2]),
            "lr_shape": list(lr.shape[:2]),
            "bicubic": {"psnr": psnr_y(bic, hr, crop, full), "ssim": ssim_y(bic, hr, crop, full)},
            "model": None,
        }
        if upscaler is not None:
            sr = _check_sr(upscaler(np.ascontiguousarray(lr)), hr, name)
            row["model"] = {"psnr": psnr_y(sr, hr, crop, full), "ssim": ssim_y(sr, hr, crop, full)}
        rows.append(row)

    notes = ["PSNR/SSIM on BT.601 Y (MATLAB rgb2ycbcr, unrounded), "
             f"{crop} px border cropped, HR mod-cropped to a multiple of {scale}"]
    grays = [r["name"] for r in rows if r["gray"]]
    if grays and gray_as_y:
        notes.append("grayscale HR measured on grey values (Y rescaled to 0..255, "
                     "classic MATLAB convention): " + ", ".join(grays))
    elif grays:
        notes.append("grayscale HR evaluated as 3 equal channels (Y = 16 + 219*g/255; "
                     "--gray-as-y for the classic convention): " + ", ".join(grays))
    return {
        "scale": scale,
        "crop_border": crop,
        "gray_as_y": bool(gray_as_y),
        "hr_dir": str(hr_dir),
        "lr_dir": None if lr_dir is None else str(lr_dir),
        "lr_source": "files" if lr_dir is not None else "bicubic_downscale",
        "images": rows,
        "mean": {"bicubic": _mean(rows, "bicubic"), "model": _mean(rows, "model")},
        "notes": notes,
    }
