"""dlgsa-vs: video super-resolution with DLGSANet for VapourSynth, the shell and TensorRT."""
from ._version import __version__  # noqa: F401


def __getattr__(name: str):
    # lazy, so that `import dlgsa_vs` imports neither VapourSynth nor torch
    if name == "upscale":
        from .vapoursynth import upscale

        return upscale
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
