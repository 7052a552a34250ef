"""The encoder: which one by default (per container, bit depth and HDR), the quality range each
takes, the pixel format it gets, opening it, and the decode timestamps of its packets.

The container around it is ``output.py``; file housekeeping is ``files.py``.
"""
from __future__ import annotations

import os
from fractions import Fraction

import av

from .colour import Hdr10, PixelLayout, hdr10_encoder_params, planar_equivalent
from .errors import VideoError
from .probe import log_verbose

# Quality per encoder: (option values for a quality q, default q, (lowest, highest) q the encoder
# takes). Lower q = better.
QUALITY = {
    "libx264": (lambda q: {"crf": q}, 18, (0, 51)),
    "libx265": (lambda q: {"crf": q}, 20, (0, 51)),
    "libsvtav1": (lambda q: {"crf": q}, 28, (0, 63)),
    "libaom-av1": (lambda q: {"crf": q, "b": "0"}, 28, (0, 63)),
    "libvpx-vp9": (lambda q: {"crf": q, "b": "0"}, 28, (0, 63)),
    "libvpx": (lambda q: {"crf": q, "b": "1M"}, 10, (4, 63)),
    "h264_nvenc": (lambda q: {"rc": "vbr", "cq": q, "b": "0"}, 20, (0, 51)),
    "hevc_nvenc": (lambda q: {"rc": "vbr", "cq": q, "b": "0"}, 22, (0, 51)),
    "av1_nvenc": (lambda q: {"rc": "vbr", "cq": q, "b": "0"}, 28, (0, 63)),
}


def option_value(v) -> str:
    """An encoder option's value as FFmpeg takes it (20.0 -> "20")."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def check_quality(encoder: str, crf: float | None) -> None:
    """--crf inside the range the encoder takes (a usage error, exit 2, before any work)."""
    if crf is None or encoder not in QUALITY:
        return
    lo, hi = QUALITY[encoder][2]
    if not lo <= crf <= hi:
        what = "CQ" if "nvenc" in encoder else "CRF"
        raise VideoError(f"--crf {option_value(crf)} is out of range for {encoder}: its {what} goes from {lo} "
                         f"(best) to {hi} (smallest file)", code=2)


LOSSLESS = {"ffv1", "huffyuv", "ffvhuff", "utvideo", "png", "qtrle", "rawvideo"}
# Default encoders by container, in order of preference: the first that keeps the input's bit
# depth is used (WebM holds VP9 and AV1 only; this PyAV's libvpx-vp9 encodes 8-bit only).
DEFAULT_ENCODERS = {"webm": ("libvpx-vp9", "libsvtav1", "libaom-av1")}
OTHER_DEFAULT_ENCODERS = ("libx264", "libx265")
# HDR video (PQ or HLG transfer) in the containers phones and TVs play wants HEVC: few of them
# decode H.264 High 10. (Matroska keeps the usual order: its users pick their encoder.)
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}   # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67
HDR_DEFAULT_ENCODERS = ("libx265", "libx264")
HDR_HEVC_CONTAINERS = {"mp4", "mov", "ipod"}   # .mp4, .mov, .m4v


def video_encoders() -> list[str]:
    names = []
    for name in sorted(av.codecs_available):
        try:
            c = av.Codec(name, "w")
        except Exception:
            continue
        if c.type == "video":
            names.append(c.name)
    return names


def default_encoder(container_format: str, in_layout: PixelLayout, requested_pix_fmt: str | None = None,
                    hdr10: Hdr10 | None = None, transfer: int | None = None) -> tuple[str, str | None]:
    """The encoder to use when none is named, and a note when it is not the first choice.

    The container's usual encoder, unless it cannot keep the input's bit depth (or take the
    asked --pix-fmt), or the input's HDR10 metadata, while another one the container holds
    can: a 10-bit HDR input must not become 8-bit or lose its mastering display just because
    no -c was given. An HDR input (``transfer`` PQ or HLG) into MP4/MOV gets libx265 first.
    Naming -c keeps its exact meaning.
    """
    names = DEFAULT_ENCODERS.get(container_format, OTHER_DEFAULT_ENCODERS)
    if transfer in HDR_TRANSFERS and container_format in HDR_HEVC_CONTAINERS:
        names = HDR_DEFAULT_ENCODERS
    available = []
    for name in names:
        try:
            available.append(av.Codec(name, "w"))
        except Exception:
            continue
    if not available:
        return names[0], None
    first = available[0]
    for need_hdr in ((True, False) if hdr10 is not None else (False,)):
        for codec in available:
            if _keeps(codec, in_layout, requested_pix_fmt, hdr10 if need_hdr else None):
                if codec is first:
                    return codec.name, None
                what = requested_pix_fmt or f"{in_layout.depth}-bit {in_layout.name}"
                if need_hdr:
                    what += " with its HDR10 metadata"
                return codec.name, f"{first.name} cannot encode {what} here: using {codec.name}, which can"
    return first.name, None


def _keeps(codec: av.Codec, layout: PixelLayout, requested_pix_fmt: str | None, hdr10: Hdr10 | None) -> bool:
    """Whether an encoder takes the asked pixel format (else keeps the input's bit depth),
    and writes the HDR10 metadata when there is some."""
    if hdr10 is not None and hdr10_encoder_params(codec.name, hdr10) is None:
        return False
    if requested_pix_fmt:
        supported = [f.name for f in (codec.video_formats or [])]
        return not supported or requested_pix_fmt in supported
    fmt, _ = _try_pix_fmt(codec, layout)
    return fmt is not None and planar_equivalent(fmt).depth >= layout.depth


def _try_pix_fmt(codec: av.Codec, layout: PixelLayout) -> tuple[str | None, str | None]:
    try:
        return choose_pix_fmt(codec, layout, None)
    except VideoError:
        return None, None


def choose_pix_fmt(codec: av.Codec, in_layout: PixelLayout, requested: str | None) -> tuple[str, str | None]:
    """The output pixel format, and a note when it is not the input's."""
    supported = [f.name for f in (codec.video_formats or [])]
    if requested:
        try:
            planar_equivalent(requested)
        except VideoError as exc:
            raise VideoError(f"--pix-fmt {requested}: {exc}", code=2) from None
        if supported and requested not in supported:
            raise VideoError(f"{codec.name} cannot encode {requested}; it takes: {', '.join(supported)}", code=2)
        return requested, None
    if not supported or in_layout.name in supported:
        return in_layout.name, None
    best, best_score = None, None
    for i, name in enumerate(supported):
        if name.startswith("yuvj"):
            continue
        try:
            lay = planar_equivalent(name)
        except VideoError:
            continue
        if any(f.name == name and f.has_palette for f in codec.video_formats):
            continue
        if lay.family == in_layout.family:
            fam = 0
        elif in_layout.family in ("gray", "rgb") and lay.family == "yuv" and not lay.subsampled:
            fam = 1
        elif in_layout.family == "gray" and lay.family == "yuv":
            fam = 2
        else:
            fam = 3
        if lay.depth == in_layout.depth:
            dep = 0
        elif lay.depth > in_layout.depth:
            dep = lay.depth - in_layout.depth
        else:
            dep = 100 + in_layout.depth - lay.depth
        in_sub = (in_layout.log2_chroma_w, in_layout.log2_chroma_h)
        sub = (lay.log2_chroma_w, lay.log2_chroma_h)
        sub_score = 0 if sub == in_sub else (1 if sum(sub) < sum(in_sub) else 10)
        score = (fam, dep, sub_score, i)
        if best_score is None or score < best_score:
            best, best_score = name, score
    if best is None:
        raise VideoError(f"{codec.name} takes none of the pixel formats this tool writes "
                         f"({', '.join(supported)})", code=2)
    return best, f"{codec.name} cannot encode {in_layout.name}: writing {best}"


def _quiet_encoder_logs() -> None:
    """SVT-AV1 prints its banner (Svt[info]) and "Failed to set thread priority" (Svt[warn])
    itself, on stderr, past FFmpeg's log level. It reads SVT_LOG (-1 all, 0 fatal, 1 error,
    2 warn, 3 info, 4 debug) when the library starts logging: errors only unless -v, and a
    user's own SVT_LOG is left alone."""
    if "SVT_LOG" not in os.environ or os.environ.get("_DLGSA_SET_SVT_LOG") == "1":
        os.environ["SVT_LOG"] = "3" if log_verbose() else "1"
        os.environ["_DLGSA_SET_SVT_LOG"] = "1"


def open_codec(cc: av.CodecContext) -> None:
    """``cc.open()``, leaving this thread's CPU scheduling as it was.

    SVT-AV1 run as root switches the thread that opens it to real-time scheduling (SCHED_FIFO,
    priority 99). The network's threads would then spin at that priority and every process
    started from this one (vspipe, ffprobe, workers) would inherit it: on a machine with few
    cores that starves everything else, the program included (seen here: a vspipe that never
    finished). The policy is put back right after the open.
    """
    _quiet_encoder_logs()
    keep = hasattr(os, "sched_getscheduler")
    if keep:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        cc.open()
    finally:
        if keep and os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


class DecodeTimestamps:
    """Checks the decode timestamps (dts) an encoder gives its packets and rebuilds impossible ones.

    libx265 (4.x, as in PyAV's wheels) leaves the dts of a clip of one or two frames
    uninitialised: it measures its b-frame delay from frames that never came. Values such as
    9187201950435737472 follow, which the mp4 muxer refuses ("pts/dts pair unsupported").
    A dts is impossible when it lies after its pts, not after the previous packet's, or further
    before its pts than any reordering reaches (a minute, or 32 frames if longer). The
    packets of such a batch get the batch's pts in rising order, shifted back just enough to
    stay at or before each packet's own pts: any such sequence decodes the same frames.
    """

    def __init__(self, encoder: str, time_base: Fraction, rate: Fraction | None) -> None:
        self.encoder = encoder
        reach = max(Fraction(60), 32 / rate) if rate else Fraction(60)
        self.window = int(reach / time_base)
        self.last: int | None = None
        self.rebuilt = 0

    def _possible(self, packets: list[av.Packet]) -> bool:
        last = self.last
        for p in packets:
            if p.dts is None or p.pts is None:
                continue
            if p.dts > p.pts or p.pts - p.dts > self.window or (last is not None and p.dts <= last):
                return False
            last = p.dts
        return True

    def __call__(self, packets: list[av.Packet]) -> list[av.Packet]:
        if not self._possible(packets):
            pts = [p.pts for p in packets]
            if None in pts:
                raise VideoError(f"the encoder {self.encoder} gave packets without timestamps; "
                                 f"choose another encoder with -c")
            ordered = sorted(pts)
            shift = max(s - p for s, p in zip(ordered, pts))
            for packet, s in zip(packets, ordered):
                packet.dts = s - shift
            if not self._possible(packets):
                raise VideoError(f"the encoder {self.encoder} gave impossible decode timestamps "
                                 f"(pts {pts}); choose another encoder with -c")
            self.rebuilt += len(packets)
        for p in packets:
            if p.dts is not None:
                self.last = p.dts
        return packets
