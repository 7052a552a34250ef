"""The driver: plan every input, run all their chunks as Ray tasks in one queue, keep the
manifest up to date as chunks finish, join each input as soon as its chunks are done."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..video.errors import VideoError
from ..video.output import check_paths
from . import manifest as mf
from .join import JoinResult, join_chunks
from .plan import Chunk, Scan, chunk_pts, make_chunks, scan
from .tasks import ChunkSpec, encode_chunk

MANIFEST = "manifest.json"
INSTALL_HINT = 'the --ray mode needs Ray: pip install "dlgsa-vs[cluster]"'


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

    def spec(self, c: Chunk, rec: dict, key: str, crash_marker: str | None = None) -> ChunkSpec:
        """What ``encode_chunk`` needs for chunk ``c`` (``rec``: its manifest record)."""
        return ChunkSpec(input=str(self.input.resolve()), index=c.index, start=c.start, end=c.end,
                         pts=chunk_pts(self.scan, c), path=str((self.work / rec["file"]).resolve()),
                         settings=self.data["settings"], key=key, crash_marker=crash_marker)

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


class ProgressBoard:
    """A Ray actor: each task reports its chunk's frames done; the driver reads the sum."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.workers: dict[str, tuple[str, int, float]] = {}

    def report(self, key: str, frames: int, worker: str) -> None:
        self.frames[key] = frames
        self.workers[worker] = (key, frames, time.time())

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self.frames), dict(self.workers)


def _task(spec: ChunkSpec, board) -> dict:
    return encode_chunk(spec, board)


def connect(address: str | None, workers: int | None) -> None:
    """Connect to the cluster at ``address`` or start/find a local one."""
    try:
        import ray
    except ImportError:
        raise VideoError(INSTALL_HINT, code=2) from None
    if ray.is_initialized():
        return
    kw = dict(include_dashboard=False, log_to_driver=False)
    if address is None and workers:
        kw["num_cpus"] = workers
    try:
        ray.init(address=address, **kw)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise VideoError(f"cannot connect to the Ray cluster {address or '(local)'}: "
                         f"{' '.join(str(exc).split())[:200]}", code=2) from None


def run_jobs(jobs: list[Job], *, cpus_per_task: float = 1, gpus_per_task: float | None = None,
             max_retries: int = 3, keep_chunks: bool = False, verbose: bool = False, progress: bool = True,
             crash_marker: str | None = None, log: Callable[[str], None] | None = None) -> list[Job]:
    """Run every pending chunk of every job on the connected cluster, then join each job."""
    import ray
    from tqdm import tqdm

    log = log or (lambda m: print(m, file=sys.stderr))
    if gpus_per_task is None:
        gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) > 0 and \
            jobs[0].data["settings"].get("backend") != "cpu" else 0
    remote = ray.remote(max_retries=max_retries, num_cpus=0 if gpus_per_task else cpus_per_task,
                        num_gpus=gpus_per_task)(_task)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    pending: dict = {}
    total = sum(c.frames for j in jobs for c in j.chunks)
    already = 0
    for j, job in enumerate(jobs):
        if job.resumed:
            log(f"resuming {job.input.name}: {job.resumed} of {len(job.chunks)} chunks already done "
                f"(kept from an earlier run)")
        for c, rec in zip(job.chunks, job.data["chunks"]):
            if rec["status"] == "done":
                already += c.frames
                continue
            spec = job.spec(c, rec, key=f"{j}:{c.index}", crash_marker=crash_marker if c.index == 1 else None)
            pending[remote.remote(spec, board)] = (job, c, rec)
    bar = tqdm(total=total, initial=already, unit="frame", desc="cluster", dynamic_ncols=True,
               disable=not progress, file=sys.stderr, smoothing=0.1)
    finished_frames = already
    last_lines = 0.0
    try:
        for job in jobs:
            if all(r["status"] == "done" for r in job.data["chunks"]):
                _finish(job, keep_chunks, log)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                job, c, rec = pending.pop(ref)
                try:
                    r = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task failed after its retries
                    reason = getattr(exc, "cause", None) or exc
                    job.failed = f"chunk {c.index} failed: {' '.join(str(reason).split())[:300]}"
                    rec.update(status="failed", error=job.failed)
                    job.save()
                    for other in [k for k, v in pending.items() if v[0] is job]:
                        ray.cancel(other, force=True)
                        pending.pop(other)
                    continue
                if r["frames"] != c.frames:
                    job.failed = f"chunk {c.index}: {r['frames']} frames, {c.frames} expected"
                    continue
                job.chunk_done(c, rec, r)
                finished_frames += c.frames
                if job.failed is None and all(x["status"] == "done" for x in job.data["chunks"]):
                    _finish(job, keep_chunks, log)
            frames, workers = ray.get(board.snapshot.remote())
            done_keys = {f"{j}:{c.index}" for j, jb in enumerate(jobs) for c, rec in
                         zip(jb.chunks, jb.data["chunks"]) if rec["status"] == "done"}
            live = sum(v for k, v in frames.items() if k not in done_keys)
            bar.update(max(0, finished_frames + live - bar.n))
            if verbose and time.monotonic() - last_lines > 5:
                last_lines = time.monotonic()
                for w, (key, n, t) in sorted(workers.items()):
                    if key not in done_keys:
                        bar.write(f"  worker {w}: chunk {key} {n} frames ({time.time() - t:.0f} s ago)",
                                  file=sys.stderr)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
        ray.kill(board)
    return jobs


def _finish(job: Job, keep_chunks: bool, log) -> None:
    files = [job.work / r["file"] for r in job.data["chunks"]]
    job.result = join_chunks(job.input, files, job.output, sum(c.frames for c in job.chunks),
                             shifts=[r.get("shift", 0) for r in job.data["chunks"]],
                             colour=job.data["chunks"][0].get("colour"))
    job.data["joined"] = {"seconds": round(job.result.seconds, 3), "bytes": job.result.bytes}
    job.save()
    if not keep_chunks:
        shutil.rmtree(job.work, ignore_errors=True)


def describe(job: Job) -> str:
    r = job.result
    assert r is not None
    return (f"{job.input.name} -> {job.output}: {r.frames} frames in {len(job.chunks)} chunks "
            f"({len(job.computed)} computed now, {job.resumed} kept), joined in {r.seconds:.2f} s, "
            f"{r.bytes / 1e6:.1f} MB")


__all__ = ["Job", "plan_job", "run_jobs", "connect", "work_folder", "describe", "INSTALL_HINT"]
