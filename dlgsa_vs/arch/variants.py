"""The published DLGSANet configurations, as the authors' YAML ``network_g`` blocks."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dlgsanet import DLGSANet

# No torch at import time: the settings and the command lines read these tables.
SCALES = (2, 3, 4)

# channels C, residual groups G, blocks per group B (shared/docs/dlgsanet.md, "Variants")
VARIANTS: dict[str, dict[str, int]] = {
    "tiny": {"dim": 48, "groups": 3, "blocks": 3},
    "light": {"dim": 48, "groups": 4, "blocks": 3},
    "full": {"dim": 90, "groups": 6, "blocks": 4},
}


def variant_config(variant: str, scale: int, tlc: bool = True) -> dict:
    """Constructor keywords for a named variant, exactly as in the authors' configs."""
    from .dlgsanet import default_tlc_kernel

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    if scale not in SCALES:
        raise ValueError(f"unsupported scale {scale!r}: DLGSANet is published for x2, x3 and x4")
    return dict(
        in_chans=3, **VARIANTS[variant], buildblock_type="sparseedge", window_size=7,
        idynamic_num_heads=6, idynamic_ffn_type="GDFN", idynamic_ffn_expansion_factor=2.0,
        idynamic=True, restormer_num_heads=6, restormer_ffn_type="GDFN",
        restormer_ffn_expansion_factor=2.0, tlc_flag=tlc, tlc_kernel=default_tlc_kernel(scale),
        activation="relu", upscale=scale, img_range=1.0, upsampler="pixelshuffledirect",
    )


def build_model(variant: str = "light", scale: int = 2, tlc: bool = True) -> "DLGSANet":
    """A freshly initialised network of a named variant, e.g. ``build_model("light", 4)``."""
    from .dlgsanet import DLGSANet

    return DLGSANet(**variant_config(variant, scale, tlc))
