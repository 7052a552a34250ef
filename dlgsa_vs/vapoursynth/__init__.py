"""VapourSynth front end: ``upscale(clip, ...)``, also reachable as ``core.dlgsa.Upscale``.

The native plugin that provides the ``dlgsa`` namespace is built from ``plugin.c`` at install
time and placed in VapourSynth's autoload folder (see setup.py and docs/vapoursynth.md).
"""
from .filter import SIGNATURE, upscale

__all__ = ["SIGNATURE", "upscale"]
