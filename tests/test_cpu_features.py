"""The CPU precision decision (dlgsa_vs.runtime.cpu_features), on fake flag sets and on this machine's flags."""
from __future__ import annotations

import sys

import pytest

from dlgsa_vs.runtime.cpu_features import BF16_FLAGS, _proc_cpuinfo_flags, cpu_flags, cpu_model_name, cpu_precision

ZEN4 = {"sse2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
AMX_ONLY = {"avx2", "amx_bf16"}
SKYLAKE = {"sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}
HASWELL = {"sse2", "avx2", "fma"}
ARM = {"fp", "asimd", "bf16", "sve"}  # ARM's "bf16" is not an x86 bf16 dot-product flag we trust


@pytest.mark.parametrize("flags, native", [(ZEN4, "avx512_bf16"), (SAPPHIRE_RAPIDS, "amx_bf16"),
                                           (AMX_ONLY, "amx_bf16")])
def test_auto_is_bf16_only_with_native_bf16(flags, native):
    precision, reason = cpu_precision(None, flags)
    assert precision == "bf16"
    assert reason == f"the CPU has {native}"


@pytest.mark.parametrize("flags", [SKYLAKE, HASWELL, ARM, set()])
def test_auto_is_fp32_elsewhere(flags):
    precision, reason = cpu_precision(None, flags)
    assert precision == "fp32"
    assert "no amx_bf16 or avx512_bf16" in reason


def test_flags_are_matched_case_insensitively():
    assert cpu_precision(None, {"AVX512_BF16"})[0] == "bf16"


@pytest.mark.parametrize("flags", [ZEN4, HASWELL])
def test_explicit_requests_are_honoured(flags):
    assert cpu_precision("fp32", flags) == ("fp32", "as asked")
    precision, reason = cpu_precision("bf16", flags)
    assert precision == "bf16"
    assert ("emulated" in reason) == (flags is HASWELL)
    precision, reason = cpu_precision("fp16", flags)
    assert precision == "fp32" and "fp16" in reason


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="fp8"):
        cpu_precision("fp8", ZEN4)


def test_cpuinfo_parsing(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                    "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert _proc_cpuinfo_flags(str(info)) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_model_name(str(info)) == "Test CPU 9000"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert _proc_cpuinfo_flags(str(arm)) == {"fp", "asimd", "bf16"}
    assert _proc_cpuinfo_flags(str(tmp_path / "cpuinfo")) != _proc_cpuinfo_flags(str(arm))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/cpuinfo is Linux's")
def test_real_flags_parse_and_agree_with_torch():
    flags = cpu_flags()
    assert flags, "no flags read from /proc/cpuinfo"
    assert all(f == f.lower() and " " not in f for f in flags)
    torch = pytest.importorskip("torch")
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if capability.startswith("AVX512"):
        assert "avx512f" in flags
    if capability.startswith(("AVX2", "AVX512")):
        assert "avx2" in flags
    precision, reason = cpu_precision(None)
    assert precision == ("bf16" if any(f in flags for f in BF16_FLAGS) else "fp32")
    assert cpu_model_name()
