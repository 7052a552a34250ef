"""Kernel launches as plans: what a wrapper will launch, checkable before it runs (no triton).

Planning is separate from launching so that the grids and the specializations the wrappers
choose can be checked, and compiled for a GPU (``compile_check.py``), from meta tensors
(shapes without storage: a 4K frame costs nothing) on a machine without one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# CUDA's limits on a launch grid: x up to 2**31 - 1 programs, y and z up to 65535.
GRID_X_MAX = 2**31 - 1
GRID_YZ_MAX = 65535
# The kernels compute offsets inside one H x W plane in int32 (the cheap path) and offsets of
# planes (batch, channel, tap) in int64, so one plane must hold fewer than 2**31 elements.
PLANE_MAX = 2**31 - 1


@dataclass(frozen=True)
class Launch:
    """One kernel launch: the kernel, its grid, its runtime arguments (tensors and ints, in
    the kernel's parameter order) and its constexprs. Construction checks the grid."""

    kernel: Any  # a triton JITFunction (or the interpreter's stand-in)
    grid: tuple[int, int, int]
    args: tuple
    constexprs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x, y, z = self.grid
        if x > GRID_X_MAX or y > GRID_YZ_MAX or z > GRID_YZ_MAX:
            raise ValueError(f"{self.name}: grid {self.grid} exceeds CUDA's limits "
                             f"({GRID_X_MAX}, {GRID_YZ_MAX}, {GRID_YZ_MAX})")

    @property
    def name(self) -> str:
        return getattr(self.kernel, "__name__", None) or getattr(getattr(self.kernel, "fn", None),
                                                                  "__name__", "kernel")

    def __call__(self) -> None:
        if min(self.grid) > 0:  # an empty map: nothing to compute
            self.kernel[self.grid](*self.args, **self.constexprs)


def check_plane(h: int, w: int, what: str) -> None:
    """Raise where an H x W plane is too large for the kernels' int32 in-plane offsets."""
    if h * w > PLANE_MAX:
        raise ValueError(f"{what}: a {h}x{w} plane has more than 2**31 - 1 elements")
