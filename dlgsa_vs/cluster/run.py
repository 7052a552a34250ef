"""The Ray driver: run the chunks of every planned input (``segments.work.plan_job``) as Ray
tasks in one queue, keep each manifest up to date as chunks finish, join each input as soon
as its chunks are done."""
from __future__ import annotations

import sys
import time
from typing import Callable

from ..segments.work import Job, finish_job
from ..video.errors import VideoError
from .tasks import ProgressBoard, chunk_task

INSTALL_HINT = 'the --ray mode needs Ray: pip install "dlgsa-vs[cluster]"'


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
             log: Callable[[str], None] | None = None) -> list[Job]:
    """Run every pending chunk of every job on the connected cluster, then join each job."""
    import ray
    from tqdm import tqdm

    log = log or (lambda m: print(m, file=sys.stderr))
    if gpus_per_task is None:
        gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) > 0 and \
            jobs[0].data["settings"].get("backend") != "cpu" else 0
    remote = ray.remote(max_retries=max_retries, num_cpus=0 if gpus_per_task else cpus_per_task,
                        num_gpus=gpus_per_task)(chunk_task)
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
            spec = job.spec(c, rec, key=f"{j}:{c.index}")
            pending[remote.remote(spec, board)] = (job, c, rec)
    bar = tqdm(total=total, initial=already, unit="frame", desc="cluster", dynamic_ncols=True,
               disable=not progress, file=sys.stderr, smoothing=0.1)
    finished_frames = already
    last_lines = 0.0
    try:
        for job in jobs:
            if all(r["status"] == "done" for r in job.data["chunks"]):
                finish_job(job, keep_chunks)
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
                    finish_job(job, keep_chunks)
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


__all__ = ["run_jobs", "connect", "INSTALL_HINT"]
