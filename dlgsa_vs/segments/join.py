"""Join encoded chunk files into one output by stream copy, with the input's other streams.

The video packets of the chunks are copied in order, with the timestamps they were encoded
with (the input's own frame timestamps, in the input's time base); audio, subtitles, data,
attachments and chapters are taken once from the original file, as ``dlgsa-upscale`` does.
The output is written under a temporary name and renamed when its frame count is verified.
"""
from __future__ import annotations

import heapq
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from ..video.errors import VideoError
from ..video.files import storage_error, temporary_path
from ..video.output import clean_tags, copy_chapters, copy_streams, fmt_is_mov
from ..video.probe import InputInfo, probe


@dataclass
class _Copies:              # what output.copy_streams fills in
    copy_map: dict = field(default_factory=dict)
    copied: list = field(default_factory=list)
    not_copied: list = field(default_factory=list)


@dataclass
class JoinResult:
    output: Path
    frames: int
    seconds: float
    bytes: int
    copied: list[str]
    not_copied: list[str]


def _video_packets(chunks: list[Path], ost, tb: Fraction,
                   shifts: list[int]) -> Iterator[tuple[Fraction, int, av.Packet]]:
    last_dts = None
    for path, shift in zip(chunks, shifts):
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            ratio = Fraction(v.time_base) / tb

            def back(value: int | None) -> int | None:
                if value is None:
                    return None
                exact = value * ratio
                if exact.denominator != 1:
                    raise VideoError(f"chunk {path.name}: timestamp {value} in {v.time_base} is not a "
                                     f"whole number of the input's time base {tb}")
                return int(exact) - shift

            packets = [(p, back(p.pts), back(p.dts)) for p in c.demux(v) if p.size]
            # NUT stores no decode time for an encoder's first packets (B-frame delay: their
            # dts precede the first pts); give them consecutive ticks before the first known one
            lead = next((i for i, (_, _, d) in enumerate(packets) if d is not None), len(packets))
            if 0 < lead < len(packets):
                first = packets[lead][2]
                packets[:lead] = [(p, pts, first - lead + i) for i, (p, pts, _) in enumerate(packets[:lead])]
            for packet, pts, dts in packets:
                if dts is not None and last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1     # a border between two chunks with a deeper reorder
                    if pts is not None and dts > pts:
                        raise VideoError(f"chunk {path.name}: cannot order its first packets after "
                                         f"the previous chunk's (decode timestamps overlap)")
                last_dts = dts if dts is not None else last_dts
                packet.pts, packet.dts = pts, dts
                if packet.duration:
                    packet.duration = round(packet.duration * ratio)
                packet.time_base = tb
                packet.stream = ost
                t = (packet.dts if packet.dts is not None else packet.pts) * tb
                yield (t, 0, packet)


def _other_packets(info: InputInfo, copy_map: dict) -> Iterator[tuple[Fraction, int, av.Packet]]:
    if not copy_map:
        return
    with av.open(str(info.path)) as c:
        streams = [c.streams[i] for i in copy_map]
        for packet in c.demux(streams):
            if not packet.size or packet.pts is None and packet.dts is None:
                continue
            t = (packet.dts if packet.dts is not None else packet.pts) * Fraction(packet.time_base)
            packet.stream = copy_map[packet.stream.index]
            yield (t, 1, packet)


def join_chunks(input_path: str | os.PathLike, chunks: list[Path], output: Path,
                expected_frames: int, colour: list[int] | None = None,
                shifts: list[int] | None = None) -> JoinResult:
    """Write ``output`` from the chunk files and the input's other streams (stream copy).

    colour: (matrix, range, primaries, transfer, chroma location) codes the chunks were
    encoded with (NUT chunk files do not carry them); shifts: per chunk, the ticks its file's
    timestamps were moved by (encode.count_check), taken off again."""
    t0 = time.perf_counter()
    output = Path(output)
    tmp = temporary_path(output)
    info = probe(input_path)
    done = False
    try:
        container = av.open(str(tmp), "w")
        try:
            with av.open(str(chunks[0])) as first:
                ost = container.add_stream_from_template(first.streams.video[0])
            ost.time_base = info.time_base
            if colour:
                cc = ost.codec_context
                cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colour[:4]
                if colour[4]:
                    cc.chroma_sample_location = colour[4]
            ost.metadata.update(clean_tags(dict(info.video.metadata), fmt_is_mov(info)))
            ost.disposition = info.video.disposition
            copies = _Copies()
            copy_streams(info, container, copies)
            copy_chapters(info, container, Fraction(0), None)
            container.metadata.update(clean_tags(dict(info.container.metadata), False))
            frames = 0
            merged = heapq.merge(_video_packets(chunks, ost, info.time_base, shifts or [0] * len(chunks)),
                                 _other_packets(info, copies.copy_map), key=lambda e: (e[0], e[1]))
            for _, kind, packet in merged:
                container.mux(packet)
                frames += kind == 0
        finally:
            container.close()
        if frames != expected_frames:
            raise VideoError(f"the joined output has {frames} frames, {expected_frames} expected; not kept")
        os.replace(tmp, output)
        done = True
    except (av.FFmpegError, OSError) as exc:
        raise (storage_error(exc, tmp) or VideoError(f"joining the chunks into {output} failed: {exc}")) from None
    finally:
        info.container.close()
        if not done:
            tmp.unlink(missing_ok=True)
    return JoinResult(output=output, frames=frames, seconds=time.perf_counter() - t0,
                      bytes=output.stat().st_size, copied=copies.copied, not_copied=copies.not_copied)
