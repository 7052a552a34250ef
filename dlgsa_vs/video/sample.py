"""A short test clip made here, with PyAV only: moving picture plus an audio track.

    dlgsa-upscale --make-sample sample.mp4 && dlgsa-upscale sample.mp4

The picture has what super-resolution is judged on (a zone plate, thin lines, hard edges,
smooth gradients), all moving; a white square flashes at every whole second while the audio
beeps, so audio/video sync can be checked by eye and ear on the upscaled file.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .colour import Colour, planar_equivalent, rgb_to_planes, tag_frame, write_planes
from .files import temporary_path

SAMPLE_RATE = 48000


def sample_frame(i: int, width: int, height: int, fps: float) -> np.ndarray:
    """Frame ``i`` of the test picture as (3, H, W) float32 R'G'B' in [0, 1]."""
    t = i / fps
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * (0.5 + 0.15 * math.sin(t * 1.3)), height * 0.5
    r2 = (x - cx) ** 2 + (y - cy) ** 2
    zone = 0.5 + 0.5 * np.cos(r2 / (0.35 * width))
    r = 0.15 + 0.7 * zone * (x / width)
    g = 0.2 + 0.6 * zone * 0.8 + 0.2 * ((y + 6 * t * fps) % height) / height
    b = 0.9 - 0.7 * zone * (x / width)
    img = np.stack([r, g, b])
    # a red block sliding right, a blue disc circling, a rotating white bar, fine stripes
    bx = int((t * 40) % (width + 30)) - 30
    img[:, height // 6:height // 6 + height // 5, max(bx, 0):max(bx + 26, 0)] = np.array(
        [0.9, 0.15, 0.1], np.float32)[:, None, None]
    dx = width * 0.75 + 0.12 * width * math.cos(t * 2.0)
    dy = height * 0.62 + 0.2 * height * math.sin(t * 2.0)
    disc = (x - dx) ** 2 + (y - dy) ** 2 < (height * 0.14) ** 2
    img[:, disc] = np.array([0.1, 0.3, 0.9], np.float32)[:, None]
    angle = t * 1.5
    d = (x - width * 0.3) * math.sin(angle) - (y - height * 0.7) * math.cos(angle)
    along = (x - width * 0.3) * math.cos(angle) + (y - height * 0.7) * math.sin(angle)
    bar = (np.abs(d) < 1.2) & (np.abs(along) < height * 0.25)
    img[:, bar] = 1.0
    stripes = (y > height * 0.86) & (((x + int(t * 8)) // 2) % 2 == 0)
    img[:, stripes] = 0.05
    if (t % 1.0) < 0.1:  # sync flash
        img[:, 2:12, width - 12:width - 2] = 1.0
    return np.clip(img, 0.0, 1.0)


def _audio(seconds: float, channels: int = 2) -> np.ndarray:
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tone = 0.08 * np.sin(2 * np.pi * 220 * t)
    beep = 0.3 * np.sin(2 * np.pi * 1000 * t) * ((t % 1.0) < 0.1)
    left = tone + beep
    right = 0.08 * np.sin(2 * np.pi * 330 * t) + beep
    return np.stack([left, right][:channels]).astype(np.float32)


def make_sample(path: str | os.PathLike, width: int = 160, height: int = 90, seconds: float = 2.0,
                fps: int = 12, audio: bool = True) -> Path:
    """Write the test clip (H.264 + AAC) atomically; returns its path."""
    path = Path(path)
    tmp = temporary_path(path)
    colour = Colour(matrix=1, range=1, primaries=1, transfer=1, chroma_location=1)
    layout = planar_equivalent("yuv420p")
    container = av.open(str(tmp), "w")
    try:
        video = container.add_stream("libx264", rate=Fraction(fps))
        cc = video.codec_context
        cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
        cc.time_base = Fraction(1, fps)
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        cc.chroma_sample_location = 1
        cc.options = {"crf": "16", "preset": "medium"}
        video.metadata["title"] = "dlgsa-vs test picture"
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=SAMPLE_RATE)
            sound.codec_context.layout = "stereo"
            sound.metadata["language"] = "eng"
            sound.metadata["title"] = "tone with a beep every second"
        container.metadata["title"] = "dlgsa-vs sample clip"
        frames = int(round(seconds * fps))
        for i in range(frames):
            rgb = sample_frame(i, width, height, fps)
            frame = write_planes(rgb_to_planes(rgb, layout, colour), layout, width, height)
            tag_frame(frame, colour, layout)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            pcm = _audio(frames / fps)
            fs = sound.codec_context.frame_size or 1024
            for k in range(0, pcm.shape[1], fs):
                chunk = np.ascontiguousarray(pcm[:, k:k + fs])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate = SAMPLE_RATE
                af.pts = k
                af.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(sound.encode(af))
            container.mux(sound.encode(None))
        container.close()
        os.replace(tmp, path)
    except BaseException:
        try:
            container.close()
        except Exception:
            pass
        if tmp.exists():
            tmp.unlink()
        raise
    return path
