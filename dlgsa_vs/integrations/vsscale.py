"""DLGSANet as a vs-jetpack (vsscale / vskernels) scaler: ``DLGSA().scale(clip, 3840, 2160)``.

``DLGSA`` is a ``vsscale.BaseGenericScaler``, so it goes wherever vs-jetpack takes a
``ScalerLike`` (``Scaler.ensure_obj(DLGSA(...))``, ``ClampScaler(DLGSA(), ...)``, the
``upscaler=`` of vsscale's helpers, or the name ``"DLGSA"`` once this module is imported)::

    from vskernels import Hermite
    from dlgsa_vs.integrations.vsscale import DLGSA

    out = DLGSA().scale(clip, 3840, 2160)                       # 1080p -> x2 network -> exact size
    out = DLGSA(variant="light", tile_w=256, kernel=Hermite(linear=True)).scale(clip, 2880, 1620)

``scale(clip, width, height, shift)`` runs our VapourSynth filter (``dlgsa_vs.upscale``, the
same code as ``core.dlgsa.Upscale``) by the smallest of x2 / x3 / x4 that reaches the target
(whose weights are packaged for the chosen ``variant``; a ``scale`` or ``model_path`` field
fixes the factor instead), then resamples that to exactly ``width`` x ``height`` with the
``scaler`` (default: ``kernel``, default Catrom, as vsscale's own network scalers). A target
beyond x4 is reached by the x4 network and the kernel; the network always runs, also for a
target no larger than the clip (as vsscale's network scalers do). Every clip format the filter
takes works (GRAY, YUV, RGB; integer or float), and the result has the clip's format.

``shift`` (top, left) is in pixels of the input clip, as in ``vskernels.Scaler.scale``: the
result is positioned like ``Catrom().scale(clip, width, height, shift)``. The network's output
is centre-aligned with its input (pixel shuffle, trained on MATLAB-bicubic pairs), so the shift
is applied by the resampler, scaled by the network's factor. (vsscale's ``_finish_scale``, which
its ONNX scalers use, instead shifts the finished clip by ``shift`` output pixels.)
"""
from __future__ import annotations

from typing import Any

import vapoursynth as vs

try:
    from vskernels import Catrom, KernelLike, Scaler, ScalerLike
    from vsscale import BaseGenericScaler
except ImportError as exc:  # one line that says what to install
    raise ImportError(f"dlgsa_vs.integrations.vsscale needs vs-jetpack ({exc}): pip install 'dlgsa-vs[vsjetpack]'") from None

from ..arch.variants import SCALES
from ..runtime.packaged import MODELS, VIDEO_DEFAULT_MODEL, default_for, packaged_file
from ..vapoursynth import SIGNATURE, upscale

__all__ = ["DLGSA"]

PREFIX = "DLGSA.scale: "

FILTER_OPTIONS = tuple(name for name in SIGNATURE.parameters if name != "clip")
"""The filter's keyword parameters (the option table's, ``vapoursynth.filter.SIGNATURE``), which
DLGSA takes as keywords and passes on unchanged."""


class DLGSA(BaseGenericScaler):
    """DLGSANet super-resolution as a vsscale scaler (see the module docstring).

    Every keyword of the filter (``FILTER_OPTIONS``: ``scale``, ``variant``, ``model_path``,
    ``backend``, ``precision``, ``tile_w``, ... and the colour description; docs/vapoursynth.md,
    "Parameters") is taken by name and passed to ``dlgsa_vs.upscale`` as it is (None or left out:
    the filter's default); ``scale`` None: chosen per target. ``kernel`` / ``scaler`` /
    ``shifter`` as in vsscale's ``BaseGenericScaler``: ``scaler`` (default ``kernel``, Catrom)
    makes the final resample.
    """

    def __init__(self, *, kernel: KernelLike = Catrom, scaler: ScalerLike | None = None,
                 shifter: KernelLike | None = None, **kwargs: Any) -> None:
        self.options = {name: kwargs.pop(name) for name in FILTER_OPTIONS if name in kwargs}
        super().__init__(kernel=kernel, scaler=scaler, shifter=shifter, **kwargs)

    @Scaler.cachedproperty
    def kernel_radius(self) -> int:
        """The final resampler's radius (vs-jetpack pads with it around crops)."""
        return self.scaler.kernel_radius

    def _pretty_string(self, **attrs: Any) -> str:
        # vskernels prints the constructor's kwargs only; show the filter options as well
        return super()._pretty_string(**(self.filter_options() | attrs))

    def filter_options(self) -> dict[str, Any]:
        """The keywords given to ``dlgsa_vs.upscale`` (those left None take its defaults)."""
        return {k: v for k, v in self.options.items() if v is not None}

    def factor_for(self, clip: vs.VideoNode, width: int, height: int) -> int | None:
        """The network factor for a ``clip.width`` x ``clip.height`` -> ``width`` x ``height``
        scale: the smallest of x2 / x3 / x4 with packaged weights that reaches both sides
        (x4 beyond that); ``None`` when the ``scale`` field or a ``model_path`` fixes it."""
        options = self.filter_options()
        if "scale" in options or "model_path" in options:
            return None
        need = max(width / clip.width, height / clip.height)
        variant = options.get("variant")
        if variant in MODELS:
            available = [s for s in SCALES if packaged_file(variant, s).is_file()]
        elif variant is None:  # the filter's default: light-video, light where it has none
            available = [s for s in SCALES if packaged_file(default_for(VIDEO_DEFAULT_MODEL, s), s).is_file()]
        else:
            available = []
        available = available or list(SCALES)  # nothing packaged: the filter says what is missing
        return next((s for s in available if s >= need - 1e-9), available[-1])

    def scale(
        self,
        clip: vs.VideoNode,
        width: int | None = None,
        height: int | None = None,
        shift: tuple[float, float] = (0, 0),
        **kwargs: Any,
    ) -> vs.VideoNode:
        """``clip`` upscaled by the network and resampled to ``width`` x ``height`` (default: the
        clip's size), positioned by ``shift`` (top, left; input pixels); ``kwargs`` go to the
        final resampler (e.g. ``format=``)."""
        if (not isinstance(clip, vs.VideoNode) or clip.format is None or clip.width == 0 or clip.height == 0
                or clip.format.color_family == vs.UNDEFINED):
            upscale(clip, **self.filter_options())  # raises the filter's one-line error for such a clip
            raise vs.Error(f"{PREFIX}clip must be a constant-format, constant-size video clip")
        width, height = self._wh_norm(clip, width, height)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise vs.Error(f"{PREFIX}{name}={value!r} is invalid: pass a positive integer "
                               f"(the output size in pixels), or None for the clip's")
        if len(shift) != 2:
            raise vs.Error(f"{PREFIX}shift={shift!r} is invalid: pass (top, left) in input pixels")

        options = self.filter_options()
        factor = self.factor_for(clip, width, height)
        if factor is not None:
            options["scale"] = factor
        sr = upscale(clip, **options)
        s = sr.width // clip.width  # the model file's factor when model_path chose it
        if (sr.width, sr.height) == (width, height) and not any(shift) and not kwargs:
            return sr
        return self.scaler.scale(sr, width, height, (shift[0] * s, shift[1] * s), **kwargs)
