"""The model names every front end takes (``variant``): the published architectures and the
weights packaged for them. No torch here: the settings and ``--help`` read this table.

``light`` follows the paper's protocol (clean MATLAB-bicubic LR); ``light-video`` is the same
network fine-tuned on LR frames that went through real video encoders, the input a video
upscaler actually gets. ``tiny`` and ``full`` name architectures without packaged weights:
they are for checking a model file (``variant="full", model_path=...``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..arch.variants import VARIANTS

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True)
class ModelName:
    name: str
    variant: str       # the architecture (arch.variants.VARIANTS)
    file_stem: str     # packaged files: dlgsa_vs/models/<file_stem>_x<scale>.safetensors
    trained_on: str    # one line for --help and the docs


MODELS: dict[str, ModelName] = {m.name: m for m in (
    ModelName("tiny", "tiny", "dlgsanet_tiny", "(architecture only, no packaged weights)"),
    ModelName("light", "light", "dlgsanet_light", "clean bicubic LR, the paper's protocol: clean sources"),
    ModelName("light-video", "light", "dlgsanet_light_video",
              "LR through H.264/HEVC/AV1/VP9 at CRF 18-50: compressed video"),
    ModelName("full", "full", "dlgsanet_full", "(architecture only, no packaged weights)"),
)}
assert all(m.variant in VARIANTS for m in MODELS.values())

# The library's default and the image command line's; the video front ends (command lines,
# VapourSynth filter) take light-video: their inputs are compressed (measured in MODEL_CARD.md).
DEFAULT_MODEL = "light"
VIDEO_DEFAULT_MODEL = "light-video"


def packaged_file(name: str, scale: int, folder: Path | None = None) -> Path:
    """Where the packaged weights of a model name and scale live (``folder``: the install's)."""
    return (folder or MODELS_DIR) / f"{MODELS[name].file_stem}_x{scale}.safetensors"


def default_for(preferred: str, scale: int | None) -> str:
    """A front end's default model at ``scale`` (None: 2): ``preferred`` where its weights are
    packaged at that scale, else the paper-protocol light (light-video has no x3)."""
    return preferred if packaged_file(preferred, scale or 2).is_file() else DEFAULT_MODEL
