"""DLGSANet for one frame size, in tensors of at most 4 dimensions: the form ncnn holds.

ncnn (and the converters that write its graphs, pnnx) keeps tensors of at most 4 dimensions,
batch included, and has no ``unbind``; its graphs are also static: every crop and reshape is a
constant. ``FixedSizeForm(model, height, width)`` is the same function with the same weights
(the model's own modules, shared, not copied), rewritten in those terms:

- the dynamic convolution (``dynamic_conv.py``) on (N, G, C/G, ...) views, the predicted kernels
  of a group broadcast over its C/G channels, no 5-D or 6-D view (``DYNAMIC_CONV_FORMS``);
- the sparse attention's heads as (N, heads, C/heads, H*W) slices of q, k and v instead of a
  5-D reshape and ``unbind``;
- TLC windows placed in Python for this size (``tlc_grid.tlc_window_starts``), so a traced
  graph holds them as constants; their outputs are averaged back by cutting each axis into the
  segments between window edges and averaging the windows that cover each one (crops and a
  concatenation, no scatter). The window grid is a product of the two axes, so averaging along
  W and then along H is the frame's average over every window covering a pixel.

Inference only (eval mode); a batch of any size, the frame size fixed. ``tests/test_export_form``
holds it equal to the network.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tlc_grid import tlc_window_starts
from .dlgsanet import (DLGSANet, DynamicLayerBlock, KernelHyperNet, ResidualGroup, SparseAttentionLayerBlock,
                       SparseGlobalAttention)


def _dims(x: torch.Tensor) -> tuple[int, ...]:
    """x's shape as Python ints: constants in a traced graph (the form is for one size)."""
    return tuple(int(d) for d in x.shape)


def _cut(x: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    """``x.narrow(dim, start, length)`` as a slice (a Crop in ncnn; pnnx keeps ``narrow`` as is)."""
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + length)
    return x[tuple(index)]


def dynamic_dw_conv_taps(x: torch.Tensor, kernels: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``dynamic_conv.dynamic_dw_conv`` on 4-D views, tap by tap: K*K shifted crops of x
    (N, G, C/G, H*W) times the kernels' tap (N, G, 1, H*W), summed: ~5 graph layers a tap."""
    n, c, h, w = _dims(x)
    k, p = kernel_size, kernel_size // 2
    groups = _dims(kernels)[1] // (k * k)
    taps = kernels.reshape(n, groups, k * k, h * w)
    xpad = F.pad(x, (p, p, p, p))
    out = None
    for t in range(k * k):
        i, j = divmod(t, k)
        term = xpad[:, :, i:i + h, j:j + w].reshape(n, groups, c // groups, h * w) * taps[:, :, t:t + 1]
        out = term if out is None else out + term
    return out.reshape(n, c, h, w)


def shift_weight(channels: int, kernel_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The depth-wise conv weight (C*K*K, 1, K, K) whose output channel c*K*K + t is channel c
    shifted by tap t: one-hot kernels."""
    kk = kernel_size * kernel_size
    return torch.eye(kk, dtype=dtype).reshape(kk, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1)


def dynamic_dw_conv_shift(x: torch.Tensor, kernels: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``dynamic_conv.dynamic_dw_conv`` in 6 graph layers: one depth-wise conv with one-hot
    kernels gives every shifted copy of x at once (N, C*K*K, H, W), viewed (N, G, C/G, K*K*H*W)
    and multiplied by the kernels viewed (N, G, 1, K*K*H*W) (broadcast over a group's
    channels), then summed over the taps."""
    n, c, h, w = _dims(x)
    k = kernel_size
    kk = k * k
    groups = _dims(kernels)[1] // kk
    shifted = F.conv2d(x, shift_weight(c, k, x.dtype).to(x.device), padding=k // 2, groups=c)
    prod = shifted.reshape(n, groups, c // groups, kk * h * w) * kernels.reshape(n, groups, 1, kk * h * w)
    return prod.reshape(n, c, kk, h * w).sum(2).reshape(n, c, h, w)


def dynamic_dw_conv_crops(x: torch.Tensor, kernels: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``dynamic_conv.dynamic_dw_conv`` as one product: the K*K shifted crops of x, each viewed
    (N, G, C/G, H*W), concatenated along the last axis and multiplied by the kernels viewed
    (N, G, 1, K*K*H*W) (broadcast over a group's channels), then summed over the taps. Memory
    copies and one multiply-add per tap: no arithmetic beyond the reference's."""
    n, c, h, w = _dims(x)
    k, p = kernel_size, kernel_size // 2
    kk = k * k
    groups = _dims(kernels)[1] // kk
    xpad = F.pad(x, (p, p, p, p))
    shifted = torch.cat([xpad[:, :, i:i + h, j:j + w].reshape(n, groups, c // groups, h * w)
                         for i, j in (divmod(t, k) for t in range(kk))], dim=3)
    prod = shifted * kernels.reshape(n, groups, 1, kk * h * w)
    return prod.reshape(n, c, kk, h * w).sum(2).reshape(n, c, h, w)


DYNAMIC_CONV_FORMS = {"shift": dynamic_dw_conv_shift, "taps": dynamic_dw_conv_taps, "crops": dynamic_dw_conv_crops}
"""The <= 4-D forms of the dynamic conv. ``shift`` (the default) is a handful of ncnn layers, so
pnnx converts a light network in seconds and Vulkan dispatches few kernels; ``taps`` does ~1/4 of
the arithmetic in ~250 layers per block (pnnx then takes minutes). docs/vulkan.md has the measurements."""


def _dynamic_local(hyper: KernelHyperNet, x: torch.Tensor, form: str) -> torch.Tensor:
    return DYNAMIC_CONV_FORMS[form](x, hyper.conv2(hyper.conv1(x)), hyper.kernel_size)


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=-1)`` (eps 1e-12) in elementwise ops and one sum."""
    return x / x.pow(2).sum(-1, keepdim=True).sqrt().clamp(min=1e-12)


def _attend(attn: SparseGlobalAttention, qkv: torch.Tensor) -> torch.Tensor:
    """``SparseGlobalAttention._attend`` with 4-D head slices."""
    b, c3, h, w = _dims(qkv)
    c = c3 // 3
    heads = attn.num_heads
    q, k, v = (qkv[:, i * c:(i + 1) * c].reshape(b, heads, c // heads, h * w) for i in range(3))
    scores = (_l2_normalize(q) @ _l2_normalize(k).transpose(-2, -1)) * attn.temperature
    return (attn.act(scores) @ v).reshape(b, c, h, w)


def _average_windows(pieces: list[torch.Tensor], starts: list[int], k: int, length: int, dim: int) -> torch.Tensor:
    """Windows of side ``k`` at ``starts`` along ``dim`` (covering 0..length), averaged where
    they overlap: segment by segment between window edges, then concatenated."""
    edges = sorted({0, length, *starts, *(s + k for s in starts)})
    segments = []
    for a, b in zip(edges, edges[1:]):
        covering = [_cut(p, dim, a - s, b - a) for p, s in zip(pieces, starts) if s <= a and b <= s + k]
        total = covering[0]
        for piece in covering[1:]:
            total = total + piece
        segments.append(total if len(covering) == 1 else total * (1.0 / len(covering)))
    return segments[0] if len(segments) == 1 else torch.cat(segments, dim)


def _global(attn: SparseGlobalAttention, x: torch.Tensor) -> torch.Tensor:
    qkv = attn.qkv_dwconv(attn.qkv(x))
    if not attn.tlc:
        return attn.project_out(_attend(attn, qkv))
    h, w = _dims(qkv)[-2:]
    k = attn.tlc_kernel
    qkv = F.pad(qkv, (0, max(k - w, 0), 0, max(k - h, 0)))
    hp, wp = _dims(qkv)[-2:]
    # a window listed twice (a map of one window) averages two equal outputs: keep one
    rows = sorted(set(tlc_window_starts(hp, k)))
    cols = sorted(set(tlc_window_starts(wp, k)))
    strips = [_average_windows([_attend(attn, qkv[:, :, r:r + k, c:c + k]) for c in cols], cols, k, wp, 3)
              for r in rows]
    out = _average_windows(strips, rows, k, hp, 2)
    if (hp, wp) != (h, w):
        out = out[:, :, :h, :w]
    return attn.project_out(out)


def _local_block(block: DynamicLayerBlock, x: torch.Tensor, form: str) -> torch.Tensor:
    local = block.IDynamicDWConv
    # (the layer norms and feed-forward networks are 4-D already: they run as they are)
    x = x + local.conv1(_dynamic_local(local.conv, local.conv0(block.norm1(x)), form))
    return x + block.IDynamic_ffn(block.norm2(x))


def _global_block(block: SparseAttentionLayerBlock, x: torch.Tensor) -> torch.Tensor:
    x = x + _global(block.restormer_attn, block.norm3(x))
    return x + block.restormer_ffn(block.norm4(x))


def _group(group: ResidualGroup, x: torch.Tensor, form: str) -> torch.Tensor:
    y = x
    for layer in group.body:
        if isinstance(layer, DynamicLayerBlock):
            y = _local_block(layer, y, form)
        elif isinstance(layer, SparseAttentionLayerBlock):
            y = _global_block(layer, y)
        else:
            y = layer(y)
    return x + y


class FixedSizeForm(nn.Module):
    """``model`` for LR inputs of ``height`` x ``width`` only, in <= 4-D tensors (see the module
    docstring); shares the model's parameters. Call it in eval mode."""

    def __init__(self, model: DLGSANet, height: int, width: int, dynamic_conv: str = "shift"):
        super().__init__()
        if dynamic_conv not in DYNAMIC_CONV_FORMS:
            raise ValueError(f"dynamic_conv must be one of {', '.join(DYNAMIC_CONV_FORMS)}, got {dynamic_conv!r}")
        self.dynamic_conv = dynamic_conv
        self.model = model.eval()
        self.height, self.width = int(height), int(width)
        self.upscale = model.upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _dims(x)[-2:] != (self.height, self.width):
            raise ValueError(f"this form of the network takes {self.height}x{self.width} inputs, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        net = self.model
        mean = net.mean.to(x.dtype)
        x = (x - mean) * net.img_range
        f0 = net.overlap_embed(x)
        y = f0
        for group in net.deep_feature_extraction[:-1]:
            y = _group(group, y, self.dynamic_conv)
        y = net.deep_feature_extraction[-1](y)
        return net.upsample(y + f0) / net.img_range + mean
