"""The output container: a temporary file beside the final one, the video stream with its
encoder set up (which encoder, options, colour tags, HDR10: ``encode.py``), and copies of every
other stream, chapter and tag the container can hold.

Nothing is written under the final name until the output is complete: ``Output.commit``
renames the temporary file onto it; ``Output.discard`` removes it (error, Ctrl-C).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from .colour import (CONTENT_LIGHT, MASTERING_DISPLAY, Colour, PixelLayout, hdr10_encoder_params,
                     output_colour, planar_equivalent)
from .encode import (HDR_TRANSFERS, LOSSLESS, QUALITY, check_quality, choose_pix_fmt, default_encoder, open_codec,
                     option_value, video_encoders)
from .errors import VideoError
from .files import remove_dead_parts, storage_error, temporary_path
from .probe import DISCARD_ALL, InputInfo, ffmpeg_reason, log_verbose

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


def open_output(info: InputInfo, final: Path, scale: int, *, encoder: str | None = None,
                crf: float | None = None, pix_fmt: str | None = None,
                encoder_options: dict[str, str] | None = None, offset: Fraction = Fraction(0),
                range_end: Fraction | None = None) -> Output:
    """Create the temporary output with the encoder opened and every other stream added."""
    folder = final.parent if str(final.parent) else Path(".")
    removed = remove_dead_parts(final)
    tmp = temporary_path(final)
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
            options.update({k: option_value(v) for k, v in make(q).items()})
        elif codec.name in LOSSLESS:
            notes.append(f"{codec.name} is lossless: --crf ignored")
        else:
            names = {o.name for o in cc.supported_options.get("private", ())} | \
                    {o.name for o in cc.supported_options.get("generic", ())}
            if "crf" not in names:
                raise VideoError(f"{codec.name} has no CRF setting: set its quality with -e "
                                 f"(e.g. -e b=8M or -e q=3)", code=2)
            options["crf"] = option_value(crf)
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
