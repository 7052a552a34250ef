"""What the CPU can compute fast, and the precision the CPU backend therefore uses (issue #24).

bfloat16 is faster than fp32 on the CPU only where it has bf16 dot-product instructions:
AMX (``amx_bf16``, Intel Sapphire Rapids and later) or AVX512-BF16 (``avx512_bf16``, AMD Zen 4
and later, Intel Cooper Lake). Elsewhere oneDNN emulates bf16 and it is slower than fp32, so
``auto`` (no precision asked) picks bf16 only with one of those flags. Measured in
bench/README.md ("CPU precision").

Torch-free: ``cpu_flags`` reads /proc/cpuinfo on Linux and asks torch only elsewhere, lazily.
"""
from __future__ import annotations

import sys
from typing import Iterable

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""The CPU flags that make bf16 inference fast (native bf16 dot products)."""

_CAPABILITY_FLAGS = {  # torch.backends.cpu.get_cpu_capability() -> the flags it implies
    "AVX512_BF16": {"avx2", "avx512f", "avx512_bf16"},
    "AMX_BF16": {"avx2", "avx512f", "avx512_bf16", "amx_bf16"},
    "AVX512": {"avx2", "avx512f"},
    "AVX2": {"avx2"},
}


def _proc_cpuinfo_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):  # x86; ARM says Features
                return frozenset(value.split())
    return frozenset()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (``avx2``, ``avx512_bf16``, ``amx_bf16``, ...).

    On Linux from /proc/cpuinfo (the first processor's); elsewhere what torch's CPU capability
    implies (torch imported here, only then), or an empty set when neither says.
    """
    if sys.platform.startswith("linux"):
        try:
            return _proc_cpuinfo_flags()
        except OSError:
            pass
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except Exception:  # noqa: BLE001 - no torch, or too old to say: no flags known
        return frozenset()
    return frozenset(_CAPABILITY_FLAGS.get(capability, ()))


def cpu_model_name(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``platform.processor()`` where /proc/cpuinfo is absent)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_precision(requested: str | None, flags: Iterable[str] | None = None) -> tuple[str, str]:
    """The precision the CPU backend computes in, and why (a phrase for the log line).

    requested: the settings' precision (None = automatic). flags: the CPU's flags (default:
    ``cpu_flags()``). Automatic: bf16 where the CPU has ``amx_bf16`` or ``avx512_bf16``, fp32
    elsewhere. An explicit bf16 or fp32 is honoured (bf16 without those flags runs, emulated
    and slower). fp16 is fp32 on the CPU (no fast fp16 path; never an error).
    """
    flags = cpu_flags() if flags is None else frozenset(f.lower() for f in flags)
    native = [f for f in BF16_FLAGS if f in flags]
    if requested is None:
        if native:
            return "bf16", f"the CPU has {native[0]}"
        return "fp32", "the CPU has no amx_bf16 or avx512_bf16: bf16 would be slower"
    if requested == "bf16":
        if native:
            return "bf16", f"as asked; the CPU has {native[0]}"
        return "bf16", "as asked; the CPU has no amx_bf16 or avx512_bf16, so bf16 is emulated, slower than fp32"
    if requested == "fp32":
        return "fp32", "as asked"
    if requested == "fp16":
        return "fp32", "fp16 has no fast path on the CPU"
    raise ValueError(f"unknown precision {requested!r}: use fp16, bf16 or fp32")
