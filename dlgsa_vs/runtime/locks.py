"""A lock shared by the processes of one machine, for the on-disk caches (TensorRT engines,
ncnn graphs): two processes that miss the same entry would both spend minutes building it."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold ``lock_file`` (created if missing) exclusively for the ``with`` block. Without POSIX
    locks (Windows) it does not wait: the caches' atomic renames still keep every entry whole."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_file, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
