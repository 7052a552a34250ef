"""dlgsa-vs: video super-resolution with DLGSANet for VapourSynth, the shell and TensorRT.

The package by role (docs/architecture.md): ``arch`` (the network and its kernels),
``runtime`` (options, run plan, runners, weights, exports), ``image``, ``train``, ``video`` /
``segments`` / ``cluster`` (the media pipeline), and the front ends ``cli``, ``vapoursynth``
and ``integrations``. Scripts written against the earlier flat layout keep working: the
old module names (``dlgsa_vs.backends``, ``dlgsa_vs.vsscale``, ...) are the same modules
under their new names (``MOVED``).
"""
import importlib
import importlib.abc
import importlib.util
import sys

from ._version import __version__  # noqa: F401

MOVED = {  # the flat layout's module names -> where they are now
    "kernels": "arch.kernels", "forms": "arch.forms", "tlc_grid": "arch.tlc_grid",
    **{name: f"runtime.{name}" for name in ("settings", "run_plan", "backends", "inference", "tiling", "weights",
                                             "packaged", "cpu_runner", "cpu_features", "export", "trt")},
    "imageio": "image.imageio", "imresize": "image.imresize",
    "training": "train.loop", "degrade": "train.degrade", "evaluate": "train.evaluate", "metrics": "train.metrics",
    "vsscale": "integrations.vsscale", "spandrel_arch": "integrations.spandrel_arch",
}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``dlgsa_vs.<old name>[.sub]`` as the module it now is (one module object, two names)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, rest = fullname.partition(".")
        if package != __name__ or rest.partition(".")[0] not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        head, _, tail = spec.name.partition(".")[2].partition(".")
        module = importlib.import_module(f"{__name__}.{MOVED[head]}" + (f".{tail}" if tail else ""))
        spec.loader_state = module.__spec__  # importlib sets the alias's spec on it: put it back after
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # already imported under its own name


sys.meta_path.insert(0, _Moved())  # before the path finder, which would load a sub-module twice


def __getattr__(name: str):
    # lazy, so that `import dlgsa_vs` imports neither VapourSynth nor torch
    if name == "upscale":
        from .vapoursynth import upscale

        return upscale
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
