"""The frame conversions of :mod:`.colour` in torch, for frames converted where the network
runs (a CUDA GPU): sample planes go up as integers (1-2 bytes a sample instead of 12 for
three float channels), R'G'B' never crosses the bus, and the CPU threads only decode and
encode.

Same formulas, same chroma taps (``colour.upsample_taps`` / ``downsample_taps``), same
order of float32 operations and the same rounding (half to even) as the numpy forms, so the
codes agree: exactly on the CPU, within one code value on a GPU (fused multiply-adds).
Tensors carry a leading batch dimension: planes are (N, h, w), R'G'B' is (N, 3, H, W).
"""
from __future__ import annotations

import numpy as np
import torch

from .colour import (KR_KB, MATRIX_GBR, MATRIX_YCGCO, Colour, PixelLayout, chroma_offsets, downsample_taps,
                     level_scales, upsample_taps, rgb_to_ycbcr)


def _f32(value: float) -> float:
    """A coefficient as the float32 the numpy form multiplies by."""
    return float(np.float32(value))


def upload(planes: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """Stacked sample planes (numpy, (N, h, w) uint8 or uint16) -> integer tensors on ``device``.

    16-bit samples travel as int16 (the same bytes) and are widened there."""
    out = []
    for p in planes:
        wide = p.dtype.itemsize == 2
        t = torch.from_numpy(p.view(np.int16) if wide else p)
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        if wide:
            t = t.to(torch.int32).bitwise_and_(0xFFFF)
        out.append(t)
    return out


def download(planes: list[torch.Tensor], layout: PixelLayout) -> list[np.ndarray]:
    """Integer sample tensors -> numpy planes of ``layout``'s dtype, each (N, h, w)."""
    if np.dtype(layout.dtype).itemsize == 2:   # int16 carries the 16 bits (values up to 65535)
        return [p.to(torch.int16).cpu().numpy().view(layout.dtype) for p in planes]
    return [p.to(torch.uint8).cpu().numpy() for p in planes]


def _upsample(c: torch.Tensor, n: int, factor: int, offset: float, dim: int) -> torch.Tensor:
    if factor == 1:
        return c
    i0, i1, w = upsample_taps(n, c.shape[dim], factor, offset)
    i0, i1 = torch.from_numpy(i0).to(c.device), torch.from_numpy(i1).to(c.device)
    shape = [1] * c.dim()
    shape[dim] = n
    a0 = c.index_select(dim, i0)
    a1 = c.index_select(dim, i1) - a0
    return a0 + a1 * torch.from_numpy(w).to(c.device).reshape(shape)


def _downsample(a: torch.Tensor, nc: int, factor: int, offset: float, dim: int) -> torch.Tensor:
    if factor == 1:
        return a
    out = None
    for idx, wt in downsample_taps(a.shape[dim], nc, factor, offset):
        term = a.index_select(dim, torch.from_numpy(idx).to(a.device)) * float(wt)
        out = term if out is None else out + term
    return out


def planes_to_rgb(planes: list[torch.Tensor], layout: PixelLayout, colour: Colour) -> torch.Tensor:
    """Sample planes (N, h, w) -> (N, 3, H, W) float32 R'G'B' in [0, 1] (``colour.planes_to_rgb``)."""
    if layout.family == "rgb":
        g, b, r = planes
        return torch.stack([r, g, b], 1).float() / float((1 << layout.depth) - 1)
    y_off, y_scale, c_off, c_scale = level_scales(layout, colour)
    if colour.matrix == MATRIX_GBR:
        c_off, c_scale = y_off, y_scale
    y = (planes[0].float() - y_off) / y_scale
    if layout.family == "gray":
        return torch.stack([y, y, y], 1).clamp_(0.0, 1.0)
    h, w = y.shape[-2:]
    ox, oy = chroma_offsets(colour.chroma_location, layout.log2_chroma_w, layout.log2_chroma_h)
    cb, cr = ((_upsample(_upsample(c.float(), h, 1 << layout.log2_chroma_h, oy, -2),
                         w, 1 << layout.log2_chroma_w, ox, -1) - c_off) / c_scale for c in planes[1:])
    if colour.matrix == MATRIX_GBR:
        rgb = [cr, y, cb]
    elif colour.matrix == MATRIX_YCGCO:
        t = y - cb
        rgb = [t + cr, y + cb, t - cr]
    else:
        kr, kb = KR_KB[colour.matrix]
        kg = 1.0 - kr - kb
        r = y + _f32(2 * (1 - kr)) * cr
        b = y + _f32(2 * (1 - kb)) * cb
        g = y - _f32(2 * kr * (1 - kr) / kg) * cr - _f32(2 * kb * (1 - kb) / kg) * cb
        rgb = [r, g, b]
    return torch.stack(rgb, 1).clamp_(0.0, 1.0)


def _quantize(x: torch.Tensor, offset: float, scale: float, depth: int) -> torch.Tensor:
    return (x * _f32(scale) + _f32(offset)).round_().clamp_(0, (1 << depth) - 1).to(torch.int32)


def rgb_to_planes(rgb: torch.Tensor, layout: PixelLayout, colour: Colour) -> list[torch.Tensor]:
    """(N, 3, H, W) float R'G'B' in [0, 1] -> int32 sample planes of ``layout``, each (N, h, w)
    (``colour.rgb_to_planes``)."""
    rgb = rgb.float()
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    if layout.family == "rgb":
        top = float((1 << layout.depth) - 1)
        return [_quantize(p, 0.0, top, layout.depth) for p in (g, b, r)]
    y_off, y_scale, c_off, c_scale = level_scales(layout, colour)
    if colour.matrix == MATRIX_GBR:
        c_off, c_scale = y_off, y_scale
    y, cb, cr = rgb_to_ycbcr(r, g, b, colour.matrix, _f32)
    out = [_quantize(y, y_off, y_scale, layout.depth)]
    if layout.family == "gray":
        return out
    h, w = y.shape[-2:]
    ch, cw = layout.plane_sizes(w, h)[1]
    ox, oy = chroma_offsets(colour.chroma_location, layout.log2_chroma_w, layout.log2_chroma_h)
    for c in (cb, cr):
        c = _downsample(c, ch, 1 << layout.log2_chroma_h, oy, -2)
        c = _downsample(c, cw, 1 << layout.log2_chroma_w, ox, -1)
        out.append(_quantize(c, c_off, c_scale, layout.depth))
    return out
