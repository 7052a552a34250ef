"""Clips as archivists get them, made here with real encoders (PyAV): interlaced video (two
moments in one frame, TFF or BFF, H.264 or MPEG-2 with interlaced coding), film telecined
with 3:2 pulldown, and files whose field flags lie. The content pans across a textured
picture, so that every field differs from the other field of its frame (as in a camera pan),
and telecined film frames carry their number as a row of black and white blocks."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

NTSC = Fraction(30000, 1001)
FILM = Fraction(24000, 1001)
BITS = 6        # film frame numbers: blocks of 8x8 in the top row


def scene(t: float, width: int, height: int) -> np.ndarray:
    """The picture at time ``t`` (in fields): a crop of a fixed texture panning 3 px a field."""
    rng = np.random.default_rng(38)
    wide = width + 512
    base = rng.random((height // 4 + 1, wide // 4 + 1)).repeat(4, 0).repeat(4, 1)[:height, :wide]
    y, x = np.mgrid[0:height, 0:wide].astype(np.float32)
    texture = 0.55 * base + 0.25 * np.sin(x / 3.0 + y / 7.0) + 0.2 * ((x // 16 + y // 16) % 2)
    shift = int(round(3 * t))
    crop = texture[:, shift:shift + width]
    return np.clip(24 + crop * 200, 16, 235).astype(np.uint8)


def yuv_frame(luma: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame with this luma and neutral chroma."""
    h, w = luma.shape
    chroma = np.full((h // 2, w), 128, np.uint8)   # U then V, each h/2 x w/2, packed as yuv420p rows
    return av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")


def woven(i: int, order: str, width: int, height: int) -> np.ndarray:
    """Frame ``i`` of interlaced video: its first field at time 2i, its second at 2i + 1."""
    first, second = scene(2 * i, width, height), scene(2 * i + 1, width, height)
    img = first.copy()
    if order == "tff":
        img[1::2] = second[1::2]
    else:
        img[0::2] = second[0::2]
    return img


def numbered(i: int, width: int, height: int) -> np.ndarray:
    """Film frame ``i``: the pan (4 fields a film frame) with ``i`` in blocks at the top."""
    img = scene(4 * i, width, height)
    for b in range(BITS):
        img[0:8, b * 8:(b + 1) * 8] = 235 if (i >> b) & 1 else 16
    return img


def read_number(luma: np.ndarray, scale: int = 1) -> int:
    """The frame number ``numbered`` wrote, read back from the middle of each block."""
    s = scale
    return sum(1 << b for b in range(BITS) if luma[2 * s:6 * s, (b * 8 + 2) * s:(b * 8 + 6) * s].mean() > 128)


def run_filters(frames: list[av.VideoFrame], time_base: Fraction, rate: Fraction, chain: str) -> list:
    """Frames through an FFmpeg filter chain ("setfield=tff", "telecine=pattern=23", ...)."""
    g = av.filter.Graph()
    first = frames[0]
    nodes = [g.add("buffer", video_size=f"{first.width}x{first.height}", pix_fmt=first.format.name,
                   time_base=str(time_base), pixel_aspect="1/1", frame_rate=str(rate))]
    for part in chain.split(","):
        name, _, options = part.partition("=")
        nodes.append(g.add(name, options or None))
    nodes.append(g.add("buffersink"))
    g.link_nodes(*nodes)
    g.configure()
    out = []
    for f in frames + [None]:
        if f is not None:
            f.time_base = time_base
        g.vpush(f)
        while True:
            try:
                out.append(g.vpull())
            except (av.error.BlockingIOError, av.error.EOFError):
                break
    return out


def encode(path: Path, pictures: list[np.ndarray], *, codec: str = "libx264", rate: Fraction = NTSC,
           flag: str = "progressive", interlaced_coding: bool = False, audio: bool = False,
           filters: str | None = None) -> Path:
    """Encode luma pictures. flag: the field order the frames are marked with (setfield);
    interlaced_coding: field-aware coding (+ilme+ildct; x264 tff=1/bff=1). filters: run on
    the frames first (e.g. telecine, which also changes the rate to ``rate``)."""
    src_rate = rate if filters is None else FILM
    tb = 1 / src_rate
    frames = []
    for i, pic in enumerate(pictures):
        f = yuv_frame(pic)
        f.pts = i
        frames.append(f)
    if filters:
        frames = run_filters(frames, tb, src_rate, filters)
    frames = run_filters(frames, 1 / rate, rate, f"setfield={'prog' if flag == 'progressive' else flag}")
    h, w = pictures[0].shape
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        cc = s.codec_context
        cc.time_base = 1 / rate
        if interlaced_coding:
            cc.flags = cc.flags | av.codec.context.Flags.interlaced_me | av.codec.context.Flags.interlaced_dct
        if codec == "libx264":
            opts = {"crf": "10"}
            if interlaced_coding:
                opts["x264opts"] = f"{flag}=1"
            cc.options = opts
        else:
            cc.options = {"qscale": "2"}
            cc.qscale = 2
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "mono"
        for i, f in enumerate(frames):
            f.pts = i
            f.time_base = 1 / rate
            out.mux(s.encode(f))
        out.mux(s.encode(None))
        if a is not None:
            seconds = len(frames) / rate
            n = int(seconds * 48000)
            tone = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, k, Fraction(1, 48000)
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def idet_frames(path: Path, size: tuple[int, int] | None = None) -> list[str]:
    """idet's verdict on each frame of a clip on its own ("tff", "bff", "progressive",
    "undetermined"), after scaling the frames to ``size`` (w, h) if given."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.reformat(width=size[0], height=size[1], format="yuv420p") if size else f
                  for f in c.decode(v)]
        rate = Fraction(v.average_rate or 25)
        tb = Fraction(v.time_base)
    return [f.metadata.get("lavfi.idet.single.current_frame", "?") for f in run_filters(frames, tb, rate, "idet")]


def save_nearest_model(path: Path, scale: int = 2) -> Path:
    """A real DLGSANet (the micro size) whose weights make it repeat every pixel ``scale`` x
    ``scale`` times: the picture goes through the network unchanged, so what the tests
    measure on the output (combing, frame numbers) is what the front end gave the network."""
    import torch

    from dlgsa_vs.arch import DLGSANet
    from dlgsa_vs.runtime.weights import save_safetensors

    model = DLGSANet(dim=6, groups=1, blocks=1, upscale=scale)
    with torch.no_grad():
        embed = model.overlap_embed[0].proj.weight          # (dim, 3, 3, 3)
        embed.zero_()
        for c in range(3):
            embed[c, c, 1, 1] = 1.0                          # f0: the picture in channels 0-2
        last = model.deep_feature_extraction[-1]
        last.weight.zero_()
        last.bias.zero_()                                    # the body adds nothing
        up = model.upsample[0]
        up.weight.zero_()
        up.bias.zero_()
        for c in range(3):
            for k in range(scale * scale):
                up.weight[c * scale * scale + k, c, 1, 1] = 1.0   # PixelShuffle: each pixel s x s
    return save_safetensors(model, path)
