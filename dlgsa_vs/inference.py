"""The inference core that every front end uses: RGB float frames in, upscaled frames out.

``Upscaler`` owns a network on a device and dtype, runs batches of (N, 3, H, W) frames in
[0, 1], optionally in overlapping tiles for frames that do not fit in memory, and clamps the
result to [0, 1]. DLGSANet needs no padding to a multiple: its convolutions are size
preserving and TLC places its windows for any size, so frames go in as they are.

Half precision is guarded: a forward pass in fp16 (or bf16) whose output is not finite (fp16
overflows at 65504) is redone in the next wider type (fp16 -> bf16 where the device has it ->
fp32), which is then kept, with a warning, so no black or NaN frame is ever returned.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .settings import check_tiling


@dataclass(frozen=True)
class TileSpan:
    """One tile along an axis: the input crop [crop, crop + size) and the part it owns."""

    crop: int
    size: int
    own_start: int
    own_end: int


def tile_spans(length: int, tile: int, pad: int) -> list[TileSpan]:
    """Tiles of ``tile`` pixels along an axis, each read with ``pad`` pixels of real context.

    Every crop has the same size (so the tiles of a frame batch together): at the borders
    the crop slides inward instead of shrinking.
    """
    if tile <= 0 or tile >= length:
        return [TileSpan(0, length, 0, length)]
    size = min(tile + 2 * pad, length)
    spans = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        crop = min(max(start - pad, 0), length - size)
        spans.append(TileSpan(crop, size, start, end))
    return spans


def network_input_hw(height: int, width: int, tile: tuple[int, int], tile_pad: int) -> tuple[int, int]:
    """The (height, width) the network sees for frames of this size: the tile crop if tiling."""
    return tile_spans(height, tile[0], tile_pad)[0].size, tile_spans(width, tile[1], tile_pad)[0].size


class Upscaler:
    """Runs a super-resolution network on batches of RGB frames.

    model: any module mapping (N, 3, H, W) to (N, 3, sH, sW) with an ``upscale`` attribute.
    tile: (height, width) of LR tiles, 0 = whole frame; tile_pad: LR context around each tile.
    batch: how many frames (or tiles) go through the network at once.
    network: what runs, taking ``dtype`` input on ``device``: the model (default), or a compiled
    form or TensorRT engine of it that a backend made. fallback: given a wider dtype, the
    network to run from then on when a half-precision output overflows (default: the model
    moved to that dtype). Nothing here knows what the network is.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, tile: tuple[int, int] = (0, 0),
                 tile_pad: int = 16, batch: int = 1,
                 network: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 fallback: Callable[[torch.dtype], Callable[[torch.Tensor], torch.Tensor]] | None = None):
        check_tiling(tuple(tile), tile_pad, batch)
        self.device = torch.device(device)
        self.dtype = dtype
        self.scale: int = int(model.upscale)
        self.tile_h, self.tile_w = tile
        self.tile_pad = tile_pad
        self.batch = batch
        # Channels-last is the faster layout for the CPU's convolutions (bench/README.md).
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model = model.eval().to(self.device, dtype)
        self.network: Callable[[torch.Tensor], torch.Tensor] = network or self.model
        self._fallback = fallback or (lambda wider: self.model.to(self.device, wider))
        self._switch_lock = threading.Lock()

    def network_input_hw(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network sees for frames of this size (the tile crop if tiling)."""
        return network_input_hw(height, width, (self.tile_h, self.tile_w), self.tile_pad)

    def _wider_dtype(self) -> torch.dtype:
        if self.dtype == torch.float16 and (self.device.type != "cuda" or torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float32

    def _forward(self, chunk: torch.Tensor) -> torch.Tensor:
        while True:
            dtype, network = self.dtype, self.network
            y = network(chunk.to(self.device, dtype).contiguous(memory_format=self.memory_format))
            if dtype == torch.float32 or bool(torch.isfinite(y).all()):
                return y.float()
            with self._switch_lock:  # several threads may see the overflow: switch once
                if self.dtype == dtype:
                    wider = self._wider_dtype()
                    warnings.warn(f"the network's {str(dtype).removeprefix('torch.')} output is not "
                                  f"finite (overflow) on a {tuple(chunk.shape[2:])} input: switching to "
                                  f"{str(wider).removeprefix('torch.')} for the rest of the run",
                                  RuntimeWarning, stacklevel=2)
                    self.network = self._fallback(wider)
                    self.dtype = wider

    @torch.inference_mode()
    def run_network(self, x: torch.Tensor) -> torch.Tensor:
        """One forward pass on the device, in chunks of ``batch``; returns float32 on the device."""
        return torch.cat([self._forward(chunk) for chunk in x.split(self.batch)])

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, sH, sW) float32 in [0, 1], on frames' device."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected RGB frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
        n, _, h, w = frames.shape
        s = self.scale
        rows = tile_spans(h, self.tile_h, self.tile_pad)
        cols = tile_spans(w, self.tile_w, self.tile_pad)
        if len(rows) == 1 and len(cols) == 1:
            out = self.run_network(frames)
        else:
            out = torch.empty(n, 3, h * s, w * s, device=self.device)
            for i in range(n):
                crops = torch.stack([frames[i, :, r.crop:r.crop + r.size, c.crop:c.crop + c.size]
                                     for r in rows for c in cols])
                results = self.run_network(crops)
                for (r, c), res in zip(((r, c) for r in rows for c in cols), results):
                    out[i, :, r.own_start * s:r.own_end * s, c.own_start * s:c.own_end * s] = res[
                        :, (r.own_start - r.crop) * s:(r.own_end - r.crop) * s,
                        (c.own_start - c.crop) * s:(c.own_end - c.crop) * s]
        return out.clamp_(0.0, 1.0).to(frames.device)


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255)


def tensor_to_image(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8."""
    return frame.mul(255).round_().clamp_(0, 255).byte().permute(1, 2, 0).cpu().numpy()
