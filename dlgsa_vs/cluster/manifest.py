"""The work folder's state: ``<output>.chunks/manifest.json``.

It records the input's fingerprint (size, mtime, SHA-256 of its first MiBs), the settings,
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

VERSION = 1
HEAD_BYTES = 4 << 20


def fingerprint(path: str | os.PathLike) -> dict:
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        h.update(fh.read(HEAD_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": h.hexdigest()}


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
    from .tasks import sha256_file

    return sha256_file(f) == chunk.get("checksum")
