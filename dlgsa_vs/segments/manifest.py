"""The work folder's state: ``<output>.chunks/manifest.json``.

It records the input's fingerprint (its size and the SHA-256 of 64 blocks of 64 KiB spread
evenly over it, first and last included: its content, not its name or time), the settings,
the chunk boundaries and, per chunk, its status, frame count, checksum and the run that
made it. A re-run with the same input and settings keeps every chunk whose file is there
with the recorded checksum and recomputes the others; anything else starts afresh.
Written atomically (temporary file, then rename), so a crash never leaves half a manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

VERSION = 2
BLOCK = 64 << 10
BLOCKS = 64


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a whole file (a chunk file's checksum)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict:
    """Size and SHA-256 of BLOCKS blocks of BLOCK bytes at evenly spaced offsets (the whole
    file when it is smaller than that): a few MiB read whatever the file's size."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        if size <= BLOCK * BLOCKS:
            h.update(fh.read())
        else:
            for i in range(BLOCKS):
                fh.seek((size - BLOCK) * i // (BLOCKS - 1))
                h.update(fh.read(BLOCK))
    return {"size": size, "blocks_sha256": h.hexdigest()}


def load(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def save(path: Path, data: dict) -> None:
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def new(input_path: Path, output: Path, settings: dict, chunks: list[dict]) -> dict:
    return {"version": VERSION, "input": str(input_path), "output": str(output),
            "fingerprint": fingerprint(input_path), "settings": settings, "runs": 0,
            "chunks": [dict(c, status="pending") for c in chunks]}


def compatible(old: dict | None, fresh: dict) -> bool:
    """Same input bytes (as far as the fingerprint tells), settings and chunk boundaries."""
    if not old:
        return False
    same_chunks = [(c["start"], c["end"], c["frames"]) for c in old.get("chunks", [])] == \
                  [(c["start"], c["end"], c["frames"]) for c in fresh["chunks"]]
    return old.get("fingerprint") == fresh["fingerprint"] and old.get("settings") == fresh["settings"] \
        and same_chunks


def chunk_ok(folder: Path, chunk: dict) -> bool:
    """A chunk marked done whose file is there, of the recorded size and checksum."""
    if chunk.get("status") != "done":
        return False
    f = folder / chunk["file"]
    try:
        if f.stat().st_size != chunk.get("bytes"):
            return False
    except OSError:
        return False
    return sha256_file(f) == chunk.get("checksum")
