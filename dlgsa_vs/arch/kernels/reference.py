"""Plain-PyTorch references of the fused kernels, for their first-call check (no triton).

The network's own torch forms live in ``dlgsa_vs.arch``, above the kernels, which must not
import it; these are the same functions written for checking, in fp32 and with memory of the
order of the network's eager path (one tap or one window at a time, never the G*K*K-channel
tap tensor). ``tests/test_kernels_fallback.py`` holds them equal to the ``arch`` forms.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

EPS = 1e-12  # F.normalize's default, as in SparseGlobalAttention._attend


def dyn_conv(x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor,
             kernel_size: int) -> torch.Tensor:
    """``dynamic_dw_conv(x, conv2d(hidden, proj_weight, proj_bias), K)`` in fp32, one tap at a
    time: taps[g, t] = bias + proj . hidden; out[g*Cg + ci] = sum_t taps[g, t] * x shifted by t."""
    n, c, h, w = x.shape
    k, kk = kernel_size, kernel_size * kernel_size
    groups = proj_weight.shape[0] // kk
    weight = proj_weight.reshape(groups * kk, -1, 1, 1).float()
    bias = proj_bias.float()
    xp = F.pad(x.float(), (k // 2,) * 4)
    out = torch.zeros(n, groups, c // groups, h, w, device=x.device, dtype=torch.float32)
    for t in range(kk):
        tap = F.conv2d(hidden.float(), weight[t::kk], bias[t::kk])  # (n, G, h, w)
        shifted = xp[..., t // k:t // k + h, t % k:t % k + w].reshape(n, groups, c // groups, h, w)
        out += tap[:, :, None] * shifted
    return out.reshape(n, c, h, w).to(x.dtype)


def dyn_conv_grads(grad_out: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor,
                   proj_bias: torch.Tensor, kernel_size: int) -> tuple[torch.Tensor, ...]:
    """Gradients of :func:`dyn_conv` wrt x, hidden, proj_weight and proj_bias (autograd)."""
    leaves = [t.detach().requires_grad_() for t in (x, hidden, proj_weight, proj_bias)]
    with torch.enable_grad():
        out = dyn_conv(*leaves, kernel_size)
        grads = torch.autograd.grad(out, leaves, grad_out.to(out.dtype))
    return tuple(g.to(t.dtype) for g, t in zip(grads, (x, hidden, proj_weight, proj_bias)))


def attend(qkv: torch.Tensor, temperature: torch.Tensor, heads: int,
           act: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """SparseGSA's attention over one map (or window): qkv (B, 3C, h, w) -> (B, C, h, w), fp32."""
    b, c3, h, w = qkv.shape
    q, k, v = qkv.float().reshape(b, 3, heads, c3 // (3 * heads), h * w).unbind(1)
    q = F.normalize(q, dim=-1, eps=EPS)
    k = F.normalize(k, dim=-1, eps=EPS)
    attn = act((q @ k.transpose(-2, -1)) * temperature.float().reshape(1, heads, 1, 1))
    return (attn @ v).reshape(b, c3 // 3, h, w)


def sparse_attention(qkv: torch.Tensor, temperature: torch.Tensor, heads: int,
                     act: Callable[[torch.Tensor], torch.Tensor],
                     windows: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> torch.Tensor:
    """:func:`attend` per window (rows x columns of [start, end) spans, clipped to the map:
    the torch form's zero padding adds nothing), averaged where windows overlap."""
    b, c3, h, w = qkv.shape
    out = torch.zeros(b, c3 // 3, h, w, device=qkv.device, dtype=torch.float32)
    count = torch.zeros(1, 1, h, w, device=qkv.device, dtype=torch.float32)
    for y0, y1 in windows[0]:
        for x0, x1 in windows[1]:
            out[..., y0:y1, x0:x1] += attend(qkv[..., y0:y1, x0:x1], temperature, heads, act)
            count[..., y0:y1, x0:x1] += 1
    return (out / count).to(qkv.dtype)


def segment_gram(a: torch.Tensor, b: torch.Tensor, bounds_h: list[tuple[int, int]],
                 bounds_w: list[tuple[int, int]], heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``dlgsa::segment_gram`` per segment in fp32: Gram, sum a^2, sum b^2."""
    n, c, h, w = a.shape
    d = c // heads
    sh, sw = len(bounds_h), len(bounds_w)
    g = torch.zeros(n, heads, sh, sw, d, d, device=a.device)
    sa = torch.zeros(n, heads, sh, sw, d, device=a.device)
    sb = torch.zeros_like(sa)
    for s, (y0, y1) in enumerate(bounds_h):
        for t, (x0, x1) in enumerate(bounds_w):
            pa = a[..., y0:y1, x0:x1].float().reshape(n, heads, d, -1)
            pb = b[..., y0:y1, x0:x1].float().reshape(n, heads, d, -1)
            g[:, :, s, t] = pa @ pb.transpose(-1, -2)
            sa[:, :, s, t] = (pa * pa).sum(-1)
            sb[:, :, s, t] = (pb * pb).sum(-1)
    return g, sa, sb


def segment_matmul(m: torch.Tensor, u: torch.Tensor, bounds_h: list[tuple[int, int]],
                   bounds_w: list[tuple[int, int]]) -> torch.Tensor:
    """``dlgsa::segment_matmul``: out(p) = m[segment(p)] @ u(p) per head, in u's dtype."""
    n, c, h, w = u.shape
    heads, d = m.shape[1], m.shape[-1]
    out = torch.empty(n, c, h, w, device=u.device, dtype=u.dtype)
    for s, (y0, y1) in enumerate(bounds_h):
        for t, (x0, x1) in enumerate(bounds_w):
            pu = u[..., y0:y1, x0:x1].float().reshape(n, heads, d, -1)
            out[..., y0:y1, x0:x1] = (m[:, :, s, t].float() @ pu).reshape(n, c, y1 - y0, x1 - x0).to(u.dtype)
    return out
