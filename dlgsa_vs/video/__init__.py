"""Video front end: upscale a video file with PyAV (decode, network, encode, copy the rest).

The command is ``dlgsa-upscale`` (``python scripts/upscale_video.py``); see docs/video.md.
Modules: ``probe`` (open and read the input), ``colour`` (YUV <-> RGB with the stream's own
matrix and range), ``output`` (encoder and stream copies), ``pipeline`` (the threads),
``preview``, ``sample`` (a test clip made here) and ``cli``.
"""
from .errors import Interrupted, VideoError

__all__ = ["VideoError", "Interrupted"]
