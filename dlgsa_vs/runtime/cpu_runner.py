"""Fast CPU execution of the network, in bf16 where the CPU computes it natively (issue #24).

``choose_engine(precision, asked)`` decides which engine runs (``run_plan.resolve`` calls it
once) and ``prepare_cpu_model(model, precision, engine)`` returns a :class:`CpuNetwork`: a callable taking
(N, 3, H, W) float frames on the CPU and returning (N, 3, sH, sW) float32, the drop-in
``network`` of an ``inference.Upscaler`` built with ``dtype=torch.float32`` (the runner
converts to its own precision inside; bf16 has fp32's range, so no overflow guard is needed).

Two engines, the faster first (measured by ``scripts/bench_cpu_precision.py``, bench/README.md
"CPU precision"):

* ``openvino``: OpenVINO's CPU plugin running our own ONNX export of the model, with
  ``INFERENCE_PRECISION_HINT`` bf16 (or f32). OpenVINO fuses the network's memory-bound steps
  (the 49-tap dynamic convolution, LayerNorm, GELU gate, the TLC window copies) into few
  passes; eager PyTorch runs each op separately. One static ONNX file per weights and input
  size (``export.export_onnx``) goes into an on-disk cache, since the export takes minutes on
  a small CPU; a cached file compiles in a few seconds, and compiled sizes stay in memory.
* ``torch``: eager PyTorch, the network's body converted to bf16 weights (not autocast),
  channels-last, its head and tail in fp32. Used where OpenVINO is not installed
  (``pip install openvino``), or asked for.

The precision to ask for comes from ``cpu_features.cpu_precision`` (bf16 automatically only
with ``amx_bf16`` or ``avx512_bf16``).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from .settings import CPU_ENGINES as ENGINES
PRECISIONS = ("bf16", "fp32")
ONNX_OPSET = 18
COMPILED_SHAPES = 4
"""How many input shapes keep a compiled OpenVINO model in memory (least recently used dropped)."""

_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@functools.lru_cache(maxsize=1)
def openvino_problem() -> str | None:
    """None where OpenVINO's CPU plugin can be used, else why not (one phrase). Asked once per
    process: every plan on the CPU backend asks, and the answer does not change while it runs."""
    try:
        import openvino
    except Exception as exc:  # noqa: BLE001 - not installed, or a broken installation
        if isinstance(exc, ModuleNotFoundError) and exc.name == "openvino":
            return "openvino is not installed: pip install openvino"
        return f"openvino cannot be imported ({exc})"
    try:
        if "CPU" not in openvino.Core().available_devices:
            return "openvino sees no CPU device"
    except Exception as exc:  # noqa: BLE001
        return f"openvino cannot start ({exc})"
    return None


def default_cache_dir() -> Path:
    """$DLGSA_CACHE_DIR/openvino, else $XDG_CACHE_HOME/dlgsa-vs/openvino, else ~/.cache/dlgsa-vs/openvino."""
    if os.environ.get("DLGSA_CACHE_DIR"):
        return Path(os.environ["DLGSA_CACHE_DIR"]).expanduser() / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dlgsa-vs" / "openvino"


def model_digest(model: torch.nn.Module) -> str:
    """What the exported graph depends on: the weights (names, shapes, values), the
    architecture's settings (TLC on/off and its window), the opset and the torch and dlgsa-vs
    versions (a new exporter or network code makes a new file)."""
    from .._version import __version__

    h = hashlib.sha256()
    uses_tlc = getattr(model, "uses_tlc", lambda: False)()
    h.update(f"{__version__}|{torch.__version__}|opset{ONNX_OPSET}|tlc={uses_tlc}|"
             f"k={getattr(model, 'tlc_kernel', None)}|scale={getattr(model, 'upscale', None)}".encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


class CpuNetwork:
    """The network prepared for the CPU: ``(N, 3, H, W)`` float -> ``(N, 3, sH, sW)`` float32.

    engine: ``openvino`` or ``torch``; precision: ``bf16`` or ``fp32``; reason: why this
    engine (for the log line). ``upscale`` is the model's scale.
    """

    engine: str
    precision: str
    reason: str
    upscale: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        """One phrase: what runs, in which precision, and why where there is a reason."""
        return f"{self.engine} {self.precision}" + (f" ({self.reason})" if self.reason else "")


class TorchCpuNetwork(CpuNetwork):
    """The model in eager PyTorch, channels-last; for bf16 its body's weights converted to bf16.

    Not autocast: autocast converts every convolution's weights again at each call and is
    slower (bench/README.md). The head (mean shift and first 3x3 conv) and the tail (the
    long skip, upsampling conv and pixel shuffle) stay fp32: they hold the image itself, which
    bf16 (8 significant bits) would round by up to 1/256 of its value; this gains ~0.9 dB against
    the fp32 output at no measurable cost. The forward below is ``DLGSANet.forward`` with that
    split; the tests compare it with the fp32 model.
    """

    def __init__(self, model: torch.nn.Module, precision: str, reason: str):
        self.engine, self.precision, self.reason = "torch", precision, reason
        self.dtype = _DTYPES[precision]
        self.upscale = int(model.upscale)
        self.model = model.eval()  # the caller's, fp32 (the Upscaler's fallback and exports use it)
        # the bf16 copy of the body only: the caller's model stays as it was
        self.body = None if self.dtype == torch.float32 else copy.deepcopy(model.deep_feature_extraction).to(
            "cpu", self.dtype)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = x.to("cpu", torch.float32).contiguous(memory_format=torch.channels_last)
        if self.body is None:
            return m(x).float()
        windows = m.tlc_windows(x.shape[-2], x.shape[-1], x.device) if m.uses_tlc() else None
        f0 = m.overlap_embed((x - m.mean) * m.img_range)
        y = f0.to(self.dtype)
        for group in self.body[:-1]:
            y = group(y, windows)
        y = self.body[-1](y)
        return m.upsample(y.float() + f0) / m.img_range + m.mean


class OpenVinoCpuNetwork(CpuNetwork):
    """Our ONNX export of the model, compiled by OpenVINO's CPU plugin, one per input shape.

    Each (H, W) is a static export (its TLC windows baked in), written once into ``cache_dir``
    (``default_cache_dir()``) under the weights' digest and kept there: the export takes about
    100 s for the light network on a 2-core CPU, the compile of a cached file a few seconds.
    A dynamic export (windows as inputs) was measured 5x slower in OpenVINO and took 4x longer
    to export (bench/README.md, "CPU precision"). threads: OpenVINO's inference threads (default
    ``torch.get_num_threads()``, so that one thread budget holds whichever engine runs). log:
    receives one line before and after each export.
    """

    def __init__(self, model: torch.nn.Module, precision: str, reason: str, threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None):
        import openvino

        self.engine, self.precision, self.reason = "openvino", precision, reason
        self.upscale = int(model.upscale)
        self.threads = int(threads or torch.get_num_threads())
        self._model = model.eval()
        self._digest = model_digest(model)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._log = log
        self._core = openvino.Core()
        self._config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                        "INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY"}
        self._compiled: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._lock = threading.Lock()
        self._fallback: TorchCpuNetwork | None = None  # set when OpenVINO fails: eager torch from then on

    def onnx_path(self, h: int, w: int) -> Path:
        """Where the export for (H, W) frames is cached."""
        return self._cache_dir / f"dlgsanet_{self._digest}_{h}x{w}.onnx"

    def _export(self, h: int, w: int) -> Path:
        """The cached static ONNX file for (H, W), exported now if absent (atomically)."""
        from .export import export_onnx

        path = self.onnx_path(h, w)
        if path.is_file():
            return path
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        if self._log is not None:
            self._log(f"exporting the network for {w}x{h} frames to ONNX for OpenVINO, once per size "
                      f"(minutes on a small CPU): {path}")
        t0 = time.perf_counter()
        # a name of this process's own, renamed into place: two processes exporting the same
        # size at once each write their own file, and the last rename wins (same content)
        own = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.onnx")
        try:
            export_onnx(copy.deepcopy(self._model).float(), own, h, w)
            os.replace(own, path)
        finally:
            own.unlink(missing_ok=True)
        if self._log is not None:
            self._log(f"ONNX export for {w}x{h} done in {time.perf_counter() - t0:.0f} s")
        return path

    def _request_for(self, h: int, w: int):
        """The infer request of the model compiled for (H, W) (the last few kept in memory)."""
        request = self._compiled.get((h, w))
        if request is not None:
            self._compiled.move_to_end((h, w))
            return request
        compiled = self._core.compile_model(self._core.read_model(str(self._export(h, w))), "CPU", self._config)
        request = compiled.create_infer_request()
        self._compiled[(h, w)] = request
        while len(self._compiled) > COMPILED_SHAPES:
            self._compiled.popitem(last=False)
        return request

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        n, _, h, w = x.shape
        frames = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = []
        with self._lock:  # one infer request per shape: one frame at a time through it
            if self._fallback is not None:
                return self._fallback(x)
            try:
                request = self._request_for(h, w)
            except Exception as exc:  # noqa: BLE001 - export or compile failed: eager torch, said once
                warnings.warn(f"OpenVINO could not prepare {w}x{h} frames ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}): running eager torch "
                              f"{self.precision} for the rest of the run", RuntimeWarning, stacklevel=2)
                self._fallback = TorchCpuNetwork(self._model, self.precision, "OpenVINO failed")
                self.engine, self.reason = "torch", f"OpenVINO failed on {w}x{h} frames"
                return self._fallback(x)
            for i in range(n):  # exported with batch 1
                result = request.infer({0: np.ascontiguousarray(frames[i:i + 1])})
                out.append(torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True)))
        return torch.cat(out)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"CPU precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


class EngineUnavailable(RuntimeError):
    """The openvino engine was asked for and cannot run here (the message says why)."""


def choose_engine(precision: str, asked: str = "auto") -> tuple[str, str]:
    """The engine that runs ``precision`` for the cpu_engine setting ``asked``, and why.

    auto: bf16 runs in OpenVINO where it is installed and works (as fast as eager torch bf16 on
    a quiet CPU, much faster under load, bench/README.md), else eager torch; fp32 runs in eager
    torch (OpenVINO f32 is not reliably faster). Decided once, by ``run_plan.resolve``. Raises
    ``EngineUnavailable`` where openvino is asked for and cannot run.
    """
    _check_precision(precision)
    if asked not in ENGINES:
        raise ValueError(f"CPU engine must be one of {', '.join(ENGINES)}, got {asked!r}")
    if asked == "torch":
        return "torch", "as asked"
    if asked == "auto" and precision == "fp32":
        return "torch", ""  # the plain case: not worth a reason
    problem = openvino_problem()
    if problem is None:
        return "openvino", "as asked" if asked == "openvino" else "OpenVINO is installed"
    if asked == "openvino":
        raise EngineUnavailable(problem)
    return "torch", problem


def prepare_cpu_model(model: torch.nn.Module, precision: str, engine: str, reason: str = "",
                      threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                      log: Callable[[str], None] | None = None) -> CpuNetwork:
    """``model`` run on the CPU in ``precision`` (``bf16`` or ``fp32``) by ``engine`` (``torch``
    or ``openvino``, as ``choose_engine`` decided; ``reason`` is its why, for ``describe()``).

    ``threads``: OpenVINO's thread count (torch's own is ``torch.set_num_threads``; default:
    ``torch.get_num_threads()``). ``log`` gets the one-time export note. ``model`` is left as
    it was (fp32).
    """
    _check_precision(precision)
    if engine == "torch":
        return TorchCpuNetwork(model, precision, reason)
    if engine == "openvino":
        return OpenVinoCpuNetwork(model, precision, reason, threads=threads, cache_dir=cache_dir, log=log)
    raise ValueError(f"CPU engine must be torch or openvino, got {engine!r}")
