"""DLGSANet as a vs-jetpack (vsscale / vskernels) scaler: ``DLGSA().scale(clip, 3840, 2160)``.

``DLGSA`` is a ``vsscale.BaseGenericScaler``, so it goes wherever vs-jetpack takes a
``ScalerLike`` (``Scaler.ensure_obj(DLGSA(...))``, ``ClampScaler(DLGSA(), ...)``, the
``upscaler=`` of vsscale's helpers, or the name ``"DLGSA"`` once this module is imported)::

    from vskernels import Hermite
    from dlgsa_vs.vsscale import DLGSA

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

import os
from typing import Any

import vapoursynth as vs

try:
    from vskernels import Catrom, KernelLike, Scaler, ScalerLike
    from vsscale import BaseGenericScaler
except ImportError as exc:  # one line that says what to install
    raise ImportError(f"dlgsa_vs.vsscale needs vs-jetpack ({exc}): pip install 'dlgsa-vs[vsjetpack]'") from None

from .arch.variants import SCALES
from .packaged import MODELS, VIDEO_DEFAULT_MODEL, default_for, packaged_file
from .vapoursynth import upscale

__all__ = ["DLGSA"]

PREFIX = "DLGSA.scale: "

# the filter's keyword parameters that DLGSA holds as fields and passes on unchanged
FILTER_OPTIONS = ("scale", "variant", "model_path", "backend", "device_index", "fp16", "tile_w",
                  "tile_h", "tile_pad", "batch", "num_streams", "tlc", "kernels", "matrix",
                  "transfer", "primaries", "range", "reuse", "reuse_tolerance", "reuse_cache_mib")


class DLGSA(BaseGenericScaler):
    """DLGSANet super-resolution as a vsscale scaler (see the module docstring).

    The filter's options are fields, passed to ``dlgsa_vs.upscale`` as they are (None: the
    filter's default; docs/vapoursynth.md, "Parameters"): ``scale`` (None: chosen per target),
    ``variant``, ``model_path``, ``backend``, ``device_index``, ``fp16``, ``tile_w``, ``tile_h``,
    ``tile_pad``, ``batch``, ``num_streams``, ``tlc``, ``kernels``, ``matrix``, ``transfer``,
    ``primaries``, ``range``, ``reuse``, ``reuse_tolerance``, ``reuse_cache_mib``. ``kernel`` / ``scaler`` / ``shifter`` as in vsscale's
    ``BaseGenericScaler``: ``scaler`` (default ``kernel``, Catrom) makes the final resample.
    """

    def __init__(
        self,
        scale: int | None = None,
        variant: str | None = None,
        model_path: str | os.PathLike | None = None,
        backend: str | None = None,
        device_index: int | None = None,
        fp16: bool | None = None,
        tile_w: int | None = None,
        tile_h: int | None = None,
        tile_pad: int | None = None,
        batch: int | None = None,
        num_streams: int | None = None,
        tlc: bool | None = None,
        kernels: str | None = None,
        matrix: int | None = None,
        transfer: int | None = None,
        primaries: int | None = None,
        range: int | None = None,  # noqa: A002 - the filter's (VapourSynth's) name
        reuse: str | None = None,
        reuse_tolerance: int | None = None,
        reuse_cache_mib: int | None = None,
        *,
        kernel: KernelLike = Catrom,
        scaler: ScalerLike | None = None,
        shifter: KernelLike | None = None,
        **kwargs: Any,
    ) -> None:
        self.scale_factor = scale  # not ``self.scale``: that is the method
        self.variant = variant
        self.model_path = model_path
        self.backend = backend
        self.device_index = device_index
        self.fp16 = fp16
        self.tile_w, self.tile_h, self.tile_pad = tile_w, tile_h, tile_pad
        self.batch, self.num_streams = batch, num_streams
        self.tlc, self.kernels = tlc, kernels
        self.matrix, self.transfer, self.primaries, self.range = matrix, transfer, primaries, range
        self.reuse, self.reuse_tolerance, self.reuse_cache_mib = reuse, reuse_tolerance, reuse_cache_mib
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
        values = dict(scale=self.scale_factor, variant=self.variant, model_path=self.model_path,
                      backend=self.backend, device_index=self.device_index, fp16=self.fp16,
                      tile_w=self.tile_w, tile_h=self.tile_h, tile_pad=self.tile_pad, batch=self.batch,
                      num_streams=self.num_streams, tlc=self.tlc, kernels=self.kernels,
                      matrix=self.matrix, transfer=self.transfer, primaries=self.primaries,
                      range=self.range, reuse=self.reuse, reuse_tolerance=self.reuse_tolerance,
                      reuse_cache_mib=self.reuse_cache_mib)
        return {k: v for k, v in values.items() if v is not None}

    def factor_for(self, clip: vs.VideoNode, width: int, height: int) -> int | None:
        """The network factor for a ``clip.width`` x ``clip.height`` -> ``width`` x ``height``
        scale: the smallest of x2 / x3 / x4 with packaged weights that reaches both sides
        (x4 beyond that); ``None`` when the ``scale`` field or a ``model_path`` fixes it."""
        if self.scale_factor is not None or self.model_path is not None:
            return None
        need = max(width / clip.width, height / clip.height)
        if self.variant in MODELS:
            available = [s for s in SCALES if packaged_file(self.variant, s).is_file()]
        elif self.variant is None:  # the filter's default: light-video, light where it has none
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
