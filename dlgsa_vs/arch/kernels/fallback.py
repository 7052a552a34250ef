"""The first-call check of the fused kernels, and the fallback to the torch forms (no triton).

A Triton kernel that has only run under the interpreter may fail on a real GPU: it does not
compile for that card, the launch fails, or it computes wrong numbers. None of that may stop
a video half-way. So the first call per *key* (kernel, dtype, device and the shape class:
the sizes the kernel is specialized on, see :func:`shape_class`) runs the kernel and the
plain-PyTorch reference on the same input and compares them with a tolerance for the dtype.
An exception or a mismatch marks that key bad: one warning line (the first bad key of each
kernel; later ones go to the log), and the torch form from then on. A key that passed runs
the kernel alone: after its first call the check costs one dict lookup.

Under ``torch.compile`` / AOT tracing (fake tensors) no check runs: a traced graph cannot
branch on numbers; a key known bad still gives the torch form. Out-of-memory errors are not
kernel failures: they propagate (the inference core shrinks its tiles on them).
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from typing import Callable, Hashable

import torch

log = logging.getLogger("dlgsa_vs.arch.kernels")

# max |kernel - reference| allowed, relative to max(1, max |reference|): fp32 is exact up to
# summation order; fp16 / bf16 inputs and outputs round at 2**-11 / 2**-8 of the magnitude,
# and the reference computes in fp32 from the same rounded inputs.
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6, torch.float16: 2e-2, torch.bfloat16: 6e-2}


class KernelMismatch(RuntimeError):
    """The kernel ran but its output differs from the reference (strict mode raises it)."""


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE.get(dtype, 1e-3)


def shape_class(*sizes: int) -> tuple[int, ...]:
    """What Triton specializes an integer argument on: 1, a multiple of 16, or anything else
    (and int64 past 2**31). Map sizes that differ only otherwise share one compiled kernel,
    hence one check."""
    return tuple(1 if s == 1 else -1 if s >= 2**31 else 16 if s % 16 == 0 else 0 for s in sizes)


def traced(*tensors: torch.Tensor) -> bool:
    """True under torch.compile / export / AOT tracing, where tensors are fake."""
    if torch.compiler.is_compiling():
        return True
    from torch._subclasses.fake_tensor import is_fake

    return any(isinstance(t, torch.Tensor) and is_fake(t) for t in tensors)


def max_error(out, ref) -> tuple[float, float]:
    """(max |out - ref|, max |ref|) over every tensor of the two (tuples allowed); NaN or inf
    where the reference is finite counts as an infinite error."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    refs = ref if isinstance(ref, (tuple, list)) else (ref,)
    if len(outs) != len(refs):
        return math.inf, 0.0
    err, scale = 0.0, 0.0
    for o, r in zip(outs, refs):
        if o is None and r is None:  # a gradient asked of neither
            continue
        if o is None or r is None or o.shape != r.shape:
            return math.inf, 0.0
        o, r = o.detach().float(), r.detach().float()
        finite = torch.isfinite(r)
        if not torch.equal(torch.isfinite(o), finite):
            return math.inf, 0.0
        if finite.any():
            err = max(err, (o - r)[finite].abs().max().item())
            scale = max(scale, r[finite].abs().max().item())
    return err, scale


class KernelGuard:
    """Verdicts per key, and the checked call. ``strict``: raise failures and mismatches
    (tests, benchmarks) instead of falling back."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.verdicts: dict[Hashable, bool] = {}
        self.warned: set[str] = set()

    def forget(self) -> None:
        """Check every key again at its next call (and warn again)."""
        self.verdicts.clear()
        self.warned.clear()

    def bad(self, name: str) -> list[Hashable]:
        return [k for k, ok in self.verdicts.items() if not ok and k[0] == name]

    def run(self, name: str, key: Callable[[], tuple], kernel: Callable[[], object],
            reference: Callable[[], object], dtype: torch.dtype, tensors: tuple = (),
            fallback: Callable[[], object] | None = None):
        """The kernel's result where it is trusted, else ``fallback()`` (None if not given:
        the caller runs its own torch form). ``key()``: the shape class (built only outside
        tracing, where sizes may be symbolic); ``reference()`` computes the same in torch, for
        the first call's comparison; ``tensors``: the inputs (to tell tracing apart)."""
        if traced(*tensors):  # no numbers to compare; a kernel known bad still gives way
            if self.bad(name):
                return fallback() if fallback else None
            return kernel()
        key = (name, *key())
        verdict = self.verdicts.get(key)
        if verdict is False:
            return fallback() if fallback else None
        if verdict is True:
            try:
                return kernel()
            except torch.OutOfMemoryError:
                raise
            except Exception as e:
                if self.strict:
                    raise
                return self._fail(name, key, f"{type(e).__name__}: {_first_line(e)}", fallback)
        try:
            out = kernel()
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # a compile error, a launch failure, a shape it rejects ...
            if self.strict:
                raise
            return self._fail(name, key, f"{type(e).__name__}: {_first_line(e)}", fallback)
        with torch.no_grad():
            ref = reference()
        err, scale = max_error(out, ref)
        limit = tolerance(dtype) * max(1.0, scale)
        if not err <= limit:
            detail = f"differs from the torch form by {err:.3g} (allowed {limit:.3g})"
            if self.strict:
                raise KernelMismatch(f"dlgsa: triton kernel {name} {detail}")
            return self._fail(name, key, detail, fallback, ref if fallback else None)
        self.verdicts[key] = True
        log.debug("triton kernel %s checked for %s: max error %.3g", name, key[1:], err)
        return out

    def _fail(self, name: str, key: tuple, detail: str, fallback, ref=None):
        self.verdicts[key] = False
        msg = (f"dlgsa: triton kernel {name} failed its first-call check ({detail}) for "
               f"{_describe(key[1:])}; using the torch form for it from now on")
        if name in self.warned:
            log.info(msg)
        else:
            self.warned.add(name)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
        if fallback is None:
            return None
        return ref if ref is not None else fallback()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def _describe(key: tuple) -> str:
    return ", ".join(str(k).removeprefix("torch.") for k in key)


# The one guard of the package (``kernels.GUARD``); ``DLGSA_KERNELS_STRICT=1`` makes it strict.
GUARD = KernelGuard(strict=os.environ.get("DLGSA_KERNELS_STRICT") == "1")
