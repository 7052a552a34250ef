"""Pieces of the training loop (``scripts/train.py``): paired patches, EMA, resumable state.

Patches are cut from HR images and from their MATLAB-bicubic LR (made once per image at
start-up with ``imresize``, exactly like the benchmark LR), aligned, with random flips and
90-degree rotations. Randomness comes from ``(seed, iteration)`` alone, so a resumed run
draws the same batches as one that never stopped.
"""
from __future__ import annotations

import copy
import hashlib
import json
import lzma
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..image.imresize import bicubic_downscale, modcrop

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
PACK_SUFFIX = ".npz"


@dataclass(frozen=True)
class TrainingImage:
    """One HR training image: ``label`` is ``<folder>/<file name>``, ``digest`` hashes the pixels."""

    label: str
    digest: str
    pixels: np.ndarray  # H x W x 3 uint8


def pixel_digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


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


def load_training_images(sources: list[str | os.PathLike]) -> list[TrainingImage]:
    """Images from folders and/or image packs (``.npz`` made by ``save_image_pack``), sorted by label."""
    images = []
    folders = [Path(s) for s in sources if Path(s).suffix != PACK_SUFFIX]
    for pack in (Path(s) for s in sources if Path(s).suffix == PACK_SUFFIX):
        images += load_image_pack(pack)
    if folders:
        from ..image.imageio import read_image  # PyAV: only where image files are read

        for path in list_images(folders):
            pixels = read_image(path)
            images.append(TrainingImage(f"{path.parent.name}/{path.name}", pixel_digest(pixels), pixels))
    return sorted(images, key=lambda im: im.label)


# An image pack carries a training set to a machine that has neither the files nor an image
# decoder (the lent GPU machine), in a fraction of the PNG size: each image is stored planar as
# (G, R-G, B-G), 2-D differenced (each value minus its left and upper neighbours plus the
# upper-left one, modulo 256) and LZMA-compressed. Decoding is two cumulative sums, exact.

def encode_pixels(pixels: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 image as an image pack stores it (the scheme above); decoded by
    ``_decode_pixels`` when the pack is loaded."""
    p = pixels.transpose(2, 0, 1).astype(np.uint8)
    planes = np.stack([p[1], p[0] - p[1], p[2] - p[1]])  # uint8 arithmetic wraps modulo 256
    d = planes.copy()
    d[:, :, 1:] -= planes[:, :, :-1]
    d[:, 1:] -= d[:, :-1].copy()
    return np.frombuffer(lzma.compress(d.tobytes(), preset=6), dtype=np.uint8)


def _decode_pixels(blob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    d = np.frombuffer(lzma.decompress(blob.tobytes()), dtype=np.uint8).reshape(3, h, w)
    planes = np.cumsum(np.cumsum(d, axis=1, dtype=np.uint8), axis=2, dtype=np.uint8)
    g = planes[0]
    return np.stack([planes[1] + g, g, planes[2] + g], axis=-1)


def image_pack_arrays(images: list[TrainingImage]) -> dict[str, np.ndarray]:
    """The arrays of an image pack (``save_image_pack`` writes them; a degradation pack adds its LR)."""
    arrays = {"labels": np.array([im.label for im in images]),
              "shapes": np.array([im.pixels.shape[:2] for im in images], dtype=np.int64).reshape(-1, 2)}
    for i, im in enumerate(images):
        arrays[f"image{i}"] = encode_pixels(im.pixels)
    return arrays


def save_image_pack(path: str | os.PathLike, images: list[TrainingImage]) -> Path:
    """Write images into one ``.npz`` (no pickles), atomically."""
    path = Path(path)
    arrays = image_pack_arrays(images)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


def load_image_pack(path: str | os.PathLike) -> list[TrainingImage]:
    with np.load(path, allow_pickle=False) as pack:
        images = []
        for i, (label, shape) in enumerate(zip(pack["labels"], pack["shapes"])):
            pixels = _decode_pixels(pack[f"image{i}"], (int(shape[0]), int(shape[1])))
            images.append(TrainingImage(str(label), pixel_digest(pixels), pixels))
    return images


def degradation_pack_config(path: str | os.PathLike) -> dict | None:
    """The recorded settings of a degradation pack (``make_train_pack.py --degrade``); None for
    a plain image pack or a folder."""
    if Path(path).suffix != PACK_SUFFIX:
        return None
    with np.load(path, allow_pickle=False) as pack:
        if "config" not in pack.files:
            return None
        config = json.loads(str(pack["config"]))
    return config if config.get("kind") == "degradation" else None


def lr_array_prefix(scale: int, draw: int) -> str:
    """Where a degradation pack keeps draw ``draw`` of its x``scale`` LR inputs:
    ``{prefix}_shapes``, ``{prefix}_degradations``, ``{prefix}_image{i}`` (the first draw under
    the names of the packs made before ``--draws`` existed)."""
    return f"lr_x{scale}" if draw == 0 else f"lr_x{scale}_draw{draw}"


def read_degradation_pack(path: str | os.PathLike, scale: int
                          ) -> tuple[dict, list[TrainingImage], list[list[np.ndarray]]]:
    """(settings, HR images, each image's degraded LR draws at ``scale``) of a degradation pack.
    Every draw of image i was made from ``modcrop(hr_i, scale)``: a bicubic downscale, then its
    own encoder round trip (``make_train_pack.py --draws``: one draw unless asked)."""
    config = degradation_pack_config(path)
    if config is None:
        raise ValueError(f"{path}: not a degradation pack (make it with make_train_pack.py --degrade)")
    if scale not in config["scales"]:
        raise ValueError(f"{path}: no x{scale} LR in this pack (it has x{', x'.join(map(str, config['scales']))}); "
                         f"make one with make_train_pack.py --degrade --scale {scale}")
    config.setdefault("draws", 1)  # packs made before --draws have one
    images = load_image_pack(path)
    lrs: list[list[np.ndarray]] = [[] for _ in images]
    with np.load(path, allow_pickle=False) as pack:
        for draw in range(config["draws"]):
            prefix = lr_array_prefix(scale, draw)
            for i, (h, w) in enumerate(pack[f"{prefix}_shapes"]):
                lrs[i].append(_decode_pixels(pack[f"{prefix}_image{i}"], (int(h), int(w))))
    return config, images, lrs


class PairedPatches:
    """HR/LR image pairs in memory, sampled as random aligned patches. The LR is the MATLAB
    bicubic downscale of each HR unless ``lrs`` gives it: a degradation pack's draws for each
    image (same order), one of which each patch takes at random. ``lr[i]`` holds image i's
    draws; ``lr[i][0]`` is the one validation uses."""

    def __init__(self, images: list[TrainingImage], scale: int, min_lr_side: int,
                 lrs: list[list[np.ndarray]] | None = None):
        self.scale = scale
        self.images: list[TrainingImage] = []
        self.hr: list[np.ndarray] = []
        self.lr: list[list[np.ndarray]] = []
        for i, image in enumerate(images):
            hr = modcrop(image.pixels, scale)
            if min(hr.shape[:2]) // scale < min_lr_side:
                continue  # too small for a patch
            draws = [bicubic_downscale(hr, scale)] if lrs is None else lrs[i]
            for lr in draws:
                if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
                    raise ValueError(f"{image.label}: LR {lr.shape[1]}x{lr.shape[0]} is not the HR "
                                     f"{hr.shape[1]}x{hr.shape[0]} / {scale}")
            self.images.append(image)
            self.hr.append(np.ascontiguousarray(hr))
            self.lr.append([np.ascontiguousarray(lr) for lr in draws])
        if not self.images:
            raise ValueError(f"no image is large enough for {min_lr_side}-px LR patches at x{scale}")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, seed: int, iteration: int, batch: int, lr_patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float tensors in [0, 1]: (B, 3, p, p) and (B, 3, s*p, s*p)."""
        rng = np.random.default_rng([seed, iteration])
        s, p = self.scale, lr_patch
        lrs, hrs = [], []
        for idx in rng.integers(0, len(self.images), size=batch):
            draws, hr = self.lr[idx], self.hr[idx]
            # a draw is picked only where there are several: one-draw batches stay as they were
            lr = draws[int(rng.integers(len(draws)))] if len(draws) > 1 else draws[0]
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
        # one fused call for all tensors: on a GPU, a loop of small lerps costs more than the step
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()],
                             1.0 - decay)


def save_checkpoint(path: Path, **state) -> None:
    """Write a resumable state atomically (tensors and plain containers: weights_only-safe)."""
    tmp = path.with_name(f".{path.name}.part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
