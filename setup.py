"""Builds the native VapourSynth plugin; everything else about the project is in setup.cfg.

``core.dlgsa.Upscale`` needs a native plugin in VapourSynth's autoload folder,
``<site-packages>/vapoursynth/plugins`` (VapourSynth has no Python API to add a namespace).
The ``build_vs_plugin`` step compiles ``dlgsa_vs/vapoursynth/plugin.c`` against the headers of
the vapoursynth package (``build-system.requires`` in pyproject.toml) and puts the library at
``vapoursynth/plugins/libdlgsa.so`` relative to the wheel's root, which is where pip installs it,
like vapoursynth-bestsource's wheel does:

* ``pip install .`` / ``python -m build``: the library goes into ``build_lib``, hence the wheel.
* ``pip install -e .`` (PEP 660): setuptools builds the editable wheel from a folder that it
  passes to the ``install`` command as ``install_lib``; the library is written there, so pip
  installs a real copy into the plugins folder (a rebuild of plugin.c needs a reinstall; the
  Python side stays editable).

Either way pip records the file, and ``pip uninstall dlgsa-vs`` removes it. The plugin links
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
PLUGIN_NAME = "libdlgsa.dylib" if sys.platform == "darwin" else "libdlgsa.so"
PLUGIN_DEST = Path("vapoursynth", "plugins", PLUGIN_NAME)  # relative to site-packages


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

    def target(self) -> Path:
        if self.editable_mode:
            return Path(self.get_finalized_command("install").install_lib, PLUGIN_DEST)
        return Path(self.build_lib, PLUGIN_DEST)

    def run(self):
        if sys.platform == "win32":
            self.warn("the dlgsa VapourSynth plugin is not built on Windows: use dlgsa_vs.upscale(clip) in scripts")
            return
        import setuptools  # noqa: F401  (provides distutils on Python >= 3.12)
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler

        target = self.target()
        target.parent.mkdir(parents=True, exist_ok=True)
        cc = new_compiler(force=True)
        customize_compiler(cc)
        version = self.distribution.get_version()
        objects = cc.compile([PLUGIN_SOURCE], output_dir=self.build_temp, include_dirs=[vapoursynth_include()],
                             macros=[("DLGSA_VS_VERSION", f'"{version}"')],
                             extra_postargs=["-std=gnu11", "-O2", "-fvisibility=hidden", "-Wall"])
        libraries = ["dl", "pthread"] if sys.platform.startswith("linux") else []
        cc.link_shared_object(objects, str(target), libraries=libraries)

    def get_source_files(self) -> list[str]:
        return [PLUGIN_SOURCE]

    def get_outputs(self) -> list[str]:
        return [] if sys.platform == "win32" else [str(self.target())]

    def get_output_mapping(self) -> dict[str, str]:
        return {}


class build_with_plugin(build):
    sub_commands = build.sub_commands + [("build_vs_plugin", None)]


class BinaryDistribution(Distribution):
    """The wheel carries a native library: make it platform-specific (and installed to platlib)."""

    def has_ext_modules(self) -> bool:
        return True


setup(distclass=BinaryDistribution, cmdclass={"build": build_with_plugin, "build_vs_plugin": build_vs_plugin})
