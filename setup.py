"""Builds the native VapourSynth plugin; everything else about the project is in setup.cfg.

``core.dlgsa.Upscale`` needs a native plugin in VapourSynth's autoload folder,
``<site-packages>/vapoursynth/plugins`` (VapourSynth has no Python API to add a namespace).
The ``build_vs_plugin`` step compiles ``dlgsa_vs/vapoursynth/plugin.c`` against the headers of
the vapoursynth package (``build-system.requires`` in pyproject.toml) and puts the library in its
own plugin folder, ``vapoursynth/plugins/dlgsa/`` relative to the wheel's root (which is where pip
installs it), next to a ``manifest.vs`` that names it: ``libdlgsa.so`` on Linux,
``libdlgsa.dylib`` on macOS, ``dlgsa.dll`` on Windows (MSVC, or mingw-w64 with libgcc linked
statically). VapourSynth R74 and later (the oldest core setup.cfg accepts) autoload plugins from
the sub-folders of the plugins folder, and a folder with a ``manifest.vs`` loads exactly the
libraries it lists (the R75+ plugin-folder convention; R74 reads it the same way). Cores before
R74 scan only the plugins root and would not autoload it (``core.std.LoadPlugin(path)`` would).

* ``pip install .`` / ``python -m build``: the library goes into ``build_lib``, hence the wheel.
* ``pip install -e .`` (PEP 660): setuptools builds the editable wheel from a folder that it
  passes to the ``install`` command as ``install_lib``; the library is written there, so pip
  installs a real copy into the plugins folder (a rebuild of plugin.c needs a reinstall; the
  Python side stays editable).

Either way pip records both files, and ``pip uninstall dlgsa-vs`` removes them. The plugin links
neither Python nor VapourSynth, so a C compiler and the headers are all it needs.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.dist import Distribution

PLUGIN_SOURCE = "dlgsa_vs/vapoursynth/plugin.c"
PLUGIN_NAME = {"win32": "dlgsa.dll", "darwin": "libdlgsa.dylib"}.get(sys.platform, "libdlgsa.so")
PLUGIN_FOLDER = Path("vapoursynth", "plugins", "dlgsa")  # relative to site-packages
PLUGIN_DEST = PLUGIN_FOLDER / PLUGIN_NAME
MANIFEST_DEST = PLUGIN_FOLDER / "manifest.vs"


def manifest_text(library_name: str = PLUGIN_NAME) -> str:
    """manifest.vs: the header, then each library's name without its extension (the core adds it)."""
    return f"[VapourSynth Manifest V1]\n{Path(library_name).stem}\n"


def vapoursynth_include() -> str:
    """The VapourSynth4.h folder of the vapoursynth package, found without importing the core."""
    spec = importlib.util.find_spec("vapoursynth")
    for location in (spec.submodule_search_locations or []) if spec else []:
        include = Path(location, "include")
        if (include / "VapourSynth4.h").is_file():
            return str(include)
    raise RuntimeError("building the dlgsa VapourSynth plugin needs the headers of the vapoursynth package "
                       "(vapoursynth.get_include()), but vapoursynth is not installed in the build "
                       "environment: pip installs it from pyproject.toml's build-system.requires; with "
                       "--no-build-isolation, pip install vapoursynth first")


class build_vs_plugin(Command):
    description = f"compile the dlgsa VapourSynth plugin ({PLUGIN_DEST})"
    user_options: list = []

    def initialize_options(self):
        self.build_lib = None
        self.build_temp = None
        self.editable_mode = False

    def finalize_options(self):
        self.set_undefined_options("build", ("build_lib", "build_lib"), ("build_temp", "build_temp"))

    def root(self) -> Path:
        if self.editable_mode:
            return Path(self.get_finalized_command("install").install_lib)
        return Path(self.build_lib)

    def target(self) -> Path:
        return self.root() / PLUGIN_DEST

    def run(self):
        import setuptools  # noqa: F401  (provides distutils on Python >= 3.12)
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler

        target = self.target()
        target.parent.mkdir(parents=True, exist_ok=True)
        cc = new_compiler(force=True)
        customize_compiler(cc)
        version = self.distribution.get_version()
        if cc.compiler_type == "msvc":
            compile_args, link_args = ["/O2", "/W3"], []
        else:  # gcc or clang, mingw-w64 included
            compile_args = ["-std=gnu11", "-O2", "-Wall"]
            if sys.platform != "win32":
                compile_args.append("-fvisibility=hidden")  # a DLL exports only its dllexport symbols
            # mingw-w64: no dependency on libgcc_s_seh-1.dll (thread-local storage goes through libgcc)
            link_args = ["-static-libgcc"] if sys.platform == "win32" else []
        if sys.platform.startswith("linux"):
            libraries = ["dl", "pthread"]
        elif sys.platform == "win32":
            libraries = ["psapi"]  # EnumProcessModules (kernel32's K32EnumProcessModules on Windows 7+)
        else:
            libraries = []
        objects = cc.compile([PLUGIN_SOURCE], output_dir=self.build_temp, include_dirs=[vapoursynth_include()],
                             macros=[("DLGSA_VS_VERSION", f'"{version}"')], extra_postargs=compile_args)
        cc.link_shared_object(objects, str(target), libraries=libraries, extra_postargs=link_args)
        with open(self.root() / MANIFEST_DEST, "w", encoding="ascii", newline="\n") as f:
            f.write(manifest_text())

    def get_source_files(self) -> list[str]:
        return [PLUGIN_SOURCE]

    def get_outputs(self) -> list[str]:
        return [str(self.target()), str(self.root() / MANIFEST_DEST)]

    def get_output_mapping(self) -> dict[str, str]:
        return {}


class build_with_plugin(build):
    sub_commands = build.sub_commands + [("build_vs_plugin", None)]


class BinaryDistribution(Distribution):
    """The wheel carries a native library: make it platform-specific (and installed to platlib)."""

    def has_ext_modules(self) -> bool:
        return True


setup(distclass=BinaryDistribution, cmdclass={"build": build_with_plugin, "build_vs_plugin": build_vs_plugin})
