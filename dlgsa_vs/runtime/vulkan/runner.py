"""The vulkan backend's network: (N, 3, H, W) float frames -> (N, 3, sH, sW) float32, on the CPU
side, computed by ncnn on a Vulkan device.

An ncnn graph holds one input size, so ``NcnnNetwork`` keeps one graph per size it is given
(a run with tiles sees one crop size; the graphs come from the cache, ``cache.py``, converted
on first use). fp16 runs with ncnn's fp16 storage and arithmetic; an fp16 output that is not
finite (overflow) is computed again in fp32, which is then kept for the rest of the run with a
warning: the guard ``inference.Upscaler`` gives the CUDA backend.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...arch.dlgsanet import DLGSANet
from ..weights import detect_config, variant_name, weights_digest
from .cache import NcnnCache, NcnnKey
from .devices import vulkan_devices

BYTES_PER_PIXEL_PER_CHANNEL = 6 * 49
"""ncnn's peak memory per LR pixel, in network channels x element size: the dynamic conv's
shifted copies and their products (2 x 49 per channel) dominate, x3 for the rest and the
allocator's slack (an estimate: ncnn reports no peak)."""


class NcnnNetwork:
    """``model`` as ncnn graphs on Vulkan device ``device_index``, in ``precision`` (fp16 or fp32)."""

    def __init__(self, model: DLGSANet, precision: str, device_index: int = 0, cache: NcnnCache | None = None,
                 log: Callable[[str], None] | None = None, dynamic_conv: str = "shift"):
        self.model = model
        self.upscale = model.upscale
        self.precision = precision
        self.device_index = device_index
        self.cache = cache or NcnnCache()
        self.log = log
        self.dynamic_conv = dynamic_conv
        self._nets: dict[tuple[str, int, int], object] = {}
        self._lock = threading.Lock()
        state = model.state_dict()
        self._variant = variant_name(detect_config(state))
        self._digests = {p: weights_digest(state, as_dtype=torch.float16 if p == "fp16" else torch.float32)
                         for p in ("fp16", "fp32")}

    def key(self, height: int, width: int, precision: str | None = None) -> NcnnKey:
        precision = precision or self.precision
        return NcnnKey.with_versions(
            weights_sha256=self._digests[precision], variant=self._variant, scale=int(self.upscale),
            tlc=bool(self.model.uses_tlc()), tlc_kernel=int(self.model.tlc_kernel), height=int(height),
            width=int(width), precision=precision, dynamic_conv=self.dynamic_conv)

    def _load(self, precision: str, param: Path, weights: Path):
        import ncnn

        net = ncnn.Net()
        fp16 = precision == "fp16"
        net.opt.use_vulkan_compute = True
        net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
        net.set_vulkan_device(self.device_index)
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise RuntimeError(f"ncnn could not read {param.name} / {weights.name}")
        return net

    def net(self, height: int, width: int, precision: str | None = None):
        """The loaded graph for inputs of this size (converted and cached on first use)."""
        precision = precision or self.precision
        with self._lock:
            found = self._nets.get((precision, height, width))
            if found is None:
                from .convert import convert

                key = self.key(height, width, precision)
                found = self.cache.get_or_convert(
                    key, lambda p, b: convert(self.model, height, width, precision, p, b, self.dynamic_conv),
                    lambda p, b: self._load(precision, p, b), log=self.log)
                self._nets[(precision, height, width)] = found
            return found

    def _run(self, frame: np.ndarray, precision: str) -> np.ndarray:
        import ncnn

        from .convert import INPUT_NAME, OUTPUT_NAME

        net = self.net(frame.shape[1], frame.shape[2], precision)
        extractor = net.create_extractor()
        extractor.input(INPUT_NAME, ncnn.Mat(frame))  # the Mat shares ``frame``'s memory: keep it alive
        status, out = extractor.extract(OUTPUT_NAME)
        if status != 0:
            raise RuntimeError(f"ncnn failed to run the network (status {status})")
        return np.array(out, copy=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for frame in x.detach().to("cpu", torch.float32):
            array = np.ascontiguousarray(frame.numpy())
            precision = self.precision
            out = self._run(array, precision)
            if precision != "fp32" and not np.isfinite(out).all():
                with self._lock:
                    if self.precision == precision:
                        warnings.warn(f"the network's {precision} output is not finite (overflow) on a "
                                      f"{tuple(array.shape[1:])} input: switching to fp32 for the rest of the "
                                      f"run", RuntimeWarning, stacklevel=2)
                        self.precision = "fp32"
                out = self._run(array, "fp32")
            outputs.append(torch.from_numpy(out))
        return torch.stack(outputs)


def auto_tile_pixels(model: DLGSANet, device_index: int, precision: str, batch: int, share: float) -> tuple[int, str]:
    """The LR pixels per crop that fit ``share`` of the Vulkan device's memory budget, and why."""
    device = vulkan_devices()[device_index]
    element = 2 if precision == "fp16" else 4
    per_px = BYTES_PER_PIXEL_PER_CHANNEL * model.deep_feature_extraction[-1].in_channels * element
    pixels = int(share * device.heap_bytes / (per_px * batch))
    return max(pixels, 1), (f"{share:.0%} of the {device.heap_bytes / 2**30:.1f} GiB memory budget of "
                            f"{device.name} at ~{per_px / 1024:.0f} KiB per LR pixel (estimated)")

