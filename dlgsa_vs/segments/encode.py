"""One chunk: decode [start, end) of the input, upscale, encode into a chunk file.

The same function runs in a Ray task (``dlgsa_vs.cluster.tasks``) and in the one-machine
resumable run (``segments.resume``, which passes the network it loaded).

The chunk file is NUT (it keeps the input's time base exactly and the codec's global
header, so the packets can be stream-copied into any container). It is written under a
temporary name, its frames are checked against the plan (count and every timestamp), and
only then renamed to its final name: a chunk file that exists is complete.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import av

from ..runtime.settings import RunSettings

from ..video.errors import DamagedInput, VideoError
from ..video.output import open_output
from ..video.pipeline import Pipeline
from ..video.probe import InputInfo, fmt_time, probe, set_log_mode, with_first_frame
from .manifest import sha256_file

# progress(key, frames done so far, worker): how a chunk reports (a Ray actor's method in the
# cluster, a progress bar in the one-machine run)
ProgressSink = Callable[[str, int, str], None]


@dataclass(frozen=True)
class JobSettings:
    """What every chunk of a job is made with: the run settings and the encoder's.

    The front ends build it; a job's manifest holds it as plain data (``to_dict``, compared
    field by field to resume) and the chunks read it back (``from_dict``).
    """

    run: RunSettings
    encoder: str | None = None
    crf: float | None = None
    pix_fmt: str | None = None
    encoder_options: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.run.to_dict(), encoder=self.encoder, crf=self.crf, pix_fmt=self.pix_fmt,
                    encoder_options=dict(self.encoder_options))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSettings":
        return cls(RunSettings.from_dict(data), data.get("encoder"), data.get("crf"), data.get("pix_fmt"),
                   dict(data.get("encoder_options") or {}))


@dataclass
class ChunkSpec:
    input: str
    index: int
    start: int | None          # pts, input time base; None = from the first frame
    end: int | None            # pts; None = to the last frame
    pts: list[int]             # the input frames of the chunk, as the plan saw them
    path: str                  # the chunk file to write (final name)
    settings: dict             # the manifest's JobSettings.to_dict() (identical for every chunk)
    key: str = ""              # "<job>:<chunk>" for progress reports


def _first_frame(path: str) -> av.VideoFrame:
    with av.open(path) as c:
        for frame in c.decode(video=0):
            return frame
    raise VideoError(f"{path}: no video frame could be decoded", code=2)


def chunk_frames(info: InputInfo, start: int | None, end: int | None) -> Iterator[tuple]:
    """("frame", frame, pts) for every frame with start <= pts < end, in display order.

    Decoding starts at the keyframe at or before ``start`` (frames before it are dropped) and
    goes on past ``end`` until a frame at or after ``end`` comes out (open-GOP leading
    pictures of the next chunk's keyframe belong here)."""
    container, video = info.container, info.video
    video.thread_type = "AUTO"
    if start is not None:
        container.seek(start, stream=video, backward=True, any_frame=False)
    for packet in container.demux(video):
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            where = fmt_time(None if packet.pts is None else packet.pts * info.time_base)
            raise DamagedInput(f"decoding {info.path} failed at {where}: {exc}") from None
        for frame in frames:
            if frame.pts is None:
                raise VideoError(f"{info.path}: a decoded frame has no timestamp", code=2)
            if start is not None and frame.pts < start:
                continue
            if end is not None and frame.pts >= end:
                return
            yield ("frame", frame, frame.pts)


class _Reporter:
    """Pipeline progress -> the chunk's progress sink, at most a few times a second."""

    def __init__(self, sink: ProgressSink | None, key: str, worker: str):
        self.sink, self.key, self.worker = sink, key, worker
        self.done = 0
        self.sent = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.sink is not None and now - self.sent > 0.3:
            self.sent = now
            self.sink(self.key, self.done, self.worker)

    def close(self) -> None:
        if self.sink is not None:
            self.sink(self.key, self.done, self.worker)


def count_check(path: Path, tb: Fraction, expected: list[int]) -> int:
    """The chunk file holds exactly the expected frames (same count, same timestamps, up to
    one constant shift); returns that shift in ticks of ``tb``.

    An encoder with B-frames (x264, x265) gives its first packets negative decode times,
    which the NUT muxer shifts away by moving every timestamp of the file by the encoder's
    delay; the join takes the shift back off."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        got = sorted(p.pts * Fraction(v.time_base) for p in c.demux(v) if p.size and p.pts is not None)
    want = [p * tb for p in expected]
    shift = (got[0] - want[0]) / tb if got and want else Fraction(0)
    if len(got) != len(want) or shift.denominator != 1 or any(g - w != shift * tb for g, w in zip(got, want)):
        raise DamagedInput(f"chunk {path.name}: {len(got)} frames written, {len(want)} expected "
                         f"(or their timestamps differ); not kept")
    return int(shift)


def encode_chunk(spec: ChunkSpec, progress: ProgressSink | None = None, upscaler=None) -> dict:
    """Upscale and encode one chunk; returns its frame count, checksum, size and timings.

    progress: called with (spec.key, frames done, worker) a few times a second and at the end.
    upscaler: the network to use (a single-machine run passes the one it loaded); None = one
    made from ``spec.settings``, kept by this (worker) process for its next chunks."""
    t0 = time.perf_counter()
    set_log_mode(False)
    job = JobSettings.from_dict(spec.settings)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    final = Path(spec.path)
    probed = probe(spec.input)
    try:
        # the chunk holds the video only (the join copies the rest), described from the file's
        # first frame as the single-process run does
        info = with_first_frame(replace(probed, others=[]), _first_frame(spec.input))
        if upscaler is None:  # the worker process keeps it for its next chunks (open_runner)
            from ..runtime.backends import open_runner

            upscaler = open_runner(job.run, (info.height, info.width))
        out = open_output(info, final, upscaler.scale, encoder=job.encoder, crf=job.crf, pix_fmt=job.pix_fmt,
                          encoder_options=dict(job.encoder_options))
        reporter = _Reporter(progress, spec.key, worker)
        try:
            stats = Pipeline(info, chunk_frames(info, spec.start, spec.end),
                             upscaler, out, info.colour, batch=upscaler.batch, progress=reporter).run()
            out.close()
            shift = count_check(out.tmp, info.time_base, spec.pts)
            os.replace(out.tmp, final)
        except BaseException:
            out.discard()
            raise
        reporter.close()
        cc = out.video.codec_context
        colour = [int(cc.colorspace), int(cc.color_range), int(cc.color_primaries), int(cc.color_trc),
                  int(cc.chroma_sample_location)]
    finally:
        probed.container.close()
    return dict(index=spec.index, frames=stats.frames, checksum=sha256_file(final), bytes=final.stat().st_size,
                seconds=time.perf_counter() - t0, model_seconds=stats.model_seconds, worker=worker,
                colour=colour, shift=shift)
