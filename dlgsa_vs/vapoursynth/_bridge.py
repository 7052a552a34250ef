"""Where the native plugin (plugin.c) hands ``core.dlgsa.Upscale`` calls to Python.

``forward()`` is called (with the GIL) by the plugin's ``Upscale`` while its call is pending on
this thread; it passes ``_impl`` to ``core.dlgsa.InternalBridge`` on the current environment's
core, and the plugin then runs ``_impl`` on the pending call's arguments, writing the clip into
the pending call's result. Errors travel back as a string, so scripts see exactly the filter's
message (VapourSynth would otherwise report a Python traceback).
"""
from __future__ import annotations

import os
import sys
import threading
import traceback

import vapoursynth as vs

_state = threading.local()


def _impl(**kwargs):
    try:
        from .filter import upscale

        args = {k: os.fsdecode(v) if isinstance(v, bytes) else v for k, v in kwargs.items()}
        return {"clip": upscale(**args)}
    except vs.Error as exc:
        _state.error = str(exc)
    except Exception as exc:  # a bug: keep the traceback, on stderr (stdout may carry the video)
        traceback.print_exc(file=sys.stderr)
        _state.error = f"dlgsa.Upscale: unexpected {type(exc).__name__}: {exc} (traceback on stderr)"
    return {}


def forward() -> str | None:
    """Run the pending ``dlgsa.Upscale`` call; returns None, or the error message."""
    _state.error = None
    try:
        core = vs.core
    except Exception as exc:
        return f"dlgsa.Upscale: there is no current VapourSynth environment in Python: {exc}"
    try:
        core.dlgsa.InternalBridge(impl=_impl)
    except vs.Error as exc:
        return str(exc)
    return _state.error
