"""Reusing the upscale of tiles whose input did not change: a bounded, thread-safe cache.

Much of what is upscaled repeats: held frames (animation on twos), static backgrounds whose
macroblocks the decoder copies bit for bit, letterbox bars and flat areas (the same tile many
times in one frame). ``inference.Upscaler`` asks a :class:`TileCache` for every tile (a whole
frame is one tile) before it runs the network, and computes only the tiles it has no output for.

What a tile's output depends on. The network sees the padded LR crop and, when tiles are given
the frame's TLC windows (``arch.tlc.crop_windows``), the window layout of the crop's place in
the frame; the tile keeps the part of the output it owns. So the key is the crop's bytes
(a BLAKE2 digest, then a byte compare on a hit) together with the *signature* of its place:
crop size, the offsets of the owned part, the window layouts (when the frame's windows are
passed) and the dtype the network runs in. Two places with the same signature give the same
output for the same input, so a letterbox bar's tiles hit each other within one frame; a
network that places its own windows depends on the crop size alone.

Exact mode (tolerance 0) therefore never changes what a tile computes: the output equals the
computation of every tile of the same grid (batching may move the last float bit; after
rounding to the output's bit depth the frames are identical, ``tests/test_reuse.py``).

Tolerance ``N`` (8-bit code values of the padded LR input): a tile whose input is within N of
the input that the cached output *at the same place* was computed from takes that output. The
comparison is always against that original input, never against a frame that itself reused
it, so a slow drift cannot accumulate: once it exceeds N the tile is computed and replaces it.

Mode "auto" is exact reuse that switches itself off when the first ``AUTO_PROBE_FRAMES``
frames reuse less than ``AUTO_MIN_SHARE`` of their tiles (hashing and copies then cost without
paying); the summary line says which way it went. Output is the same either way.

Memory: at most ``cap_bytes`` of inputs and outputs (on their devices), least recently used out.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable

import torch

AUTO_PROBE_FRAMES = 8
"""Frames "auto" watches before deciding whether reuse pays on this source."""
AUTO_MIN_SHARE = 0.05
"""The share of tiles reused over those frames under which "auto" switches reuse off."""


def digest(crop: torch.Tensor) -> bytes:
    """A 128-bit BLAKE2b digest of a tensor's bytes (its dtype and shape are in the key)."""
    data = crop.detach().contiguous().reshape(-1).view(torch.uint8)
    return hashlib.blake2b(data.cpu().numpy(), digest_size=16).digest()


@dataclass
class _Entry:
    crop: torch.Tensor     # the padded LR input the output was computed from
    out: torch.Tensor      # the part of the output the tile owns
    place: Hashable        # where in the frame's grid (tolerance looks up by place)
    nbytes: int
    ready: "torch.cuda.Event | None" = None  # on a GPU: recorded on the stream that made the copies

    def sync(self) -> "_Entry":
        """Make the copies safe to read on the caller's CUDA stream: it waits for them, and the
        allocator keeps their memory until that stream is done with them."""
        if self.ready is not None:
            stream = torch.cuda.current_stream(self.out.device if self.out.is_cuda else self.crop.device)
            stream.wait_event(self.ready)
            for t in (self.crop, self.out):
                if t.is_cuda:
                    t.record_stream(stream)
        return self


@dataclass
class ReuseStats:
    """Tiles and frames looked up and reused (frames: every tile of the frame reused)."""

    tiles: int = 0
    tiles_reused: int = 0
    frames: int = 0
    frames_reused: int = 0

    @property
    def tile_share(self) -> float:
        return self.tiles_reused / self.tiles if self.tiles else 0.0

    @property
    def frame_share(self) -> float:
        return self.frames_reused / self.frames if self.frames else 0.0


class TileCache:
    """Upscaled tiles by input and place, bounded by ``cap_bytes``, safe to share between threads.

    mode: "exact" or "auto" (see the module's docstring); tolerance: 8-bit code values (0 = exact).
    """

    def __init__(self, cap_bytes: int, tolerance: int = 0, mode: str = "exact"):
        self.cap_bytes = cap_bytes
        self.tolerance = tolerance
        self.mode = mode
        self.enabled = True
        self.decision: str | None = None  # what "auto" decided, for the summary line
        self.stats = ReuseStats()
        self.nbytes = 0
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._by_place: dict[Hashable, tuple] = {}  # place -> key of the last output computed there
        self._lock = threading.Lock()

    def lookup(self, signature: Hashable, place: Hashable, crop: torch.Tensor) -> tuple[tuple, torch.Tensor | None]:
        """(key, the cached output for this crop, or None). ``signature``: what the output
        depends on besides the input (see the module's docstring); ``place``: the tile's place
        in its frame's grid, including the signature (for tolerance)."""
        key = (signature, crop.dtype, tuple(crop.shape), digest(crop))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and torch.equal(entry.sync().crop, crop):
                self._entries.move_to_end(key)
                return key, entry.out
            near = self._entries.get(self._by_place.get(place)) if self.tolerance else None
        if near is not None and self._within(near.sync().crop, crop):
            with self._lock:
                if self._by_place.get(place) in self._entries:
                    self._entries.move_to_end(self._by_place[place])
            return key, near.out
        return key, None

    def _within(self, original: torch.Tensor, crop: torch.Tensor) -> bool:
        """The crop is within ``tolerance`` 8-bit code values of the input a cached output came from."""
        if original.shape != crop.shape:
            return False
        diff = (original.float() - crop.float()).abs_().amax()
        return bool(diff * 255 <= self.tolerance + 1e-3)

    def store(self, key: tuple, place: Hashable, crop: torch.Tensor, out: torch.Tensor) -> None:
        """Keep a computed tile (copies of its input and owned output), evicting the least recently used."""
        nbytes = crop.numel() * crop.element_size() + out.numel() * out.element_size()
        if nbytes > self.cap_bytes or not self.enabled:
            return
        entry = _Entry(crop.detach().clone(), out.detach().clone(), place, nbytes)
        if out.is_cuda or crop.is_cuda:  # other threads read it on other CUDA streams (StreamRunner)
            device = out.device if out.is_cuda else crop.device
            entry.ready = torch.cuda.Event()
            entry.ready.record(torch.cuda.current_stream(device))
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._entries[key] = entry
            self._by_place[place] = key
            self.nbytes += nbytes
            while self.nbytes > self.cap_bytes:
                _, gone = self._entries.popitem(last=False)
                self.nbytes -= gone.nbytes
                if self._by_place.get(gone.place) not in self._entries:
                    self._by_place.pop(gone.place, None)

    def count_frame(self, tiles: int, reused: int) -> None:
        """Record one frame's lookups; "auto" decides after its first frames."""
        with self._lock:
            s = self.stats
            s.tiles += tiles
            s.tiles_reused += reused
            s.frames += 1
            s.frames_reused += reused == tiles
            if self.mode == "auto" and self.decision is None and s.frames >= AUTO_PROBE_FRAMES:
                share = s.tile_share
                if share < AUTO_MIN_SHARE:
                    self.enabled = False
                    self._entries.clear()
                    self._by_place.clear()
                    self.nbytes = 0
                self.decision = (f"auto -> {'on' if self.enabled else 'off'} after {s.frames} frames "
                                 f"({share:.0%} of tiles repeated)")

    def summary(self) -> str:
        """One clause for a summary line: the share of tiles and frames reused."""
        s = self.stats
        how = self.decision or self.mode
        if self.tolerance:
            how += f", tolerance {self.tolerance}"
        return (f"reuse {how}: {s.tile_share:.0%} of tiles ({s.tiles_reused}/{s.tiles}) and "
                f"{s.frame_share:.0%} of frames ({s.frames_reused}/{s.frames}) reused")


def cache_for(mode: str, tolerance: int, cap_mib: int) -> TileCache | None:
    """The cache of the settings' reuse fields (None for "off")."""
    if mode == "off":
        return None
    return TileCache(cap_mib << 20, tolerance, mode)
