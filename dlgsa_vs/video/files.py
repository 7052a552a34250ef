"""The files of a run: the default output name, the checks before any work (input and output
apart, an output folder that takes files, no silent overwrite), leftovers of dead runs, and
storage errors named with their path.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path

from .errors import VideoError

def temporary_path(final: Path) -> Path:
    """Where ``final`` is written until it is complete: a hidden name beside it,
    ``.<name>.part-<pid>-<random><ext>``, which ``remove_dead_parts`` knows again."""
    folder = final.parent if str(final.parent) else Path(".")
    return folder / f".{final.stem}.part-{os.getpid()}-{secrets.token_hex(3)}{final.suffix}"


def default_output(src: Path, scale: int) -> Path:
    ext = src.suffix.lower() if src.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm", ".m4v") else ".mkv"
    return src.with_name(f"{src.stem}_x{scale}{ext}")


def check_paths(src: Path, out: Path) -> None:
    if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
        raise VideoError(f"the output would overwrite the input {src}: choose another -o", code=2)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise VideoError(f"output folder {folder} does not exist", code=2)
    if out.is_dir():
        raise VideoError(f"the output {out} is a folder: give a file name, e.g. -o {out / 'out.mp4'}", code=2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VideoError(f"cannot write in the output folder {folder}: permission denied", code=2)
    if not out.suffix:
        raise VideoError(f"the output {out} has no extension: say which container, e.g. .mp4 or .mkv", code=2)
    check_writable(out)


def check_writable(out: Path) -> None:
    """Create (and remove) an empty file beside ``out``: a folder that takes no new files
    (/proc, a read-only or full mount) is found before any work, not at the first write."""
    folder = out.parent if str(out.parent) else Path(".")
    probe = folder / f".{out.name}.write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise VideoError(f"cannot write {out}: {folder} takes no new files "
                         f"({os.strerror(exc.errno) if exc.errno else exc}); choose another -o", code=2) from None
    try:
        probe.unlink()
    except OSError:
        pass


def refuse_existing(out: Path, overwrite: bool) -> None:
    """No silent overwrite (as FFmpeg): an existing output is replaced only with -y."""
    if not overwrite and (out.exists() or out.is_symlink()):
        raise VideoError(f"{out} already exists: add -y (--overwrite) to replace it, or choose another -o",
                         code=2)


def remove_dead_parts(final: Path) -> list[str]:
    """Delete the hidden temporary outputs of ``final`` whose process no longer runs.

    A run killed without a chance to clean up (kill -9, a power loss) leaves its
    ``.<name>.part-<pid>-<random><ext>``; a later run for the same output removes it. One
    whose process is alive (another run writing the same output now) is left alone, as is
    one that cannot be removed. Returns the names removed.
    """
    folder = final.parent if str(final.parent) else Path(".")
    pattern = re.compile(re.escape(f".{final.stem}.part-") + r"(\d+)-[0-9a-f]+" + re.escape(final.suffix))
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _process_alive(int(m.group(1))):
            continue
        try:
            entry.unlink()
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True        # someone else's process
    except OSError:
        return True
    return True


def storage_error(exc: BaseException, path: Path) -> VideoError | None:
    """A VideoError for a full disk / file-size limit / unwritable folder, else None."""
    code = getattr(exc, "errno", None)
    folder = path.parent if str(path.parent) else Path(".")
    if code == errno.ENOSPC:
        return VideoError(f"disk full: no space left in {folder} while writing the output; free some "
                          f"space or write elsewhere with -o (nothing was written)")
    if code == errno.EDQUOT:
        return VideoError(f"disk quota exceeded in {folder} while writing the output (nothing was written)")
    if code == errno.EFBIG:
        return VideoError(f"file too large: the output hit the file-size limit (ulimit -f or the "
                          f"file system's) in {folder} (nothing was written)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return VideoError(f"cannot write in {folder}: {os.strerror(code)}", code=2)
    return None


def output_size(path: Path) -> int:
    """The size of a written file, 0 where it cannot be read."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
