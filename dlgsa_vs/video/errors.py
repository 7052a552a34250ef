"""The exceptions of the video front end: a reason that fits on one line."""
from __future__ import annotations


class VideoError(Exception):
    """A problem with the input, the options or the output, told in one line.

    ``code`` is the exit status the command line uses for it (1: the run failed,
    2: the options or the input file are not usable).
    """

    def __init__(self, message: str, code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.code = code


class DamagedInput(VideoError):
    """A segment of the input could not be decoded whole (damaged data). A segmented run
    cannot account for such a file frame by frame; the one-pass run can (exit 3)."""


class Interrupted(Exception):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name
