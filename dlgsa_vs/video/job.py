"""Upscale one video file: the library function behind ``dlgsa-upscale``.

    from dlgsa_vs.runtime.backends import create_upscaler
    from dlgsa_vs.video.job import upscale_video

    result = upscale_video("in.mp4", create_upscaler(), "in_x2.mp4")
    print(result.stats.frames, result.stats.fps)

The output appears under its final name only when complete; on any error (or Ctrl-C) the
temporary file is removed and the exception (a ``VideoError`` with a one-line reason, or
``KeyboardInterrupt``) propagates.
"""
from __future__ import annotations

import itertools
import os
import signal
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av

from .errors import VideoError
from .fields import FieldSource, Treatment, plan
from .files import check_paths, default_output, output_size, storage_error
from .output import open_output, Output
from .pipeline import Pipeline, Stats, read_until_first_frame
from .probe import InputInfo, Problems, Source, fmt_time, probe, with_first_frame
from .progress import progress_bar


@dataclass
class Result:
    output: Path
    info: InputInfo
    out: Output
    stats: Stats
    problems: Problems
    scale: int
    encoder: str
    seconds_of_video: float
    fields: Treatment | None = None     # what --deinterlace found and did (None: off)


def upscale_video(src: str | os.PathLike | InputInfo, upscaler, output: str | os.PathLike | None = None, *,
                  start: Fraction | None = None, frames: int | None = None, encoder: str | None = None,
                  crf: float | None = None, pix_fmt: str | None = None,
                  encoder_options: dict[str, str] | None = None, batch: int | None = None,
                  progress: bool | None = False, on_device: bool | None = None,
                  deinterlace: str | Treatment = "off") -> Result:
    """Decode ``src``, run ``upscaler`` (an ``inference.Upscaler``) on every frame, encode.

    deinterlace: one of ``fields.MODES`` ("auto" deinterlaces interlaced sources and inverse-
    telecines telecined ones before the network), or a ``fields.Treatment`` already planned;
    ``frames`` counts output frames.

    progress: a tqdm bar on stderr (True), none (False), or a bar on a terminal and a line every
    ``progress.LINE_EVERY`` seconds elsewhere (None).
    on_device: colour conversions where the network runs (default: on a CUDA GPU; see
    ``pipeline``), else in the CPU threads.
    """
    own = not isinstance(src, InputInfo)
    info = probe(src) if own else src
    try:
        return _run(info, upscaler, output, start, frames, encoder, crf, pix_fmt,
                    encoder_options or {}, batch or getattr(upscaler, "batch", 1), progress, on_device,
                    deinterlace)
    finally:
        if own:
            info.container.close()


def _run(info: InputInfo, upscaler, output, start, frames, encoder, crf, pix_fmt, encoder_options,
         batch, progress, on_device, deinterlace="off") -> Result:
    src = info.path
    scale = upscaler.scale
    out_path = Path(output) if output else default_output(src, scale)
    check_paths(src, out_path)
    copy = {s.index for s in info.others if s.type != "attachment"}
    treatment = deinterlace if isinstance(deinterlace, Treatment) else plan(info, deinterlace, start)
    filtered = treatment is not None and treatment.active
    source = Source(info, start=start, limit=treatment.input_frames(frames) if filtered and frames else frames,
                    copy=copy)
    stream = FieldSource(source, treatment, limit=frames) if filtered else source
    pending, events = read_until_first_frame(stream)
    if not source.frames:
        if start is not None:
            raise VideoError(f"no video frame at or after --start {fmt_time(start)} "
                             f"(the video lasts {fmt_time(info.duration)})", code=2)
        raise VideoError(f"{src} has a video stream but no frame could be decoded "
                         f"(corrupt, or an empty stream)", code=2)
    info = with_first_frame(info, next(ev[1] for ev in pending if ev[0] == "frame"))

    # the deinterlaced frames have their own rate and time base
    timing = replace(info, time_base=stream.info.time_base, rate=stream.info.rate) if filtered else info
    range_end = source.offset + Fraction(frames) / timing.rate if frames and timing.rate else None
    out = open_output(timing, out_path, scale, encoder=encoder, crf=crf, pix_fmt=pix_fmt,
                      encoder_options=encoder_options, offset=source.offset, range_end=range_end)
    encoder_name = out.video.codec_context.name
    expected = info.expected_frames(start)
    if filtered:
        out.video.codec_context.field_order = 1    # AV_FIELD_PROGRESSIVE: say so in the output
        expected = treatment.output_frames(expected)
    if frames is not None:
        expected = frames if expected is None else min(expected, frames)
    bar = progress_bar(expected, src.name, progress)
    done = False
    try:
        stats = Pipeline(stream.info, itertools.chain(pending, events), upscaler, out, info.colour, batch=batch,
                         progress=bar, on_device=on_device).run()
        bar.close()
        try:
            out.commit()
        except (av.FFmpegError, OSError) as exc:
            raise (storage_error(exc, out.tmp) or VideoError(f"finishing the output failed: {exc}")) from None
        done = True
    finally:
        bar.close()
        if not done:
            _discard_quietly(out)
    stats.out_bytes = output_size(out_path)
    seconds = source.end - (source.offset if start is not None else info.start_time) if source.end else 0
    return Result(output=out_path, info=info, out=out, stats=stats, problems=source.problems, scale=scale,
                  encoder=encoder_name, seconds_of_video=float(seconds), fields=treatment)


def _discard_quietly(out: Output) -> None:
    """Remove the temporary file; a second Ctrl-C must not interrupt that."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        out.discard()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
