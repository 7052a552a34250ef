"""DLGSANet (Li, Pan, Tang, Dong, ICCV 2023): dynamic local and global self-attention for SR.

One network per file, readable next to the paper and ``docs/dlgsanet.md`` of the project's
shared notes. Module names follow the authors' BasicSR implementation so that their
checkpoints load unchanged; this file knows nothing about how weights are loaded.

    x -> (x - mean) * img_range -> overlap_embed (3x3 conv, f0)
      -> deep_feature_extraction: G x BuildBlock, 3x3 conv, + f0
      -> upsample: 3x3 conv to 3*s*s, PixelShuffle(s) -> / img_range + mean
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from .dynamic_conv import dynamic_dw_conv, dynamic_dw_conv_fused_1x1, fast_inference_possible
from .tlc import TLCWindows, from_windows, pad_to_window, tlc_windows, to_windows
from .tlc_grid import tlc_window_starts

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel (weight and bias, biased variance, eps 1e-5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = _LayerNormParams(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.body.weight, self.body.bias, 1e-5)
        return x.permute(0, 3, 1, 2)


class _LayerNormParams(nn.Module):
    # Holds the parameters under ``norm.body.{weight,bias}``, as in the authors' checkpoints.
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))


class GDFN(nn.Module):
    """Gated depth-wise feed-forward network (Restormer): 1x1 up, 3x3 dw, gelu gate, 1x1 down."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class KernelHyperNet(nn.Module):
    """Predicts one KxK kernel per pixel and per group of ``group_channels`` channels.

    ``kernels = "triton"`` (see :meth:`DLGSANet.set_kernels`) runs the last 1x1 conv and the
    dynamic conv as one fused kernel (``dlgsa::dyn_conv``, inference and training).
    """

    kernels = "torch"

    def __init__(self, dim: int, kernel_size: int, group_channels: int):
        super().__init__()
        reduced = dim // 4
        self.kernel_size = kernel_size
        self.conv1 = nn.Sequential(
            nn.Conv2d(dim, reduced, 1),
            nn.Conv2d(reduced, reduced, kernel_size, padding=kernel_size // 2, groups=reduced),
        )
        self.conv2 = nn.Sequential(nn.Conv2d(reduced, kernel_size**2 * (dim // group_channels), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The dynamic conv walks rows of one channel at a time: give it NCHW memory even when
        # the convolutions around it run channels-last (their fastest layout on the CPU).
        hidden = self.conv1(x).contiguous()
        x = x.contiguous()
        proj = self.conv2[0]
        if self.kernels == "triton":
            from . import kernels

            out = None if kernels.exporting() else kernels.dynamic_conv(
                x, hidden, proj.weight, proj.bias, self.kernel_size)
            if out is not None:
                return out
        if fast_inference_possible(x, proj.weight):
            return dynamic_dw_conv_fused_1x1(x, hidden, proj.weight, proj.bias, self.kernel_size)
        return dynamic_dw_conv(x, proj(hidden).contiguous(), self.kernel_size)


class DynamicLocalAttention(nn.Module):
    """MHDLSA: 1x1 conv, per-pixel dynamic depth-wise conv, 1x1 conv."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = KernelHyperNet(dim, window_size, num_heads)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv(self.conv0(x)))


class SparseGlobalAttention(nn.Module):
    """SparseGSA: channel x channel attention per head with ReLU instead of softmax.

    In eval mode with ``tlc`` on, the attention runs on overlapping ``tlc_kernel`` windows
    (see ``tlc.py``); in training mode, or with ``tlc`` off, over the whole map.
    ``kernels = "triton"`` runs either form without window copies (``dlgsa_vs.arch.kernels``).
    """

    kernels = "torch"

    def __init__(self, dim: int, num_heads: int, tlc: bool, tlc_kernel: int, activation: str):
        super().__init__()
        self.num_heads = num_heads
        self.tlc = tlc
        self.tlc_kernel = tlc_kernel
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        self.act = _ACTIVATIONS[activation]()

    def _attend(self, qkv: torch.Tensor) -> torch.Tensor:
        b, c3, h, w = qkv.shape
        q, k, v = qkv.reshape(b, 3, self.num_heads, c3 // (3 * self.num_heads), h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = self.act((q @ k.transpose(-2, -1)) * self.temperature)
        return (attn @ v).reshape(b, c3 // 3, h, w)

    def _attend_triton(self, qkv: torch.Tensor, windows: TLCWindows | None) -> torch.Tensor | None:
        """The Triton form, or None (use torch). It places the windows itself from the map
        size (no host sync per layer); given ``windows`` of another layout keep the torch form."""
        from . import kernels

        if kernels.exporting():
            return None
        if self.training or not self.tlc:
            return kernels.sparse_attention(qkv, self.temperature, self.num_heads, self.act, None)
        k = self.tlc_kernel
        if windows is not None and len(windows) > 2:  # a crop's weighted windows: torch form
            return None
        if windows is not None:
            h, w = qkv.shape[-2:]
            expected = ((len(tlc_window_starts(max(h, k), k)), k), (len(tlc_window_starts(max(w, k), k)), k))
            if (tuple(windows[0].shape), tuple(windows[1].shape)) != expected:
                return None
        return kernels.sparse_attention(qkv, self.temperature, self.num_heads, self.act, k)

    def forward(self, x: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.kernels == "triton":
            out = self._attend_triton(qkv, windows)
            if out is not None:
                return self.project_out(out)
        if self.training or not self.tlc:
            return self.project_out(self._attend(qkv))
        h, w = qkv.shape[-2:]
        if windows is None:
            windows = tlc_windows(h, w, self.tlc_kernel, qkv.device)
        idx_h, idx_w, *weights = windows
        qkv = pad_to_window(qkv, self.tlc_kernel)
        out = self._attend(to_windows(qkv, idx_h, idx_w))
        out = from_windows(out, idx_h, idx_w, qkv.shape[-2], qkv.shape[-1], weights=weights or None)[..., :h, :w]
        return self.project_out(out)


class DynamicLayerBlock(nn.Module):
    """``IDynamicLayerBlock``: x + MHDLSA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int, window_size: int, num_heads: int, ffn_expansion: float):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.IDynamicDWConv = DynamicLocalAttention(dim, window_size, num_heads)
        self.norm2 = LayerNorm2d(dim)
        self.IDynamic_ffn = GDFN(dim, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.IDynamicDWConv(self.norm1(x))
        return x + self.IDynamic_ffn(self.norm2(x))


class SparseAttentionLayerBlock(nn.Module):
    """x + SparseGSA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim, num_heads, ffn_expansion, tlc, tlc_kernel, activation):
        super().__init__()
        self.norm3 = LayerNorm2d(dim)
        self.restormer_attn = SparseGlobalAttention(dim, num_heads, tlc, tlc_kernel, activation)
        self.norm4 = LayerNorm2d(dim)
        self.restormer_ffn = GDFN(dim, ffn_expansion)

    def forward(self, x: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        x = x + self.restormer_attn(self.norm3(x), windows)
        return x + self.restormer_ffn(self.norm4(x))


class ResidualGroup(nn.Module):
    """The authors' ``BuildBlock``: B x (local block, global block), a 3x3 conv, + input."""

    def __init__(self, dim: int, blocks: int, **block_kw):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers.append(DynamicLayerBlock(dim, block_kw["window_size"], block_kw["idynamic_num_heads"],
                                            block_kw["idynamic_ffn_expansion_factor"]))
            layers.append(SparseAttentionLayerBlock(dim, block_kw["restormer_num_heads"],
                                                    block_kw["restormer_ffn_expansion_factor"],
                                                    block_kw["tlc_flag"], block_kw["tlc_kernel"],
                                                    block_kw["activation"]))
        layers.append(nn.Conv2d(dim, dim, 3, padding=1))
        self.body = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        y = x
        for layer in self.body:
            y = layer(y, windows) if isinstance(layer, SparseAttentionLayerBlock) else layer(y)
        return x + y


class _PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class DLGSANet(nn.Module):
    """DLGSANet with the authors' constructor keywords (their YAML ``network_g`` maps 1:1).

    Only the published configuration is built: ``buildblock_type='sparseedge'``,
    ``idynamic=True``, GDFN feed-forward networks and ``upsampler='pixelshuffledirect'``.
    ``tlc_kernel`` defaults to the authors' value for the scale (96 / 72 / 48 for x2 / x3 / x4).
    Set ``tlc_flag`` (or the ``tlc`` attribute via :meth:`set_tlc`) to False for true global
    attention at inference; training mode always uses global attention.
    """

    def __init__(
        self,
        in_chans: int = 3,
        dim: int = 48,
        groups: int = 4,
        blocks: int = 3,
        buildblock_type: str = "sparseedge",
        window_size: int = 7,
        idynamic_num_heads: int = 6,
        idynamic_ffn_type: str = "GDFN",
        idynamic_ffn_expansion_factor: float = 2.0,
        idynamic: bool = True,
        restormer_num_heads: int = 6,
        restormer_ffn_type: str = "GDFN",
        restormer_ffn_expansion_factor: float = 2.0,
        tlc_flag: bool = True,
        tlc_kernel: int | None = None,
        activation: str = "relu",
        upscale: int = 4,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffledirect",
        body_norm: bool = False,
        **_ignored,  # e.g. BasicSR's ``type`` and ``input_resolution`` (FLOP counting only)
    ):
        super().__init__()
        unsupported = {
            "buildblock_type": (buildblock_type, "sparseedge"),
            "idynamic": (idynamic, True),
            "idynamic_ffn_type": (idynamic_ffn_type, "GDFN"),
            "restormer_ffn_type": (restormer_ffn_type, "GDFN"),
            "upsampler": (upsampler, "pixelshuffledirect"),
            "body_norm": (body_norm, False),
        }
        for name, (got, supported) in unsupported.items():
            if got != supported:
                raise ValueError(f"DLGSANet: {name}={got!r} is an ablation of the paper that is not "
                                 f"implemented; only {name}={supported!r} (the published models) is")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"DLGSANet: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if dim % idynamic_num_heads or dim % restormer_num_heads:
            raise ValueError(f"DLGSANet: dim={dim} must be divisible by both head counts")

        self.upscale = upscale
        self.img_range = img_range
        self.in_chans = in_chans
        self.register_buffer("mean", torch.tensor(RGB_MEAN if in_chans == 3 else (0.0,) * in_chans)
                             .view(1, in_chans, 1, 1), persistent=False)
        block_kw = dict(window_size=window_size, idynamic_num_heads=idynamic_num_heads,
                        idynamic_ffn_expansion_factor=idynamic_ffn_expansion_factor,
                        restormer_num_heads=restormer_num_heads,
                        restormer_ffn_expansion_factor=restormer_ffn_expansion_factor,
                        tlc_flag=tlc_flag, tlc_kernel=tlc_kernel or default_tlc_kernel(upscale),
                        activation=activation)
        self.overlap_embed = nn.Sequential(_PatchEmbed(in_chans, dim))
        self.tlc_kernel = block_kw["tlc_kernel"]
        self.deep_feature_extraction = nn.ModuleList(
            [ResidualGroup(dim, blocks, **block_kw) for _ in range(groups)]
            + [nn.Conv2d(dim, dim, 3, padding=1)]
        )
        self.upsample = nn.Sequential(nn.Conv2d(dim, in_chans * upscale**2, 3, padding=1),
                                      nn.PixelShuffle(upscale))

    def set_tlc(self, enabled: bool) -> "DLGSANet":
        """Switch TLC windows (eval mode) on or off for every attention layer."""
        for m in self.modules():
            if isinstance(m, SparseGlobalAttention):
                m.tlc = enabled
        return self

    kernels = "torch"
    kernels_reason = "default"

    def set_kernels(self, kernels: str, reason: str | None = None) -> "DLGSANet":
        """Run the dynamic conv and the sparse attention as fused Triton kernels or in torch.

        ``kernels``: a decided choice, ``"triton"`` or ``"torch"``, with its ``reason`` (the run
        plan decides, ``kernels.resolve_kernels``); ``"auto"`` (or a choice without a reason,
        for scripts) is resolved by the same function, for where the parameters are now. The
        choice and its reason are kept in ``self.kernels`` and ``self.kernels_reason``; the
        network says nothing. Exports (torch.export, ONNX) always contain the torch forms; a
        kernel that fails to compile or launch warns once and runs the torch form.
        """
        if reason is None:
            from .kernels import resolve_kernels

            kernels, reason = resolve_kernels(kernels, self.mean.device)
        for m in self.modules():
            if isinstance(m, (KernelHyperNet, SparseGlobalAttention)):
                m.kernels = kernels
        self.kernels, self.kernels_reason = kernels, reason
        return self

    def uses_tlc(self) -> bool:
        """Whether a forward pass now runs attention in TLC windows (eval mode, TLC on)."""
        return not self.training and any(
            m.tlc for m in self.modules() if isinstance(m, SparseGlobalAttention))

    def tlc_windows(self, height: int, width: int, device: torch.device | None = None) -> TLCWindows:
        """The TLC window indices for an LR frame size; pass them to ``forward`` to reuse them
        across calls, or to export a graph with dynamic height and width."""
        return tlc_windows(height, width, self.tlc_kernel, device or self.mean.device)

    def forward(self, x: torch.Tensor, windows: TLCWindows | None = None) -> torch.Tensor:
        """x: (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW). ``windows``: see :meth:`tlc_windows`
        (for a tile of a larger frame, the frame's windows: ``tlc.crop_windows``); computed here
        from the frame size when not given (all attention layers share them)."""
        if windows is None and self.uses_tlc():
            windows = self.tlc_windows(x.shape[-2], x.shape[-1], x.device)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        f0 = self.overlap_embed(x)
        y = f0
        for group in self.deep_feature_extraction[:-1]:
            y = group(y, windows)
        y = self.deep_feature_extraction[-1](y)
        x = self.upsample(y + f0)
        return x / self.img_range + mean


def default_tlc_kernel(scale: int) -> int:
    """The authors' TLC window per scale: 96 / 72 / 48 LR pixels for x2 / x3 / x4."""
    return {2: 96, 3: 72, 4: 48}.get(scale, 48)


_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "none": nn.Identity}
