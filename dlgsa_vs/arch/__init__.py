"""The DLGSANet network (``dlgsanet.py``) and its named configurations (``variants.py``).

The tables of variants and scales import without torch (the settings and command lines read
them); the network itself is imported on first use.
"""
from .variants import SCALES, VARIANTS, build_model, variant_config

__all__ = ["DLGSANet", "VARIANTS", "SCALES", "build_model", "variant_config", "default_tlc_kernel"]


def __getattr__(name: str):
    if name in ("DLGSANet", "default_tlc_kernel"):
        from . import dlgsanet

        return getattr(dlgsanet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
