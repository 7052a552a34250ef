"""Where TLC places its windows along one axis, in Python integers (no torch).

The tile layouts (``tiling``, ``arch.tlc.crop_windows``), the Triton kernels and the
benchmarks need the window starts as plain numbers; ``arch.tlc.window_starts`` is the same
rule in tensor arithmetic that stays symbolic under torch.export (``tests/test_triton_kernels``
holds the two equal). A leaf that imports nothing: the kernels, the network and the
runtime's tile layouts all read it without torch's symbolic arithmetic.
"""
from __future__ import annotations


def tlc_window_starts(length: int, k: int) -> list[int]:
    """The authors' placement of TLC windows of side ``k`` on an axis of ``length >= k``:
    evenly spread, the last one flush with the end; a single window is listed twice."""
    n_planned = (length - 1) // k + 1
    span = length - k
    step = max(-(-span // max(n_planned - 1, 1)), 1)
    n = -(-span // step) + 1
    return [min(m * step, span) for m in range(max(n, 2))]
