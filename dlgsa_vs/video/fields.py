"""Interlaced and telecined sources: tell them from progressive ones, and make progressive
frames of them with FFmpeg's own filters before the network sees them.

The network takes a frame for a picture. Two fields woven into one frame (interlaced video)
look to it like fine horizontal detail, and it magnifies the comb teeth; a telecined film
(3:2 pulldown) has two such frames in every five. So, before the network:

- interlaced: ``bwdif`` makes a frame of every field (field rate: 29.97i -> 59.94p), or of
  every frame (``bwdif-frame``: 29.97i -> 29.97p);
- telecined: ``fieldmatch`` puts the film frames back together and ``decimate`` drops the
  fifth (29.97 -> 23.976, the original frames with exact timestamps);
- progressive: nothing at all (the frames are not even copied).

Flags lie in both directions (progressive files flagged interlaced, interlaced captures
flagged progressive), so ``detect`` reads the stream's field order and the frames' flags,
and measures combing on the first frames with FFmpeg's ``idet``; the measurement decides
when it can (static pictures show no combing either way; then the flags decide).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from .errors import VideoError
from .probe import InputInfo, Source, ffmpeg_reason, open_input

MODES = ("auto", "off", "bwdif", "bwdif-frame", "ivtc")
SAMPLE_FRAMES = 60          # frames idet looks at
# AVFieldOrder, as the codec context reports it
FIELD_ORDERS = {1: "progressive", 2: "tff", 3: "bff", 4: "tff", 5: "bff"}
TELECINE_REPEATS = Fraction(1, 5)   # 3:2 pulldown repeats a field in 2 frames of 5; interlaced video in none


@dataclass
class Evidence:
    """What the file says about its fields, and what idet measured on its first frames."""

    stream_order: str | None     # "progressive", "tff", "bff", or None (not said)
    sampled: int = 0             # frames looked at
    flagged: int = 0             # of them, flagged interlaced by the decoder
    tff: int = 0                 # idet (multiple-frame classification)
    bff: int = 0
    progressive: int = 0
    repeated: int = 0            # frames with a field repeated from the previous frame
    comb_seen: int = 0           # frames whose own rows alternate (``comb_seen_in``)

    @property
    def combed(self) -> int:
        return self.tff + self.bff

    @property
    def measured(self) -> bool:
        """Whether idet could tell on enough frames (static pictures show no combing)."""
        return self.combed + self.progressive >= max(4, self.sampled // 4)

    @property
    def flags_progressive(self) -> bool:
        """The stream says progressive and no frame says otherwise."""
        return self.stream_order == "progressive" and not self.flagged

    @property
    def flags_interlaced(self) -> bool:
        return self.stream_order in ("tff", "bff") or (self.sampled > 0 and 2 * self.flagged > self.sampled)


RATE_FACTORS = {"bwdif": Fraction(2), "ivtc": Fraction(4, 5)}
"""Output frames per input frame of the treatments that change the rate."""


@dataclass
class Treatment:
    """What happens to the frames before the network, and why (``summary``)."""

    mode: str                    # "none", "bwdif", "bwdif-frame" or "ivtc"
    order: str                   # "tff" or "bff": the field that comes first in time
    kind: str                    # "progressive", "interlaced" or "telecined", as detected or told
    evidence: str                # the reasons, for the summary line
    in_rate: Fraction | None
    forced: bool = False         # asked for with --deinterlace, not picked by auto
    flags_lie: bool = False      # the flags say interlaced, the measurement progressive

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @property
    def worth_saying(self) -> bool:
        """Whether the summary line mentions it: anything but a progressive file that says so."""
        return self.active or self.kind != "progressive" or self.flags_lie

    @property
    def rate_factor(self) -> Fraction:
        """Output frames per input frame: a frame per field (bwdif), 4 film frames of 5 (ivtc)."""
        return RATE_FACTORS.get(self.mode, Fraction(1))

    @property
    def out_rate(self) -> Fraction | None:
        return None if self.in_rate is None else self.in_rate * self.rate_factor

    def output_frames(self, input_frames: int | None) -> int | None:
        """About how many frames come out of ``input_frames`` (the progress bar's total)."""
        return None if input_frames is None else math.floor(input_frames * self.rate_factor)

    def input_frames(self, output_frames: int) -> int:
        """Input frames to read for ``output_frames`` (with the look-ahead the filters need)."""
        if self.mode == "bwdif":
            return math.ceil(output_frames / 2) + 1
        if self.mode == "ivtc":
            return math.ceil(output_frames * 5 / 4) + 5
        return output_frames + (1 if self.active else 0)

    def summary(self) -> str:
        """e.g. ``interlaced TFF (stream flag + idet 57/60 frames): bwdif, 29.97i -> 59.94p``."""
        head = self.kind if self.kind == "progressive" else f"{self.kind} {self.order.upper()}"
        what = f"{head} ({self.evidence})" if self.evidence else head
        if not self.active:
            return f"{what}: kept as is"
        how = {"bwdif": "bwdif", "bwdif-frame": "bwdif at frame rate",
               "ivtc": "inverse telecine (fieldmatch + decimate)"}[self.mode]
        if self.in_rate is None:
            return f"{what}: {how}"
        mark = "i" if self.kind == "interlaced" else ""
        return f"{what}: {how}, {_rate(self.in_rate)}{mark} -> {_rate(self.out_rate)}p"


def _rate(r: Fraction) -> str:
    return f"{float(r):.3f}".rstrip("0").rstrip(".")


# --- filter graphs ---------------------------------------------------------------------------------

class FilterChain:
    """One FFmpeg filter graph, buffer -> filters -> buffersink, fed and drained frame by frame."""

    def __init__(self, first: av.VideoFrame, time_base: Fraction, rate: Fraction | None,
                 filters: list[tuple[str, str]]):
        self.graph = av.filter.Graph()
        rate = rate or Fraction(25)
        args = dict(video_size=f"{first.width}x{first.height}", pix_fmt=str(first.format.name),
                    time_base=str(time_base), pixel_aspect="1/1", frame_rate=str(rate))
        try:
            nodes = [self.graph.add("buffer", **args)]
            nodes += [self.graph.add(name, options) for name, options in filters]
            nodes.append(self.graph.add("buffersink"))
            self.graph.link_nodes(*nodes)
            self.graph.configure()
        except (av.FFmpegError, ValueError) as exc:
            chain = ",".join(f"{n}={o}" if o else n for n, o in filters)
            raise VideoError(f"FFmpeg's filters ({chain}) cannot take this video "
                             f"({first.width}x{first.height} {first.format.name}): {ffmpeg_reason(exc)}; "
                             f"use --deinterlace off") from None
        self.time_base = time_base

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Feed one frame (None: the end) and return the frames that came out."""
        if frame is not None:
            frame.time_base = self.time_base
        self.graph.vpush(frame)
        out = []
        while True:
            try:
                out.append(self.graph.vpull())
            except (av.error.BlockingIOError, av.error.EOFError):
                return out


def filters_for(treatment: Treatment) -> list[tuple[str, str]]:
    """The FFmpeg filters of a treatment. The parity is always given: bwdif's own guess
    (the frame's flag) is wrong for an interlaced file flagged progressive."""
    if treatment.mode == "bwdif":
        return [("bwdif", f"mode=send_field:parity={treatment.order}:deint=all")]
    if treatment.mode == "bwdif-frame":
        return [("bwdif", f"mode=send_frame:parity={treatment.order}:deint=all")]
    if treatment.mode == "ivtc":
        return [("fieldmatch", f"order={treatment.order}:combmatch=full"), ("decimate", "")]
    return []


# --- detection ----------------------------------------------------------------------------------

def measure(info: InputInfo, start: Fraction | None = None, frames: int = SAMPLE_FRAMES) -> Evidence:
    """Read the flags and run idet on the first ``frames`` frames (at ``start`` if given),
    from a second opening of the file (the run's own reader is left where it is)."""
    container = open_input(info.path)
    ev = Evidence(stream_order=FIELD_ORDERS.get(info.video.codec_context.field_order))
    try:
        video = container.streams[info.video.index]
        video.thread_type = "AUTO"
        tb = Fraction(video.time_base)
        chain = None
        try:
            if start:
                container.seek(int(start / tb), stream=video, backward=True, any_frame=False)
            for frame in container.decode(video):
                if start and frame.pts is not None and frame.pts * tb < start:
                    continue
                if chain is None:
                    chain = FilterChain(frame, tb, info.rate, [("idet", "")])
                ev.sampled += 1
                ev.flagged += frame.interlaced_frame
                ev.comb_seen += comb_seen_in(frame)
                for out in chain.push(frame):
                    _count(ev, out)
                if ev.sampled >= frames:
                    break
            if chain is not None:
                for out in chain.push(None):
                    _count(ev, out)
        except (av.FFmpegError, VideoError):
            # a damaged start, or frames idet cannot take: judge on what was read (the flags);
            # the run itself reports damage where it meets it
            pass
    finally:
        container.close()
    return ev


def comb_seen_in(frame: av.VideoFrame) -> bool:
    """Whether a frame's rows alternate as woven fields do: each row differs from the mean of
    its two neighbours (the other field) clearly more than from the mean of the rows two away
    (its own field). A check of idet where a file says progressive: on small or noisy frames
    with motion (a 176x144 clip, measured) idet calls most frames combed that show no combing."""
    y = frame.reformat(format="gray").to_ndarray().astype(np.float32)
    if y.shape[0] < 8:
        return False
    other = np.abs(y[2:-2] - (y[1:-3] + y[3:-1]) / 2).mean()
    own = np.abs(y[2:-2] - (y[:-4] + y[4:]) / 2).mean()
    return bool(other > 1.0 and other > 1.2 * own)


def _count(ev: Evidence, frame: av.VideoFrame) -> None:
    meta = frame.metadata
    kind = meta.get("lavfi.idet.multiple.current_frame")
    if kind in ("tff", "bff", "progressive"):
        setattr(ev, kind, getattr(ev, kind) + 1)
    if meta.get("lavfi.idet.repeated.current_frame") in ("top", "bottom"):
        ev.repeated += 1


def decide(ev: Evidence, mode: str, rate: Fraction | None) -> Treatment:
    """The treatment for ``mode`` (one of MODES, not "off") given the evidence."""
    if ev.combed:
        order = "tff" if ev.tff >= ev.bff else "bff"
    elif ev.stream_order in ("tff", "bff"):
        order = ev.stream_order
    else:
        order = "tff"
    said = []
    if ev.stream_order in ("tff", "bff"):
        said.append("stream flag" if ev.stream_order == order or not ev.combed
                    else f"stream flag {ev.stream_order.upper()}")
    elif ev.flagged and 2 * ev.flagged > ev.sampled:
        said.append("frame flags")
    if ev.measured:
        interlaced = 2 * ev.combed >= ev.combed + ev.progressive
        # idet alone does not overrule a file that says progressive: the rows must show combing
        overruled = interlaced and ev.flags_progressive and 4 * ev.comb_seen < ev.combed
        interlaced = interlaced and not overruled
        telecined = interlaced and ev.repeated >= TELECINE_REPEATS * ev.sampled
        if overruled:
            measured = (f"idet {ev.combed}/{ev.sampled} frames combed, but the stream says progressive and "
                        f"{ev.comb_seen} frames' rows alternate")
        elif telecined:
            measured = f"idet {ev.repeated}/{ev.sampled} frames with a repeated field, 3:2 pulldown"
        elif interlaced:
            measured = f"idet {ev.combed}/{ev.sampled} frames"
        else:
            measured = f"idet {ev.progressive}/{ev.sampled} frames progressive"
    else:
        interlaced, telecined = ev.flags_interlaced, False
        measured = f"idet undecided on {ev.sampled} frames"
    if interlaced:
        evidence = " + ".join(said + [measured])
    else:
        flag_note = ""
        if ev.flags_interlaced:
            flag_note = ", though flagged interlaced"
        elif ev.stream_order is None and not ev.flagged:
            flag_note = ", no field flags"
        evidence = measured + flag_note
    kind = "telecined" if telecined else "interlaced" if interlaced else "progressive"
    lie = not interlaced and ev.flags_interlaced
    if mode == "auto":
        picked = "ivtc" if telecined else "bwdif" if interlaced else "none"
        return Treatment(picked, order, kind, evidence, rate, flags_lie=lie)
    return Treatment(mode, order, kind, evidence, rate, forced=True, flags_lie=lie)


def plan(info: InputInfo, mode: str, start: Fraction | None = None) -> Treatment | None:
    """The treatment for ``--deinterlace mode``; None for "off" (nothing is measured)."""
    if mode not in MODES:
        raise VideoError(f"--deinterlace {mode}: choose one of {', '.join(MODES)}", code=2)
    if mode == "off":
        return None
    return decide(measure(info, start), mode, info.rate)


# --- the run --------------------------------------------------------------------------------------

class FieldSource:
    """A ``Source`` whose video frames go through the treatment's filters; the packets of the
    copied streams pass untouched. ``info`` is the input's, with the output's time base and
    frame rate (what the encoder and the writer use). ``limit``: output frames."""

    def __init__(self, source: Source, treatment: Treatment, limit: int | None = None):
        self.source = source
        self.treatment = treatment
        self.limit = limit
        self.frames = 0          # output frames yielded
        src = source.info
        tb = src.time_base
        if treatment.mode == "bwdif":
            tb = tb / 2                              # bwdif's own: a field lies half a frame later
        elif treatment.mode == "ivtc" and treatment.out_rate:
            tb = 1 / treatment.out_rate              # decimate's own: one tick a film frame
        self.info = replace(src, time_base=tb, rate=treatment.out_rate or src.rate)
        self._chain: FilterChain | None = None
        self._end: Fraction | None = None   # input clock: where the copied streams stop

    @property
    def problems(self):
        return self.source.problems

    def events(self) -> Iterator[tuple]:
        """The source's events, frames filtered. A copied stream's packet waits until the
        output video has passed its time, so that a ``limit`` cuts every stream at the last
        output frame, not at the look-ahead frames the filters read."""
        src_tb = self.source.info.time_base
        held: list[tuple] = []
        for ev in self.source.events():
            self._keep_end()
            if ev[0] != "frame":
                held.append(ev)
                continue
            frame, pts = ev[1], ev[2]
            if self._chain is None:
                self._chain = FilterChain(frame, src_tb, self.source.info.rate, filters_for(self.treatment))
            # the filters take the output clock (shifted by --start); the Source keeps its frame's own
            # timestamp (it finds missing frames with it), so it is put back once the graph holds its copy
            stored, frame.pts = frame.pts, pts
            try:
                made = self._push(frame)
            finally:
                frame.pts = stored
            yield from self._out(made, held)
            self._keep_end()
        if self._chain is not None:
            yield from self._out(self._push(None), held)
        yield from _release(held, None if self._end is None else self._end - self.source.offset)

    def _push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        try:
            return self._chain.push(frame)
        except av.FFmpegError as exc:
            raise VideoError(f"the {self.treatment.mode} filters failed: {ffmpeg_reason(exc)}; "
                             f"use --deinterlace off") from None

    def _out(self, frames: list[av.VideoFrame], held: list[tuple]) -> Iterator[tuple]:
        tb = self.info.time_base
        for frame in frames:
            if self.limit is not None and self.frames >= self.limit:
                return
            pts = int(round(Fraction(frame.pts) * Fraction(frame.time_base) / tb))
            shown = Fraction(pts + (frame.duration or 0)) * tb     # output clock, seconds
            self.frames += 1
            if self.limit is not None and self.frames == self.limit:
                self._end = shown + self.source.offset
            yield ("frame", frame, pts)
            yield from _release(held, shown)

    def _keep_end(self) -> None:
        """With a frame limit the copied streams end with the last output frame, not with the
        look-ahead frames the filters needed (``Source`` cuts them at its ``end``)."""
        if self._end is not None and (self.source.end is None or self._end < self.source.end):
            self.source.end = self._end


def _release(held: list[tuple], before: Fraction | None) -> Iterator[tuple]:
    """Take from ``held`` (in order) the packet events timed before ``before`` seconds
    (all of them for None)."""
    keep = []
    for ev in held:
        p = ev[1]
        t = (p.pts if p.pts is not None else p.dts) * Fraction(p.time_base)
        if before is None or t < before:
            yield ev
        else:
            keep.append(ev)
    held[:] = keep
