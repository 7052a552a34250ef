"""YUV / GRAY / integer RGB <-> float RGB for the network, with VapourSynth's own resizer (zimg).

The network works on gamma-encoded R'G'B' in [0, 1] (what it was trained on), so only the
matrix, the range and the chroma siting change between the clip and the network; transfer and
primaries stay as they are (they are passed through only for the matrices that need them:
BT.2020 constant luminance, ICtCp and the chromaticity-derived ones).

Those values come from each frame's properties (``_Matrix``, ``_Range`` (``_ColorRange``
before VapourSynth R81, numbered the other way round), ``_ChromaLocation``, ``_Transfer``,
``_Primaries``), or from the filter's parameters when
given, which override the properties like ``resize``'s ``*_in`` arguments do. Because they can
change from frame to frame, both directions are ``std.FrameEval`` choosing, per frame, a resize
node made once per distinct set of values; the way back uses the *input* frame's values, so the
output is in the input's format, matrix, range and chroma siting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import vapoursynth as vs

PREFIX = "dlgsa.Upscale: "

# VapourSynth's (= ITU-T H.273) codes that zimg can convert from and to.
MATRIX_NAMES = {0: "RGB/GBR", 1: "BT.709", 4: "FCC", 5: "BT.470BG", 6: "SMPTE 170M (BT.601)",
                7: "SMPTE 240M", 8: "YCgCo", 9: "BT.2020 NCL", 10: "BT.2020 CL",
                12: "chromaticity-derived NCL", 13: "chromaticity-derived CL", 14: "ICtCp"}
NEEDS_TRANSFER = {10, 14}        # the conversion itself depends on the transfer function
NEEDS_PRIMARIES = {12, 13, 14}   # ... or on the primaries
UNSPECIFIED = 2
TRANSFERS = frozenset(int(e) for e in vs.TransferCharacteristics)
PRIMARIES = frozenset(int(e) for e in vs.ColorPrimaries)
valid_enum = {"transfer": "TransferCharacteristics", "primaries": "ColorPrimaries"}

# Range: R81 renamed _ColorRange (0 full, 1 limited) to _Range (1 full, 0 limited, as in H.273)
# and numbers resize's range arguments the same way. vs.RANGE_FULL / vs.RANGE_LIMITED are right
# for the installed version; internally ranges are resize's names, "full" / "limited".
RANGE_PROP = "_Range" if hasattr(vs, "Range") else "_ColorRange"
RANGE_NAMES = {int(vs.RANGE_FULL): "full", int(vs.RANGE_LIMITED): "limited"}

MATRIX_HELP = ("pass matrix=1 (BT.709, usual for HD), 6 (BT.601/170M, usual for SD) or 9 (BT.2020), "
               "or set the property upstream, e.g. core.std.SetFrameProps(clip, _Matrix=1)")


class Overrides:
    """Colour parameters given to the filter (None: take them from the frame properties)."""

    def __init__(self, matrix: int | None = None, transfer: int | None = None,
                 primaries: int | None = None, range: int | None = None):  # noqa: A002 - VS name
        if matrix is not None and (matrix not in MATRIX_NAMES):
            raise vs.Error(f"{PREFIX}matrix={matrix} is not a matrix VapourSynth's resize can convert: use one "
                           f"of {', '.join(f'{k} ({v})' for k, v in MATRIX_NAMES.items())}")
        if range is not None and range not in RANGE_NAMES:
            raise vs.Error(f"{PREFIX}range={range} is invalid: use vs.RANGE_FULL ({int(vs.RANGE_FULL)}) or "
                           f"vs.RANGE_LIMITED ({int(vs.RANGE_LIMITED)}, TV range)")
        for name, value, valid in (("transfer", transfer, TRANSFERS), ("primaries", primaries, PRIMARIES)):
            if value is not None and value not in valid:
                raise vs.Error(f"{PREFIX}{name}={value} is not a {name} code VapourSynth knows: use one of "
                               f"{', '.join(map(str, sorted(valid)))} (see vs.{valid_enum[name]})")
        self.matrix, self.transfer, self.primaries, self.range = matrix, transfer, primaries, range

    def props(self) -> dict[str, int]:
        """Frame properties that the output should carry because the user named them."""
        names = {"matrix": "_Matrix", "transfer": "_Transfer", "primaries": "_Primaries", "range": RANGE_PROP}
        return {prop: getattr(self, k) for k, prop in names.items() if getattr(self, k) is not None}


@dataclass(frozen=True)
class Colour:
    """What resize needs to know about one frame (None: not applicable / leave to resize)."""

    matrix: int | None
    range: str | None  # "full" / "limited"
    chromaloc: int | None
    transfer: int | None
    primaries: int | None

    def resize_in(self) -> dict:
        return {_in(k): v for k, v in self._args().items()}

    def resize_out(self) -> dict:
        args = self._args()
        # transfer and primaries are kept: name them on both sides so zimg converts nothing
        args.update({_in(k): v for k, v in args.items() if k in ("transfer", "primaries")})
        return args

    def _args(self) -> dict:
        return {k: v for k, v in (("matrix", self.matrix), ("range_s", self.range), ("chromaloc", self.chromaloc),
                                  ("transfer", self.transfer), ("primaries", self.primaries)) if v is not None}


def _in(name: str) -> str:
    """resize's name of an input-side argument: matrix -> matrix_in, range_s -> range_in_s."""
    return name[:-2] + "_in_s" if name.endswith("_s") else name + "_in"


def needs_conversion(fmt: vs.VideoFormat) -> bool:
    return not (fmt.color_family == vs.RGB and fmt.sample_type == vs.FLOAT)


def check_format(fmt: vs.VideoFormat) -> None:
    """Formats the filter can take; others get an error that says what to do."""
    if fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise vs.Error(f"{PREFIX}unsupported colour family of {fmt.name}: use an RGB, YUV or GRAY clip")
    if fmt.sample_type == vs.INTEGER and fmt.bits_per_sample > 16:
        kind = "RGB" if fmt.color_family == vs.RGB else fmt.color_family.name
        raise vs.Error(f"{PREFIX}{fmt.name} ({kind} with {fmt.bits_per_sample}-bit integer samples) is not "
                       f"supported: VapourSynth's resize converts integer samples of 8 to 16 bits only. "
                       f"Use RGBS, RGBH, or an 8-16 bit RGB/YUV/GRAY format")


def _prop(props, key: str) -> int | None:
    value = props.get(key)
    return int(value) if isinstance(value, int) else None


def frame_colour(props, fmt: vs.VideoFormat, over: Overrides, n: int) -> Colour:
    """The colour description of frame ``n``; an error if its matrix is unknown."""
    family = fmt.color_family
    integer = fmt.sample_type == vs.INTEGER
    code = over.range if over.range is not None else _prop(props, RANGE_PROP)
    rng = RANGE_NAMES.get(code) if integer else None  # float samples have no range
    if family == vs.RGB:
        return Colour(None, rng or ("full" if integer else None), None, None, None)
    if family == vs.GRAY:
        return Colour(None, rng, None, None, None)

    matrix = over.matrix if over.matrix is not None else _prop(props, "_Matrix")
    if matrix is None or matrix == UNSPECIFIED or matrix not in MATRIX_NAMES:
        found = "no _Matrix property" if matrix is None else (
            "_Matrix=2 (unspecified)" if matrix == UNSPECIFIED else f"_Matrix={matrix} (not convertible)")
        raise vs.Error(f"{PREFIX}frame {n} of the {fmt.name} clip has {found}, so its YUV cannot be converted to "
                       f"RGB without guessing: {MATRIX_HELP}")
    transfer = over.transfer if over.transfer is not None else _prop(props, "_Transfer")
    primaries = over.primaries if over.primaries is not None else _prop(props, "_Primaries")
    transfer = None if transfer in (None, UNSPECIFIED) else transfer
    primaries = None if primaries in (None, UNSPECIFIED) else primaries
    if matrix in NEEDS_TRANSFER and transfer is None:
        raise vs.Error(f"{PREFIX}frame {n}: matrix {matrix} ({MATRIX_NAMES[matrix]}) depends on the transfer "
                       f"function, which is unspecified: pass transfer=... (e.g. 16 for PQ, 18 for HLG, 14 for "
                       f"BT.2020 10-bit) or set _Transfer")
    if matrix in NEEDS_PRIMARIES and primaries is None:
        raise vs.Error(f"{PREFIX}frame {n}: matrix {matrix} ({MATRIX_NAMES[matrix]}) depends on the colour "
                       f"primaries, which are unspecified: pass primaries=... (e.g. 9 for BT.2020) or set _Primaries")
    keep_tp = matrix in NEEDS_TRANSFER or matrix in NEEDS_PRIMARIES
    chromaloc = None
    if fmt.subsampling_w or fmt.subsampling_h:
        chromaloc = _prop(props, "_ChromaLocation")
        chromaloc = chromaloc if chromaloc is not None and 0 <= chromaloc <= 5 else 0  # 0 = left, the default
    return Colour(matrix, rng, chromaloc, transfer if keep_tp else None, primaries if keep_tp else None)


def check_first_frame(clip: vs.VideoNode, over: Overrides) -> None:
    """Fail at graph building, with a plain message, when frame 0 already cannot be converted.

    Later frames are checked as they come (their message then arrives inside VapourSynth's
    frame error, after a traceback).
    """
    if clip.format.color_family == vs.YUV and over.matrix is None:
        frame_colour(clip.get_frame(0).props, clip.format, over, 0)


def _per_frame(template: vs.VideoNode, source: vs.VideoNode,
               make: Callable[[Colour], vs.VideoNode], over: Overrides) -> vs.VideoNode:
    """FrameEval choosing, for frame n, ``make(colour of source frame n)`` (made once per colour)."""
    fmt = source.format
    nodes: dict[Colour, vs.VideoNode] = {}

    def select(n: int, f: vs.VideoFrame) -> vs.VideoNode:
        colour = frame_colour(f.props, fmt, over, n)
        node = nodes.get(colour)
        if node is None:
            node = nodes[colour] = make(colour)
        return node

    return template.std.FrameEval(select, prop_src=source)


def to_rgb(clip: vs.VideoNode, over: Overrides) -> vs.VideoNode:
    """The clip as RGBS (RGBS/RGBH clips are returned unchanged)."""
    fmt = clip.format
    if not needs_conversion(fmt):
        return clip
    # make() runs in FrameEval callbacks, on worker threads: node methods only, never vs.core
    if fmt.color_family == vs.GRAY:
        def make(c: Colour) -> vs.VideoNode:
            grays = clip.resize.Point(format=vs.GRAYS, **c.resize_in())
            return grays.std.ShufflePlanes([0, 0, 0], vs.RGB)
    elif fmt.color_family == vs.RGB:
        def make(c: Colour) -> vs.VideoNode:
            return clip.resize.Point(format=vs.RGBS, **c.resize_in())
    else:
        def make(c: Colour) -> vs.VideoNode:
            return clip.resize.Bicubic(format=vs.RGBS, **c.resize_in())
    template = clip.std.BlankClip(format=vs.RGBS, keep=True)
    return _per_frame(template, clip, make, over)


def from_rgb(rgb: vs.VideoNode, original: vs.VideoNode, over: Overrides) -> vs.VideoNode:
    """``rgb`` (RGBS, upscaled) back in ``original``'s format, with each original frame's colour."""
    fmt = original.format
    if not needs_conversion(fmt):
        return rgb
    if fmt.color_family == vs.GRAY:
        def make(c: Colour) -> vs.VideoNode:
            # the three planes hold the same picture: any matrix gives their weighted mean
            return rgb.resize.Point(format=fmt.id, matrix=1, **c.resize_out())
    elif fmt.color_family == vs.RGB:
        def make(c: Colour) -> vs.VideoNode:
            return rgb.resize.Point(format=fmt.id, **c.resize_out())
    else:
        def make(c: Colour) -> vs.VideoNode:
            return rgb.resize.Bicubic(format=fmt.id, **c.resize_out())
    template = rgb.std.BlankClip(format=fmt.id, keep=True)
    return _per_frame(template, original, make, over)


# ---------------------------------------------------------------------------------------------
# converting where the network runs (a CUDA GPU): video.colour_torch, with video.colour's
# formulas (linear chroma resampling, not zimg's bicubic)


def device_layout(fmt: vs.VideoFormat):
    """The planar layout (``video.colour.PixelLayout``) in which this clip's frames can be
    converted where the network runs: 8-16 bit integer YUV or GRAY; None for the rest (RGB
    and float clips are converted by zimg, cheaply: no chroma to resample)."""
    from ..video.colour import PixelLayout, planar_name

    if fmt.sample_type != vs.INTEGER or fmt.color_family not in (vs.YUV, vs.GRAY):
        return None
    family = "yuv" if fmt.color_family == vs.YUV else "gray"
    sub = (fmt.subsampling_w, fmt.subsampling_h)
    return PixelLayout(planar_name(family, fmt.bits_per_sample, sub), family, fmt.bits_per_sample,
                       sub[0], sub[1], full_range=False)


def device_colour(c: Colour):
    """``c`` as ``video.colour.Colour`` for ``colour_torch``; None when that cannot convert it
    (the matrices zimg alone does: BT.2020 CL, chromaticity-derived, ICtCp)."""
    from ..video.colour import RANGE_PC, RANGE_TV, SUPPORTED_MATRICES, UNSPECIFIED
    from ..video.colour import Colour as StreamColour

    matrix = 1 if c.matrix is None else c.matrix  # GRAY: BT.709 weights back, as from_rgb
    if matrix not in SUPPORTED_MATRICES:
        return None
    # no range said: limited, as zimg takes YUV and GRAY; VapourSynth's _ChromaLocation
    # counts from 0 = left, H.273 / FFmpeg from 1 = left
    return StreamColour(matrix, RANGE_PC if c.range == "full" else RANGE_TV, UNSPECIFIED, UNSPECIFIED,
                        (c.chromaloc or 0) + 1)
