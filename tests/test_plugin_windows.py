"""The native plugin builds for Windows: plugin.c cross-compiled with mingw-w64 into dlgsa.dll.

Proves that plugin.c has no POSIX-only calls left on _WIN32 (dlopen/dlsym/pthread are behind
#ifdef; Python is found with EnumProcessModules/GetProcAddress), that the DLL exports the one
entry point VapourSynth looks for, VapourSynthPluginInit2 (VS_EXTERNAL_API is __declspec(dllexport)
on Windows), and that it links neither Python nor VapourSynth nor mingw's libgcc DLL, so it loads
in any host. Nothing here runs the DLL (no Windows, no wine): setup.py's MSVC branch builds the same
source on Windows itself.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MINGW = "x86_64-w64-mingw32-gcc"
OBJDUMP = "x86_64-w64-mingw32-objdump"
SOURCE = ROOT / "dlgsa_vs" / "vapoursynth" / "plugin.c"


def vapoursynth_include() -> str:
    vs = pytest.importorskip("vapoursynth")
    return vs.get_include()


@pytest.fixture(scope="module")
def dll(tmp_path_factory) -> Path:
    if shutil.which(MINGW) is None or shutil.which(OBJDUMP) is None:
        pytest.skip(f"no mingw-w64 cross compiler ({MINGW} / {OBJDUMP}): apt-get install gcc-mingw-w64-x86-64 "
                    f"(.ci/run does, best-effort)")
    out = tmp_path_factory.mktemp("win") / "dlgsa.dll"
    # the flags setup.py uses for a mingw-w64 build on Windows, plus -Werror -Wextra
    res = subprocess.run([MINGW, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-static-libgcc",
                          f"-I{vapoursynth_include()}", '-DDLGSA_VS_VERSION="0.0.0-test"', str(SOURCE),
                          "-o", str(out), "-lpsapi"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return out


def objdump(dll: Path) -> str:
    return subprocess.run([OBJDUMP, "-p", str(dll)], capture_output=True, text=True, check=True).stdout


def test_plugin_c_cross_compiles_to_a_dll_exporting_the_vapoursynth_entry_point(dll):
    dump = objdump(dll)
    assert "file format pei-x86-64" in subprocess.run([OBJDUMP, "-f", str(dll)], capture_output=True,
                                                       text=True, check=True).stdout
    table = dump.split("[Ordinal/Name Pointer] Table", 1)
    assert len(table) == 2, "the DLL has no export table"
    exported = re.findall(r"^\s*\[\s*\d+\]\s+(\S+)", table[1].split("\n\n", 1)[0], flags=re.M)
    assert exported == ["VapourSynthPluginInit2"]


def test_the_dll_links_neither_python_nor_vapoursynth_nor_libgcc(dll):
    imports = sorted(name.lower() for name in re.findall(r"DLL Name: (\S+)", objdump(dll)))
    assert imports and all(name in {"kernel32.dll", "msvcrt.dll", "psapi.dll"} or
                           name.startswith("api-ms-win-") for name in imports), imports
    assert "python" not in " ".join(imports) and "vapoursynth" not in " ".join(imports)
