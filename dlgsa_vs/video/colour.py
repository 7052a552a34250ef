"""YUV <-> RGB with the stream's own matrix, range and chroma siting, in numpy.

The network sees R'G'B' in [0, 1]: the stream's own non-linear (gamma-encoded) signal, as
its training images were. Nothing here goes through swscale's defaults (BT.601, limited
range, whatever the stream says): the conversion follows what the stream is tagged with,
and what it is not tagged with is guessed the way players guess, and reported as guessed.
The output is converted back with the same matrix, range and chroma siting, and those
(with the primaries and transfer) are written to the output stream, so a player shows the
upscale with the colours of the input.

Codes are those of ITU-T H.273 (= FFmpeg's AVColorSpace, AVColorPrimaries,
AVColorTransferCharacteristic; ranges and chroma locations are FFmpeg's enums).

Plane data moves as numpy arrays of the codes (uint8, or uint16 for 9-16 bits); the
converters work in float32 and never call BLAS, so they run on one core beside the network.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import av
import numpy as np

from .errors import VideoError

# --- names of the H.273 / FFmpeg codes ------------------------------------------------------

MATRIX_NAMES = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085",
                12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp"}
PRIMARIES_NAMES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                   7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
                   12: "smpte432", 22: "ebu3213"}
TRANSFER_NAMES = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m",
                  7: "smpte240m", 8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4",
                  12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
                  16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
CHROMA_LOCATION_NAMES = {0: "unknown", 1: "left", 2: "center", 3: "topleft", 4: "top",
                         5: "bottomleft", 6: "bottom"}

UNSPECIFIED = 2   # matrix, primaries and transfer
RANGE_TV, RANGE_PC = 1, 2
CHROMA_LEFT = 1

# (Kr, Kb) of the matrices built on R'G'B' weights (H.273 table 4)
KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
          7: (0.212, 0.087), 9: (0.2627, 0.0593)}
MATRIX_GBR, MATRIX_YCGCO = 0, 8
SUPPORTED_MATRICES = set(KR_KB) | {MATRIX_GBR, MATRIX_YCGCO}


@dataclass(frozen=True)
class Colour:
    """How the samples of a stream are to be read: what H.273 calls its colour description."""

    matrix: int
    range: int
    primaries: int
    transfer: int
    chroma_location: int
    guessed: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        text = (f"{MATRIX_NAMES.get(self.matrix, self.matrix)} matrix, "
                f"{RANGE_NAMES.get(self.range, self.range)} range, "
                f"{PRIMARIES_NAMES.get(self.primaries, self.primaries)} primaries, "
                f"{TRANSFER_NAMES.get(self.transfer, self.transfer)} transfer")
        if self.guessed:
            text += f" ({', '.join(self.guessed)} guessed: the input does not say)"
        return text


def guess_matrix(width: int, height: int) -> int:
    """What players assume for untagged video: BT.709 for HD, BT.601 for SD."""
    return 1 if width >= 1280 or height > 576 else 6


def resolve_colour(matrix: int, range_: int, primaries: int, transfer: int, chroma_location: int,
                   width: int, height: int, layout: "PixelLayout") -> Colour:
    """Fill in what the stream does not say, as players do, and remember what was guessed."""
    guessed = []
    if layout.family == "rgb":
        # Planar RGB carries no matrix; the output (if YUV) needs one: take the HD default.
        matrix, range_ = MATRIX_GBR, RANGE_PC
    else:
        if layout.family == "yuv" and matrix in (UNSPECIFIED, 3):
            matrix = guess_matrix(width, height)
            guessed.append("matrix")
        if range_ not in (RANGE_TV, RANGE_PC):
            range_ = RANGE_PC if (layout.full_range or layout.family == "gray") else RANGE_TV
            if not layout.full_range:
                guessed.append("range")
        if layout.family == "gray":
            matrix = matrix if matrix in KR_KB else guess_matrix(width, height)
    if matrix not in SUPPORTED_MATRICES:
        raise VideoError(f"the video uses the {MATRIX_NAMES.get(matrix, matrix)} colour matrix, "
                         f"which this tool cannot convert yet (supported: "
                         f"{', '.join(MATRIX_NAMES[m] for m in sorted(SUPPORTED_MATRICES))})", code=2)
    if primaries in (UNSPECIFIED, 0, 3) or primaries not in PRIMARIES_NAMES:
        if matrix == 9:
            primaries = 9
        elif matrix in (4, 5, 6):   # SD: PAL-family sizes get EBU primaries, others SMPTE-C
            primaries = 5 if height in (576, 288, 144) else 6
        elif matrix == 7:
            primaries = 7
        else:
            primaries = 1
        guessed.append("primaries")
    if transfer in (UNSPECIFIED, 0, 3) or transfer not in TRANSFER_NAMES:
        transfer = 13 if layout.family == "rgb" else 1
        guessed.append("transfer")
    if chroma_location not in CHROMA_LOCATION_NAMES or chroma_location == 0:
        chroma_location = CHROMA_LEFT  # MPEG-2 / H.264 / HEVC default for 4:2:0 and 4:2:2
    return Colour(matrix, range_, primaries, transfer, chroma_location, tuple(guessed))


# --- pixel layouts ------------------------------------------------------------------------

_SUBSAMPLING_NAMES = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (2, 0): "411", (2, 2): "410",
                      (0, 1): "440"}


@dataclass(frozen=True)
class PixelLayout:
    """A planar pixel format this module reads and writes directly."""

    name: str
    family: str          # "yuv", "rgb" or "gray"
    depth: int           # bits per sample, 8..16
    log2_chroma_w: int
    log2_chroma_h: int
    full_range: bool     # yuvj*: full range implied by the format

    @property
    def dtype(self):
        return np.uint8 if self.depth <= 8 else np.dtype("<u2")

    @property
    def subsampled(self) -> bool:
        return self.family == "yuv" and (self.log2_chroma_w or self.log2_chroma_h)

    def plane_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """(height, width) of each plane, in plane order (Y U V / G B R / Y)."""
        if self.family == "gray":
            return [(height, width)]
        cw = -(-width >> self.log2_chroma_w)
        ch = -(-height >> self.log2_chroma_h)
        return [(height, width), (ch, cw), (ch, cw)]


def planar_name(family: str, depth: int, sub: tuple[int, int]) -> str:
    """FFmpeg's name of the planar format of ``family`` (yuv, rgb, gray), bit depth and
    chroma subsampling ``sub`` (log2 w, log2 h): ``yuv420p10le``, ``gbrp``, ``gray``."""
    suffix = "" if depth <= 8 else f"{depth}le"
    if family == "gray":
        return "gray" + suffix
    if family == "rgb":
        return "gbrp" + suffix
    return f"yuv{_SUBSAMPLING_NAMES[sub]}p" + suffix


def _format_exists(name: str) -> bool:
    try:
        av.video.format.VideoFormat(name)
        return True
    except (ValueError, av.FFmpegError):
        return False


@functools.lru_cache(maxsize=None)
def planar_equivalent(fmt_name: str) -> PixelLayout:
    """The planar layout that holds the samples of ``fmt_name`` unchanged (a repack, no
    conversion): nv12 -> yuv420p, p010le -> yuv420p10le, rgb24 -> gbrp, ya8 -> gray, ...
    Alpha planes are left out."""
    try:
        fmt = av.video.format.VideoFormat(fmt_name, 64, 64)
    except (ValueError, av.FFmpegError):
        raise VideoError(f"unknown pixel format {fmt_name!r}", code=2) from None
    if fmt.is_bayer or fmt.is_bit_stream or fmt_name in ("cuda", "vaapi", "qsv", "vulkan", "videotoolbox"):
        raise VideoError(f"pixel format {fmt_name} (bayer, bitstream or hardware frames) is not supported", code=2)
    comps = [c for c in fmt.components if not c.is_alpha]
    depth = max(c.bits for c in comps)
    if fmt.has_palette or fmt.is_rgb:
        family, sub = "rgb", (0, 0)
        depth = 8 if fmt.has_palette else depth
    elif len(comps) == 1:
        family, sub = "gray", (0, 0)
    else:
        chroma = comps[1]
        sub = ((64 // chroma.width).bit_length() - 1, (64 // chroma.height).bit_length() - 1)
        family = "yuv"
    if depth > 16 or any(getattr(c, "is_float", False) for c in comps) or fmt_name.endswith(("f32le", "f32be", "f16le", "f16be")):
        raise VideoError(f"pixel format {fmt_name} ({depth}-bit or float samples) is not supported", code=2)
    for d in (depth, 10 if depth == 9 else depth, 12 if depth in (11, 12) else depth, 16):
        name = planar_name(family, d, sub)
        if _format_exists(name):
            return PixelLayout(name, family, d, sub[0], sub[1],
                               full_range=fmt_name.startswith("yuvj"))
    raise VideoError(f"pixel format {fmt_name} has no planar equivalent this tool can read", code=2)


def is_native(fmt_name: str) -> bool:
    """Whether frames of this format are read and written plane by plane without a repack."""
    return fmt_name.startswith("yuvj") or planar_equivalent(fmt_name).name == fmt_name


# --- frames <-> planes --------------------------------------------------------------------

def read_planes(frame: av.VideoFrame) -> tuple[list[np.ndarray], PixelLayout]:
    """The sample planes of a decoded frame (copies), repacked to a planar layout if needed."""
    name = frame.format.name
    layout = planar_equivalent(name)
    if not is_native(name):
        frame = frame.reformat(format=layout.name)
    sizes = layout.plane_sizes(frame.width, frame.height)
    planes = []
    for plane, (h, w) in zip(frame.planes, sizes):
        itemsize = np.dtype(layout.dtype).itemsize
        arr = np.frombuffer(plane, dtype=layout.dtype)
        arr = arr[: h * (plane.line_size // itemsize)].reshape(h, plane.line_size // itemsize)[:, :w]
        planes.append(arr.copy())
    return planes, layout


def write_planes(planes: list[np.ndarray], layout: PixelLayout, width: int, height: int) -> av.VideoFrame:
    """A new VideoFrame of ``layout`` (a planar format) holding ``planes``."""
    frame = av.VideoFrame(width, height, layout.name)
    for plane, data in zip(frame.planes, planes):
        h, w = data.shape
        itemsize = np.dtype(layout.dtype).itemsize
        view = np.frombuffer(plane, dtype=layout.dtype)
        view = view[: h * (plane.line_size // itemsize)].reshape(h, plane.line_size // itemsize)
        view[:, :w] = data
    return frame


# --- chroma resampling ----------------------------------------------------------------------

def chroma_offsets(location: int, log2_w: int, log2_h: int) -> tuple[float, float]:
    """Position of chroma sample 0 in luma samples (x, y) for a chroma location."""
    fw, fh = 1 << log2_w, 1 << log2_h
    centred_x = (fw - 1) / 2
    x = 0.0 if location in (1, 3, 5) else centred_x
    if location in (3, 4):
        y = 0.0
    elif location in (5, 6):
        y = float(fh - 1)
    else:
        y = (fh - 1) / 2
    return x, y


@functools.lru_cache(maxsize=64)
def upsample_taps(n: int, nc: int, factor: int, offset: float):
    """Linear interpolation of ``nc`` chroma samples to ``n`` luma positions: (left index,
    right index, right weight) per luma sample (shared with ``colour_torch``)."""
    x = np.arange(n, dtype=np.float64)
    u = (x - offset) / factor
    i0 = np.floor(u).astype(np.intp)
    w = (u - i0).astype(np.float32)
    i1 = np.clip(i0 + 1, 0, nc - 1)
    i0 = np.clip(i0, 0, nc - 1)
    return i0, i1, w


def _upsample(c: np.ndarray, n: int, factor: int, offset: float, axis: int) -> np.ndarray:
    if factor == 1:
        return c
    i0, i1, w = upsample_taps(n, c.shape[axis], factor, offset)
    a0 = np.take(c, i0, axis=axis)
    a1 = np.take(c, i1, axis=axis)
    shape = [1] * c.ndim
    shape[axis] = n
    a1 -= a0
    a1 *= w.reshape(shape)
    a0 += a1
    return a0


@functools.lru_cache(maxsize=64)
def downsample_taps(n: int, nc: int, factor: int, offset: float):
    """Triangle filter of half-width ``factor`` centred on each chroma sample's position."""
    ks = [k for k in range(-2 * factor, 2 * factor + 1) if abs(k - offset) < factor]
    weights = np.array([1 - abs(k - offset) / factor for k in ks])
    weights /= weights.sum()
    base = np.arange(nc) * factor
    return [(np.clip(base + k, 0, n - 1), np.float32(wt)) for k, wt in zip(ks, weights)]


def _downsample(a: np.ndarray, nc: int, factor: int, offset: float, axis: int) -> np.ndarray:
    if factor == 1:
        return a
    out = None
    for idx, wt in downsample_taps(a.shape[axis], nc, factor, offset):
        term = np.take(a, idx, axis=axis)
        term *= wt
        if out is None:
            out = term
        else:
            out += term
    return out


# --- YUV <-> RGB ------------------------------------------------------------------------------

def level_scales(layout: PixelLayout, colour: Colour) -> tuple[float, float, float, float]:
    """(luma offset, luma scale, chroma offset, chroma scale) from codes to [0,1] / [-.5,.5]."""
    d = layout.depth
    if colour.range == RANGE_TV:
        k = float(1 << (d - 8))
        return 16 * k, 219 * k, 128 * k, 224 * k
    top = float((1 << d) - 1)
    return 0.0, top, float(1 << (d - 1)), top


def planes_to_rgb(planes: list[np.ndarray], layout: PixelLayout, colour: Colour) -> np.ndarray:
    """Sample planes -> (3, H, W) float32 R'G'B' in [0, 1]."""
    if layout.family == "rgb":
        g, b, r = planes
        top = np.float32((1 << layout.depth) - 1)
        rgb = np.stack([r, g, b]).astype(np.float32)
        rgb /= top
        return rgb
    y_off, y_scale, c_off, c_scale = level_scales(layout, colour)
    if colour.matrix == MATRIX_GBR:   # G, B, R coded in the Y, U, V planes (H.273 matrix 0)
        c_off, c_scale = y_off, y_scale
    y = planes[0].astype(np.float32)
    y -= y_off
    y /= y_scale
    if layout.family == "gray":
        rgb = np.stack([y, y, y])
        return np.clip(rgb, 0.0, 1.0, out=rgb)
    h, w = y.shape
    ox, oy = chroma_offsets(colour.chroma_location, layout.log2_chroma_w, layout.log2_chroma_h)
    chroma = []
    for c in planes[1:]:
        c = c.astype(np.float32)
        c = _upsample(c, h, 1 << layout.log2_chroma_h, oy, axis=0)
        c = _upsample(c, w, 1 << layout.log2_chroma_w, ox, axis=1)
        c -= c_off
        c /= c_scale
        chroma.append(c)
    cb, cr = chroma
    if colour.matrix == MATRIX_GBR:
        rgb = np.stack([cr, y, cb])
        return np.clip(rgb, 0.0, 1.0, out=rgb)
    if colour.matrix == MATRIX_YCGCO:
        t = y - cb
        rgb = np.stack([t + cr, y + cb, t - cr])
        return np.clip(rgb, 0.0, 1.0, out=rgb)
    kr, kb = KR_KB[colour.matrix]
    kg = 1.0 - kr - kb
    r = y + np.float32(2 * (1 - kr)) * cr
    b = y + np.float32(2 * (1 - kb)) * cb
    g = y - np.float32(2 * kr * (1 - kr) / kg) * cr - np.float32(2 * kb * (1 - kb) / kg) * cb
    rgb = np.stack([r, g, b])
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def _quantize(x: np.ndarray, offset: float, scale: float, depth: int, dtype) -> np.ndarray:
    x = x * np.float32(scale)
    x += np.float32(offset)
    np.rint(x, out=x)
    np.clip(x, 0, (1 << depth) - 1, out=x)
    return x.astype(dtype)


def rgb_to_ycbcr(r, g, b, matrix: int, coefficient):
    """(Y, Cb, Cr) of R'G'B' planes for an H.273 matrix (GBR: the planes as they are), in
    float32 steps: numpy arrays with ``coefficient=np.float32``, torch tensors with a
    function that gives each coefficient as its float32 value (``colour_torch``)."""
    if matrix == MATRIX_GBR:
        return g, b, r
    if matrix == MATRIX_YCGCO:
        return 0.25 * r + 0.5 * g + 0.25 * b, -0.25 * r + 0.5 * g - 0.25 * b, 0.5 * r - 0.5 * b
    kr, kb = KR_KB.get(matrix, KR_KB[1])
    kg = 1.0 - kr - kb
    y = coefficient(kr) * r + coefficient(kg) * g + coefficient(kb) * b
    return y, (b - y) * coefficient(0.5 / (1 - kb)), (r - y) * coefficient(0.5 / (1 - kr))


def rgb_to_planes(rgb: np.ndarray, layout: PixelLayout, colour: Colour) -> list[np.ndarray]:
    """(3, H, W) float R'G'B' in [0, 1] -> sample planes of ``layout`` (rounded, clipped)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[0], rgb[1], rgb[2]
    top = float((1 << layout.depth) - 1)
    if layout.family == "rgb":
        return [_quantize(p, 0.0, top, layout.depth, layout.dtype) for p in (g, b, r)]
    y_off, y_scale, c_off, c_scale = level_scales(layout, colour)
    if colour.matrix == MATRIX_GBR:
        c_off, c_scale = y_off, y_scale
    y, cb, cr = rgb_to_ycbcr(r, g, b, colour.matrix, np.float32)
    out = [_quantize(y, y_off, y_scale, layout.depth, layout.dtype)]
    if layout.family == "gray":
        return out
    h, w = y.shape
    (ch, cw) = layout.plane_sizes(w, h)[1]
    ox, oy = chroma_offsets(colour.chroma_location, layout.log2_chroma_w, layout.log2_chroma_h)
    for c in (cb, cr):
        c = _downsample(c, ch, 1 << layout.log2_chroma_h, oy, axis=0)
        c = _downsample(c, cw, 1 << layout.log2_chroma_w, ox, axis=1)
        out.append(_quantize(c, c_off, c_scale, layout.depth, layout.dtype))
    return out


def frame_to_rgb(frame: av.VideoFrame, colour: Colour) -> np.ndarray:
    """A decoded frame -> (3, H, W) float32 R'G'B' in [0, 1], read with ``colour``."""
    planes, layout = read_planes(frame)
    return planes_to_rgb(planes, layout, colour)


def rgb_to_frame(rgb: np.ndarray, layout: PixelLayout, colour: Colour) -> av.VideoFrame:
    """(3, H, W) float R'G'B' in [0, 1] -> a new VideoFrame of ``layout`` tagged with ``colour``."""
    _, h, w = rgb.shape
    frame = write_planes(rgb_to_planes(rgb, layout, colour), layout, w, h)
    tag_frame(frame, colour, layout)
    return frame


def output_colour(colour: Colour, in_layout: PixelLayout, out_layout: PixelLayout,
                  width: int, height: int) -> Colour:
    """The colour description of the output: the input's, except where the output needs
    another one. RGB written as YUV gets a real matrix (BT.709 for HD, BT.601 for SD output,
    limited range), YUV written as planar RGB is tagged GBR."""
    if out_layout.family == "rgb":
        return Colour(MATRIX_GBR, RANGE_PC, colour.primaries, colour.transfer, colour.chroma_location,
                      colour.guessed)
    if colour.matrix == MATRIX_GBR and (in_layout.family == "rgb" or out_layout.subsampled):
        return Colour(guess_matrix(width, height), RANGE_TV, colour.primaries, colour.transfer,
                      colour.chroma_location, colour.guessed)
    return colour


def tag_frame(frame: av.VideoFrame, colour: Colour, layout: PixelLayout) -> None:
    frame.colorspace = colour.matrix
    frame.color_range = colour.range
    frame.color_primaries = colour.primaries
    frame.color_trc = colour.transfer
    if layout.subsampled:
        frame.chroma_location = colour.chroma_location


# --- HDR10 static metadata ------------------------------------------------------------------------

@dataclass(frozen=True)
class Hdr10:
    """Mastering display colour volume (SMPTE ST 2086) and content light level (CTA-861.3).

    Upscaling changes neither: the output must say the same, or an HDR10 player tone-maps it
    for a different display. PyAV cannot attach side data to a new stream, so it is handed to
    the encoders that take it as options (``encoder_params``).
    primaries: ((Rx, Ry), (Gx, Gy), (Bx, By)) and white (x, y), CIE 1931; luminance: (max, min)
    in cd/m2; None where the input does not say. max_cll / max_fall in cd/m2, 0 = unknown.
    """

    primaries: tuple | None = None
    white: tuple | None = None
    luminance: tuple | None = None
    max_cll: int = 0
    max_fall: int = 0

    @property
    def has_display(self) -> bool:
        return self.primaries is not None and self.white is not None and self.luminance is not None

    @property
    def has_light(self) -> bool:
        return bool(self.max_cll or self.max_fall)

    def describe(self) -> str:
        bits = []
        if self.has_display:
            bits.append(f"mastering display {self.luminance[1]:g}-{self.luminance[0]:g} cd/m2")
        if self.has_light:
            bits.append(f"MaxCLL {self.max_cll}, MaxFALL {self.max_fall}")
        return ", ".join(bits)


MASTERING_DISPLAY = "mastering_display_metadata"
CONTENT_LIGHT = "content_light_level"


def _side_data_key(key) -> str:
    """Stream side data keys are names, frame side data keys an enum: one spelling for both."""
    name = getattr(key, "name", key)
    name = str(name).lower().replace(" ", "_")
    return CONTENT_LIGHT if name.startswith("content_light") else name


def read_hdr10(*side_data) -> Hdr10 | None:
    """HDR10 static metadata from side data mappings (the stream's coded side data, then the
    first frame's), the first that holds each kind; None when none does.

    The bytes are FFmpeg's AVMasteringDisplayMetadata (10 rationals: R, G, B, white point
    x/y, min and max luminance; then has_primaries, has_luminance) and AVContentLightMetadata
    (MaxCLL, MaxFALL), in native byte order.
    """
    import struct

    display = light = None
    for mapping in side_data:
        for key in (mapping.keys() if mapping else ()):
            name = _side_data_key(key)
            if name == MASTERING_DISPLAY and display is None:
                display = bytes(mapping[key])
            elif name == CONTENT_LIGHT and light is None:
                light = bytes(mapping[key])
    if display is None and light is None:
        return None
    fields: dict = {}
    if display is not None and len(display) >= 88:
        v = struct.unpack("=20i2i", display[:88])
        rat = [v[2 * i] / v[2 * i + 1] if v[2 * i + 1] else 0.0 for i in range(10)]
        has_primaries, has_luminance = v[20], v[21]
        if has_primaries:
            fields["primaries"] = ((rat[0], rat[1]), (rat[2], rat[3]), (rat[4], rat[5]))
            fields["white"] = (rat[6], rat[7])
        if has_luminance:
            fields["luminance"] = (rat[9], rat[8])
    if light is not None and len(light) >= 8:
        fields["max_cll"], fields["max_fall"] = struct.unpack("=2I", light[:8])
    hdr = Hdr10(**fields)
    return hdr if hdr.has_display or hdr.has_light else None


def hdr10_encoder_params(encoder: str, hdr: Hdr10) -> tuple[str, dict[str, str]] | None:
    """(the encoder's parameter-list option, {key: value}) that makes it write ``hdr`` into the
    bitstream (x265: SEI messages; SVT-AV1: metadata OBUs); None if it has no such option."""
    params: dict[str, str] = {}
    if encoder == "libx265":
        if hdr.has_display:   # chromaticities in 1/50000, luminance in 1/10000 cd/m2
            (r, g, b), wp, (hi, lo) = hdr.primaries, hdr.white, hdr.luminance
            xy = lambda p: f"({round(p[0] * 50000)},{round(p[1] * 50000)})"  # noqa: E731
            params["master-display"] = f"G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(wp)}L({round(hi * 10000)},{round(lo * 10000)})"
        if hdr.has_light:
            params["max-cll"] = f"{hdr.max_cll},{hdr.max_fall}"
        return "x265-params", params
    if encoder == "libsvtav1":
        if hdr.has_display:   # decimal values, as SVT-AV1's --mastering-display takes them
            (r, g, b), wp, (hi, lo) = hdr.primaries, hdr.white, hdr.luminance
            xy = lambda p: f"({p[0]:.5f},{p[1]:.5f})"  # noqa: E731
            params["mastering-display"] = f"G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(wp)}L({hi:.4f},{lo:.4f})"
        if hdr.has_light:
            params["content-light"] = f"{hdr.max_cll},{hdr.max_fall}"
        return "svtav1-params", params
    return None
