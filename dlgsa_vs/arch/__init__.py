"""The DLGSANet network (``dlgsanet.py``) and its named configurations (``variants.py``)."""
from .dlgsanet import DLGSANet, default_tlc_kernel
from .variants import VARIANTS, SCALES, build_model, variant_config

__all__ = ["DLGSANet", "VARIANTS", "SCALES", "build_model", "variant_config", "default_tlc_kernel"]
