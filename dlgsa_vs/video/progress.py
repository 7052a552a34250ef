"""Progress of a video run on stderr, and the words of the summary line (rates, plurals).

On a terminal: a tqdm bar. Without one (a log file, a pipe, a batch job): one line every
``LINE_EVERY`` seconds, with the frames done, the time per frame and the time left, so a run
of hours is never silent; nothing when the run is quiet.
"""
from __future__ import annotations

import sys
import time

LINE_EVERY = 30.0
"""Seconds between two progress lines when stderr is not a terminal."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 frame``, ``2 frames`` (``words``: an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def rate_text(frames: int, seconds: float) -> str:
    """A speed as people read it: ``12.3 fps``, or ``2.41 s/frame`` under one frame a second."""
    if not frames or seconds <= 0:
        return "no frames"
    fps = frames / seconds
    return f"{fps:.2f} fps" if fps >= 1 else f"{seconds / frames:.2f} s/frame"


def duration_text(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class LineProgress:
    """tqdm's ``update``/``close``/``n`` for a stderr that is not a terminal: a line every
    ``every`` seconds (``progress: <name> 120/2400 frames (5%), 2.41 s/frame, 1 h 31 min left``).
    ``initial``: frames done before (a resumed run): the rate and time left are this run's."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, every: float | None = None,
                 file=None):
        self.total, self.desc, self.n = total, desc, initial
        self.start_n = initial
        self.every = LINE_EVERY if every is None else every
        self.file = file or sys.stderr
        self.t0 = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now - self.t0), file=self.file, flush=True)

    def line(self, elapsed: float) -> str:
        done = self.n - self.start_n
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = f"progress: {self.desc} {self.n}{of} frames{pct}, {rate_text(done, elapsed)}"
        if self.total and done:
            text += f", {duration_text(elapsed / done * max(0, self.total - self.n))} left"
        return text

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, progress: bool | None, initial: int = 0):
    """A tqdm bar (``progress`` True, or None on a terminal), progress lines (None without a
    terminal), or nothing (False)."""
    from tqdm import tqdm

    if progress is None and not _is_terminal(sys.stderr):
        return LineProgress(total, desc, initial=initial)
    return tqdm(total=total, initial=initial, unit="frame", desc=desc, dynamic_ncols=True, leave=False,
                file=sys.stderr, disable=not progress if progress is not None else None)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
