"""The Vulkan devices ncnn sees, and what each computes in (no pnnx, no torch)."""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

DEVICE_KINDS = {0: "discrete GPU", 1: "integrated GPU", 2: "virtual GPU", 3: "CPU"}
"""ncnn's ``GpuInfo.type()`` codes (Vulkan's VkPhysicalDeviceType, less "other")."""


@dataclass(frozen=True)
class VulkanDevice:
    index: int
    name: str
    kind: str  # one of DEVICE_KINDS' values
    fp16: bool  # fp16 storage and arithmetic (what ncnn's fp16 mode uses)
    heap_bytes: int  # ncnn's memory budget on it

    @property
    def is_cpu(self) -> bool:
        """A CPU that emulates a GPU (llvmpipe, SwiftShader): correct, never fast."""
        return self.kind == "CPU"


@contextlib.contextmanager
def _quiet_stderr():
    """ncnn prints a few lines per device to the C stderr when it first enumerates them."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_PROBE_PARAM = "7767517\n1 1\nInput in0 0 1 in0 0=4 1=4 2=4\n"  # a graph of one input layer


def _fp16(ncnn, index: int) -> bool:
    """ncnn clears the fp16 options a device lacks when a graph loads: load a trivial one and look."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = True
    net.set_vulkan_device(index)
    net.load_param_mem(_PROBE_PARAM)
    fp16 = bool(net.opt.use_fp16_storage and net.opt.use_fp16_arithmetic)
    net.clear()
    return fp16


@functools.lru_cache(maxsize=1)
def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """Every Vulkan device ncnn sees (empty without ncnn or a Vulkan driver)."""
    try:
        import ncnn
    except ImportError:
        return ()
    with _quiet_stderr():
        count = ncnn.get_gpu_count()
        devices = []
        for i in range(count):
            info = ncnn.get_gpu_info(i)
            heap = ncnn.get_gpu_device(i).get_heap_budget() * 2**20  # MiB
            devices.append(VulkanDevice(i, info.device_name(), DEVICE_KINDS.get(info.type(), "GPU"),
                                        _fp16(ncnn, i), heap))
    return tuple(devices)


def vulkan_problem() -> str | None:
    """None where ncnn sees a Vulkan device, else why not (one phrase)."""
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return 'ncnn is not installed (pip install "dlgsa-vs[vulkan]")'
    if not vulkan_devices():
        return ("ncnn sees no Vulkan device (no Vulkan driver: install your GPU's, or mesa-vulkan-drivers "
                "for a software device)")
    return None
