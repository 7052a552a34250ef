"""Video front end: upscale a video file with PyAV (decode, network, encode, copy the rest).

The command is ``dlgsa-upscale`` (``dlgsa_vs/cli/video.py``, also ``python
scripts/upscale_video.py``); see docs/video.md. Modules: ``probe`` (open and read the input),
``colour`` (YUV <-> RGB with the stream's own matrix and range; ``colour_torch`` the same in
torch, where the network runs), ``fields`` (interlaced and telecined sources: detection and
FFmpeg's deinterlacing filters), ``output`` (encoder and stream copies), ``pipeline`` (the
threads), ``job`` (one file end to end: ``upscale_video``), ``errors``, ``preview`` and
``sample`` (a test clip made here). The resumable segmented run is ``dlgsa_vs.segments``.
"""
from .errors import Interrupted, VideoError

__all__ = ["VideoError", "Interrupted"]
