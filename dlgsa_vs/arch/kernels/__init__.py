"""Fused Triton kernels for DLGSANet, as torch custom ops, and the choice of when to use them.

The plain-PyTorch forms in ``dlgsa_vs.arch`` stay the reference: they are what runs on the
CPU and what ``torch.export``/ONNX/TensorRT graphs contain. The kernels here replace two of
them on a CUDA GPU (``DLGSANet.set_kernels("triton")``):

- ``dlgsa::dyn_conv`` (``dynamic_conv_triton.py``): the per-pixel dynamic depth-wise conv with
  the hypernetwork's last 1x1 conv fused in, so the G*K*K-channel kernel tensor never exists;
- ``dlgsa::segment_gram`` and ``dlgsa::segment_matmul`` (``global_attention_triton.py``): the
  sparse channel attention over TLC windows (or the whole map) without window copies.

Triton is imported only when a kernel is first used, so ``import dlgsa_vs`` works where it is
absent. The first call of each kernel per dtype and shape class runs it next to the torch reference
(``fallback.py``); one that fails to compile or launch, or differs, warns once and the caller
gets ``None`` (meaning: run the torch form) from then on, never an exception in the middle of
a video. Tests turn that off with :func:`set_strict` so that a broken kernel fails them.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..forms import KERNELS as KERNEL_CHOICES  # the one list (RunSettings validates it too)
from ._common import interpreting, tlc_window_starts  # noqa: F401 (the package's API)
from .fallback import GUARD, shape_class


def triton_version() -> str | None:
    """The installed Triton's version, or None when it cannot be imported (imports it)."""
    try:
        import triton
    except Exception:  # ImportError, or a broken install raising anything at import
        return None
    return getattr(triton, "__version__", "unknown")


def resolve_kernels(requested: str, device: torch.device | str | None) -> tuple[str, str]:
    """Decide which forms run: returns (``"triton"`` or ``"torch"``, a reason for the log).

    ``auto`` picks triton on a CUDA device where triton imports, else torch. An explicit
    ``triton`` is honoured where triton imports (on the CPU only under the interpreter; a
    launch that fails there warns and falls back per call).
    """
    if requested not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, got {requested!r}")
    if requested == "torch":
        return "torch", "requested"
    device = torch.device(device if device is not None else "cpu")
    version = triton_version()
    if requested == "triton":
        if version is None:
            return "torch", "triton was requested but cannot be imported"
        return "triton", f"requested (triton {version})"
    if device.type != "cuda":
        return "torch", f"auto: device {device.type} is not CUDA"
    if not torch.cuda.is_available():
        return "torch", "auto: CUDA is not available"
    if version is None:
        return "torch", "auto: triton cannot be imported"
    return "triton", f"auto: CUDA device with triton {version}"


def set_strict(strict: bool) -> None:
    """Raise kernel failures and first-call mismatches instead of warning and falling back
    (for tests and benchmarks; ``DLGSA_KERNELS_STRICT=1`` in the environment sets it at import)."""
    GUARD.strict = strict


def forget_failures() -> None:
    """Check every kernel again at its next call (each failure warns once, then is remembered)."""
    GUARD.forget()


def exporting() -> bool:
    """True while torch.export, ONNX export or jit tracing records a graph: exports always
    contain the torch forms (every runtime understands them; the custom ops exist only here)."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def dynamic_conv(x: torch.Tensor, hidden: torch.Tensor, proj_weight: torch.Tensor,
                 proj_bias: torch.Tensor, kernel_size: int, *,
                 impl: Callable[..., torch.Tensor] | None = None) -> torch.Tensor | None:
    """Fused ``dynamic_dw_conv(x, conv1x1(hidden), K)`` via ``dlgsa::dyn_conv``; None = use torch.

    The first call per dtype and shape class is checked against the torch reference
    (:mod:`.fallback`). ``impl``: another kernel with the op's signature (a test's
    deliberately broken variant); default the ``dlgsa::dyn_conv`` op."""
    def run():
        if impl is not None:
            return impl(x, hidden, proj_weight, proj_bias, kernel_size)
        from . import dynamic_conv_triton as k

        return k.dyn_conv(x, hidden, proj_weight, proj_bias, kernel_size)

    from . import reference

    def key():
        n, c, h, w = x.shape
        return (x.dtype, x.device.type, c, hidden.shape[1], proj_weight.shape[0], kernel_size,
                x.requires_grad or hidden.requires_grad, *shape_class(h, w, n * c * h * w))

    return GUARD.run("dyn_conv" if impl is None else f"dyn_conv[{getattr(impl, '__name__', 'impl')}]", key,
                     run, lambda: reference.dyn_conv(x, hidden, proj_weight, proj_bias, kernel_size),
                     x.dtype, (x, hidden))


def sparse_attention(qkv: torch.Tensor, temperature: torch.Tensor, num_heads: int,
                     act: Callable[[torch.Tensor], torch.Tensor],
                     tlc_kernel: int | None, *,
                     impl: Callable[..., torch.Tensor] | None = None) -> torch.Tensor | None:
    """SparseGSA's attention on qkv (B, 3C, H, W) -> (B, C, H, W): over TLC windows of side
    ``tlc_kernel``, or over the whole map when it is None; None = use the torch form.
    Checked on its first call per key like :func:`dynamic_conv` (``impl`` likewise)."""
    from . import reference

    def run():
        if impl is not None:
            return impl(qkv, temperature, num_heads, act, tlc_kernel)
        from . import global_attention_triton as k

        return k.sparse_attention(qkv, temperature, num_heads, act, tlc_kernel)

    def ref():
        from .global_attention_triton import axis_plan

        h, w = qkv.shape[-2:]
        windows = (axis_plan(h, tlc_kernel).windows, axis_plan(w, tlc_kernel).windows)
        return reference.sparse_attention(qkv, temperature, num_heads, act, windows)

    def key():
        b, c3, h, w = qkv.shape
        return (qkv.dtype, qkv.device.type, c3, num_heads, tlc_kernel, type(act).__name__,
                qkv.requires_grad or temperature.requires_grad, *shape_class(h, w, b * c3 * h * w))

    name = "sparse_attention" if impl is None else f"sparse_attention[{getattr(impl, '__name__', 'impl')}]"
    return GUARD.run(name, key, run, ref, qkv.dtype, (qkv,))

__all__ = ["KERNEL_CHOICES", "GUARD", "resolve_kernels", "interpreting", "triton_version", "set_strict",
           "forget_failures", "exporting", "tlc_window_starts", "dynamic_conv", "sparse_attention"]
