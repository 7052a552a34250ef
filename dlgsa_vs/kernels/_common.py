"""What the kernel modules and the package's selection code share (no torch, no triton)."""
from __future__ import annotations

import os


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def tlc_window_starts(length: int, k: int) -> list[int]:
    """``arch.tlc.window_starts`` in Python integers (kernels do not import the network; a
    test holds the two equal): the authors' placement of windows of side ``k`` on a length
    ``>= k``, a single window listed twice."""
    n_planned = (length - 1) // k + 1
    span = length - k
    step = max(-(-span // max(n_planned - 1, 1)), 1)
    n = -(-span // step) + 1
    return [min(m * step, span) for m in range(max(n, 2))]
