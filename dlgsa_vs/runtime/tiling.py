"""Choosing tiles: the tile an ``Upscaler`` uses when the settings say ``tile="auto"``.

One rule per device. A forward pass needs about ``bytes_per_pixel`` bytes of activations per
LR pixel of its input (a crop: the tile plus ``tile_pad`` context on each side), times the
batch. Auto takes the cheapest grid of equal-size tiles (the ``tile_spans`` rule, so the
tiles of a frame batch together) whose crop fits

* the memory budget: on the CPU ``CPU_MEMORY_SHARE`` of ``MemAvailable`` (/proc/meminfo) at
  ``CPU_BYTES_PER_PIXEL`` (measured, below); on a GPU ``GPU_MEMORY_SHARE`` of the free memory
  (``torch.cuda.mem_get_info``) at the bytes per pixel a probe pass measures at run time
  (``torch.cuda.max_memory_allocated`` over two small sizes, in the run's dtype);
* and on the CPU the speed cap ``CPU_FASTEST_CROP_PIXELS``: past it, a larger crop is no
  faster per pixel (the working set leaves the caches; bench/README.md, "Tile size").

"Cheapest" counts the pixels the network computes: the crops, with the TLC attention's
windows (each crop gets the frame's windows that lie in it and, at each edge that cuts
through a frame window, one more: ``arch.tlc.crop_window_layout``), so among the grids that
fit, auto prefers few tiles with little context, cut on the frame's window grid.
A frame that fits whole is run whole, ``(0, 0)``.

``MIN_TILE`` is the smallest tile the run goes down to when out-of-memory recovery halves it
(``inference.Upscaler``): below 16 LR pixels a tile is mostly context (a 16-pixel tile with
the default ``tile_pad`` 16 computes 9x its own pixels), and a pass on a 48x48 crop needs
~10 MB: a device that cannot hold that cannot run the network at all.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch

from ..arch.tlc_grid import tlc_window_starts

from .settings import MIN_TILE  # noqa: E402,F401 - the smallest tile side (LR pixels), written once there

CPU_MEMORY_SHARE = 0.5
"""Of the available RAM: the rest is for the decoder, the encoder's queue and the other programs."""
GPU_MEMORY_SHARE = 0.7
"""Of the free GPU memory: the caching allocator's fragmentation and other streams take the rest."""

# Peak RSS growth of one fp32 forward pass per LR input pixel, by network width (light/tiny 48,
# full 90) and scale, measured in fresh processes over 128x128 and 384x384 crops (the larger of
# the slope and the 384x384 ratio; light x2 2688 / 2597, light x4 4049 / 4024, full x2 4461 / 4751):
#   .venv/bin/python scripts/bench_tiles.py --no-speed --json bench/tiles.json
# (2026-12-01, this project's 2-core machine, torch 2.14.1, TLC on; bench/tiles.json "memory").
# x3 and tiny are not measured: they take the largest of their width (x3 lies between x2 and x4).
CPU_BYTES_PER_PIXEL: dict[tuple[int, int], float] = {(48, 2): 2688.0, (48, 4): 4049.0, (90, 2): 4751.0}

# The LR crop (pixels) past which a larger crop is no faster per owned pixel on the CPU: light
# x2, fp32, TLC on, 1 torch thread (other work shared the 2 cores), best of 2 per size:
#   .venv/bin/python scripts/bench_tiles.py --threads 1 --no-memory --json bench/tiles.json
# 256^2 147, 320^2 141, 384^2 142, 512^2 198 us per owned pixel (pad 16): the fastest, 320^2.
CPU_FASTEST_CROP_PIXELS = 320 * 320


@dataclass(frozen=True)
class TileSpan:
    """One tile along an axis: the input crop [crop, crop + size) and the part it owns."""

    crop: int
    size: int
    own_start: int
    own_end: int


def tile_spans(length: int, tile: int, pad: int, window: int | None = None) -> list[TileSpan]:
    """Tiles of at most ``tile`` pixels along an axis, each read with ``pad`` pixels of real
    context.

    Every crop has the same size (so the tiles of a frame batch together): at the borders
    the crop slides inward instead of shrinking. With ``window`` (the TLC window, for auto
    tiles) each cut moves back, by less than a window, to where the fewest owned pixels have
    a TLC window of the whole frame reaching past their crop (``_cut_cost``): there a tile
    given the frame's windows (``arch.tlc.crop_windows``) attends exactly as the whole frame.
    """
    if tile <= 0 or tile >= length:
        return [TileSpan(0, length, 0, length)]
    size = min(tile + 2 * pad, length)
    cuts = _cuts(length, tile, pad, window if window and size >= window else None)
    return [TileSpan(min(max(start - pad, 0), length - size), size, start, end)
            for start, end in zip(cuts[:-1], cuts[1:])]


def _cut_cost(x: int, frame_windows: list[int], k: int, pad: int) -> int:
    """Owned pixels next to a cut at ``x`` (crops ending at x + pad and starting at x - pad)
    that a frame TLC window reaching past their crop covers."""
    left = [s for s in frame_windows if s < x and s + k > x + pad]
    right = [s + k for s in frame_windows if s < x - pad and s + k > x]
    return (x - min(left) if left else 0) + (max(right) - x if right else 0)


@functools.lru_cache(maxsize=256)
def _cuts(length: int, tile: int, pad: int, window: int | None) -> tuple[int, ...]:
    """0, the cuts between tiles, and ``length``: every ``tile`` pixels, or (``window``) each
    moved back to the cheapest place within a window (ties: the latest)."""
    if not window or length <= window:
        return tuple(range(0, length, tile)) + (length,)
    frame_windows = tlc_window_starts(length, window)
    cuts = [0]
    while cuts[-1] + tile < length:
        latest = cuts[-1] + tile
        earliest = max(cuts[-1] + max(tile // 2, 1), latest - window + 1)
        cuts.append(min(range(latest, earliest - 1, -1), key=lambda x: _cut_cost(x, frame_windows, window, pad)))
    return tuple(cuts) + (length,)


def network_input_hw(height: int, width: int, tile: tuple[int, int], tile_pad: int) -> tuple[int, int]:
    """The (height, width) the network sees for frames of this size: the tile crop if tiling."""
    return tile_spans(height, tile[0], tile_pad)[0].size, tile_spans(width, tile[1], tile_pad)[0].size


def tlc_window(model: torch.nn.Module) -> int | None:
    """The model's TLC window (LR pixels) when TLC runs at inference, else None."""
    for m in model.modules():
        if getattr(m, "tlc", False) and isinstance(getattr(m, "tlc_kernel", None), int):
            return m.tlc_kernel
    return None


def network_width(model: torch.nn.Module) -> int:
    """Channels of the network's feature maps: the first convolution's output channels."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.out_channels
    return 48


def _windows(length: int, crop: int, size: int, k: int | None) -> int:
    """TLC windows along one axis of a crop given the frame's windows (``crop_window_layout``):
    what its attention computes, in windows of k pixels."""
    if not k:
        return 0
    from ..arch.tlc import crop_window_layout

    return max(len(crop_window_layout(length, crop, size, k)[0]), 2)


def _candidates(length: int, pad: int, k: int | None, max_crop: int, floor: int) -> list[int]:
    """Tile sides worth trying along one axis: the whole axis, even splits whose crops fit
    ``max_crop`` down to crops of ``floor``, tiles whose crops are whole TLC windows, and
    tiles that end on the frame's TLC window grid (``_grid_sides``)."""
    sides = {length}
    limit = max_crop - 2 * pad  # the largest tile side whose crop fits
    if limit >= MIN_TILE:
        n = max(2, -(-length // limit))
        while len(sides) < 64:
            side = -(-length // n)
            if side < MIN_TILE or (side + 2 * pad < floor and len(sides) > 1):
                break
            sides.add(side)
            n += 1
        if k:
            sides.update(m * k - 2 * pad for m in range(1, max_crop // k + 1) if MIN_TILE <= m * k - 2 * pad < length)
            sides.update(side for side in _grid_sides(length, k) if MIN_TILE <= side <= limit)
    return sorted(sides)


def _grid_sides(length: int, k: int) -> list[int]:
    """Tile sides that end just past an overlap of the frame's TLC windows (m steps plus the
    overlap): the places where ``tile_spans`` cuts cost least."""
    if length <= k:
        return []
    starts = tlc_window_starts(length, k)
    step = starts[1] - starts[0]
    return [m * step + k - step for m in range(1, length // step + 1) if m * step + k - step < length]


@functools.lru_cache(maxsize=4096)
def _axis(length: int, tile: int, pad: int, k: int | None) -> tuple[int, int, int]:
    """(number of tiles, crop side, TLC windows of all its crops) along an axis, as
    ``tile_spans`` lays them out."""
    spans = tile_spans(length, tile, pad, k) if tile < length else [TileSpan(0, length, 0, length)]
    return len(spans), spans[0].size, sum(_windows(length, s.crop, s.size, k) for s in spans)


@functools.lru_cache(maxsize=64)  # asked once per frame: 30-60 ms for 1080p-4K frames uncached
def choose_tile(height: int, width: int, max_pixels: int, pad: int, k: int | None = None) -> tuple[int, int]:
    """The cheapest (tile_h, tile_w) whose crop holds at most ``max_pixels`` LR pixels;
    (0, 0) when the whole frame fits; (MIN_TILE, MIN_TILE) tiles when nothing fits."""
    if height * width <= max_pixels:
        return (0, 0)
    smallest = min(MIN_TILE + 2 * pad, height, width)
    floor = math.isqrt(max_pixels) // 2  # tiles much smaller than the budget's square never win
    best: tuple[float, int, tuple[int, int]] | None = None
    for th in _candidates(height, pad, k, max_pixels // smallest, floor):
        nh, ch, wh = _axis(height, th, pad, k)
        for tw in _candidates(width, pad, k, max_pixels // ch, floor):
            nw, cw, ww = _axis(width, tw, pad, k)
            if ch * cw > max_pixels:
                continue
            # the pixels computed: convolutions over the crops, attention over their windows
            key = (nh * nw * ch * cw + wh * ww * (k or 0) ** 2, -th * tw, (th, tw))
            if best is None or key < best:
                best = key
    if best is None:
        return (MIN_TILE, MIN_TILE)
    th, tw = best[2]
    return (0 if th >= height else th, 0 if tw >= width else tw)


def halve(tile: tuple[int, int], height: int, width: int) -> tuple[int, int] | None:
    """The tile after an out-of-memory error: its longer side halved (its pixels halved); a
    whole-frame axis (0) counts as the frame's side. None when that would go under MIN_TILE."""
    th, tw = tile[0] or height, tile[1] or width
    th, tw = min(th, height), min(tw, width)
    order = ("h", "w") if th >= tw else ("w", "h")
    for side in order:
        if side == "h" and -(-th // 2) >= MIN_TILE:
            return (-(-th // 2), tw)
        if side == "w" and -(-tw // 2) >= MIN_TILE:
            return (th, -(-tw // 2))
    return None


def available_ram() -> int:
    """Bytes of RAM available to new allocations (MemAvailable of /proc/meminfo; where there is
    none, the physical memory from sysconf)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def cpu_bytes_per_pixel(model: torch.nn.Module) -> float:
    """The measured constant for this network's width and scale; for others, the largest of the
    nearest measured width (any scale), scaled by width: an over-estimate, never an under-one."""
    width, scale = network_width(model), int(getattr(model, "upscale", 2))
    if (width, scale) in CPU_BYTES_PER_PIXEL:
        return CPU_BYTES_PER_PIXEL[(width, scale)]
    w0 = min({w for w, _ in CPU_BYTES_PER_PIXEL}, key=lambda w: abs(w - width))
    b0 = max(b for (w, _), b in CPU_BYTES_PER_PIXEL.items() if w == w0)
    return b0 * max(width, w0) / w0


def gpu_bytes_per_pixel(network: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                        dtype: torch.dtype, sizes: tuple[int, int] = (64, 128)) -> float:
    """Peak CUDA memory per LR input pixel of one forward pass, measured: the growth of
    ``max_memory_allocated`` over passes at two sizes (the slope, so weights and workspaces cancel)."""
    peaks = []
    with torch.inference_mode():
        for size in sizes:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            network(torch.rand(1, 3, size, size, device=device, dtype=dtype))
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - before)
    a, b = sizes
    return max((peaks[1] - peaks[0]) / (b * b - a * a), peaks[1] / (b * b) / 4, 1.0)


@dataclass(frozen=True)
class AutoTiles:
    """``tile="auto"`` resolved for a device: at most ``max_pixels`` LR pixels per crop.

    ``tile_for`` gives the tile for a frame size; ``reason`` says where the cap comes from.
    """

    max_pixels: int
    reason: str
    window: int | None = None

    def tile_for(self, height: int, width: int, pad: int) -> tuple[int, int]:
        return choose_tile(height, width, self.max_pixels, pad, self.window)

    def summary(self, height: int, width: int, pad: int) -> str:
        """One line for the log: the tile chosen for this frame size, and why."""
        tile = self.tile_for(height, width, pad)
        if tile == (0, 0):
            return f"tile auto -> whole frames ({width}x{height} fits: {self.reason})"
        ch, cw = network_input_hw(height, width, tile, pad)
        return (f"tile auto -> {tile[1] or width}x{tile[0] or height} LR tiles ({cw}x{ch} crops with "
                f"tile_pad {pad}) for {width}x{height} frames: {self.reason}")


def plan(model: torch.nn.Module, device: torch.device | str, dtype: torch.dtype, batch: int = 1,
         network: Callable[[torch.Tensor], torch.Tensor] | None = None) -> AutoTiles:
    """``tile="auto"`` for this model on this device: the crop budget and its reason."""
    device = torch.device(device)
    window = tlc_window(model)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        per_px = gpu_bytes_per_pixel(network or model, device, dtype)
        budget = GPU_MEMORY_SHARE * free
        pixels = int(budget / (per_px * batch))
        reason = (f"{GPU_MEMORY_SHARE:.0%} of {free / 2**30:.1f} GiB free GPU memory at {per_px / 1024:.1f} KiB "
                  f"per LR pixel (measured{f', batch {batch}' if batch > 1 else ''})")
        return AutoTiles(max(pixels, 1), reason, window)
    per_px = cpu_bytes_per_pixel(model)
    free = available_ram()
    memory = int(CPU_MEMORY_SHARE * free / (per_px * batch))
    if memory < CPU_FASTEST_CROP_PIXELS:
        reason = (f"memory: {CPU_MEMORY_SHARE:.0%} of {free / 2**30:.1f} GiB available RAM at "
                  f"{per_px / 1024:.1f} KiB per LR pixel{f', batch {batch}' if batch > 1 else ''}")
        return AutoTiles(max(memory, 1), reason, window)
    side = math.isqrt(CPU_FASTEST_CROP_PIXELS)
    reason = (f"speed: crops over ~{side}x{side} are no faster per pixel on the CPU "
              f"(memory would allow {memory / 1e6:.1f} MP)")
    return AutoTiles(CPU_FASTEST_CROP_PIXELS, reason, window)
