"""Per-pixel dynamic depth-wise convolution, in plain PyTorch ops.

DLGSANet's local attention applies, at every pixel, a KxK depth-wise kernel that a
hypernetwork predicted for that pixel; ``C // G`` neighbouring channels share one kernel
(G kernel groups). The authors run it as a hand-written CUDA kernel (cupy). Here it is a sum
of K*K shifted products: it runs on any device and dtype, has autograd, and exports to
torch.export, ONNX and TensorRT.

    out[n, c, y, x] = sum_{i,j < K} w[n, c // (C/G), i, j, y, x] * xpad[n, c, y+i, x+j]

Which formulation runs (measured by ``scripts/bench_dynamic_conv.py``, see bench/README.md):
- inference, eager: the shifted sum accumulated in place (``addcmul_``), ~15x faster than
  the im2col (``unfold``) formulation on the CPU;
- training: the same forward with a hand-written backward (two more shifted sums), ~10x
  faster than letting autograd differentiate 49 slices;
- torch.compile / torch.export / ONNX tracing: the pure functional sum, which the compilers
  fuse into a single loop and every runtime understands.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _grouped(x: torch.Tensor, weight: torch.Tensor, k: int):
    """Views: padded input (N, G, C/G, H+2p, W+2p) and kernels (N, G, 1, K*K, H, W)."""
    n, c, h, w = x.shape
    p = k // 2
    weight = weight.reshape(n, -1, 1, k * k, h, w)
    groups = weight.shape[1]
    xpad = F.pad(x, (p, p, p, p)).reshape(n, groups, c // groups, h + 2 * p, w + 2 * p)
    return xpad, weight


def dynamic_dw_conv_functional(x: torch.Tensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Out-of-place shifted sum: the form for compilers and exporters."""
    n, c, h, w = x.shape
    k = kernel_size
    xpad, weight = _grouped(x, weight, k)
    out = xpad[..., 0:h, 0:w] * weight[:, :, :, 0]
    for t in range(1, k * k):
        i, j = divmod(t, k)
        out = out + xpad[..., i:i + h, j:j + w] * weight[:, :, :, t]
    return out.reshape(n, c, h, w)


def dynamic_dw_conv_inplace(x: torch.Tensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Shifted sum accumulated in place: one output buffer, no temporaries."""
    n, c, h, w = x.shape
    k = kernel_size
    xpad, weight = _grouped(x, weight, k)
    out = xpad[..., 0:h, 0:w] * weight[:, :, :, 0]
    for t in range(1, k * k):
        i, j = divmod(t, k)
        out.addcmul_(xpad[..., i:i + h, j:j + w], weight[:, :, :, t])
    return out.reshape(n, c, h, w)


def dynamic_dw_conv_unfold(x: torch.Tensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """im2col formulation: materialises K*K copies of the input (the textbook reference)."""
    n, c, h, w = x.shape
    k = kernel_size
    cols = F.unfold(x, k, padding=k // 2).reshape(n, c, k * k, h * w)
    weight = weight.reshape(n, -1, 1, k * k, h * w)
    groups = weight.shape[1]
    cols = cols.reshape(n, groups, c // groups, k * k, h * w)
    return (cols * weight).sum(dim=3).reshape(n, c, h, w)


class _DynamicDWConvFunction(torch.autograd.Function):
    """In-place forward with an explicit backward made of shifted sums too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.k = k
        return dynamic_dw_conv_inplace(x, weight, k)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        k = ctx.k
        n, c, h, w = x.shape
        p = k // 2
        xpad, wv = _grouped(x, weight, k)
        groups = wv.shape[1]
        g = grad_out.reshape(n, groups, c // groups, h, w)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # d out[y, x] / d xpad[y+i, x+j] = w[i, j, y, x]: scatter each shifted product back.
            grad_xpad = x.new_zeros(xpad.shape)
            for t in range(k * k):
                i, j = divmod(t, k)
                grad_xpad[..., i:i + h, j:j + w].addcmul_(g, wv[:, :, :, t])
            grad_x = grad_xpad[..., p:p + h, p:p + w].reshape(n, c, h, w)
        if ctx.needs_input_grad[1]:
            # d out / d w[g, i, j, y, x] = sum over the group's channels of xpad[y+i, x+j].
            grad_w = x.new_empty(n, groups, k * k, h, w)
            for t in range(k * k):
                i, j = divmod(t, k)
                torch.sum(xpad[..., i:i + h, j:j + w] * g, dim=2, out=grad_w[:, :, t])
            grad_w = grad_w.reshape(weight.shape)
        return grad_x, grad_w, None


def dynamic_dw_conv_fused_1x1(
    x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    """Inference fast path: the hypernetwork's last 1x1 conv fused into the shifted sum.

    ``weight = conv1x1(hidden)`` has G*K*K channels (8x the feature map for DLGSANet); instead
    of writing it out and reading it back, each tap's G kernel planes are computed right
    before use (a small GEMM that stays in cache). Equal to
    ``dynamic_dw_conv(x, conv1x1(hidden), K)`` up to float rounding.
    """
    n, c, h, w = x.shape
    k = kernel_size
    p = k // 2
    hidden_c = hidden.shape[1]
    groups = proj_weight.shape[0] // (k * k)
    proj_w = proj_weight.reshape(groups, k * k, hidden_c)
    proj_b = proj_bias.reshape(groups, k * k, 1)
    hidden = hidden.reshape(n, hidden_c, h * w)
    xpad = F.pad(x, (p, p, p, p)).reshape(n, groups, c // groups, h + 2 * p, w + 2 * p)
    out = x.new_empty(n, groups, c // groups, h, w)
    for t in range(k * k):
        i, j = divmod(t, k)
        taps = torch.baddbmm(proj_b[:, t].expand(n, groups, 1), proj_w[:, t].expand(n, groups, hidden_c), hidden)
        taps = taps.reshape(n, groups, 1, h, w)
        if t == 0:
            torch.mul(xpad[..., i:i + h, j:j + w], taps, out=out)
        else:
            out.addcmul_(xpad[..., i:i + h, j:j + w], taps)
    return out.reshape(n, c, h, w)


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def dynamic_dw_conv(x: torch.Tensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-pixel dynamic depth-wise conv with zero padding K // 2 (spatial size kept).

    x: (N, C, H, W); weight: (N, G*K*K, H, W) or (N, G, K, K, H, W) with C % G == 0.
    """
    if _tracing():
        return dynamic_dw_conv_functional(x, weight, kernel_size)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _DynamicDWConvFunction.apply(x, weight, kernel_size)
    return dynamic_dw_conv_inplace(x, weight, kernel_size)


def fast_inference_possible(*tensors: torch.Tensor) -> bool:
    """True in eager mode without autograd: where the in-place/fused fast paths may run."""
    return not _tracing() and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


FORMULATIONS = {
    "dispatch": dynamic_dw_conv,
    "functional": dynamic_dw_conv_functional,
    "inplace": dynamic_dw_conv_inplace,
    "unfold": dynamic_dw_conv_unfold,
}
