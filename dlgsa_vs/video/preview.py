"""``--preview N``: one frame, bicubic (left) beside the network (right), as a PNG.

Nothing is encoded: frame N (counted from 0 at the start of the file) is decoded, read
with the stream's own colour description, enlarged with MATLAB's bicubic (the baseline of
the SR papers) and with the network, and the two are written side by side.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..image.imageio import write_png
from ..image.imresize import bicubic_upscale
from .colour import frame_to_rgb
from .errors import VideoError
from .fields import FieldSource, Treatment
from .probe import InputInfo, Source, first_frame_colour, fmt_time


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8."""
    return np.clip(np.rint(np.asarray(rgb, np.float32) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def preview(info: InputInfo, upscaler, index: int, out: Path,
            fields: Treatment | None = None) -> tuple[Path, float, float]:
    """Write the side-by-side PNG; returns (path, frame time in seconds, network seconds).
    ``fields``: a deinterlacing treatment (``fields.plan``); frame ``index`` is then counted
    in its output, as the run would write it."""
    filtered = fields is not None and fields.active
    source = Source(info, limit=fields.input_frames(index + 1) if filtered else index + 1)
    stream = FieldSource(source, fields, limit=index + 1) if filtered else source
    frame = None
    for ev in stream.events():
        if ev[0] == "frame":
            frame = ev[1]
    if frame is None or stream.frames <= index:
        raise VideoError(f"--preview {index}: the video has only {stream.frames} frames "
                         f"(counted from 0)", code=2)
    colour = first_frame_colour(info, frame)
    rgb = frame_to_rgb(frame, colour)
    import time

    t = time.perf_counter()
    ours = upscaler(torch.from_numpy(rgb[None]))[0].numpy()
    seconds = time.perf_counter() - t
    lr = to_uint8(rgb)
    s = upscaler.scale
    bicubic = bicubic_upscale(lr, s)
    side = np.concatenate([bicubic, to_uint8(ours)], axis=1)
    write_png(out, side)
    tb = frame.time_base if filtered else info.time_base     # the filters' own clock
    return out, float(frame.pts * tb) if frame.pts is not None else float("nan"), seconds


__all__ = ["preview", "to_uint8", "fmt_time"]
