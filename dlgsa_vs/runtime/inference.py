"""The inference core that every front end uses: RGB float frames in, upscaled frames out.

``Upscaler`` owns a network on a device and dtype, runs batches of (N, 3, H, W) frames in
[0, 1], optionally in overlapping tiles for frames that do not fit in memory, and clamps the
result to [0, 1]. DLGSANet needs no padding to a multiple: its convolutions are size
preserving and TLC places its windows for any size, so frames go in as they are.

Half precision is guarded: a forward pass in fp16 (or bf16) whose output is not finite (fp16
overflows at 65504) is redone in the next wider type (fp16 -> bf16 where the device has it ->
fp32), which is then kept, with a warning, so no black or NaN frame is ever returned.

Tiles. ``tile="auto"`` (the settings' default) is an ``AutoTiles`` budget in the run plan
(``run_plan.resolve``, ``dlgsa_vs/runtime/tiling.py``: memory on the device, and speed on the CPU),
turned into a tile here per frame size; for a backend of one input size (TensorRT's static
engines) the plan holds the one tile of that size. When the network is the model itself,
every tile is given the whole frame's TLC attention windows (``arch.tlc.crop_windows``), and
auto tiles are cut on that window grid (``tiling.tile_spans``), so tiles attend as the whole
frame does (measured in bench/README.md, "Tile size"); a compiled form or an engine places
its own.

Out of memory is recovered, never a lost frame: a CUDA out-of-memory error or a CPU
allocation failure during a forward pass frees the cache, halves the tile (its longer side;
a whole frame counts as one tile) and recomputes the same frames; the smaller tile is kept
for the rest of the run, with a one-line warning. Only a tile under ``tiling.MIN_TILE`` is an
error (``OutOfMemory``, one line).
"""
from __future__ import annotations

import threading
import warnings
from typing import Callable

import numpy as np
import torch

from . import tiling
from ..arch.tlc import TLCWindows, crop_window_layout, crop_windows
from .reuse import TileCache
from .tiling import TileSpan, network_input_hw, tile_spans  # noqa: F401 (tile geometry, used here and re-exported)
from .settings import RunSettings, check_tiling


class OutOfMemory(MemoryError):
    """Out of memory even with the smallest tile (``tiling.MIN_TILE``): a one-line message."""


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error or a CPU allocation failure (torch raises a RuntimeError
    naming the allocator, Python a MemoryError)."""
    if isinstance(exc, OutOfMemory):
        return False
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text or "failed to allocate" in text
                                              or "allocat" in text and "memory" in text)


class Upscaler:
    """Runs a super-resolution network on batches of RGB frames.

    model: any module mapping (N, 3, H, W) to (N, 3, sH, sW) with an ``upscale`` attribute.
    tile: (height, width) of LR tiles, 0 = whole frame, or the ``AutoTiles`` budget of a run
    plan (the tile then follows each frame size); tile_pad: LR context around each tile.
    batch: how many frames (or tiles) go through the network at once.
    network: what runs, taking ``dtype`` input on ``device``: the model (default), or a compiled
    form or TensorRT engine of it that a backend made. fallback: given a wider dtype, the
    network to run from then on when a half-precision output overflows (default: the model
    moved to that dtype). network_for: given a crop (height, width), a network for that input
    size, for networks of one size (static engines) when out-of-memory recovery changes the tile.
    plan: the ``run_plan.RunPlan`` these values come from, where a backend built it (kept
    for the front ends' summary lines; nothing here reads it).
    reuse: a ``reuse.TileCache``: tiles (and whole frames) whose input it holds take its
    output instead of being computed (None, the default here: compute every tile).
    Nothing here knows what the network is, beyond the TLC windows it may take for a tile.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, tile: "tuple[int, int] | tiling.AutoTiles" = (0, 0),
                 tile_pad: int = RunSettings.tile_pad, batch: int = 1,
                 network: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 fallback: Callable[[torch.dtype], Callable[[torch.Tensor], torch.Tensor]] | None = None,
                 network_for: Callable[[tuple[int, int]], Callable[[torch.Tensor], torch.Tensor]] | None = None,
                 plan=None, reuse: TileCache | None = None):
        self.auto: tiling.AutoTiles | None = tile if isinstance(tile, tiling.AutoTiles) else None
        if self.auto is not None:
            tile = (0, 0)  # per frame size, from self.auto
        check_tiling(tuple(tile), tile_pad, batch)
        self.plan = plan
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
        # a network of one input size (a static engine): how to get one for another crop size
        self._network_for = network_for
        self._switch_lock = threading.Lock()
        # the input range check: every call on the CPU until it warns; elsewhere (a GPU, where it
        # would wait for the device) the first call only
        self._range_checked = self._range_warned = False
        self.reuse = reuse

    def tile_for(self, height: int, width: int) -> tuple[int, int]:
        """The (tile_h, tile_w) used for frames of this size ((0, 0): whole frames)."""
        if self.auto is not None:
            return self.auto.tile_for(height, width, self.tile_pad)
        return (self.tile_h, self.tile_w)

    def tile_summary(self, height: int, width: int) -> str:
        """One line for the log: the tile used for frames of this size, and why."""
        if self.auto is not None:
            return self.auto.summary(height, width, self.tile_pad)
        th, tw = self.tile_for(height, width)
        if (th == 0 or th >= height) and (tw == 0 or tw >= width):
            return f"tile: whole frames ({width}x{height})"
        ch, cw = self.network_input_hw(height, width)
        return f"tile {tw or width}x{th or height} LR ({cw}x{ch} crops with tile_pad {self.tile_pad}): as asked"

    def network_input_hw(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network sees for frames of this size (the tile crop if tiling)."""
        return network_input_hw(height, width, self.tile_for(height, width), self.tile_pad)

    def _wider_dtype(self) -> torch.dtype:
        if self.dtype == torch.float16 and (self.device.type != "cuda" or torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float32

    def _forward(self, chunk: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        while True:
            dtype, network = self.dtype, self.network
            x = chunk.to(self.device, dtype).contiguous(memory_format=self.memory_format)
            y = network(x) if windows is None else network(x, windows)
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
                    self.dtype = wider  # part of the reuse key: outputs of the narrower type are not taken
                    self._network_for = None  # the fallback is the model itself: any size

    @torch.inference_mode()
    def run_network(self, x: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        """One forward pass on the device, in chunks of ``batch``; returns float32 on the device.
        ``windows``: the TLC windows of these crops of a larger frame (the model's own network only)."""
        return torch.cat([self._forward(chunk, windows) for chunk in x.split(self.batch)])

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, sH, sW) float32 in [0, 1], on frames' device.

        Integer frames (uint8 pictures) are refused with a TypeError: divide by 255 first
        (``image_to_tensor`` does it for an H x W x 3 uint8 array). Values far outside [0, 1]
        (floats in 0..255) give one RuntimeWarning per upscaler (see ``check_frame_range``)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected RGB frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise TypeError(f"frames are {str(frames.dtype).removeprefix('torch.')}: the upscaler takes float "
                            f"frames in [0, 1] (uint8 pictures: frames.float() / 255, or "
                            f"dlgsa_vs.runtime.inference.image_to_tensor for an H x W x 3 array)")
        if not self._range_warned and (frames.device.type == "cpu" or not self._range_checked):
            self._range_checked = True
            self._range_warned = check_frame_range(frames)
        h, w = frames.shape[2:]
        while True:
            tile = self.tile_for(h, w)
            try:
                return self._upscale(frames, tile)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
                if not is_out_of_memory(exc):
                    raise
                message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            # out of the except block: the error's traceback (and the activations it holds) is gone
            self._out_of_memory(tile, h, w, message)

    def _out_of_memory(self, tile: tuple[int, int], h: int, w: int, message: str) -> None:
        """Free the cache and halve the tile (once, however many threads ran out with it)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        with self._switch_lock:
            if self.tile_for(h, w) != tile:  # another thread already made it smaller
                return
            smaller = tiling.halve(tile, h, w)
            shown = f"{min(tile[1] or w, w)}x{min(tile[0] or h, h)} LR tiles"
            if smaller is None:
                raise OutOfMemory(f"out of memory on the {self.device.type} even with {shown} of a {w}x{h} "
                                  f"frame (batch {self.batch}), "
                                  f"the smallest the network takes ({tiling.MIN_TILE} px): free memory or use "
                                  f"a smaller batch ({message})") from None
            old = "whole frames" if tile == (0, 0) else shown
            warnings.warn(f"out of memory on the {self.device.type} with {old} of a {w}x{h} frame: "
                          f"recomputing with {smaller[1]}x{smaller[0]} tiles, kept for the rest of the run "
                          f"({message})", RuntimeWarning, stacklevel=3)
            self.auto = None
            self.tile_h, self.tile_w = smaller
            if self._network_for is not None:
                self.network = self._network_for(self.network_input_hw(h, w))

    def _frame_windows(self) -> int | None:
        """The TLC window when tiles are given the whole frame's TLC windows (the network is
        the model itself, with TLC on); None when the network places its own (a compiled form
        or an engine takes the image alone)."""
        return tiling.tlc_window(self.model) if self.network is self.model else None

    def _groups(self, pairs: list, h: int, w: int, k: int | None):
        """``pairs`` of (row, column) spans in batches of up to ``batch`` that share their TLC
        windows, with those windows (None: the network's own)."""
        group: list = []
        for pair in pairs:
            if group and (len(group) == self.batch
                          or _window_layout(*pair, h, w, k) != _window_layout(*group[0], h, w, k)):
                yield group, self._windows(group[0], h, w, k)
                group = []
            group.append(pair)
        if group:
            yield group, self._windows(group[0], h, w, k)

    def _windows(self, pair: tuple[TileSpan, TileSpan], h: int, w: int, k: int | None) -> TLCWindows | None:
        """The frame's TLC windows for this tile's crop (None: the network's own)."""
        r, c = pair
        return k and crop_windows((h, w), (r.crop, c.crop), (r.size, c.size), k, self.device)

    def _upscale(self, frames: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
        n, _, h, w = frames.shape
        s = self.scale
        # auto tiles are cut on the TLC window grid (tiling.tile_spans)
        grid = self.auto.window if self.auto is not None else None
        rows = tile_spans(h, tile[0], self.tile_pad, grid)
        cols = tile_spans(w, tile[1], self.tile_pad, grid)
        cache = self.reuse if self.reuse is not None and self.reuse.enabled else None
        if len(rows) == 1 and len(cols) == 1:
            out = self.run_network(frames) if cache is None else self._reuse_frames(frames, cache)
        else:
            out = torch.empty(n, 3, h * s, w * s, device=self.device)
            pairs = [(r, c) for r in rows for c in cols]
            k = self._frame_windows()
            for i in range(n):
                todo, same = pairs, {}
                if cache is not None:
                    todo, same = self._reuse_tiles(frames[i], out[i], pairs, h, w, k, cache)
                # batch by batch, each result pasted at once: memory holds one batch of crops and
                # results, never all the tiles of a frame (4K: 120 tiles, ~0.5 GB of results)
                for group, windows in self._groups(todo, h, w, k):
                    crops = torch.stack([frames[i, :, r.crop:r.crop + r.size, c.crop:c.crop + c.size]
                                         for r, c in group])
                    results = self.run_network(crops, windows)
                    for (r, c), crop, res in zip(group, crops, results):
                        owned = res[:, (r.own_start - r.crop) * s:(r.own_end - r.crop) * s,
                                    (c.own_start - c.crop) * s:(c.own_end - c.crop) * s]
                        key, place, copies = same.get((r, c), (None, None, ()))
                        for r2, c2 in ((r, c), *copies):
                            out[i, :, r2.own_start * s:r2.own_end * s, c2.own_start * s:c2.own_end * s] = owned
                        if cache is not None:
                            cache.store(key, place, crop, owned)
                    del crops, results
        return out.clamp_(0.0, 1.0).to(frames.device)

    def _signature(self, r: TileSpan, c: TileSpan, h: int, w: int, k: int | None) -> tuple:
        """What a tile's output depends on besides its input (``reuse``): the owned part of the
        crop and, when the tile is given the frame's TLC windows, their layout at its place."""
        own = (r.own_start - r.crop, r.own_end - r.crop, c.own_start - c.crop, c.own_end - c.crop)
        return (self.dtype, self.scale, own, _window_layout(r, c, h, w, k))

    def _reuse_tiles(self, frame: torch.Tensor, out: torch.Tensor, pairs: list, h: int, w: int, k: int | None,
                     cache: TileCache) -> tuple[list, dict]:
        """Paste the cached outputs of this frame's tiles into ``out``; return the tiles to
        compute (one per distinct input: a letterbox bar's tiles are computed once) and, for
        each, (key, place, the other tiles of the same input and signature)."""
        s = self.scale
        todo: list = []
        same: dict = {}
        first: dict = {}
        for r, c in pairs:
            signature = self._signature(r, c, h, w, k)
            place = (signature, h, w, r.crop, c.crop)
            key, cached = cache.lookup(signature, place, frame[:, r.crop:r.crop + r.size, c.crop:c.crop + c.size])
            if cached is not None:
                out[:, r.own_start * s:r.own_end * s, c.own_start * s:c.own_end * s] = cached
            elif key in first:
                same[first[key]][2].append((r, c))
            else:
                first[key] = (r, c)
                same[(r, c)] = (key, place, [])
                todo.append((r, c))
        cache.count_frame(len(pairs), len(pairs) - len(todo))  # a copy of a tile computed now counts as reused
        return todo, same

    def _reuse_frames(self, frames: torch.Tensor, cache: TileCache) -> torch.Tensor:
        """Whole frames through the cache: the frames whose input it holds take its output, the
        others are computed together."""
        n, _, h, w = frames.shape
        signature = (self.dtype, self.scale, "whole")
        place = (signature, h, w)
        out = torch.empty(n, 3, h * self.scale, w * self.scale, device=self.device)
        todo, first = [], {}
        found = [cache.lookup(signature, place, frame) for frame in frames]
        for i, (key, cached) in enumerate(found):
            if cached is not None:
                out[i] = cached
            elif key not in first:
                first[key] = i
                todo.append(i)
            cache.count_frame(1, int(todo[-1:] != [i]))  # computed now, or taken
        if todo:
            results = self.run_network(frames[todo])
            for i, res in zip(todo, results):
                cache.store(found[i][0], place, frames[i], res)
                out[i] = res
            for i, (key, cached) in enumerate(found):
                if cached is None and first[key] != i:
                    out[i] = out[first[key]]
        return out

    def reuse_summary(self) -> str | None:
        """The share of tiles and frames reused, for a summary line (None: reuse off)."""
        return None if self.reuse is None else self.reuse.summary()


def _window_layout(r: TileSpan, c: TileSpan, h: int, w: int, k: int | None):
    """The layout of the frame's TLC windows (window ``k``) over the crop of tile (r, c): tiles of
    one layout share their windows in a batch, and a tile's output depends on it (None: the
    network places its own windows)."""
    return k and (crop_window_layout(h, r.crop, r.size, k), crop_window_layout(w, c.crop, c.size, k))


FRAME_RANGE = (-0.5, 1.5)
"""Input values outside this are far outside [0, 1]: not small overshoots of a colour conversion,
but frames in another scale (0..255), which would come out all white."""


def check_frame_range(frames: torch.Tensor) -> bool:
    """Warn (RuntimeWarning) when ``frames`` hold values far outside [0, 1]; True when it warned."""
    if frames.numel() == 0:
        return False
    low, high = (float(v) for v in torch.aminmax(frames.detach()))
    if low >= FRAME_RANGE[0] and high <= FRAME_RANGE[1]:
        return False
    hint = " (0..255? divide by 255)" if high > 2 else ""
    warnings.warn(f"the frames hold values from {low:g} to {high:g}, far outside the [0, 1] the upscaler "
                  f"takes{hint}: the result is clamped to [0, 1]", RuntimeWarning, stacklevel=3)
    return True


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255)


def tensor_to_image(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8."""
    return frame.mul(255).round_().clamp_(0, 255).byte().permute(1, 2, 0).cpu().numpy()
