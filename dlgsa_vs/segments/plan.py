"""Split a video at keyframes into chunks of about N seconds, from its packets alone.

Reading the packets (no decoding) gives every frame's timestamp and where the keyframes
are. A chunk is the half-open range of presentation timestamps [start, end): it starts at a
keyframe packet's pts and holds every frame whose pts falls in the range, so frames that
precede their keyframe in display order (open GOP leading pictures) belong to the previous
chunk, which decodes past its end until its last frame came out.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from fractions import Fraction
from ..video.errors import VideoError
from ..video.probe import check_complete, probe


@dataclass
class Scan:
    time_base: Fraction
    pts: list[int]          # every frame's pts, sorted
    keyframes: list[int]    # pts of the keyframe packets, sorted


@dataclass
class Chunk:
    index: int
    start: int | None       # pts; None = from the first frame
    end: int | None         # pts; None = to the last frame
    frames: int             # frames in [start, end)
    first_pts: int
    last_pts: int

    def holds(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)


def scan(path: str | os.PathLike) -> Scan:
    """Every video packet's pts and the keyframes', without decoding; a file whose data stops
    before its declared end is refused here, before any work (``probe.check_complete``)."""
    info = probe(path)
    try:
        video = info.video
        pts: list[int] = []
        keys: list[int] = []
        packets, video_end, data_end = 0, None, None
        for packet in info.container.demux():
            if packet.size and (packet.pts is not None or packet.dts is not None):
                tb = Fraction(packet.time_base)
                end = ((packet.pts if packet.pts is not None else packet.dts) + (packet.duration or 0)) * tb
                data_end = end if data_end is None else max(data_end, end)
                if packet.stream.index == video.index:
                    packets += 1
                    video_end = end if video_end is None else max(video_end, end)
            if packet.stream.index != video.index or not packet.size or packet.is_discard:
                continue
            if packet.pts is None:
                raise VideoError(f"{path}: video packets without timestamps (raw elementary stream?): "
                                 f"remux it into .mkv first (ffmpeg -i in -c copy out.mkv) for --ray", code=2)
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        if not pts:
            raise VideoError(f"{path}: no video packets", code=2)
        check_complete(info, video_packets=packets, video_end=video_end, data_end=data_end, frames=len(pts))
        pts.sort()
        if len(set(pts)) != len(pts):
            raise VideoError(f"{path}: two video packets share a timestamp; remux it first", code=2)
        return Scan(time_base=info.time_base, pts=pts, keyframes=sorted(set(keys)))
    finally:
        info.container.close()


def make_chunks(s: Scan, chunk_seconds: float) -> list[Chunk]:
    """Chunks of at least ``chunk_seconds`` (the last may be shorter), cut at keyframes."""
    if chunk_seconds <= 0:
        raise VideoError(f"--chunk-seconds must be > 0, got {chunk_seconds}", code=2)
    step = Fraction(chunk_seconds).limit_denominator(1000) / s.time_base
    cuts: list[int] = []
    last = s.pts[0]
    for k in s.keyframes:
        if k > s.pts[0] and k - last >= step:
            cuts.append(k)
            last = k
    bounds = [None, *cuts, None]
    chunks = []
    for i in range(len(bounds) - 1):
        start, end = bounds[i], bounds[i + 1]
        lo = 0 if start is None else bisect.bisect_left(s.pts, start)
        hi = len(s.pts) if end is None else bisect.bisect_left(s.pts, end)
        chunks.append(Chunk(index=i, start=start, end=end, frames=hi - lo, first_pts=s.pts[lo],
                            last_pts=s.pts[hi - 1]))
    return chunks


def chunk_pts(s: Scan, c: Chunk) -> list[int]:
    lo = 0 if c.start is None else bisect.bisect_left(s.pts, c.start)
    hi = len(s.pts) if c.end is None else bisect.bisect_left(s.pts, c.end)
    return s.pts[lo:hi]
