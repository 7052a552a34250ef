"""TensorRT engines of DLGSANet through torch-tensorrt: availability, build, load, and the
cached callable that the backends run frames through.

Precision. TensorRT networks are *strongly typed* here: every layer runs in the dtype the
graph gives it. So an fp16 or bf16 engine is compiled from a program exported in that dtype
(weights and example inputs cast, as the CUDA backend runs the network), on every
torch-tensorrt version. What differs between versions is only how strong typing is asked for
(``compile_options``): torch-tensorrt 2.6 added ``use_explicit_typing`` (default False), 2.10
made True its default, and 2.13 removed it together with the old weak-typing option
``enabled_precisions`` (pytorch/TensorRT#4195, "Remove deprecated apis"): since then every
network is built strongly typed. An engine whose input is not in its key's precision (as
versions of this file before the cache's key version 2 built under 2.13+) is never used: its
cache entry is rebuilt.

Concurrency. A loaded engine has one TensorRT execution context, whose activation memory
serves one execution at a time, and the runtime runs it on the caller's CUDA stream. So
:class:`TrtEngine` keeps one loaded copy of the engine (one context) per CUDA stream that
calls it, loaded from the cached file when a stream first calls (see docs/tensorrt.md).

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

from ...arch import DLGSANet
from ...arch.tlc import tlc_windows
from ..export import ShapeRange, size_oblivious
from ..settings import PRECISIONS, check_precision, torch_dtype
from ..weights import detect_config, variant_name, weights_digest
from .cache import EngineCache, EngineKey, runtime_versions
from .program import TrtProgram, tlc_on, trt_program

PRECISION_DTYPES: dict[str, torch.dtype] = {p: torch_dtype(p) for p in PRECISIONS}
"""Each precision's torch dtype (``settings.torch_dtype``), for the callers of this module."""

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
        # torch_tensorrt cannot import without tensorrt (its import prints errors and fails):
        # only say whether it is there. `make` installs its source alone for the contract tests
        problems.append("the torch_tensorrt package is not installed" if importlib.util.find_spec("torch_tensorrt")
                        is None else "the torch_tensorrt package is installed but needs the tensorrt package")
        return problems, ""
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
    check_precision(precision)  # before its dtype is used for the digest
    dynamic, rng = resolve_shape(height, width, shapes)
    if gpu is None:
        props = torch.cuda.get_device_properties(cuda_device(device))
        gpu = (props.name, f"{props.major}.{props.minor}")
    state = model.state_dict()
    return EngineKey(
        weights_sha256=weights_sha256 or weights_digest(state, as_dtype=torch_dtype(precision)),
        variant=variant or variant_name(detect_config(state)),
        scale=int(scale or model.upscale),
        tlc=tlc_on(model), tlc_kernel=int(model.tlc_kernel), batch=int(batch), dynamic=dynamic,
        min_hw=rng.min_hw, opt_hw=rng.opt_hw, max_hw=rng.max_hw, precision=precision,
        gpu_name=gpu[0], compute_capability=gpu[1],
        **{k: v for k, v in runtime_versions().items() if k in ("tensorrt_version", "torch_tensorrt_version",
                                                                 "torch_version")},
    )


REMOVED_OPTIONS: dict[str, str] = {
    "use_explicit_typing": "2.13",
    "enabled_precisions": "2.13",
}
"""``torch_tensorrt.dynamo.compile`` options that ``compile_options`` passes only to versions
that still have them, with the version that removed them (pytorch/TensorRT#4195).
``tests/test_trt_contract.py`` checks against the installed source that they are gone and that
every other option named here exists."""


def named_parameters(func: Callable) -> frozenset[str]:
    """The parameters ``func`` names: what it really takes. Names that only a ``**kwargs``
    would swallow are not in it (torch-tensorrt's ``compile`` ignores unknown options)."""
    return frozenset(name for name, p in inspect.signature(func).parameters.items()
                     if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def compile_options(params: frozenset[str] | set[str], *, precision: str, arg_inputs: list,
                    device: torch.device, workspace_gib: float | None = None,
                    optimization_level: int | None = None,
                    log: Callable[[str], None] | None = None) -> dict:
    """The keyword arguments for ``torch_tensorrt.dynamo.compile``, whose named parameters
    are ``params``. The program it compiles is already in ``precision``'s dtype; what is
    added here is only what makes TensorRT keep the graph's dtypes, in this version's words
    (``build_engine``, its caller, checked the precision)."""
    options: dict = {"arg_inputs": arg_inputs, "device": device, "truncate_double": True}
    if "use_explicit_typing" in params:
        # torch-tensorrt 2.6 to 2.12: strong typing is an option, off by default in 2.6-2.9
        # and on by default in 2.10-2.12; ask for it in all of them
        options["use_explicit_typing"] = True
    elif "enabled_precisions" in params:
        # torch-tensorrt before 2.6: weakly typed networks only; allow the precision's
        # kernels (the graph's layers are in that dtype already)
        options["enabled_precisions"] = {torch_dtype(precision)}
    # torch-tensorrt 2.13 and newer: both options were removed (pytorch/TensorRT#4195) and
    # every network is strongly typed (_TRTInterpreter's STRONGLY_TYPED flag): nothing to add
    if workspace_gib:
        options["workspace_size"] = int(workspace_gib * 2**30)
    if optimization_level is not None:
        options["optimization_level"] = optimization_level
    for name in [k for k in options if k not in params]:
        del options[name]  # a tuning option this version lacks: say so instead of passing it to **kwargs
        if log is not None:
            log(f"dlgsa-vs: this torch-tensorrt has no {name} option; building without it")
    return options


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
    holding the engine) to ``out_path``. Static ``height`` x ``width`` or dynamic ``shapes``.

    The network is exported in ``precision``'s dtype (a cast copy; ``model`` is untouched) and
    built strongly typed, so the engine's input and layers are in that dtype."""
    dev = cuda_device(device)
    ttrt = require_tensorrt(dev.index)
    check_precision(precision)
    if optimization_level is not None and not 0 <= optimization_level <= 5:
        raise ValueError(f"optimization_level must be 0..5, got {optimization_level}")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    dtype = torch_dtype(precision)
    dynamic, rng = resolve_shape(height, width, shapes)
    log(f"dlgsa-vs: exporting the network ({'dynamic' if dynamic else 'static'}, {dtype}) on {dev}")
    graph = trt_program(model, batch=batch, height=None if dynamic else rng.opt_hw[0],
                        width=None if dynamic else rng.opt_hw[1], shapes=rng if dynamic else None,
                        dtype=dtype, device=dev)
    options = compile_options(named_parameters(ttrt.dynamo.compile), precision=precision,
                              arg_inputs=_trt_inputs(ttrt, graph), device=dev, workspace_gib=workspace_gib,
                              optimization_level=optimization_level, log=log)
    log(f"dlgsa-vs: compiling with TensorRT ({precision}, inputs {', '.join(graph.input_names)})")
    oblivious = size_oblivious() if dynamic else contextlib.nullcontext()
    out_path = Path(out_path)
    with torch.no_grad(), oblivious:
        compiled = ttrt.dynamo.compile(graph.program, **options)
        examples = [t.to(dev) for t in graph.example_inputs]  # in the engine's dtype: the saved program's inputs
        if not dynamic:
            ttrt.save(compiled, str(out_path), output_format="exported_program", arg_inputs=examples)
        elif "dynamic_shapes" in named_parameters(ttrt.save):
            # torch-tensorrt 2.11 and newer: save re-exports with the program's own ranges
            ttrt.save(compiled, str(out_path), output_format="exported_program", arg_inputs=examples,
                      dynamic_shapes=graph.dynamic_shapes)
        else:
            # torch-tensorrt 2.10 and older: the ranges come from Input objects
            ttrt.save(compiled, str(out_path), output_format="exported_program",
                      arg_inputs=_trt_inputs(ttrt, graph))
    return out_path


class EngineDtypeError(RuntimeError):
    """A saved engine takes another input dtype than its cache key's precision."""


def program_input_dtype(program) -> torch.dtype | None:
    """The dtype of a saved program's first input (the frames), or None where it cannot be read."""
    try:
        first = program.graph_signature.user_inputs[0]
        node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == first)
        return node.meta["val"].dtype
    except (AttributeError, IndexError, KeyError, StopIteration):
        return None


def check_input_dtype(program, precision: str, path: str | Path = "the engine") -> None:
    """Raise :class:`EngineDtypeError` when ``program`` takes frames in another dtype than
    ``precision``: fed frames of that precision, the engine would fail on the first one."""
    want, got = torch_dtype(precision), program_input_dtype(program)
    if got is not None and got != want:
        raise EngineDtypeError(f"{path} takes {str(got).removeprefix('torch.')} input, but its key asks for "
                               f"{precision} (built by an older dlgsa-vs or another torch-tensorrt)")


def load_program(path: str | Path, device: torch.device | str | int | None = None):
    """A saved engine (from :func:`build_engine`) as the ``torch.export`` program holding it."""
    ttrt = require_tensorrt(cuda_device(device).index)
    # torch_tensorrt.load hands its argument to torch.export.load, which logs a warning for
    # every path not named .pt2; an open file is read the same way without the noise
    with open(path, "rb") as fh:
        return ttrt.load(fh)


def load_engine(path: str | Path, device: torch.device | str | int | None = None) -> nn.Module:
    """A saved engine (from :func:`build_engine`) as a module called like the exported graph."""
    program = load_program(path, device)
    return program.module() if hasattr(program, "module") else program


def checked_load(path: str | Path, precision: str, device: torch.device | str | int | None = None) -> nn.Module:
    """:func:`load_engine` for the cache: an engine whose input is not in ``precision`` raises
    :class:`EngineDtypeError`, so its entry is unusable like a garbled one (the cache warns,
    removes it and builds it again) instead of failing on the first frame."""
    program = load_program(path, device)
    check_input_dtype(program, precision, path)
    return program.module() if hasattr(program, "module") else program


class _Context:
    """One loaded copy of the engine: one TensorRT execution context, used by one stream."""

    def __init__(self, module: Callable):
        self.module = module
        self.lock = threading.Lock()  # threads sharing a stream enqueue one at a time


class TrtEngine:
    """A TensorRT engine as a function of LR frames: (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW).

    Takes any N (runs the engine's batch at a time, padding the last one), frames on any
    device and dtype (returned on the same), and computes the TLC window inputs of a dynamic
    engine itself.

    Safe to call from several threads and CUDA streams: each stream gets its own copy of the
    engine (its own execution context, loaded with ``loader``, by default from ``path``, the
    first time that stream calls; ``module`` serves the first stream). Work on one stream runs
    in order, so calls on one stream share its context; calls on different streams may run at
    the same time on the GPU, each in its own context's memory. On the CPU (tests), the
    calling thread stands for the stream.
    """

    def __init__(self, module: Callable, key: EngineKey, *, tlc_kernel: int, device: torch.device,
                 path: Path | None = None, loader: Callable[[], Callable] | None = None):
        self.module = module
        self.key = key
        self.tlc_kernel = tlc_kernel
        self.device = device
        self.path = path
        self.dtype = torch_dtype(key.precision)
        self._loader = loader or (None if path is None else (lambda: load_engine(path, device)))
        self._spare: list[Callable] = [module]
        self._contexts: dict[tuple, _Context] = {}
        self._contexts_lock = threading.Lock()
        self._windows: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"TrtEngine({self.key.describe()}, {self.path})"

    @property
    def scale(self) -> int:
        return self.key.scale

    @property
    def contexts(self) -> int:
        """How many execution contexts (loaded copies) are in use: one per stream so far."""
        return len(self._contexts)

    def supports(self, height: int, width: int) -> bool:
        """Whether frames of ``height`` x ``width`` LR pixels fit this engine."""
        (h0, w0), (h1, w1) = self.key.min_hw, self.key.max_hw
        return h0 <= height <= h1 and w0 <= width <= w1

    def _lane(self) -> tuple:
        """What one execution context serves: the caller's CUDA stream, or on the CPU the thread."""
        if self.device.type == "cuda":
            return "stream", torch.cuda.current_stream(self.device).cuda_stream
        return "thread", threading.get_ident()

    def _context(self) -> _Context:
        lane = self._lane()
        with self._contexts_lock:
            ctx = self._contexts.get(lane)
            if ctx is None:
                if self._spare:
                    module = self._spare.pop()
                elif self._loader is not None:
                    module = self._loader()  # the same engine file again: a second execution context
                else:
                    raise RuntimeError("this TrtEngine was made without a path or loader, so it cannot give a "
                                       "second stream its own execution context: call it from one stream")
                ctx = self._contexts[lane] = _Context(module)
        return ctx

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
            fix = (f"dlgsa-build-engine --size {w}x{h}" if not self.key.dynamic
                   else f"dlgsa-build-engine --min/--opt/--max covering {w}x{h}")
            raise ValueError(f"this TensorRT engine takes LR frames of {self.key.shape_text()}, got {w}x{h}: "
                             f"build one for that size ({fix}) or use tiles that fit")
        if n == 0:
            return x.new_empty((0, 3, h * self.scale, w * self.scale))
        extra = self._inputs(h, w)
        ctx = self._context()
        frames = x.to(self.device, self.dtype).contiguous()
        b = self.key.batch
        outs = []
        with torch.no_grad():
            for i in range(0, n, b):
                chunk = frames[i:i + b]
                m = chunk.shape[0]
                if m < b:  # the engine's batch is fixed: pad with copies of the last frame
                    chunk = torch.cat([chunk, chunk[-1:].expand(b - m, -1, -1, -1)])
                with ctx.lock:
                    y = ctx.module(chunk, *extra)
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
    where TensorRT cannot run. A cached engine whose input is not in ``precision`` is
    rebuilt (with a warning), never returned.
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
    module = store.get_or_build(key, build, lambda path: checked_load(path, precision, dev), force=force, **kwargs)
    path = store.engine_path(key)
    return TrtEngine(module, key, tlc_kernel=int(model.tlc_kernel), device=dev, path=path,
                     loader=lambda: load_engine(path, dev))
