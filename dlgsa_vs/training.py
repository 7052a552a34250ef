"""Pieces of the training loop (``scripts/train.py``): paired patches, EMA, resumable state.

Patches are cut from HR images and from their MATLAB-bicubic LR (made once per image at
start-up with ``imresize``, exactly like the benchmark LR), aligned, with random flips and
90-degree rotations. Randomness comes from ``(seed, iteration)`` alone, so a resumed run
draws the same batches as one that never stopped.
"""
from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .imageio import read_image
from .imresize import bicubic_downscale, modcrop

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


def list_images(folders: list[str | os.PathLike]) -> list[Path]:
    """Image files of the given folders, sorted by path."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        files += [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no images (png, bmp, jpg, tif) in {', '.join(map(str, folders))}")
    return sorted(files)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class PairedPatches:
    """HR/LR image pairs in memory, sampled as random aligned patches."""

    def __init__(self, files: list[Path], scale: int, min_lr_side: int):
        self.scale = scale
        self.files = []
        self.hr: list[np.ndarray] = []
        self.lr: list[np.ndarray] = []
        for path in files:
            hr = modcrop(read_image(path), scale)
            if min(hr.shape[:2]) // scale < min_lr_side:
                continue  # too small for a patch
            self.files.append(path)
            self.hr.append(np.ascontiguousarray(hr))
            self.lr.append(bicubic_downscale(hr, scale))
        if not self.files:
            raise ValueError(f"no image is large enough for {min_lr_side}-px LR patches at x{scale}")

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, seed: int, iteration: int, batch: int, lr_patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float tensors in [0, 1]: (B, 3, p, p) and (B, 3, s*p, s*p)."""
        rng = np.random.default_rng([seed, iteration])
        s, p = self.scale, lr_patch
        lrs, hrs = [], []
        for idx in rng.integers(0, len(self.files), size=batch):
            lr, hr = self.lr[idx], self.hr[idx]
            y = int(rng.integers(0, lr.shape[0] - p + 1))
            x = int(rng.integers(0, lr.shape[1] - p + 1))
            lr_p = lr[y:y + p, x:x + p]
            hr_p = hr[y * s:(y + p) * s, x * s:(x + p) * s]
            flip_h, flip_v, transpose = rng.random(3) < 0.5
            lr_p, hr_p = (augment(a, flip_h, flip_v, transpose) for a in (lr_p, hr_p))
            lrs.append(lr_p)
            hrs.append(hr_p)
        to_t = lambda arrs: torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div_(255)
        return to_t(lrs), to_t(hrs)


def augment(img: np.ndarray, flip_h: bool, flip_v: bool, transpose: bool) -> np.ndarray:
    """The 8 dihedral transforms: flips and a transpose (with flips, the 90-degree rotations)."""
    if flip_h:
        img = img[:, ::-1]
    if flip_v:
        img = img[::-1]
    if transpose:
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img)


class EMA:
    """Exponential moving average of a model's weights (BasicSR's ``net_g_ema``).

    The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` over the first updates: with a
    fixed 0.999 the average of a short (CPU) run would still be mostly the random
    initialisation after a few hundred steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)


def save_checkpoint(path: Path, **state) -> None:
    """Write a resumable state atomically (tensors and plain containers: weights_only-safe)."""
    tmp = path.with_name(f".{path.name}.part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
