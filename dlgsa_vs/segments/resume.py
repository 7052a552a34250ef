"""Resumable single-machine runs (``dlgsa-upscale`` on a whole file): the keyframe segments,
chunk encode, manifest and stream-copy join of this package (which the Ray mode,
dlgsa_vs.cluster, runs too), run in order in this process with the one network already
loaded. It lives here rather than in ``dlgsa_vs.video`` so that ``video`` never imports
``segments`` (which imports ``video``).

State lives in ``<output>.chunks/`` beside the output: ``manifest.json`` (input content
hash, model hash, settings, segment boundaries, per segment its checksum) and one NUT file
per finished segment, written under a temporary name and renamed only once its frames were
checked. A killed run loses at most the segment it was encoding; the same command then
continues. A state left by another input, model or settings is dropped with a one-line
note; ``--no-resume`` drops it too. On success the join writes the output (other streams
copied once from the input) and the state folder is removed.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..video.files import remove_dead_parts
from ..runtime.weights import weights_digest
from . import manifest as mf
from .encode import JobSettings, encode_chunk
from .join import JoinResult
from .work import MANIFEST, Job, finish_job, plan_job, work_folder


@dataclass
class SegmentedResult:
    output: Path
    frames: int
    segments: int
    kept: int                 # segments reused from an earlier run
    computed: int
    seconds: float
    model_seconds: float
    join: JoinResult


def _bar_sink(bar, base: int) -> Callable[[str, int, str], None]:
    """encode_chunk's progress sink -> a tqdm bar (``base``: frames of the chunks before)."""

    def report(key: str, frames: int, worker: str) -> None:
        bar.update(max(0, base + frames - bar.n))

    return report


def run_segments(input_path: Path, output: Path, upscaler, settings: JobSettings, *,
                 segment_seconds: float, resume: bool = True, keep: bool = False,
                 progress: bool | None = None, log: Callable[[str], None] | None = None) -> SegmentedResult:
    """Upscale ``input_path`` into ``output`` segment by segment, resuming a matching state.

    settings: the run's and the encoder's settings (``upscaler`` was made with its ``run``)."""
    from ..video.progress import progress_bar

    log = log or (lambda m: None)
    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    # the model is its weights' hash, not the file's name
    settings = dict({k: v for k, v in settings.to_dict().items() if k != "model_path"},
                    model_sha256=weights_digest(upscaler.model))
    remove_dead_parts(output)                 # a join that a killed run left half-written
    work = work_folder(output)
    old = mf.load(work / MANIFEST)
    if not resume and work.exists():
        shutil.rmtree(work, ignore_errors=True)
        old = None
    job: Job = plan_job(input_path, output, settings, segment_seconds)
    if old and any(c.get("status") == "done" for c in old.get("chunks", [])) and not job.resumed:
        why = ("another input" if old.get("fingerprint") != job.data["fingerprint"] else
               "another model" if (old.get("settings") or {}).get("model_sha256") != settings["model_sha256"]
               else "other settings")
        log(f"note: {work} holds an earlier run's segments for {why}: starting over")
    elif job.resumed:
        log(f"resuming: {job.resumed} of {len(job.chunks)} segments already done (kept from an earlier run)")
    total = sum(c.frames for c in job.chunks)
    done = sum(c.frames for c, r in zip(job.chunks, job.data["chunks"]) if r["status"] == "done")
    bar = progress_bar(total, input_path.name, progress, initial=done)
    model_seconds = 0.0
    try:
        for c, rec in zip(job.chunks, job.data["chunks"]):
            if rec["status"] == "done":
                continue
            r = encode_chunk(job.spec(c, rec, key=str(c.index)), _bar_sink(bar, done), upscaler=upscaler)
            job.chunk_done(c, rec, r)
            done += c.frames
            model_seconds += r["model_seconds"]
            bar.update(max(0, done - bar.n))
    finally:
        bar.close()
    finish_job(job, keep)
    assert job.result is not None
    return SegmentedResult(output=output, frames=job.result.frames, segments=len(job.chunks), kept=job.resumed,
                           computed=len(job.computed), seconds=time.perf_counter() - t0,
                           model_seconds=model_seconds, join=job.result)
