"""DLGSANet as a spandrel architecture, so that spandrel's ``ModelLoader`` loads its checkpoints.

spandrel (0.4.x) knows some forty architectures but not DLGSANet. After ``register()``::

    import spandrel
    from dlgsa_vs.integrations.spandrel_arch import register

    register()                                        # adds DLGSANet to spandrel.MAIN_REGISTRY
    desc = spandrel.ModelLoader().load_from_file("dlgsanet_light_x2.safetensors")
    sr = desc(image)                                  # (1, 3, H, W) in [0, 1] -> (1, 3, 2H, 2W)

both our packaged ``.safetensors`` and the authors' BasicSR ``.pth`` files (``params_ema`` /
``params``, a ``module.`` prefix) load: spandrel unwraps and strips those itself, and the
network is built and loaded by the project's own ``weights.model_from_state_dict``, which
reads every hyper-parameter from the tensors (``weights.detect_config``). The model is OUR
``DLGSANet``, so a spandrel descriptor and ``weights.load_model`` give the same function.

Importing this module imports spandrel; the rest of dlgsa-vs does not need it.
"""
from __future__ import annotations

try:
    from spandrel import (MAIN_REGISTRY, ArchRegistry, ArchSupport, Architecture, ImageModelDescriptor,
                          ModelTiling, SizeRequirements, StateDict)
    from spandrel.util import KeyCondition
except ImportError as exc:  # one line that says what to install
    raise ImportError(f"dlgsa_vs.integrations.spandrel_arch needs spandrel ({exc}): pip install 'dlgsa-vs[spandrel]'") from None

from ..arch import DLGSANet
from ..runtime.weights import detect_config, model_from_state_dict, variant_name

ARCH_ID = "DLGSANet"

# Keys that every DLGSANet state dict has, in the authors' names: the shallow embedding, the
# first block's dynamic local attention (its kernel hypernetwork and GDFN), the first sparse
# global attention block (its temperature and GDFN) and the pixel-shuffle head. No other
# architecture spandrel knows uses these module names.
_REQUIRED_KEYS = (
    "overlap_embed.0.proj.weight",
    "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv1.1.weight",
    "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv2.0.weight",
    "deep_feature_extraction.0.body.0.IDynamic_ffn.project_in.weight",
    "deep_feature_extraction.0.body.1.restormer_attn.temperature",
    "deep_feature_extraction.0.body.1.restormer_ffn.project_in.weight",
    "upsample.0.weight",
)
_has_keys = KeyCondition.has_all(*_REQUIRED_KEYS)


def detect(state_dict: StateDict) -> bool:
    """Whether ``state_dict`` (spandrel-canonical: unwrapped, prefix stripped) is DLGSANet's.

    The distinctive keys must be there and the project's shape reader must accept the
    tensors; detection never raises, since spandrel asks every architecture in turn.
    """
    if not _has_keys(state_dict):
        return False
    try:
        detect_config(state_dict)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError, ZeroDivisionError):
        return False  # weights.WeightsError is a ValueError
    return True


class DLGSANetArch(Architecture[DLGSANet]):
    """spandrel's description of DLGSANet: detection by key names, loading by the project's reader."""

    def __init__(self) -> None:
        super().__init__(id=ARCH_ID, name="DLGSANet", detect=detect)

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[DLGSANet]:
        """Build the DLGSANet that ``state_dict`` describes (tiny / light / full or any other
        shape; scale, channels, groups, blocks, heads and window read from the tensors) and
        describe it for spandrel.

        supports_half / supports_bfloat16: the network runs in both (the project checks both
        against fp32, tests/test_arch.py, tests/test_spandrel.py). spandrel's call has no
        overflow guard: an fp16 output that overflows on some input stays NaN there, where the
        project's own ``inference.Upscaler`` recomputes that frame in bf16.
        """
        config = detect_config(state_dict, source="spandrel state dict")
        model = model_from_state_dict(state_dict, source="spandrel state dict")
        scale, channels = config["upscale"], config["in_chans"]
        return ImageModelDescriptor(
            model,
            model.state_dict(),  # exactly the model's keys and dtypes (loaded strictly above)
            architecture=self,
            purpose="SR" if scale > 1 else "Restoration",
            tags=[variant_name(config), f"{config['dim']}nf", f"{config['groups']}x{config['blocks']}"],
            supports_half=True,
            supports_bfloat16=True,
            scale=scale,
            input_channels=channels,
            output_channels=channels,  # the pixel-shuffle head has in_chans x scale^2 planes
            # convolutions keep the size and TLC places its windows for any size: no padding
            size_requirements=SizeRequirements(),
            # tiles work (each with context); attention is global over TLC windows, so whole
            # frames are what the authors evaluate
            tiling=ModelTiling.SUPPORTED,
        )


def register(registry: ArchRegistry | None = None) -> ArchRegistry:
    """Add DLGSANet to ``registry`` (default ``spandrel.MAIN_REGISTRY``); calling it again is a
    no-op. Returns the registry."""
    registry = MAIN_REGISTRY if registry is None else registry
    if ARCH_ID not in registry:
        registry.add(ArchSupport.from_architecture(DLGSANetArch()), ignore_duplicates=True)
    return registry
