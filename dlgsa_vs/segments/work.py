"""One input's segmented run: its chunk plan, its work folder ``<output>.chunks/`` and
manifest, and the finishing join. Whoever encodes the chunks (the Ray driver in
``dlgsa_vs.cluster.run``, or ``resume`` in order in one process) plans with
``plan_job``, records each chunk with ``Job.chunk_done`` and ends with ``finish_job``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..video.files import check_paths
from . import manifest as mf
from .encode import ChunkSpec
from .join import JoinResult, join_chunks
from .plan import Chunk, Scan, chunk_pts, make_chunks, scan

MANIFEST = "manifest.json"


@dataclass
class Job:
    input: Path
    output: Path
    work: Path
    scan: Scan
    chunks: list[Chunk]
    data: dict                                  # the manifest
    resumed: int = 0                            # chunks kept from an earlier run
    failed: str | None = None
    result: JoinResult | None = None
    computed: list[int] = field(default_factory=list)

    def save(self) -> None:
        mf.save(self.work / MANIFEST, self.data)

    def spec(self, c: Chunk, rec: dict, key: str) -> ChunkSpec:
        """What ``encode_chunk`` needs for chunk ``c`` (``rec``: its manifest record)."""
        return ChunkSpec(input=str(self.input.resolve()), index=c.index, start=c.start, end=c.end,
                         pts=chunk_pts(self.scan, c), path=str((self.work / rec["file"]).resolve()),
                         settings=self.data["settings"], key=key)

    def chunk_done(self, c: Chunk, rec: dict, r: dict) -> None:
        """Record ``encode_chunk``'s result ``r`` for chunk ``c`` in the manifest, on disk at once."""
        rec.update(status="done", frames=r["frames"], checksum=r["checksum"], bytes=r["bytes"],
                   run=self.data["runs"], worker=r["worker"], seconds=round(r["seconds"], 3),
                   colour=r["colour"], shift=r["shift"])
        self.computed.append(c.index)
        self.save()


def work_folder(output: Path) -> Path:
    return output.with_name(output.name + ".chunks")


def plan_job(input_path: Path, output: Path, settings: dict, chunk_seconds: float) -> Job:
    """Scan the input, cut it, and load or start its manifest (keeping finished chunks)."""
    input_path, output = Path(input_path), Path(output)
    check_paths(input_path, output)
    s = scan(input_path)
    chunks = make_chunks(s, chunk_seconds)
    work = work_folder(output)
    work.mkdir(exist_ok=True)
    for stale in work.glob(".*.part-*"):       # a chunk being written when a run died
        stale.unlink(missing_ok=True)
    fresh = mf.new(input_path, output, dict(settings, chunk_seconds=chunk_seconds),
                   [dict(index=c.index, start=c.start, end=c.end, frames=c.frames,
                         file=f"chunk_{c.index:05d}.nut") for c in chunks])
    old = mf.load(work / MANIFEST)
    resumed = 0
    if mf.compatible(old, fresh):
        for i, c in enumerate(old["chunks"]):
            if mf.chunk_ok(work, c):
                fresh["chunks"][i] = c
                resumed += 1
        fresh["runs"] = old.get("runs", 0)
    for c in fresh["chunks"]:
        if c["status"] != "done":
            (work / c["file"]).unlink(missing_ok=True)
    fresh["runs"] += 1
    job = Job(input=input_path, output=output, work=work, scan=s, chunks=chunks, data=fresh, resumed=resumed)
    job.save()
    return job


def finish_job(job: Job, keep_chunks: bool) -> None:
    """Join the finished chunks of ``job`` into its output; the work folder goes unless kept."""
    files = [job.work / r["file"] for r in job.data["chunks"]]
    job.result = join_chunks(job.input, files, job.output, sum(c.frames for c in job.chunks),
                             shifts=[r.get("shift", 0) for r in job.data["chunks"]],
                             colour=job.data["chunks"][0].get("colour"))
    job.data["joined"] = {"seconds": round(job.result.seconds, 3), "bytes": job.result.bytes}
    job.save()
    if not keep_chunks:
        shutil.rmtree(job.work, ignore_errors=True)


def describe(job: Job) -> str:
    """The one-line summary of a joined job."""
    r = job.result
    assert r is not None
    return (f"{job.input.name} -> {job.output}: {r.frames} frames in {len(job.chunks)} chunks "
            f"({len(job.computed)} computed now, {job.resumed} kept), joined in {r.seconds:.2f} s, "
            f"{r.bytes / 1e6:.1f} MB")
