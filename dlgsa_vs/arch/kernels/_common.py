"""What the kernel modules and the package's selection code share (no torch, no triton)."""
from __future__ import annotations

import os

from ..tlc_grid import tlc_window_starts  # noqa: F401 (the kernels' window layout)


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"

