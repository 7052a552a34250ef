"""What runs on the Ray workers: the chunk task and the progress actor it reports to.

The chunk's work itself (decode, upscale, encode, check) is ``segments.encode.encode_chunk``;
a worker process keeps the network it loaded for its next chunks."""
from __future__ import annotations

import time

from ..segments.encode import ChunkSpec, encode_chunk


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


def chunk_task(spec: ChunkSpec, board) -> dict:
    """The Ray task: encode one chunk, reporting to ``board`` (a ProgressBoard actor handle)."""
    return encode_chunk(spec, board.report.remote if board is not None else None)
