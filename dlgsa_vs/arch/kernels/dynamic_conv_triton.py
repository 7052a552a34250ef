"""The dynamic depth-wise conv with the hypernetwork's last 1x1 conv fused in (Triton).

The torch form (``arch.dynamic_conv.dynamic_dw_conv_fused_1x1``) computes, per pixel p,

    taps[g, t, p] = bias[g, t] + sum_c proj[g, t, c] * hidden[c, p]       (G x K*K taps)
    out[g*Cg + ci, p] = sum_t taps[g, t, p] * x[g*Cg + ci, p + d_t]       (zero outside)

Eager PyTorch writes the G*K*K-channel ``taps`` (392 channels for DLGSANet, 8x the feature
map) and reads it back, and walks the map once per tap. Here one program owns a tile of
pixels of one kernel group: it keeps the tile's Ch hidden channels in registers, makes each
tap's kernel plane from them right before use and applies it to the group's Cg input channels
at the tap's shift (masked loads = zero padding; neighbouring taps hit the same cache lines),
so ``taps`` never goes to memory and the output is written once.

Backward (``dlgsa::dyn_conv_backward``, its own op): one kernel recomputes the taps at the
shifted pixels and gathers grad_x; another makes grad_taps = sum over the group's channels of
grad_out * shifted x (G*K*K planes, fp32), from which torch's matmuls give grad_hidden,
grad_proj_weight and grad_proj_bias (the 1x1 conv's transposes).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import interpreting
from ._launch import Launch, check_plane


@triton.jit
def _dyn_conv_fwd_kernel(x_ptr, hid_ptr, w_ptr, b_ptr, out_ptr, H, W, G, CH,
                         CG: tl.constexpr, K: tl.constexpr, BLOCK_CG: tl.constexpr,
                         BLOCK_CH: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    ng = tl.program_id(0)
    n = (ng // G).to(tl.int64)
    g = ng % G
    hw = (H * W).to(tl.int64)  # plane offsets in int64 (C*H*W passes 2**31 at 8K); in-plane int32
    offs = tl.arange(0, BLOCK_R * BLOCK_W)
    y = tl.program_id(1) * BLOCK_R + offs // BLOCK_W
    x = tl.program_id(2) * BLOCK_W + offs % BLOCK_W
    inside = (y < H) & (x < W)
    hc = tl.arange(0, BLOCK_CH)
    hmask = hc < CH
    hid = tl.load(hid_ptr + n * CH * hw + hc[:, None] * hw + (y * W + x)[None, :],
                  mask=hmask[:, None] & inside[None, :], other=0.0).to(tl.float32)
    cc = tl.arange(0, BLOCK_CG)
    cmask = cc < CG
    x_rows = x_ptr + n * (G * CG) * hw + (g * CG + cc) * hw
    acc = tl.zeros((BLOCK_CG, BLOCK_R * BLOCK_W), dtype=tl.float32)
    for t in range(K * K):
        wt = tl.load(w_ptr + (g * K * K + t) * CH + hc, mask=hmask, other=0.0).to(tl.float32)
        tap = tl.sum(wt[:, None] * hid, axis=0) + tl.load(b_ptr + g * K * K + t).to(tl.float32)
        ys = y + (t // K - K // 2)
        xs = x + (t % K - K // 2)
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        xv = tl.load(x_rows[:, None] + (ys * W + xs)[None, :], mask=cmask[:, None] & ok[None, :],
                     other=0.0).to(tl.float32)
        acc += xv * tap[None, :]
    tl.store(out_ptr + n * (G * CG) * hw + ((g * CG + cc) * hw)[:, None] + (y * W + x)[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=cmask[:, None] & inside[None, :])


@triton.jit
def _dyn_conv_grad_x_kernel(go_ptr, hid_ptr, w_ptr, b_ptr, gx_ptr, H, W, G, CH,
                            CG: tl.constexpr, K: tl.constexpr, BLOCK_CG: tl.constexpr,
                            BLOCK_CH: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    # grad_x[q] = sum_t taps[t, q - d_t] * grad_out[q - d_t]: the taps are recomputed at the
    # shifted pixels from the hidden channels there.
    ng = tl.program_id(0)
    n = (ng // G).to(tl.int64)
    g = ng % G
    hw = (H * W).to(tl.int64)  # plane offsets in int64 (C*H*W passes 2**31 at 8K); in-plane int32
    offs = tl.arange(0, BLOCK_R * BLOCK_W)
    y = tl.program_id(1) * BLOCK_R + offs // BLOCK_W
    x = tl.program_id(2) * BLOCK_W + offs % BLOCK_W
    inside = (y < H) & (x < W)
    hc = tl.arange(0, BLOCK_CH)
    hmask = hc < CH
    cc = tl.arange(0, BLOCK_CG)
    cmask = cc < CG
    hid_rows = hid_ptr + n * CH * hw + hc * hw
    go_rows = go_ptr + n * (G * CG) * hw + (g * CG + cc) * hw
    acc = tl.zeros((BLOCK_CG, BLOCK_R * BLOCK_W), dtype=tl.float32)
    for t in range(K * K):
        ys = y - (t // K - K // 2)
        xs = x - (t % K - K // 2)
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        pix = ys * W + xs
        hid = tl.load(hid_rows[:, None] + pix[None, :], mask=hmask[:, None] & ok[None, :],
                      other=0.0).to(tl.float32)
        wt = tl.load(w_ptr + (g * K * K + t) * CH + hc, mask=hmask, other=0.0).to(tl.float32)
        tap = tl.sum(wt[:, None] * hid, axis=0) + tl.load(b_ptr + g * K * K + t).to(tl.float32)
        gov = tl.load(go_rows[:, None] + pix[None, :], mask=cmask[:, None] & ok[None, :],
                      other=0.0).to(tl.float32)
        acc += gov * tap[None, :]
    tl.store(gx_ptr + n * (G * CG) * hw + ((g * CG + cc) * hw)[:, None] + (y * W + x)[None, :],
             acc.to(gx_ptr.dtype.element_ty), mask=cmask[:, None] & inside[None, :])


@triton.jit
def _dyn_conv_grad_taps_kernel(go_ptr, x_ptr, gt_ptr, H, W, G,
                               CG: tl.constexpr, K: tl.constexpr, BLOCK_CG: tl.constexpr,
                               BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    # grad_taps[g, t, p] = sum_ci grad_out[g*Cg + ci, p] * x[g*Cg + ci, p + d_t]  (fp32)
    ng = tl.program_id(0)
    n = (ng // G).to(tl.int64)
    g = ng % G
    hw = (H * W).to(tl.int64)  # plane offsets in int64 (C*H*W passes 2**31 at 8K); in-plane int32
    offs = tl.arange(0, BLOCK_R * BLOCK_W)
    y = tl.program_id(1) * BLOCK_R + offs // BLOCK_W
    x = tl.program_id(2) * BLOCK_W + offs % BLOCK_W
    inside = (y < H) & (x < W)
    cc = tl.arange(0, BLOCK_CG)
    cmask = cc < CG
    chan = n * (G * CG) * hw + (g * CG + cc) * hw
    gov = tl.load(go_ptr + chan[:, None] + (y * W + x)[None, :], mask=cmask[:, None] & inside[None, :],
                  other=0.0).to(tl.float32)
    gt_rows = gt_ptr + (n * G + g) * (K * K) * hw
    for t in range(K * K):
        ys = y + (t // K - K // 2)
        xs = x + (t % K - K // 2)
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        xv = tl.load(x_ptr + chan[:, None] + (ys * W + xs)[None, :], mask=cmask[:, None] & ok[None, :],
                     other=0.0).to(tl.float32)
        tl.store(gt_rows + t * hw + y * W + x, tl.sum(gov * xv, axis=0), mask=inside)


def _blocks(h: int, w: int) -> tuple[int, int]:
    """Pixel tile (rows, columns). On a GPU 4x32 (128 pixels: a coalesced 32-wide row segment,
    registers for 8 channels + 16 hidden channels per pixel); under the interpreter, where each
    program costs Python time, one tile as large as the (tiny test) map allows."""
    if interpreting():
        return min(triton.next_power_of_2(h), 16), min(triton.next_power_of_2(w), 64)
    return 4, 32


def _check(x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor, kernel_size: int):
    n, c, h, w = x.shape
    kk = kernel_size * kernel_size
    if kernel_size % 2 != 1:
        raise ValueError(f"dyn_conv: kernel_size must be odd, got {kernel_size}")
    if proj_weight.shape[0] % kk or c % (proj_weight.shape[0] // kk):
        raise ValueError(f"dyn_conv: proj weight {tuple(proj_weight.shape)} does not fit {c} channels "
                         f"and {kernel_size}x{kernel_size} kernels")
    if hidden.shape[0] != n or hidden.shape[2:] != x.shape[2:] or proj_weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"dyn_conv: hidden {tuple(hidden.shape)} does not fit x {tuple(x.shape)} "
                         f"and proj weight {tuple(proj_weight.shape)}")
    groups = proj_weight.shape[0] // kk
    return n, c, h, w, groups, c // groups, hidden.shape[1]


def _grid_and_meta(n: int, groups: int, cg: int, h: int, w: int, k: int) -> tuple[tuple[int, int, int], dict]:
    check_plane(h, w, "dyn_conv")
    br, bw = _blocks(h, w)
    grid = (n * groups, triton.cdiv(h, br), triton.cdiv(w, bw))
    return grid, dict(CG=cg, K=k, BLOCK_CG=triton.next_power_of_2(cg), BLOCK_R=br, BLOCK_W=bw)


def fwd_launch(x: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               out: torch.Tensor, kernel_size: int) -> Launch:
    """The forward's launch: x, hidden, out contiguous (N, C|Ch, H, W); weight (G*K*K, Ch)."""
    n, c, h, w, groups, cg, ch = _check(x, hidden, weight, kernel_size)
    grid, meta = _grid_and_meta(n, groups, cg, h, w, kernel_size)
    return Launch(_dyn_conv_fwd_kernel, grid, (x, hidden, weight, bias, out, h, w, groups, ch),
                  dict(meta, BLOCK_CH=triton.next_power_of_2(ch)))


def grad_x_launch(grad_out: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  grad_x: torch.Tensor, kernel_size: int) -> Launch:
    """The backward's grad_x launch (tensors as for :func:`fwd_launch`)."""
    n, c, h, w, groups, cg, ch = _check(grad_out, hidden, weight, kernel_size)
    grid, meta = _grid_and_meta(n, groups, cg, h, w, kernel_size)
    return Launch(_dyn_conv_grad_x_kernel, grid, (grad_out, hidden, weight, bias, grad_x, h, w, groups, ch),
                  dict(meta, BLOCK_CH=triton.next_power_of_2(ch)))


def grad_taps_launch(grad_out: torch.Tensor, x: torch.Tensor, grad_taps: torch.Tensor, kernel_size: int,
                     groups: int) -> Launch:
    """The backward's grad_taps launch: grad_taps fp32 (N, G*K*K, H*W)."""
    n, c, h, w = x.shape
    grid, meta = _grid_and_meta(n, groups, c // groups, h, w, kernel_size)
    return Launch(_dyn_conv_grad_taps_kernel, grid, (grad_out, x, grad_taps, h, w, groups), meta)


@torch.library.custom_op("dlgsa::dyn_conv", mutates_args=())
def dyn_conv(x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor,
             kernel_size: int) -> torch.Tensor:
    """``dynamic_dw_conv(x, conv2d(hidden, proj_weight, proj_bias), K)`` in one kernel.

    x (N, C, H, W), hidden (N, Ch, H, W), proj_weight (G*K*K, Ch, 1, 1), proj_bias (G*K*K,).
    """
    x, hidden = x.contiguous(), hidden.contiguous()
    weight = proj_weight.reshape(proj_weight.shape[0], -1).contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    fwd_launch(x, hidden, weight, proj_bias.contiguous(), out, kernel_size)()
    return out


@dyn_conv.register_fake
def _(x, hidden, proj_weight, proj_bias, kernel_size):
    _check(x, hidden, proj_weight, kernel_size)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("dlgsa::dyn_conv_backward", mutates_args=())
def dyn_conv_backward(grad_out: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor,
                      proj_weight: torch.Tensor, proj_bias: torch.Tensor, kernel_size: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``dyn_conv`` wrt x, hidden, proj_weight and proj_bias."""
    n, c, h, w, groups, cg, ch = _check(x, hidden, proj_weight, kernel_size)
    k = kernel_size
    grad_out, x, hidden = grad_out.contiguous(), x.contiguous(), hidden.contiguous()
    weight = proj_weight.reshape(proj_weight.shape[0], ch).contiguous()
    bias = proj_bias.contiguous()
    grad_x = torch.empty_like(x, memory_format=torch.contiguous_format)
    grad_x_launch(grad_out, hidden, weight, bias, grad_x, k)()
    grad_taps = torch.empty(n, groups * k * k, h * w, device=x.device, dtype=torch.float32)
    grad_taps_launch(grad_out, x, grad_taps, k, groups)()
    # taps = W @ hidden + b per pixel: the 1x1 conv's gradients are two matmuls and a sum.
    hid = hidden.reshape(n, ch, h * w).float()
    grad_hidden = torch.matmul(weight.float().t(), grad_taps).reshape(n, ch, h, w).to(hidden.dtype)
    grad_weight = torch.matmul(grad_taps, hid.transpose(1, 2)).sum(0)
    grad_bias = grad_taps.sum((0, 2))
    return (grad_x, grad_hidden, grad_weight.reshape(proj_weight.shape).to(proj_weight.dtype),
            grad_bias.to(proj_bias.dtype))


@dyn_conv_backward.register_fake
def _(grad_out, x, hidden, proj_weight, proj_bias, kernel_size):
    _check(x, hidden, proj_weight, kernel_size)
    fmt = torch.contiguous_format
    return (torch.empty_like(x, memory_format=fmt), torch.empty_like(hidden, memory_format=fmt),
            torch.empty_like(proj_weight, memory_format=fmt), torch.empty_like(proj_bias, memory_format=fmt))


def _setup_context(ctx, inputs, output):
    x, hidden, proj_weight, proj_bias, kernel_size = inputs
    ctx.save_for_backward(x, hidden, proj_weight, proj_bias)
    ctx.kernel_size = kernel_size


def _backward(ctx, grad_out):
    # Checked on its first call per key like the forward (kernels.fallback); where the kernels
    # fail or differ, the torch reference's gradients (a backward must return gradients).
    from . import reference
    from .fallback import GUARD, shape_class

    x, hidden, proj_weight, proj_bias = ctx.saved_tensors
    args = (grad_out, x, hidden, proj_weight, proj_bias, ctx.kernel_size)

    def key():
        n, c, h, w = x.shape
        return (x.dtype, x.device.type, c, hidden.shape[1], proj_weight.shape[0], ctx.kernel_size,
                *shape_class(h, w, n * c * h * w))

    grads = GUARD.run("dyn_conv_backward", key, lambda: dyn_conv_backward(*args),
                      lambda: reference.dyn_conv_grads(*args), x.dtype, (grad_out, x),
                      fallback=lambda: reference.dyn_conv_grads(*args))
    return (*grads, None)


dyn_conv.register_autograd(_backward, setup_context=_setup_context)
