"""What a video user's frames look like: LR images through a lossy round trip in real encoders.

The paper-protocol LR (a clean MATLAB bicubic downscale) is what our shipped weights learned
to undo; frames from real video have also been through H.264, HEVC, VP9 or AV1. This module
passes uint8 RGB LR images (H x W x 3) through such an encoder with PyAV and decodes them
back, so a network can be trained on (or evaluated with) compressed input:

* encoders ``libx264``, ``libx265``, ``libsvtav1``, ``libvpx-vp9`` at a CRF, 8-bit 4:2:0
  (``yuv420p``) at the LR size;
* **intra** (the image is one key frame) or **inter**: a short sequence of shifted crops of
  the image (a random walk of a few pixels per frame, reflect-padded at the borders) is
  encoded, and the frame whose crop is the image itself, never the first one, is taken back,
  so it carries P/B-frame artefacts (motion-compensated prediction, skipped blocks, the
  encoder's lower quality for non-key frames);
* a share of the images is left clean (returned bit-identical), so clean sources do not get
  worse.

Colour: RGB -> YUV and back go through the project's own converters,
:func:`dlgsa_vs.video.colour.rgb_to_frame` and :func:`~dlgsa_vs.video.colour.frame_to_rgb`,
with an explicit BT.709 matrix, limited (tv) range, left-sited 4:2:0 chroma, as the video
pipeline reads and writes a stream tagged so (not swscale's defaults). Odd sizes are padded
(edge pixels repeated) to the even size 4:2:0 needs, and to the encoders' minimum, and cropped
back after decoding, so size and dtype are kept.

Determinism: every random choice for image ``i`` comes from ``numpy.random.default_rng([seed,
i])``, and the encoders run single-threaded with fixed presets, so the same seed, images and
library versions give the same bytes. Quality scales differ between codecs (CRF 30 in x264 is
far worse than CRF 30 in SVT-AV1), so :data:`CRF_RANGES` gives each encoder its own range of
roughly matched quality, from near-transparent to what streaming at low bit rates looks like.
"""
from __future__ import annotations

import os
from fractions import Fraction
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ENCODERS", "CRF_RANGES", "Degradation", "DegradeConfig", "roundtrip", "degrade_image",
           "degrade_images", "draw_degradation", "parse_spec"]

ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9")
# CRF ranges of roughly matched quality (x264 18-35 is what people use; x265 is ~2-3 CRF more
# efficient; SVT-AV1 and VP9 use a 0-63 scale where ~+10 matches x264's look)
CRF_RANGES = {"libx264": (18, 35), "libx265": (20, 37), "libsvtav1": (25, 50), "libvpx-vp9": (25, 50)}
DECODERS = {"libx264": "h264", "libx265": "hevc", "libsvtav1": "libdav1d", "libvpx-vp9": "vp9"}
# smallest side each encoder is given (padded up to it): libx265 corrupted its heap
# (glibc abort) on 38x46 sequences; SVT-AV1 needs 64
MIN_SIDE = {"libsvtav1": 64, "libx265": 64, "libx264": 16, "libvpx-vp9": 16}

# per-encoder settings: presets users pick by default, one thread (deterministic, and the
# 2-core machines this runs on are shared), quiet logs
_OPTIONS = {
    "libx264": lambda crf: {"crf": str(crf), "preset": "medium", "threads": "1"},
    "libx265": lambda crf: {"crf": str(crf), "preset": "medium",
                            "x265-params": "log-level=error:pools=none:frame-threads=1"},
    "libsvtav1": lambda crf: {"crf": str(crf), "preset": "8", "svtav1-params": "lp=1"},
    "libvpx-vp9": lambda crf: {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4",
                               "threads": "1", "row-mt": "0"},
}


@dataclass(frozen=True)
class Degradation:
    """One drawn degradation: ``encoder`` None means clean (the image is returned unchanged)."""

    encoder: str | None
    crf: int = 0
    frames: int = 1          # 1: intra (a single key frame); > 1: inter, a sequence
    target: int = 0          # which frame of the sequence is the image itself
    max_shift: int = 0       # pixels per frame of the crops' random walk

    def describe(self) -> str:
        if self.encoder is None:
            return "clean"
        mode = "intra" if self.frames == 1 else f"inter (frame {self.target} of {self.frames})"
        return f"{self.encoder} crf {self.crf} {mode}"


@dataclass(frozen=True)
class DegradeConfig:
    """How degradations are drawn (recorded in a pack's config)."""

    seed: int = 0
    clean_share: float = 0.15
    encoders: tuple[str, ...] = ENCODERS
    inter_share: float = 0.6     # of the encoded images, the share taken from a sequence
    frames: int = 5              # length of an inter sequence
    max_shift: int = 3           # pixels per frame
    crf_ranges: tuple[tuple[str, int, int], ...] = tuple((k, *v) for k, v in CRF_RANGES.items())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoders"] = list(self.encoders)
        d["crf_ranges"] = {k: [lo, hi] for k, lo, hi in self.crf_ranges}
        return d


def parse_spec(spec: str) -> tuple[str, int]:
    """``"libx264:30"`` -> ("libx264", 30); short names x264, x265, svtav1/av1, vp9 are accepted."""
    name, sep, crf = spec.partition(":")
    aliases = {"x264": "libx264", "h264": "libx264", "x265": "libx265", "hevc": "libx265",
               "svtav1": "libsvtav1", "svt-av1": "libsvtav1", "av1": "libsvtav1", "vp9": "libvpx-vp9"}
    name = aliases.get(name.lower(), name)
    if name not in ENCODERS or not sep:
        raise ValueError(f"bad degradation {spec!r}: expected ENCODER:CRF with ENCODER one of "
                         f"{', '.join(ENCODERS)} (e.g. libx264:30)")
    try:
        q = int(crf)
    except ValueError:
        raise ValueError(f"bad degradation {spec!r}: CRF {crf!r} is not an integer") from None
    if not 0 <= q <= 63:
        raise ValueError(f"bad degradation {spec!r}: CRF must be 0..63")
    return name, q


def _yuv_setup():
    from ..video.colour import CHROMA_LEFT, RANGE_TV, Colour, planar_equivalent

    colour = Colour(matrix=1, range=RANGE_TV, primaries=1, transfer=1, chroma_location=CHROMA_LEFT)
    return colour, planar_equivalent("yuv420p")


def _pad(image: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = h - image.shape[0], w - image.shape[1]
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else image


def roundtrip(frames: list[np.ndarray], encoder: str, crf: int) -> list[np.ndarray]:
    """Encode uint8 RGB frames (all the same size) as one sequence and decode them back.

    Frame 0 is the key frame; the others are whatever the encoder makes of them (P/B frames
    with the default GOP and B-frame settings). Returns uint8 RGB frames of the input size."""
    import av

    from ..video.colour import frame_to_rgb, rgb_to_frame
    from ..video.encode import open_codec

    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")
    h0, w0 = frames[0].shape[:2]
    m = MIN_SIDE[encoder]
    h, w = max(h0 + h0 % 2, m), max(w0 + w0 % 2, m)
    colour, layout = _yuv_setup()

    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.framerate = 25
    enc.colorspace, enc.color_range = colour.matrix, colour.range
    enc.color_primaries, enc.color_trc = colour.primaries, colour.transfer
    enc.options = _OPTIONS[encoder](crf)
    if encoder == "libx264":
        enc.thread_count = 1
    open_codec(enc)  # explicitly: SVT-AV1's open would change this thread's scheduling
    packets = []
    for i, rgb in enumerate(frames):
        if rgb.shape[:2] != (h0, w0) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("frames must be uint8 H x W x 3 arrays of one size")
        f = rgb_to_frame(_pad(rgb, h, w).transpose(2, 0, 1).astype(np.float32) / 255.0, layout, colour)
        f.pts = i
        packets += enc.encode(f)
    packets += enc.encode(None)

    dec = av.CodecContext.create(DECODERS[encoder], "r")
    dec.thread_count = 1
    out = []
    for p in packets:
        out += dec.decode(p)
    out += dec.decode(None)
    if len(out) != len(frames):
        raise RuntimeError(f"{encoder}: {len(frames)} frames in, {len(out)} decoded")
    out.sort(key=lambda f: f.pts if f.pts is not None else 0)
    result = []
    for f in out:
        rgb = frame_to_rgb(f, colour)  # (3, H, W) float in [0, 1]
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        result.append(np.ascontiguousarray(rgb[:h0, :w0]))
    return result


def _walk(rng: np.random.Generator, n: int, target: int, max_shift: int) -> np.ndarray:
    """Offsets (n, 2) of a random walk of up to ``max_shift`` px a step, zero at ``target``."""
    steps = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    steps[0] = 0
    pos = np.cumsum(steps, axis=0)
    return pos - pos[target]


def sequence_of(image: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Crops of ``image`` (reflect-padded) shifted by ``offsets``; offset (0, 0) is ``image``."""
    m = int(np.abs(offsets).max()) if len(offsets) else 0
    h, w = image.shape[:2]
    mode = "reflect" if m < min(h, w) else "symmetric"
    padded = np.pad(image, ((m, m), (m, m), (0, 0)), mode=mode) if m else image
    return [np.ascontiguousarray(padded[m + dy:m + dy + h, m + dx:m + dx + w]) for dy, dx in offsets]


def draw_degradation(rng: np.random.Generator, config: DegradeConfig) -> Degradation:
    if rng.random() < config.clean_share:
        return Degradation(None)
    encoder = config.encoders[int(rng.integers(len(config.encoders)))]
    lo, hi = {k: (a, b) for k, a, b in config.crf_ranges}[encoder]
    crf = int(rng.integers(lo, hi + 1))
    if config.frames > 1 and rng.random() < config.inter_share:
        target = int(rng.integers(1, config.frames))  # never the key frame
        return Degradation(encoder, crf, config.frames, target, config.max_shift)
    return Degradation(encoder, crf)


def degrade_image(image: np.ndarray, degradation: Degradation,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply one drawn (or chosen) degradation to a uint8 RGB image; ``rng`` draws the walk."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    if degradation.encoder is None:
        return image.copy()
    if degradation.frames <= 1:
        return roundtrip([image], degradation.encoder, degradation.crf)[0]
    rng = rng if rng is not None else np.random.default_rng(0)
    offsets = _walk(rng, degradation.frames, degradation.target, degradation.max_shift)
    frames = sequence_of(image, offsets)
    return roundtrip(frames, degradation.encoder, degradation.crf)[degradation.target]


def degrade_images(images: list[np.ndarray], config: DegradeConfig = DegradeConfig(),
                   start: int = 0, draw: int = 0) -> tuple[list[np.ndarray], list[Degradation]]:
    """Degrade each image with its own draw: ``default_rng([seed, start + i])``, and for a
    further draw of the same images ``default_rng([seed, start + i, draw])``.

    Returns the degraded images (clean ones bit-identical copies) and what was done to each."""
    out, done = [], []
    for i, image in enumerate(images):
        rng = np.random.default_rng([config.seed, start + i] + ([draw] if draw else []))
        d = draw_degradation(rng, config)
        out.append(degrade_image(image, d, rng))
        done.append(d)
    return out, done


os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only, not its banner on every encoder
