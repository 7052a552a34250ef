"""Open an input video, describe it, and read its frames and other packets in file order.

``open_input`` turns every way an input can be unusable (missing, empty, not media, no
video stream, a codec this FFmpeg cannot decode, a truncated MP4) into a ``VideoError``
with a one-line reason. ``Source`` demuxes once, in file order: it decodes the video
stream, checks every frame (size and format do not change, timestamps increase), records
the packets that fail to decode with their timestamps (never silently), passes through
the packets of the streams being copied, and at the end tells a truncated file from a
complete one.
"""
from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from .colour import Colour, Hdr10, PixelLayout, planar_equivalent, read_hdr10, resolve_colour
from .errors import VideoError

ATTACHED_PIC = 1 << 10  # AV_DISPOSITION_ATTACHED_PIC
DISCARD_ALL = 48        # AVDISCARD_ALL: streams the demuxer hides (MP4 chapter text tracks)


def ffmpeg_reason(exc: BaseException) -> str:
    """The useful part of a PyAV error: FFmpeg's last log line if there is one, else its text."""
    text = str(exc)
    m = re.search(r"last error log: (?:\[[^\]]*\] )?(.*)$", text, re.S)
    if m:
        return m.group(1).strip().rstrip(".")
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    text = re.sub(r": '[^']*'$", "", text)   # PyAV appends the file name; callers name it
    return text.strip() or type(exc).__name__


def fmt_time(seconds: float | Fraction | None) -> str:
    if seconds is None:
        return "t=?"
    return f"t={float(seconds):.3f} s"


_VERBOSE = False


def set_log_mode(verbose: bool = False) -> None:
    """FFmpeg's own messages: printed by FFmpeg with ``verbose``, else dropped.

    Never through PyAV's Python log callback while decoders or encoders run: their worker
    threads would need the GIL to log, and a thread holding the GIL while it waits for them
    (closing a frame-threaded decoder, say) would deadlock. The problems those messages
    describe are reported by this program, with timestamps.
    """
    global _VERBOSE
    _VERBOSE = verbose
    av.logging.set_level(None)
    if verbose:
        av.logging.restore_default_callback()
        av.logging.set_libav_level(av.logging.WARNING)


def log_verbose() -> bool:
    """Whether ``set_log_mode`` last asked for FFmpeg's (and the encoders') own messages."""
    return _VERBOSE


def _open_with_reason(path: Path) -> av.container.InputContainer:
    """av.open with FFmpeg's error lines kept for the exception text (no threads run yet)."""
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False):  # all threads: a probing decoder's too
            return av.open(str(path), "r")
    finally:
        set_log_mode(_VERBOSE)


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file for reading, or raise VideoError saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input not found: {path}", code=2)
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file", code=2)
    if not os.access(path, os.R_OK):
        raise VideoError(f"cannot read {path}: permission denied", code=2)
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes)", code=2)
    try:
        return _open_with_reason(path)
    except av.FFmpegError as exc:
        reason = ffmpeg_reason(exc)
        with open(path, "rb") as fh:
            head = fh.read(12)
        if "moov atom not found" in reason and head[4:8] == b"ftyp":
            raise VideoError(f"{path} is truncated or was never finished: its MP4 index (moov atom) "
                             f"is missing, so no frame can be located", code=2) from None
        if isinstance(exc, av.error.InvalidDataError):
            raise VideoError(f"cannot read {path}: not a video file FFmpeg recognises, or corrupt "
                             f"({reason})", code=2) from None
        raise VideoError(f"cannot open {path}: {reason}", code=2) from None


@dataclass
class InputInfo:
    """What the rest of the program needs to know about the input and its video stream."""

    path: Path
    container: av.container.InputContainer
    video: av.video.stream.VideoStream
    width: int
    height: int
    pix_fmt: str
    layout: PixelLayout
    colour: Colour
    time_base: Fraction
    rate: Fraction | None               # average frame rate, for the encoder's rate control
    sar: Fraction | None                # sample aspect ratio, None if square / unknown
    display_matrix: list[int] | None    # rotation / flip, as stored in the container
    declared_frames: int                # 0 if the container does not say
    duration: Fraction | None           # of the video stream, in seconds
    start_time: Fraction                # of the video stream, in seconds
    others: list = field(default_factory=list)   # the other streams, in file order
    hdr10: Hdr10 | None = None          # from the stream's side data, then the first frame's
    container_end: Fraction | None = None  # where the container says its longest stream ends (s)

    @property
    def format_name(self) -> str:
        return self.container.format.name

    def expected_frames(self, start: Fraction | None = None, limit: int | None = None) -> int | None:
        total = self.declared_frames or None
        if total is None and self.duration and self.rate:
            total = round(self.duration * self.rate)
        if total is not None and start and self.rate:
            total = max(0, total - math.floor((start - self.start_time) * self.rate))
        if limit is not None:
            total = limit if total is None else min(total, limit)
        return total


def _stream_duration(stream) -> Fraction | None:
    if stream.duration:
        return stream.duration * Fraction(stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:  # Matroska: "00:00:04.004000000"
        m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag.strip())
        if m:
            h, mi, s = m.groups()
            return Fraction(int(h) * 3600 + int(mi) * 60) + Fraction(s)
    return None


def _video_streams(container) -> list:
    return [s for s in container.streams.video if not (s.disposition & ATTACHED_PIC)]


def describe_input(path: str | os.PathLike, container: av.container.InputContainer) -> InputInfo:
    """Pick the video stream (the first that is not cover art) and read its description."""
    path = Path(path)
    videos = _video_streams(container)
    if not videos:
        kinds = {}
        for s in container.streams:
            kinds[s.type] = kinds.get(s.type, 0) + 1
        found = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no streams at all"
        raise VideoError(f"{path} has no video stream ({found})", code=2)
    video = videos[0]
    cc = video.codec_context
    if cc is None:
        raise VideoError(f"{path}: the video stream (#{video.index}) uses a codec this FFmpeg build "
                         f"cannot decode (unsupported codec)", code=2)
    if not cc.width or not cc.height or not cc.format:
        raise VideoError(f"{path}: the video stream (#{video.index}, {cc.name}) has no readable "
                         f"frame size or pixel format (corrupt header?)", code=2)
    pix_fmt = cc.format.name
    layout = planar_equivalent(pix_fmt)
    colour = resolve_colour(cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc,
                            cc.chroma_sample_location, cc.width, cc.height, layout)
    sar = video.sample_aspect_ratio
    sar = Fraction(sar) if sar and sar.numerator > 0 and sar != 1 else None
    matrix = None
    raw = (cc.coded_side_data or {}).get("display_matrix")
    if raw and len(raw) == 36:
        matrix = list(struct.unpack("<9i", raw))
    rate = None
    for r in (video.average_rate, video.guessed_rate, video.base_rate):
        if r and r.numerator > 0 and r.denominator > 0 and r < 1000:
            rate = Fraction(r)
            break
    tb = Fraction(video.time_base)
    start = Fraction(video.start_time or 0) * tb
    _check_index(path, video)
    return InputInfo(path=path, container=container, video=video, width=cc.width, height=cc.height,
                     pix_fmt=pix_fmt, layout=layout, colour=colour, time_base=tb, rate=rate, sar=sar,
                     display_matrix=matrix, declared_frames=video.frames or 0,
                     duration=_stream_duration(video), start_time=start,
                     others=[s for s in container.streams if s.index != video.index],
                     hdr10=read_hdr10(cc.coded_side_data), container_end=_container_end(container))


def _container_end(container) -> Fraction | None:
    """The container's own end time in seconds (start + duration, AV_TIME_BASE units), or None.

    WebM and Matroska files from muxers other than FFmpeg's carry no per-track duration, and
    MPEG-TS carries none at all: this is then the only declared length to check against.
    """
    declared = {"matroska", "webm", "mov", "mp4", "avi", "asf", "flv"}
    if not declared & set(container.format.name.split(",")):
        return None        # FFmpeg estimated it (from the last timestamps or the bitrate)
    if not container.duration or container.duration < 0:
        return None
    start = container.start_time if container.start_time and container.start_time > 0 else 0
    return Fraction(start + container.duration, av.time_base)


def _check_index(path: Path, video) -> None:
    """MP4 / MOV know where every frame lies: a file cut short is found before any work."""
    try:
        entries = video.index_entries
        n = len(entries)
        if not n:
            return
        last = max((entries[i] for i in range(max(0, n - 8), n)), key=lambda e: e.pos + e.size)
    except Exception:  # an index PyAV cannot expose is no reason to refuse the file
        return
    size = path.stat().st_size
    if last.pos >= 0 and last.size > 0 and last.pos + last.size > size:
        inside = sum(1 for i in range(n) if entries[i].pos + entries[i].size <= size)
        raise VideoError(f"{path} is truncated: its index lists {n} video frames but the file ends "
                         f"inside frame {inside + 1} ({size} bytes of {last.pos + last.size}); nothing "
                         f"was written. Add --frames {max(inside - 1, 1)} to upscale the part that is "
                         f"there", code=2)


def first_frame_colour(info: InputInfo, frame: av.VideoFrame) -> Colour:
    """The stream's colour description, with what the container left unsaid filled in from
    the first frame (decoders often know more than the container header)."""
    cc = info.video.codec_context

    def pick(header, from_frame, unspecified=(0, 2)):
        return header if header not in unspecified else from_frame

    return resolve_colour(pick(cc.colorspace, frame.colorspace), pick(cc.color_range, frame.color_range, (0,)),
                          pick(cc.color_primaries, frame.color_primaries),
                          pick(cc.color_trc, frame.color_trc),
                          pick(cc.chroma_sample_location, frame.chroma_location, (0,)),
                          frame.width, frame.height, info.layout)


def with_first_frame(info: InputInfo, first: av.VideoFrame) -> InputInfo:
    """The stream's description completed from its first decoded frame: size, pixel format,
    colour and HDR10 as the decoder gives them (it often knows more than the container header).
    A new record; ``info`` stays as probed. Every run that encodes (one pass, a segment, a
    chunk) describes its stream this one way."""
    sized = replace(info, width=first.width, height=first.height, pix_fmt=first.format.name,
                    layout=planar_equivalent(first.format.name))
    return replace(sized, colour=first_frame_colour(sized, first),
                   hdr10=read_hdr10(info.video.codec_context.coded_side_data, first.side_data))


def probe(path: str | os.PathLike) -> InputInfo:
    container = open_input(path)
    try:
        return describe_input(path, container)
    except BaseException:
        container.close()
        raise


def parse_time(text: str) -> Fraction:
    """'12.5', '1:02.5' or '0:01:02.5' -> seconds."""
    text = text.strip()
    parts = text.split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(\.\d*)?|\.\d+", p) for p in parts):
        raise VideoError(f"cannot read the time {text!r}: give seconds (12.5) or [HH:]MM:SS(.ms)", code=2)
    value = Fraction(0)
    for p in parts:
        value = value * 60 + Fraction(p)
    return value


# --- reading -------------------------------------------------------------------------------------

def shown_frames(codec: str, packet) -> int:
    """How many pictures a packet puts on screen: 1 for almost every packet of every codec.

    VP8 and VP9 code alternate-reference frames that are decoded for prediction but never
    shown (a later packet shows them, or nothing does). In most files libvpx packs such a
    frame with the next shown one into a VP9 superframe, but a packet may also hold the hidden
    frame alone (VP8 always; VP9 after FFmpeg's vp9_superframe_split, as NUT files keep it,
    or other muxers). Counting such a packet as a frame would report a frame missing from an
    intact file, so the frame headers are read: VP8's show_frame bit, and VP9's show_frame /
    show_existing_frame bits of every frame in the packet. Other codecs: 1.
    """
    if codec not in ("vp8", "vp9"):
        return 1
    data = memoryview(packet).cast("B")
    if not len(data):
        return 0
    if codec == "vp8":
        return (data[0] >> 4) & 1          # frame tag: bit 4 is show_frame
    return sum(_vp9_shows(frame) for frame in _vp9_frames(data))


def _vp9_frames(data: memoryview) -> list[memoryview]:
    """The frames of a VP9 packet: those of its superframe index, else the packet itself."""
    marker = data[-1]
    if marker & 0xE0 == 0xC0:
        count, size_bytes = (marker & 7) + 1, ((marker >> 3) & 3) + 1
        index = 2 + size_bytes * count
        if len(data) >= index and data[len(data) - index] == marker:
            frames, pos = [], 0
            at = len(data) - index + 1
            for _ in range(count):
                size = int.from_bytes(data[at:at + size_bytes], "little")
                at += size_bytes
                if size:
                    frames.append(data[pos:pos + size])
                pos += size
            return frames
    return [data]


def _vp9_shows(frame: memoryview) -> int:
    """VP9 uncompressed header: frame_marker(2) profile(2) [reserved(1) if profile 3]
    show_existing_frame(1), else frame_type(1) show_frame(1). Unreadable: counts as shown."""
    if not len(frame):
        return 0
    bits = int.from_bytes(frame[:2], "big") << (16 - 8 * len(frame[:2]))
    if bits >> 14 != 0b10:
        return 1                           # not a frame header: let the decoder judge it
    profile = ((bits >> 12) & 1) << 1 | ((bits >> 13) & 1)
    at = 10 if profile == 3 else 11         # bit position of show_existing_frame
    if (bits >> at) & 1:
        return 1
    return (bits >> (at - 2)) & 1          # show_frame, after frame_type



@dataclass
class Problems:
    """What went wrong while reading, with timestamps: reported, never hidden."""

    missing_frames: list[Fraction] = field(default_factory=list)    # packets that gave no frame
    concealed_frames: list[Fraction] = field(default_factory=list)  # decoded with errors, kept
    decoder_errors: int = 0            # packets the decoder refused
    synthesized_timestamps: int = 0


class Source:
    """Demux once in file order; yield ("frame", frame, out_pts) and ("packet", packet).

    start: seconds; frames from the first one at or after it (timestamps are then shifted
    so that the output starts there, as ffmpeg -ss does). limit: at most that many frames.
    copy: indices of the input streams whose packets are passed through (with the same shift).
    """

    def __init__(self, info: InputInfo, start: Fraction | None = None, limit: int | None = None,
                 copy: set[int] | frozenset = frozenset()):
        self.info = info
        self.start = start if start else None
        self.limit = limit
        self.copy = set(copy)
        self.problems = Problems()
        self.frames = 0            # frames yielded
        self.offset: Fraction = Fraction(0)   # seconds subtracted from every timestamp
        self.end: Fraction | None = None      # end (seconds, input clock) of the last frame yielded
        self._last_pts: int | None = None
        self._first: av.VideoFrame | None = None
        self._video_packets = 0
        self._video_end: Fraction | None = None
        self._data_end: Fraction | None = None   # end of the last packet read, any stream
        self._packet_pts: list[int] = []
        self._frame_pts: set[int] = set()
        self._codec = info.video.codec_context.name

    # The reader thread iterates this generator; it runs no code on other threads.
    def events(self) -> Iterator[tuple]:
        info = self.info
        container, video = info.container, info.video
        tb = info.time_base
        video.thread_type = "AUTO"
        if self.start is not None:
            try:
                container.seek(int(self.start / tb), stream=video, backward=True, any_frame=False)
            except av.FFmpegError as exc:
                raise VideoError(f"cannot seek to {fmt_time(self.start)} in {info.path}: "
                                 f"{ffmpeg_reason(exc)}", code=2) from None
        streams = [video] + [s for s in info.others if s.index in self.copy]
        done = False           # all wanted frames are out; finishing the copied streams
        pending: list[tuple[Fraction, av.Packet]] = []
        # With a frame limit, packets that may lie past the range's end wait until the frames
        # say where it ends (the decoder gives frames a few packets late): none is copied past it.
        beyond: list[tuple[Fraction, av.Packet]] = []
        demux = container.demux(streams)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                where = fmt_time(self._video_end) if self._video_end is not None else "the start"
                raise VideoError(f"{info.path} cannot be read past {where}: {ffmpeg_reason(exc)} "
                                 f"(corrupt or truncated file)", code=2) from None
            if packet.stream.index == video.index:
                if done:
                    continue
                if packet.size:
                    self._video_packets += 1
                    if packet.pts is not None:
                        end = (packet.pts + (packet.duration or 0)) * tb
                        self._video_end = end if self._video_end is None else max(self._video_end, end)
                        # An edit list's pre-roll and a VP8/VP9 hidden (alternate-reference)
                        # frame give no picture by design: only packets that show one count.
                        if not packet.is_discard and shown_frames(self._codec, packet) > 0:
                            self._packet_pts.append(packet.pts)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    # With frame threads the error surfaces a few packets later: which frames
                    # were lost is worked out at the end, from the timestamps.
                    self.problems.decoder_errors += 1
                    continue
                except av.FFmpegError as exc:
                    raise VideoError(f"decoding {info.path} failed at "
                                     f"{fmt_time(None if packet.pts is None else packet.pts * tb)}: "
                                     f"{ffmpeg_reason(exc)}") from None
                for frame in frames:
                    event = self._accept(frame)
                    if event is not None:
                        yield event
                        if pending:   # packets read before the range's first frame was known
                            for held in pending:
                                if held[0] < self.offset:
                                    continue
                                self._shift(held[1])
                                if self.limit is None:
                                    yield ("packet", held[1])
                                else:
                                    beyond.append(held)
                            pending = []
                        if self.limit is not None and self.frames >= self.limit:
                            done = True
                        if beyond:
                            for held in [b for b in beyond if b[0] < self.end]:
                                yield ("packet", held[1])
                            beyond = [b for b in beyond if b[0] >= self.end]
                        if done:
                            beyond = []      # past the range's end
                            break
                if done and not self.copy:
                    break
            else:
                if not packet.size or packet.pts is None and packet.dts is None:
                    continue
                t = (packet.pts if packet.pts is not None else packet.dts) * Fraction(packet.time_base)
                t_end = t + (packet.duration or 0) * Fraction(packet.time_base)
                self._data_end = t_end if self._data_end is None else max(self._data_end, t_end)
                if done and self.end is not None and t > self.end + 2:
                    break     # past the end of the range in every stream, give or take interleaving
                if self.start is not None and not self.frames:
                    if t >= self.start:
                        pending.append((t, packet))
                    continue  # the range starts at its first frame, not known yet
                if self.start is not None and t < self.offset:
                    continue  # before the range
                if self.end is not None and done and t >= self.end:
                    continue
                self._shift(packet)
                if self.limit is not None and not done and (beyond or self.end is None or t >= self.end):
                    beyond.append((t, packet))
                    continue
                yield ("packet", packet)
        for _, packet in beyond:     # the file ended before the frame limit: all of it is the range
            yield ("packet", packet)
        self._find_missing(done)
        if not done:
            self._check_complete()

    def _find_missing(self, done: bool) -> None:
        """Packets of the range whose frame never came out of the decoder."""
        if self._first is None:
            return
        lo = self._first.pts if self._first.pts is not None else None
        hi = self._last_pts if done else None
        got = self._frame_pts
        tb = self.info.time_base
        missing = sorted(p for p in set(self._packet_pts)
                         if p not in got and (lo is None or p >= lo) and (hi is None or p <= hi))
        self.problems.missing_frames = [p * tb for p in missing]

    def _accept(self, frame: av.VideoFrame):
        info, tb = self.info, self.info.time_base
        pts = frame.pts
        if pts is None:
            if self._last_pts is None:
                pts = 0
            else:
                step = round(1 / ((info.rate or 25) * tb)) or 1
                pts = self._last_pts + step
            self.problems.synthesized_timestamps += 1
        t = pts * tb
        if self.start is not None and t < self.start and not self.frames:
            return None
        if self._last_pts is not None and pts <= self._last_pts:
            raise VideoError(f"the video timestamps do not increase at frame {self.frames} "
                             f"({fmt_time(t)} after {fmt_time(self._last_pts * tb)}): the file is "
                             f"damaged; remux it (ffmpeg -i in -c copy out.mkv) and try again", code=2)
        if self._first is None:
            self._first = frame
            if self.start is not None:
                self.offset = t
        elif (frame.width, frame.height) != (self._first.width, self._first.height):
            raise VideoError(f"the frame size changes mid-stream at {fmt_time(t)}: "
                             f"{self._first.width}x{self._first.height} -> {frame.width}x{frame.height}; "
                             f"upscale the parts separately (--start/--frames)", code=2)
        elif frame.format.name != self._first.format.name:
            raise VideoError(f"the pixel format changes mid-stream at {fmt_time(t)}: "
                             f"{self._first.format.name} -> {frame.format.name}", code=2)
        if frame.is_corrupt:
            self.problems.concealed_frames.append(t)
        if frame.pts is not None:
            self._frame_pts.add(frame.pts)
        self._last_pts = pts
        duration = frame.duration or (round(1 / (info.rate * tb)) if info.rate else 0)
        self.end = (pts + duration) * tb
        self.frames += 1
        return ("frame", frame, pts - int(self.offset / tb))

    def _shift(self, packet: av.Packet) -> None:
        if not self.offset:
            return
        shift = self.offset / Fraction(packet.time_base)
        if packet.pts is not None:
            packet.pts = int(packet.pts - round(shift))
        if packet.dts is not None:
            packet.dts = int(packet.dts - round(shift))

    def _check_complete(self) -> None:
        """At the end of the file: did the data stop before the stream's declared end?"""
        check_complete(self.info, video_packets=self._video_packets, video_end=self._video_end,
                       data_end=(self._data_end or self._video_end) if self._read_every_stream() else None,
                       frames=self.frames, whole=self.start is None)

    def _read_every_stream(self) -> bool:
        return all(s.index in self.copy or s.type == "attachment" for s in self.info.others)


def check_complete(info: InputInfo, *, video_packets: int, video_end: Fraction | None,
                   data_end: Fraction | None, frames: int, whole: bool = True) -> None:
    """Raise VideoError (exit 2) when the file's data stops before its declared end.

    video_packets / video_end: the video packets read and the end of the last one (seconds);
    data_end: the end of the last packet of any stream, None when not every stream was read;
    frames: the frames there (for the ``--frames`` hint); whole: read from the file's start.
    Used by ``Source`` and by the segment plan (``segments.plan.scan``).
    """
    add_frames = f"nothing was written. Add --frames {max(frames - 1, 1)} to upscale the part that is there"
    declared = info.declared_frames
    if whole and declared and video_packets < declared:
        raise VideoError(f"{info.path} is truncated: it declares {declared} video frames but "
                         f"the data ends after {video_packets} ({fmt_time(video_end)}); {add_frames}", code=2)
    if whole and _cut_inside_ts_packet(info):
        raise VideoError(f"{info.path} is truncated: it ends inside a transport-stream packet "
                         f"({info.path.stat().st_size} bytes, not a whole number of packets), at "
                         f"{fmt_time(video_end)}; {add_frames}", code=2)
    if video_end is None or not info.rate:
        return
    slack = max(Fraction(1, 2), 3 / info.rate)
    if info.duration:
        expected_end = info.start_time + info.duration
        if video_end < expected_end - slack:
            raise VideoError(f"{info.path} is truncated: its video stream should last until "
                             f"{fmt_time(expected_end)} but the data ends at {fmt_time(video_end)}; "
                             f"{add_frames}", code=2)
    elif info.container_end is not None and data_end is not None:
        # No duration of the video's own (WebM, most Matroska muxers): the container's, which
        # is its longest stream's, against the end of the last packet of any stream.
        data_end = max(video_end, data_end)
        if data_end < info.container_end - slack:
            raise VideoError(f"{info.path} is truncated: the file should last until "
                             f"{fmt_time(info.container_end)} but the data ends at {fmt_time(data_end)}; "
                             f"{add_frames}", code=2)


TS_PACKET_SIZES = (188, 192, 204)   # MPEG-TS, M2TS (4-byte time code), with Reed-Solomon bytes


def _cut_inside_ts_packet(info: InputInfo) -> bool:
    """An MPEG transport stream declares no length; a file cut anywhere but on a packet
    boundary (as ``head -c`` or an interrupted download cuts) ends inside a packet."""
    if "mpegts" not in info.format_name.split(","):
        return False
    size = info.path.stat().st_size
    return all(size % n for n in TS_PACKET_SIZES)
