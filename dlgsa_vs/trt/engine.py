"""TensorRT engines of DLGSANet through torch-tensorrt: availability, build, load, and the
cached callable that the backends run frames through.

Precision. torch-tensorrt 2.9+ builds *strongly typed* networks by default
(``use_explicit_typing=True``): every layer runs in the dtype the graph gives it, and
``enabled_precisions`` (the old "weak typing", where TensorRT could pick fp16 kernels for an
fp32 graph) is deprecated and must stay ``{fp32}`` under explicit typing. So an fp16 or bf16
engine is built from a program exported in that dtype (weights and input cast, as the CUDA
backend runs the network), with ``use_explicit_typing=True``. An older torch-tensorrt
without that option gets the fp32 program lowered through ``enabled_precisions`` instead.

``tensorrt`` and ``torch_tensorrt`` are imported only when an engine is built or loaded;
where they are missing, :class:`TensorRTUnavailable` says what is missing and how to install it.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import threading
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..arch import DLGSANet
from ..arch.tlc import tlc_windows
from ..export import ShapeRange, _size_oblivious
from ..weights import detect_config, variant_name
from .cache import EngineCache, EngineKey, runtime_versions, weights_digest
from .program import TrtProgram, tlc_on, trt_program

PRECISION_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

INSTALL_HINT = ('pip install "dlgsa-vs[trt]" (torch-tensorrt and NVIDIA\'s TensorRT wheels) on a machine '
                'with an NVIDIA GPU, its driver and a CUDA build of PyTorch')


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot be used here; the message names what is missing and how to fix it."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _import(name: str, label: str) -> tuple[object | None, str | None]:
    if importlib.util.find_spec(name) is None:
        return None, f"the {label} package is not installed"
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # a broken install raises anything: OSError for libraries, ImportError, ...
        return None, f"the {label} package is installed but cannot be imported ({type(exc).__name__}: {_first_line(exc)})"


def _check(device_index: int | None = None) -> tuple[list[str], str]:
    """(problems, description): every reason TensorRT cannot run here, in the order fixed."""
    problems = []
    if not torch.cuda.is_available():
        problems.append("PyTorch sees no CUDA GPU (torch.cuda.is_available() is False; TensorRT runs on "
                        "NVIDIA GPUs only)")
    elif device_index is not None and not 0 <= device_index < torch.cuda.device_count():
        problems.append(f"there is no CUDA device {device_index} (PyTorch sees {torch.cuda.device_count()})")
    trt, problem = _import("tensorrt", "tensorrt")
    if problem:
        problems.append(problem)
    ttrt, problem = _import("torch_tensorrt", "torch_tensorrt")
    if problem:
        problems.append(problem)
    if problems:
        return problems, ""
    name = torch.cuda.get_device_name(device_index if device_index is not None else torch.cuda.current_device())
    return [], (f"TensorRT {getattr(trt, '__version__', '?')} with torch-tensorrt "
                f"{getattr(ttrt, '__version__', '?')} on {name}")


def trt_available(device_index: int | None = None) -> tuple[bool, str]:
    """(True, what will run) or (False, why not and how to fix it). Never raises.

    Checks that PyTorch sees a CUDA GPU and that ``tensorrt`` and ``torch_tensorrt`` import.
    """
    try:
        problems, description = _check(device_index)
    except Exception as exc:  # a driver problem can surface anywhere in the checks
        return False, f"TensorRT availability could not be checked: {type(exc).__name__}: {_first_line(exc)}"
    if problems:
        return False, "; ".join(problems) + f". Fix: {INSTALL_HINT}"
    return True, description


def require_tensorrt(device_index: int | None = None):
    """The ``torch_tensorrt`` module, or :class:`TensorRTUnavailable` with every problem found."""
    ok, reason = trt_available(device_index)
    if not ok:
        raise TensorRTUnavailable(f"TensorRT engines cannot be built or run here: {reason}")
    import torch_tensorrt

    return torch_tensorrt


def cuda_device(device: torch.device | str | int | None = None) -> torch.device:
    """A CUDA ``torch.device`` with an index (TensorRT engines belong to one GPU)."""
    if device is None:
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"TensorRT engines run on CUDA devices, not {dev}")
    return dev if dev.index is not None else torch.device("cuda", 0)


def resolve_shape(height: int | None = None, width: int | None = None,
                  shapes: ShapeRange | None = None) -> tuple[bool, ShapeRange]:
    """(dynamic, range): a static size is a range of one size."""
    if shapes is not None:
        if height is not None or width is not None:
            raise ValueError("give either height and width (a static engine) or shapes (a dynamic one), not both")
        return True, shapes
    if height is None or width is None:
        raise ValueError("give the LR frame size: height and width for a static engine, or shapes=ShapeRange(...) "
                         "for a dynamic one")
    size = (int(height), int(width))
    return False, ShapeRange(size, size, size)


def engine_key(model: DLGSANet, *, precision: str = "fp16", batch: int = 1, height: int | None = None,
               width: int | None = None, shapes: ShapeRange | None = None,
               device: torch.device | str | int | None = None, weights_sha256: str | None = None,
               variant: str | None = None, scale: int | None = None,
               gpu: tuple[str, str] | None = None) -> EngineKey:
    """The cache key of an engine of ``model``. The weights enter as the engine holds them
    (cast to ``precision``), so a model already moved to the GPU in fp16 by a backend and the
    fp32 one loaded by dlgsa-build-engine name the same engine. The GPU's name and compute
    capability are read from ``device`` unless ``gpu`` = (name, "major.minor") is given."""
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_DTYPES)}, got {precision!r}")
    dynamic, rng = resolve_shape(height, width, shapes)
    if gpu is None:
        props = torch.cuda.get_device_properties(cuda_device(device))
        gpu = (props.name, f"{props.major}.{props.minor}")
    state = model.state_dict()
    return EngineKey(
        weights_sha256=weights_sha256 or weights_digest(state, as_dtype=PRECISION_DTYPES[precision]),
        variant=variant or variant_name(detect_config(state)),
        scale=int(scale or model.upscale),
        tlc=tlc_on(model), tlc_kernel=int(model.tlc_kernel), batch=int(batch), dynamic=dynamic,
        min_hw=rng.min_hw, opt_hw=rng.opt_hw, max_hw=rng.max_hw, precision=precision,
        gpu_name=gpu[0], compute_capability=gpu[1],
        **{k: v for k, v in runtime_versions().items() if k in ("tensorrt_version", "torch_tensorrt_version",
                                                                 "torch_version")},
    )


def _accepted(func: Callable, **kwargs) -> dict:
    """The keyword arguments ``func`` names (torch-tensorrt's options vary across versions)."""
    params = inspect.signature(func).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def _trt_inputs(ttrt, graph: TrtProgram) -> list:
    inputs = []
    for spec in graph.inputs:
        if spec.static:
            inputs.append(ttrt.Input(shape=spec.opt_shape, dtype=spec.dtype))
        else:
            inputs.append(ttrt.Input(min_shape=spec.min_shape, opt_shape=spec.opt_shape,
                                     max_shape=spec.max_shape, dtype=spec.dtype))
    return inputs


def build_engine(model: DLGSANet, out_path: str | Path, *, batch: int = 1, height: int | None = None,
                 width: int | None = None, shapes: ShapeRange | None = None, precision: str = "fp16",
                 workspace_gib: float | None = None, optimization_level: int | None = None,
                 device: torch.device | str | int | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """Compile ``model`` with torch-tensorrt and save the result (a ``torch.export`` program
    holding the engine) to ``out_path``. Static ``height`` x ``width`` or dynamic ``shapes``."""
    dev = cuda_device(device)
    ttrt = require_tensorrt(dev.index)
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_DTYPES)}, got {precision!r}")
    if optimization_level is not None and not 0 <= optimization_level <= 5:
        raise ValueError(f"optimization_level must be 0..5, got {optimization_level}")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    dtype = PRECISION_DTYPES[precision]
    dynamic, rng = resolve_shape(height, width, shapes)
    explicit_typing = "use_explicit_typing" in inspect.signature(ttrt.dynamo.compile).parameters
    export_dtype = dtype if explicit_typing else torch.float32
    log(f"dlgsa-vs: exporting the network ({'dynamic' if dynamic else 'static'}, {export_dtype}) on {dev}")
    graph = trt_program(model, batch=batch, height=None if dynamic else rng.opt_hw[0],
                        width=None if dynamic else rng.opt_hw[1], shapes=rng if dynamic else None,
                        dtype=export_dtype, device=dev)
    options = dict(arg_inputs=_trt_inputs(ttrt, graph), device=dev, truncate_double=True)
    if explicit_typing:
        options["use_explicit_typing"] = True
    else:
        options["enabled_precisions"] = {dtype}
    if workspace_gib:
        options["workspace_size"] = int(workspace_gib * 2**30)
    if optimization_level is not None:
        options["optimization_level"] = optimization_level
    log(f"dlgsa-vs: compiling with TensorRT ({precision}, inputs {', '.join(graph.input_names)})")
    oblivious = _size_oblivious() if dynamic else contextlib.nullcontext()
    with torch.no_grad(), oblivious:
        compiled = ttrt.dynamo.compile(graph.program, **_accepted(ttrt.dynamo.compile, **options))
        examples = [t.to(dev) for t in graph.example_inputs]
        save = dict(output_format="exported_program", arg_inputs=examples)
        if dynamic:
            if "dynamic_shapes" in inspect.signature(ttrt.save).parameters:
                save["dynamic_shapes"] = graph.dynamic_shapes
            else:  # older torch-tensorrt infers the ranges from Input objects
                save["arg_inputs"] = _trt_inputs(ttrt, graph)
        out_path = Path(out_path)
        ttrt.save(compiled, str(out_path), **save)
    return out_path


def load_engine(path: str | Path, device: torch.device | str | int | None = None) -> nn.Module:
    """A saved engine (from :func:`build_engine`) as a module called like the exported graph."""
    ttrt = require_tensorrt(cuda_device(device).index)
    # torch_tensorrt.load hands its argument to torch.export.load, which logs a warning for
    # every path not named .pt2; an open file is read the same way without the noise
    with open(path, "rb") as fh:
        program = ttrt.load(fh)
    return program.module() if hasattr(program, "module") else program


class TrtEngine:
    """A TensorRT engine as a function of LR frames: (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW).

    Takes any N (runs the engine's batch at a time, padding the last one), frames on any
    device and dtype (returned on the same), and computes the TLC window inputs of a dynamic
    engine itself. Safe to call from several threads: calls into the engine are serialised
    (one TensorRT execution context), the rest runs on each caller's CUDA stream.
    """

    def __init__(self, module: Callable, key: EngineKey, *, tlc_kernel: int, device: torch.device,
                 path: Path | None = None):
        self.module = module
        self.key = key
        self.tlc_kernel = tlc_kernel
        self.device = device
        self.path = path
        self.dtype = PRECISION_DTYPES[key.precision]
        self._windows: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TrtEngine({self.key.describe()}, {self.path})"

    @property
    def scale(self) -> int:
        return self.key.scale

    def supports(self, height: int, width: int) -> bool:
        """Whether frames of ``height`` x ``width`` LR pixels fit this engine."""
        (h0, w0), (h1, w1) = self.key.min_hw, self.key.max_hw
        return h0 <= height <= h1 and w0 <= width <= w1

    def _inputs(self, height: int, width: int) -> tuple[torch.Tensor, ...]:
        if not (self.key.dynamic and self.key.tlc):
            return ()
        windows = self._windows.get((height, width))
        if windows is None:
            windows = tlc_windows(height, width, self.tlc_kernel, self.device)
            if self.device.type == "cuda":  # finished before other threads' streams use them
                torch.cuda.current_stream(self.device).synchronize()
            self._windows[(height, width)] = windows
        return windows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected frames shaped (N, 3, H, W), got {tuple(x.shape)}")
        n, _, h, w = x.shape
        if not self.supports(h, w):
            fix = (f"dlgsa-build-engine --size {h}x{w}" if not self.key.dynamic
                   else f"dlgsa-build-engine --min/--opt/--max covering {h}x{w}")
            raise ValueError(f"this TensorRT engine takes LR frames of {self.key.shape_text()}, got {h}x{w}: "
                             f"build one for that size ({fix}) or use tiles that fit")
        if n == 0:
            return x.new_empty((0, 3, h * self.scale, w * self.scale))
        extra = self._inputs(h, w)
        frames = x.to(self.device, self.dtype).contiguous()
        b = self.key.batch
        outs = []
        with torch.no_grad():
            for i in range(0, n, b):
                chunk = frames[i:i + b]
                m = chunk.shape[0]
                if m < b:  # the engine's batch is fixed: pad with copies of the last frame
                    chunk = torch.cat([chunk, chunk[-1:].expand(b - m, -1, -1, -1)])
                with self._lock:
                    y = self.module(chunk, *extra)
                y = y[0] if isinstance(y, (list, tuple)) else y
                outs.append(y[:m])
        y = outs[0] if len(outs) == 1 else torch.cat(outs)
        return y.to(x.device, x.dtype)


def engine_for(model: DLGSANet, *, precision: str = "fp16", batch: int = 1, height: int | None = None,
               width: int | None = None, shapes: ShapeRange | None = None,
               device: torch.device | str | int | None = None, weights_sha256: str | None = None,
               variant: str | None = None, scale: int | None = None,
               cache: EngineCache | str | Path | None = None, force: bool = False,
               workspace_gib: float | None = None, optimization_level: int | None = None,
               log: Callable[[str], None] | None = None) -> TrtEngine:
    """The engine of ``model`` for these frames, from the cache or built into it (minutes).

    ``model``: the network as loaded (fp32, any device; it is not modified). Static
    ``height`` x ``width`` or dynamic ``shapes`` (LR pixels). ``weights_sha256``, ``variant``
    and ``scale`` are read from the model when not given. Raises :class:`TensorRTUnavailable`
    where TensorRT cannot run.
    """
    dev = cuda_device(device)
    require_tensorrt(dev.index)
    store = cache if isinstance(cache, EngineCache) else EngineCache(cache)
    key = engine_key(model, precision=precision, batch=batch, height=height, width=width, shapes=shapes,
                     device=dev, weights_sha256=weights_sha256, variant=variant, scale=scale)

    def build(path: Path) -> None:
        build_engine(model, path, batch=batch, height=height, width=width, shapes=shapes, precision=precision,
                     workspace_gib=workspace_gib, optimization_level=optimization_level, device=dev, log=log)

    kwargs = {} if log is None else {"log": log}
    module = store.get_or_build(key, build, lambda path: load_engine(path, dev), force=force, **kwargs)
    return TrtEngine(module, key, tlc_kernel=int(model.tlc_kernel), device=dev, path=store.engine_path(key))
