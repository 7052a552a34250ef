"""The output file: a temporary file beside the final one, an encoder, and copies of every
other stream the container can hold.

Nothing is written under the final name until the output is complete: ``Output.commit``
renames the temporary file onto it; ``Output.discard`` removes it (error, Ctrl-C).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from .colour import (CONTENT_LIGHT, MASTERING_DISPLAY, Colour, Hdr10, PixelLayout, hdr10_encoder_params,
                     output_colour, planar_equivalent)
from .errors import VideoError
from .probe import DISCARD_ALL, InputInfo, ffmpeg_reason, log_verbose

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


def check_quality(encoder: str, crf: float | None) -> None:
    """--crf inside the range the encoder takes (a usage error, exit 2, before any work)."""
    if crf is None or encoder not in QUALITY:
        return
    lo, hi = QUALITY[encoder][2]
    if not lo <= crf <= hi:
        what = "CQ" if "nvenc" in encoder else "CRF"
        raise VideoError(f"--crf {_num(crf)} is out of range for {encoder}: its {what} goes from {lo} "
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
# Container-level tags the muxer writes itself; copying them would state something stale.
STALE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration",
              "number_of_frames", "number_of_bytes", "bps", "_statistics_writing_app",
              "_statistics_writing_date_utc", "_statistics_tags"}


def clean_tags(tags: dict, from_mov: bool) -> dict:
    """``tags`` without the ones a muxer writes itself (STALE_TAGS); MP4's ``name`` read back
    as ``title``. Also used by the segment join (``dlgsa_vs.segments.join``)."""
    out = {k: v for k, v in tags.items() if k.lower() not in STALE_TAGS
           and not k.upper().startswith("_STATISTICS")}
    if from_mov and "name" in out and "title" not in out:  # MP4 reads a track's title back as "name"
        out["title"] = out.pop("name")
    return out


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


@dataclass
class Output:
    final: Path
    tmp: Path
    container: av.container.OutputContainer
    video: av.video.stream.VideoStream
    layout: PixelLayout          # planar layout the frames are built in
    pix_fmt: str                 # what the encoder takes (a repack of layout when they differ)
    colour: Colour
    copy_map: dict[int, object] = field(default_factory=dict)   # input index -> output stream
    copied: list[str] = field(default_factory=list)
    chapters: int = 0
    not_copied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.container.close()

    def discard(self) -> None:
        """Close (errors ignored) and remove the temporary file."""
        try:
            self.close()
        except Exception:
            pass
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.final)


def default_output(src: Path, scale: int) -> Path:
    ext = src.suffix.lower() if src.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm", ".m4v") else ".mkv"
    return src.with_name(f"{src.stem}_x{scale}{ext}")


def check_paths(src: Path, out: Path) -> None:
    if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
        raise VideoError(f"the output would overwrite the input {src}: choose another -o", code=2)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise VideoError(f"output folder {folder} does not exist", code=2)
    if out.is_dir():
        raise VideoError(f"the output {out} is a folder: give a file name, e.g. -o {out / 'out.mp4'}", code=2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VideoError(f"cannot write in the output folder {folder}: permission denied", code=2)
    if not out.suffix:
        raise VideoError(f"the output {out} has no extension: say which container, e.g. .mp4 or .mkv", code=2)
    check_writable(out)


def check_writable(out: Path) -> None:
    """Create (and remove) an empty file beside ``out``: a folder that takes no new files
    (/proc, a read-only or full mount) is found before any work, not at the first write."""
    folder = out.parent if str(out.parent) else Path(".")
    probe = folder / f".{out.name}.write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise VideoError(f"cannot write {out}: {folder} takes no new files "
                         f"({os.strerror(exc.errno) if exc.errno else exc}); choose another -o", code=2) from None
    try:
        probe.unlink()
    except OSError:
        pass


def refuse_existing(out: Path, overwrite: bool) -> None:
    """No silent overwrite (as FFmpeg): an existing output is replaced only with -y."""
    if not overwrite and (out.exists() or out.is_symlink()):
        raise VideoError(f"{out} already exists: add -y (--overwrite) to replace it, or choose another -o",
                         code=2)


def remove_dead_parts(final: Path) -> list[str]:
    """Delete the hidden temporary outputs of ``final`` whose process no longer runs.

    A run killed without a chance to clean up (kill -9, a power loss) leaves its
    ``.<name>.part-<pid>-<random><ext>``; a later run for the same output removes it. One
    whose process is alive (another run writing the same output now) is left alone, as is
    one that cannot be removed. Returns the names removed.
    """
    folder = final.parent if str(final.parent) else Path(".")
    pattern = re.compile(re.escape(f".{final.stem}.part-") + r"(\d+)-[0-9a-f]+" + re.escape(final.suffix))
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _process_alive(int(m.group(1))):
            continue
        try:
            entry.unlink()
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True        # someone else's process
    except OSError:
        return True
    return True


def storage_error(exc: BaseException, path: Path) -> VideoError | None:
    """A VideoError for a full disk / file-size limit / unwritable folder, else None."""
    code = getattr(exc, "errno", None)
    folder = path.parent if str(path.parent) else Path(".")
    if code == errno.ENOSPC:
        return VideoError(f"disk full: no space left in {folder} while writing the output; free some "
                          f"space or write elsewhere with -o (nothing was written)")
    if code == errno.EDQUOT:
        return VideoError(f"disk quota exceeded in {folder} while writing the output (nothing was written)")
    if code == errno.EFBIG:
        return VideoError(f"file too large: the output hit the file-size limit (ulimit -f or the "
                          f"file system's) in {folder} (nothing was written)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return VideoError(f"cannot write in {folder}: {os.strerror(code)}", code=2)
    return None


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


def open_output(info: InputInfo, final: Path, scale: int, *, encoder: str | None = None,
                crf: float | None = None, pix_fmt: str | None = None,
                encoder_options: dict[str, str] | None = None, offset: Fraction = Fraction(0),
                range_end: Fraction | None = None) -> Output:
    """Create the temporary output with the encoder opened and every other stream added."""
    folder = final.parent if str(final.parent) else Path(".")
    removed = remove_dead_parts(final)
    tmp = folder / f".{final.stem}.part-{os.getpid()}-{secrets.token_hex(3)}{final.suffix}"
    try:
        container = av.open(str(tmp), "w")
    except av.FFmpegError as exc:
        err = storage_error(exc, tmp)
        if err:
            raise err from None
        if "could not find" in str(exc).lower() or "unable to choose" in str(exc).lower() or \
                isinstance(exc, (ValueError, av.error.ArgumentError)):
            raise VideoError(f"cannot write {final.suffix} files: FFmpeg knows no container for that "
                             f"extension; use .mp4, .mkv, .mov or .webm", code=2) from None
        raise VideoError(f"cannot create the output in {folder}: {ffmpeg_reason(exc)}", code=2) from None
    except ValueError:
        raise VideoError(f"cannot write {final.suffix} files: FFmpeg knows no container for that "
                         f"extension; use .mp4, .mkv, .mov or .webm", code=2) from None
    try:
        out = _setup(info, container, final, tmp, scale, encoder, crf, pix_fmt, encoder_options or {})
        if removed:
            out.notes.append(f"removed what an interrupted run left: {', '.join(removed)} (its process "
                             f"is gone)")
        out.chapters = copy_chapters(info, container, offset, range_end)
    except BaseException:
        try:
            container.close()
        except Exception:
            pass
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return out


def _setup(info: InputInfo, container, final: Path, tmp: Path, scale: int, encoder: str | None,
           crf: float | None, pix_fmt: str | None, encoder_options: dict[str, str]) -> Output:
    fmt = container.format.name
    notes: list[str] = []
    if encoder:
        name = encoder
    else:
        name, note = default_encoder(fmt, info.layout, pix_fmt, info.hdr10, info.colour.transfer)
        if note:
            notes.append(note)
        elif name == "libx265" and info.colour.transfer in HDR_TRANSFERS:
            notes.append(f"{HDR_TRANSFERS[info.colour.transfer]} (HDR) input: encoding HEVC with libx265 "
                         f"(few players play H.264 High 10; -c libx264 to have it anyway)")
    try:
        codec = av.Codec(name, "w")
    except Exception:
        some = [e for e in video_encoders() if e.startswith(("lib", "ffv1", "h264", "hevc", "av1"))][:14]
        raise VideoError(f"unknown encoder {name!r}; this FFmpeg has e.g. {', '.join(some)}", code=2) from None
    if codec.type != "video":
        raise VideoError(f"{name} is a {codec.type} encoder, not a video one", code=2)
    target_fmt, note = choose_pix_fmt(codec, info.layout, pix_fmt)
    if note:
        notes.append(note)
    layout = planar_equivalent(target_fmt)
    w, h = info.width * scale, info.height * scale
    colour = output_colour(info.colour, info.layout, layout, w, h)
    if info.layout.family in ("rgb",) and layout.family == "yuv":
        notes.append(f"RGB input written as {target_fmt} with the {colour.describe().split(',')[0]}")

    try:
        stream = container.add_stream(codec.name, rate=info.rate or Fraction(25))
    except ValueError:
        raise VideoError(f"{final.suffix} files cannot hold {codec.name} video: choose another -c, "
                         f"or another container (e.g. -o {final.with_suffix('.mkv').name})", code=2) from None
    cc = stream.codec_context
    cc.width, cc.height = w, h
    cc.pix_fmt = target_fmt
    cc.time_base = info.time_base
    stream.time_base = info.time_base
    if info.sar:
        cc.sample_aspect_ratio = info.sar
    cc.colorspace = colour.matrix
    cc.color_range = colour.range
    cc.color_primaries = colour.primaries
    cc.color_trc = colour.transfer
    if layout.subsampled:
        cc.chroma_sample_location = colour.chroma_location
    options: dict[str, str] = {}
    if crf is not None or (codec.name in QUALITY):
        if codec.name in QUALITY:
            make, default_q, _ = QUALITY[codec.name]
            check_quality(codec.name, crf)
            q = crf if crf is not None else default_q
            options.update({k: _num(v) for k, v in make(q).items()})
        elif codec.name in LOSSLESS:
            notes.append(f"{codec.name} is lossless: --crf ignored")
        else:
            names = {o.name for o in cc.supported_options.get("private", ())} | \
                    {o.name for o in cc.supported_options.get("generic", ())}
            if "crf" not in names:
                raise VideoError(f"{codec.name} has no CRF setting: set its quality with -e "
                                 f"(e.g. -e b=8M or -e q=3)", code=2)
            options["crf"] = _num(crf)
    options.update(encoder_options)
    hdr_carried = _add_hdr10(info, codec.name, options, notes)
    _quiet_x265(codec.name, options)
    cc.options = dict(options)
    if info.display_matrix:
        stream.set_display_matrix(info.display_matrix)
    stream.metadata.update(clean_tags(dict(info.video.metadata), fmt_is_mov(info)))
    stream.disposition = info.video.disposition
    try:
        open_codec(cc)
    except av.FFmpegError as exc:
        reason = ffmpeg_reason(exc)
        odd = (w % 2 or h % 2) and layout.subsampled
        if odd:
            raise VideoError(f"odd dimensions: the output would be {w}x{h}, which {codec.name} cannot "
                             f"encode as {target_fmt} (chroma subsampled); use -s 2 or 4, or "
                             f"--pix-fmt {layout.name.replace('420', '444').replace('422', '444')}, "
                             f"or crop the input to even sizes", code=2) from None
        raise VideoError(f"the encoder {codec.name} refused the settings ({w}x{h} {target_fmt}, "
                         f"options {options}): {reason}", code=2) from None
    unused = {k: v for k, v in (cc.options or {}).items() if k in encoder_options}
    if unused:
        raise VideoError(f"{codec.name} does not know the option(s) {', '.join(unused)} "
                         f"(see: ffmpeg -h encoder={codec.name})", code=2)

    out = Output(final=final, tmp=tmp, container=container, video=stream, layout=layout,
                 pix_fmt=target_fmt, colour=colour, notes=notes)
    if any(c.is_alpha for c in av.video.format.VideoFormat(info.pix_fmt).components):
        out.not_copied.append(f"#{info.video.index} video: its alpha (transparency) plane; the network "
                              f"upscales colour only")
    if info.hdr10 is not None and not hdr_carried:
        out.not_copied.append(f"#{info.video.index} video HDR10 metadata ({info.hdr10.describe()}): "
                              f"{codec.name} takes it from no option PyAV can set; -c libx265 or "
                              f"-c libsvtav1 write it")
    for key in (info.video.codec_context.coded_side_data or {}):
        if key == "display_matrix" or key in (MASTERING_DISPLAY, CONTENT_LIGHT):
            continue   # the rotation is set on the stream; HDR10 metadata handled above
        out.not_copied.append(f"#{info.video.index} video side data {key}: PyAV cannot attach it "
                              f"to a newly encoded stream")
    copy_streams(info, container, out)
    container.metadata.update(clean_tags(dict(info.container.metadata), False))
    return out


def _quiet_x265(encoder: str, options: dict[str, str]) -> None:
    """libx265 prints its banner (x265 [info]) itself, past FFmpeg's log level: log-level=error
    in x265-params unless -v or the user set a log-level there."""
    if encoder != "libx265" or log_verbose():
        return
    given = [p for p in options.get("x265-params", "").split(":") if p]
    if not any(p.split("=", 1)[0] in ("log-level", "log_level") for p in given):
        options["x265-params"] = ":".join(given + ["log-level=error"])


def _add_hdr10(info: InputInfo, encoder: str, options: dict[str, str], notes: list[str]) -> bool:
    """Put the input's HDR10 metadata into the encoder's parameter list (x265-params,
    svtav1-params), after what -e gave there: a key the user set is left as set.
    Returns whether this encoder writes it."""
    if info.hdr10 is None:
        return False
    found = hdr10_encoder_params(encoder, info.hdr10)
    if found is None:
        return False
    option, params = found
    given = [p for p in options.get(option, "").split(":") if p]
    keys = {p.split("=", 1)[0] for p in given}
    added = [f"{k}={v}" for k, v in params.items() if k not in keys]
    if added:
        options[option] = ":".join(given + added)
        notes.append(f"HDR10 metadata kept ({info.hdr10.describe()}): {option} " + ":".join(added))
    return True


def copy_chapters(info: InputInfo, container, offset: Fraction, range_end: Fraction | None) -> int:
    """The input's chapters, shifted like the timestamps and cut to the range."""
    try:
        chapters = info.container.chapters()
    except Exception:
        return 0
    kept = []
    for ch in chapters:
        tb = Fraction(ch["time_base"])
        start, end = ch["start"] * tb - offset, ch["end"] * tb - offset
        if end <= 0 or (range_end is not None and start >= range_end - offset):
            continue
        if range_end is not None:
            end = min(end, range_end - offset)
        entry = dict(ch)
        entry["start"] = max(0, round(start / tb))
        entry["end"] = round(end / tb)
        kept.append(entry)
    if kept:
        container.set_chapters(kept)
    return len(kept)


def fmt_is_mov(info: InputInfo) -> bool:
    return "mp4" in info.format_name or "mov" in info.format_name


def _num(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def describe_stream(s) -> str:
    bits = [f"#{s.index} {s.type}"]
    cc = s.codec_context
    if cc is not None:
        bits.append(cc.name)
    elif s.type == "attachment":
        bits.append(s.metadata.get("filename", "?"))
    lang = s.metadata.get("language")
    if lang and lang != "und":
        bits.append(lang)
    return " ".join(bits)


def streams_not_copied(info: InputInfo, output_suffix: str) -> list[str]:
    """What ``copy_streams`` will leave out of an output of this extension, known before any
    work: the same calls on a scratch container that is never written (a user must not learn
    hours later that the subtitles were dropped)."""
    import tempfile
    from types import SimpleNamespace

    with tempfile.TemporaryDirectory(prefix="dlgsa-streams-") as folder:
        try:
            container = av.open(os.path.join(folder, f"probe{output_suffix}"), "w")
        except (av.FFmpegError, ValueError):
            return []      # an unknown extension is refused with its own message later
        found = SimpleNamespace(copy_map={}, copied=[], not_copied=[])
        try:
            copy_streams(info, container, found)
        finally:
            container.close()
    return found.not_copied


def copy_streams(info: InputInfo, container, out: Output) -> None:
    """Add a stream-copy output stream to ``container`` for each of the input's other streams;
    fills ``out.copy_map`` (input index -> output stream), ``out.copied`` and ``out.not_copied``
    (``out``: an ``Output`` or anything with those three fields, as the segment join passes)."""
    fmt = container.format.name
    for s in info.others:
        if s.discard == DISCARD_ALL:
            continue       # e.g. the text track that holds MP4 chapters: copied as chapters
        label = describe_stream(s)
        if s.type == "attachment":
            if "matroska" not in fmt or fmt == "webm":
                out.not_copied.append(f"{label}: {fmt} files cannot hold attachments (use -o *.mkv)")
                continue
        elif s.type not in ("audio", "subtitle", "video", "data"):
            out.not_copied.append(f"{label}: stream type {s.type} cannot be copied")
            continue
        elif s.codec_context is None and s.type != "data":
            out.not_copied.append(f"{label}: codec unknown to this FFmpeg")
            continue
        try:
            ost = container.add_stream_from_template(s, opaque=True)
        except ValueError:
            what = s.codec_context.name if s.codec_context is not None else s.type
            hint = " (use -o *.mkv)" if "matroska" not in fmt else ""
            out.not_copied.append(f"{label}: {fmt} files cannot hold {what}{hint}")
            continue
        except av.FFmpegError as exc:
            out.not_copied.append(f"{label}: {ffmpeg_reason(exc)}")
            continue
        ost.metadata.update(clean_tags(dict(s.metadata), fmt_is_mov(info)))
        if s.type == "attachment":
            ost.metadata.update({k: v for k, v in s.metadata.items() if k in ("filename", "mimetype")})
        try:
            ost.disposition = s.disposition
        except Exception:
            pass
        if s.type != "attachment":
            out.copy_map[s.index] = ost
        out.copied.append(label)
