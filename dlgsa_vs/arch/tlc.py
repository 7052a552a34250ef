"""Test-time local converter (TLC) windows, vectorised.

At inference the authors run the global channel attention on overlapping square windows of
side ``k`` and average where windows overlap (megvii-research/TLC). Their code walks the
windows in a Python loop and asserts batch 1. Here the window starts along each axis are a
tensor computed from the map size, the windows are gathered with one 2-D index and put
back with ``index_add`` (in exported graphs a scatter without repeated writes, see
``from_windows``):
the same numbers, any batch size, and no Python control flow that depends on the frame
size, so the graph exports with dynamic height and width.

Placement along an axis of length L (the authors' loop, in closed form):

    n     = (L - 1) // k + 1                    windows the authors plan for
    step  = ceil((L - k) / (n - 1))             (k when n == 1)
    starts= {m * step : m * step < L - k} + {L - k}

A map smaller than ``k`` is one window of the map's own size; that is done by zero-padding
the map up to ``k`` (zeros add nothing to the dot products, norms or outputs that matter).

A crop of a larger frame (a tile) would place windows of its own, at other positions than the
frame's, and so differ from the whole-frame result everywhere (bench/README.md, "Crop
placement"). ``crop_windows`` gives a crop the frame's windows instead: those that lie inside
it, plus an edge window for the pixels whose frame windows reach past the crop, weighted only
there. ``from_windows`` takes those weights.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .tlc_grid import tlc_window_starts  # window_starts in Python integers, for the tile layouts


def window_starts(length: int, k: int, device: torch.device) -> torch.Tensor:
    """Start offsets of the TLC windows along one axis of size ``length >= k``.

    When ``length == k`` the single window is listed twice (see below).

    Written with integer arithmetic that stays symbolic under torch.export.
    """
    n_planned = (length - 1) // k + 1
    span = length - k
    denom = torch.sym_max(n_planned - 1, 1)
    step = torch.sym_max((span + denom - 1) // denom, 1)
    n = (span + step - 1) // step + 1  # windows actually placed: ceil(span / step) + 1
    # A map that fits in one window gets that window twice: averaging two equal outputs is
    # exact, and at least two windows per axis keeps exported graphs free of size-1 cases.
    starts = torch.arange(torch.sym_max(n, 2), device=device) * step
    return starts.clamp(max=span)


def window_indices(length: int, k: int, device: torch.device) -> torch.Tensor:
    """Pixel indices of every window along one axis: shape (n, k)."""
    starts = window_starts(length, k, device)
    return starts[:, None] + torch.arange(k, device=device)[None, :]


TLCWindows = tuple[torch.Tensor, ...]
"""Window pixel indices along H and along W, each shaped (number of windows, k); for a crop
(``crop_windows``) followed by the windows' weights along H and along W, of the same shapes."""


def tlc_windows(height: int, width: int, k: int, device: torch.device) -> TLCWindows:
    """The windows of an LR map of ``height`` x ``width`` (padded up to ``k`` when smaller)."""
    return (window_indices(torch.sym_max(height, k), k, device),
            window_indices(torch.sym_max(width, k), k, device))


@functools.lru_cache(maxsize=1024)
def crop_window_layout(length: int, crop: int, size: int, k: int) -> tuple[tuple[int, ...], tuple[tuple[float, ...], ...]]:
    """The windows of the crop [crop, crop + size) of an axis of ``length``: starts (in the
    crop) and per-pixel weights (k each), reproducing the whole axis's windows.

    Every frame window that lies inside the crop is kept, weight 1. A pixel that a frame
    window reaching past the crop also covers cannot have that window; it gets the window at
    that edge of the crop instead, weighted 1 on exactly those pixels and 0 elsewhere (the
    pixels the crop's own frame windows cover alone are untouched). ``tiling.tile_spans``
    cuts auto tiles where no owned pixel needs an edge window, or as few as the grid allows.
    A crop that is the whole axis, or shorter than a window, keeps its own windows.
    """
    if size >= length or size < k:
        return tuple(tlc_window_starts(max(size, k), k)), ()
    frame = tlc_window_starts(length, k)
    end = crop + size
    starts, weights = [], []
    left, right = [0.0] * k, [0.0] * k
    for s in frame:
        if s >= crop and s + k <= end:
            starts.append(s - crop)
            weights.append([1.0] * k)
        elif s < end and s + k > crop:  # reaches past the crop: mark the pixels it covers
            edge, origin = (left, crop) if s < crop else (right, end - k)
            for p in range(max(s, crop), min(s + k, end)):
                edge[p - origin] = 1.0
    for edge, start in ((left, 0), (right, size - k)):
        if any(edge):
            starts.append(start)
            weights.append(edge)
    return tuple(starts), tuple(map(tuple, weights))


def crop_windows(frame_hw: tuple[int, int], crop_hw: tuple[int, int], size_hw: tuple[int, int], k: int,
                 device: torch.device) -> TLCWindows | None:
    """The frame's TLC windows for a crop at ``crop_hw`` (top, left) of ``size_hw`` (see
    ``crop_window_layout``), with their weights; None when the crop's own windows are the
    frame's on both axes (nothing to pass)."""
    layouts = [crop_window_layout(n, c, s, k) for n, c, s in zip(frame_hw, crop_hw, size_hw)]
    if not any(weights for _starts, weights in layouts):
        return None
    out_idx, out_wt = [], []
    for starts, weights in layouts:
        starts_t = torch.tensor(starts, device=device)
        out_idx.append(starts_t[:, None] + torch.arange(k, device=device)[None, :])
        out_wt.append(torch.tensor(weights, device=device) if weights else torch.ones(len(starts), k, device=device))
    return out_idx[0], out_idx[1], out_wt[0], out_wt[1]


def to_windows(x: torch.Tensor, idx_h: torch.Tensor, idx_w: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * nh * nw, C, k, k), windows in row-major order."""
    b, c = x.shape[:2]
    (nh, k), nw = idx_h.shape, idx_w.shape[0]
    x = x[:, :, idx_h.reshape(-1, 1), idx_w.reshape(1, -1)]  # (B, C, nh*k, nw*k): one 2-D gather
    x = x.reshape(b, c, nh, k, nw, k).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * nh * nw, c, k, k)


def _overlap_add(t: torch.Tensor, idx: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Sum the windows that dimension ``dim`` of ``t`` holds side by side (n windows of k, at
    positions idx (n, k)) into a line of ``length`` there, writing every position once.

    Windows two apart never overlap (their starts are two steps >= k apart, see
    ``window_starts``), so the even windows go to one line and the odd ones to a second
    (a plain scatter into 2 x length, no position repeated) and the two lines are added.

    The scatter is ``aten.index_put`` without accumulation: torch-tensorrt converts it for
    dynamic shapes (``index_copy``, which the same sum was once written with, has only
    static-shape converters, so a dynamic engine ran every TLC sum in PyTorch between
    TensorRT pieces), and ONNX exports it as a ScatterND without reduction.
    """
    dim = dim % t.dim()
    second = (torch.arange(idx.shape[0], device=idx.device) % 2)[:, None] * length  # odd windows
    shape = list(t.shape)
    shape[dim] = 2 * length
    where = [None] * dim + [(idx + second).reshape(-1)]  # index along ``dim``, every other dim whole
    lines = torch.ops.aten.index_put.default(t.new_zeros(shape), where, t)
    return lines.unflatten(dim, (2, length)).sum(dim)


def from_windows(windows: torch.Tensor, idx_h: torch.Tensor, idx_w: torch.Tensor,
                 height: int, width: int, unique_writes: bool | None = None,
                 weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Inverse of ``to_windows``: sum overlapping windows into (B, C, H, W) and average
    (a weighted average with ``weights`` along H and W, each shaped like its indices: a
    crop's windows from ``crop_windows``; eager only).

    Eagerly the sums are scatter-adds (``index_add``). Under ``torch.export`` (or with
    ``unique_writes``) they are made by ``_overlap_add``, which writes each position once: a
    scatter-add exports to ONNX ScatterND with reduction="add", which TensorRT cannot parse
    and ONNX Runtime's multi-threaded CPU kernel computes with races (sums that are wrong where
    windows overlap, and vary from run to run). The numbers are the same; the eager kernels
    are about twice as fast on the CPU.
    """
    c = windows.shape[1]
    (nh, k), nw = idx_h.shape, idx_w.shape[0]
    x = windows.reshape(-1, nh, nw, c, k, k).permute(0, 3, 1, 4, 2, 5)
    x = x.reshape(-1, c, nh * k, nw * k)
    if weights is not None:
        wt_h, wt_w = (w.to(x.dtype).reshape(-1) for w in weights)
        x = x * wt_h[:, None] * wt_w
        idx_h, idx_w = idx_h.reshape(-1), idx_w.reshape(-1)
        cols = x.new_zeros(x.shape[0], c, nh * k, width).index_add(3, idx_w, x)
        out = x.new_zeros(x.shape[0], c, height, width).index_add(2, idx_h, cols)
        count_h = x.new_zeros(height).index_add(0, idx_h, wt_h)
        count_w = x.new_zeros(width).index_add(0, idx_w, wt_w)
    elif unique_writes if unique_writes is not None else torch.compiler.is_exporting():
        out = _overlap_add(_overlap_add(x, idx_w, width, 3), idx_h, height, 2)
        count_h = _overlap_add(x.new_ones(nh * k), idx_h, height, 0)
        count_w = _overlap_add(x.new_ones(nw * k), idx_w, width, 0)
    else:
        idx_h, idx_w = idx_h.reshape(-1), idx_w.reshape(-1)
        b = x.shape[0]
        cols = x.new_zeros(b, c, nh * k, width).index_add(3, idx_w, x)
        out = x.new_zeros(b, c, height, width).index_add(2, idx_h, cols)
        count_h = x.new_zeros(height).index_add(0, idx_h, x.new_ones(idx_h.shape[0]))
        count_w = x.new_zeros(width).index_add(0, idx_w, x.new_ones(idx_w.shape[0]))
    # positions no window covers (only past the map, where a symbolic-size pad rounds up, see
    # pad_to_window; they are cropped away) hold 0: keep them 0 instead of 0 / 0
    return out / (count_h.clamp(min=1)[:, None] * count_w.clamp(min=1)[None, :])


def _pad_amount(length, k: int):
    """How much to pad an axis of ``length`` so that it holds its windows (length >= k).

    A plain int (eager runs, static exports) is padded exactly up to ``k``. A symbolic size
    (dynamic exports) is padded up to the next multiple of ``k`` instead, ``(k - length % k)
    % k``: ``max(k - length, 0)`` would put a ``sym_max`` into the graph, which
    torch-tensorrt has no converter for (the size arithmetic, and what depends on it, would run
    in PyTorch), while ``%`` and ``-`` convert. The extra rows hold zeros that no window reads
    and that are cropped from the output, so the numbers are the same.
    """
    if isinstance(length, int):
        return max(k - length, 0)
    return (k - length % k) % k


def pad_to_window(x: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad H and W at the bottom/right up to at least ``k`` (see ``_pad_amount``)."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, _pad_amount(w, k), 0, _pad_amount(h, k)))
