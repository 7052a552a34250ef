"""TensorRT engines of DLGSANet (through torch-tensorrt) and their cache (ONNX export is
``dlgsa_vs.runtime.export``).

What the backends call:

- ``trt_available(device_index=None) -> (bool, reason)``: never raises.
- ``engine_for(model, precision=, batch=, height=, width= | shapes=, device=) -> TrtEngine``:
  the cached engine as a function of (N, 3, H, W) frames; builds it on first use.

Commands (in ``dlgsa_vs.cli``): ``dlgsa-build-engine`` (``cli/build_engine.py``) and ``dlgsa-export-onnx``
(``cli/export_onnx.py``); size presets: ``profiles`` (``profiles.toml``).
Modules: ``cache`` (keys and the on-disk cache), ``program`` (the exported graph),
``engine`` (build, load, run). Names are imported lazily, so ``import dlgsa_vs.runtime.trt`` costs
nothing and never imports TensorRT.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "EngineCache": "cache", "EngineKey": "cache", "CacheEntry": "cache", "EngineCacheError": "cache",
    "EngineCacheWarning": "cache", "default_cache_dir": "cache",
    "runtime_versions": "cache",
    "TrtProgram": "program", "trt_program": "program", "graph_inputs": "program",
    "TensorRTUnavailable": "engine", "TrtEngine": "engine", "trt_available": "engine",
    "require_tensorrt": "engine", "engine_key": "engine", "engine_for": "engine", "build_engine": "engine",
    "load_engine": "engine", "load_program": "engine", "PRECISION_DTYPES": "engine",
    "EngineDtypeError": "engine", "compile_options": "engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
