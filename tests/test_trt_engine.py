"""What dlgsa_vs/runtime/trt decides before TensorRT runs, checked on the CPU: the dtype an engine is
exported and compiled in (with a stand-in torch_tensorrt whose ``compile`` has the installed
2.14 signature), a cached engine of the wrong dtype being rebuilt, one execution context per
stream (a stand-in engine that records concurrency: our scheduling, not TensorRT's), and the
engine that ``dlgsa-build-engine`` builds by default being the one the trt backend asks for.
"""
from __future__ import annotations

import inspect
import io
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import trt_support as ts
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.export import ShapeRange
from dlgsa_vs.runtime.settings import torch_dtype
from dlgsa_vs.cli import build_engine as build_cli
from dlgsa_vs.runtime.trt import engine
from dlgsa_vs.runtime.trt.cache import EngineCache, EngineCacheWarning, runtime_versions
from dlgsa_vs.runtime.trt.engine import TrtEngine, engine_key
from dlgsa_vs.runtime.trt.program import trt_program
from dlgsa_vs.runtime.weights import load_model
from conftest import randomize_, small_config

GPU = ("NVIDIA stand-in", "8.9")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return randomize_(DLGSANet(**small_config(tlc_kernel=16))).eval()


# --- the dtype of what is compiled ---

def _with_signature(func, named: frozenset[str], first: str):
    """``func`` (taking *args, **kwargs) made to look like a function with these parameters."""
    P = inspect.Parameter
    params = [P(first, P.POSITIONAL_OR_KEYWORD)]
    params += [P(n, P.KEYWORD_ONLY, default=None) for n in sorted(named - {first})]
    func.__signature__ = inspect.Signature(params + [P("kwargs", P.VAR_KEYWORD)])
    return func


class FakeTorchTensorRT:
    """Records what build_engine hands torch_tensorrt; its functions have the installed
    version's parameter names (so build_engine's signature probes see 2.14)."""

    def __init__(self, root: Path):
        self.compiled = None
        self.compile_kwargs: dict = {}
        self.save_kwargs: dict = {}

        def compile(program, **kwargs):
            self.compiled, self.compile_kwargs = program, kwargs
            return program.module()

        def save(module, file_path, **kwargs):
            self.save_kwargs = kwargs
            Path(file_path).write_bytes(b"engine")

        compile_named = ts.function_signature(root, "torch_tensorrt.dynamo.compile").named
        save_named = ts.function_signature(root, "torch_tensorrt.save").named
        self.dynamo = SimpleNamespace(compile=_with_signature(compile, compile_named, "exported_program"))
        self.save = _with_signature(save, save_named - {"file_path"}, "module")
        self.Input = lambda **kw: SimpleNamespace(**kw)
        self.compile_named = compile_named


@pytest.fixture
def fake_ttrt(monkeypatch):
    fake = FakeTorchTensorRT(ts.require_source())
    monkeypatch.setattr(engine, "require_tensorrt", lambda device_index=None: fake)
    monkeypatch.setattr(engine, "cuda_device", lambda device=None: torch.device("cpu"))
    return fake


@pytest.mark.parametrize("precision,shape", [
    ("fp16", dict(height=20, width=28)),
    ("bf16", dict(shapes=ShapeRange((16, 16), (24, 30), (48, 64)))),
], ids=["fp16-static", "bf16-dynamic"])
def test_engines_are_exported_and_compiled_in_their_precision(fake_ttrt, small, tmp_path, precision, shape):
    dtype = torch_dtype(precision)
    notes = []
    engine.build_engine(small, tmp_path / "e.ep", precision=precision, log=notes.append, **shape)
    program = fake_ttrt.compiled
    first = program.graph_signature.user_inputs[0]
    image = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == first)
    assert image.meta["val"].dtype == dtype  # what the engine's input binding will be
    assert engine.program_input_dtype(program) == dtype
    floats = [t for t in [*program.state_dict.values(), *program.constants.values()] if t.is_floating_point()]
    assert floats and all(t.dtype == dtype for t in floats)
    # strongly typed by itself in 2.14: nothing else to ask for, and nothing the compile would ignore
    assert set(fake_ttrt.compile_kwargs) <= fake_ttrt.compile_named
    assert not set(fake_ttrt.compile_kwargs) & set(engine.REMOVED_OPTIONS)
    assert fake_ttrt.compile_kwargs["arg_inputs"][0].dtype == dtype
    assert all(t.dtype in (dtype, torch.int64) for t in fake_ttrt.save_kwargs["arg_inputs"])
    assert ("dynamic_shapes" in fake_ttrt.save_kwargs) == ("shapes" in shape)
    assert next(small.parameters()).dtype == torch.float32  # the caller's model is not touched
    assert not any("has no" in n for n in notes), notes


def test_a_cached_engine_of_another_dtype_is_rebuilt_not_used(small, tmp_path, monkeypatch):
    # what the old code left in caches under torch-tensorrt 2.13+: an fp32 engine under an fp16 key
    monkeypatch.setattr(engine, "load_program", lambda path, device=None: torch.export.load(str(path)))
    key = engine_key(small, precision="fp16", height=20, width=28, gpu=GPU)
    cache = EngineCache(tmp_path)
    fp32 = trt_program(small, height=20, width=28, dtype=torch.float32).program
    fp16 = trt_program(small, height=20, width=28, dtype=torch.float16).program
    cache.get_or_build(key, lambda p: torch.export.save(fp32, str(p)), lambda p: p, log=None)

    built = []

    def build(path):
        built.append(path)
        torch.export.save(fp16, str(path))

    with pytest.warns(EngineCacheWarning, match="takes float32 input, but its key asks for fp16"):
        module = cache.get_or_build(key, build, lambda p: engine.checked_load(p, "fp16"), log=None)
    assert len(built) == 1
    x = torch.rand(1, 3, 20, 28, dtype=torch.float16)
    assert module(x).dtype == torch.float16  # the rebuilt entry takes the frames the engine gets
    # and it is used from now on, without another build
    cache.get_or_build(key, build, lambda p: engine.checked_load(p, "fp16"), log=None)
    assert len(built) == 1


def test_the_cache_key_version_changed_with_the_dtype_fix():
    # entries of version 1 (fp32 engines under fp16/bf16 keys) are never looked up again
    assert runtime_versions()["key_version"] >= 2


# --- one execution context per stream ---

class StandIn:
    """A stand-in engine copy (one execution context) that records concurrency: it waits, up
    to a second, until a call is running in some other copy too, so overlap is certain where
    the scheduling allows it."""

    all: list["StandIn"] = []
    guard = threading.Lock()
    running = 0
    most_running = 0
    overlap = threading.Event()

    def __init__(self):
        self.inside = 0
        self.most_inside = 0
        self.calls = 0
        StandIn.all.append(self)

    @classmethod
    def reset(cls):
        cls.all, cls.running, cls.most_running, cls.overlap = [], 0, 0, threading.Event()

    def __call__(self, x):
        with StandIn.guard:
            self.inside += 1
            self.calls += 1
            self.most_inside = max(self.most_inside, self.inside)
            StandIn.running += 1
            StandIn.most_running = max(StandIn.most_running, StandIn.running)
            if StandIn.running > 1:
                StandIn.overlap.set()
        StandIn.overlap.wait(1.0)
        with StandIn.guard:
            self.inside -= 1
            StandIn.running -= 1
        return torch.zeros(x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3], dtype=x.dtype)


class OnStreams(TrtEngine):
    """The engine with its stream lookup stood in: each thread says which stream it is on."""

    current = threading.local()

    def _lane(self):
        return "stream", OnStreams.current.stream


def _static_key(model):
    return engine_key(model, precision="fp32", height=8, width=8, gpu=GPU)


def _run_threads(eng, streams: list[str], calls: int = 3):
    errors = []
    start = threading.Barrier(len(streams))

    def work(stream):
        OnStreams.current.stream = stream
        start.wait()
        try:
            for _ in range(calls):
                assert eng(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_each_stream_gets_its_own_context_and_streams_overlap(small):
    StandIn.reset()
    eng = OnStreams(StandIn(), _static_key(small), tlc_kernel=16, device=torch.device("cpu"), loader=StandIn)
    _run_threads(eng, ["A", "B", "A", "B"])  # four threads on two streams, as StreamRunner hands them out
    assert eng.contexts == 2 and len(StandIn.all) == 2  # one copy loaded for the second stream, no more
    assert all(s.most_inside == 1 for s in StandIn.all)  # a context never runs two calls at once
    assert StandIn.most_running == 2  # the two streams did run at the same time
    assert sorted(s.calls for s in StandIn.all) == [6, 6]


def test_one_stream_uses_one_context(small):
    StandIn.reset()
    eng = OnStreams(StandIn(), _static_key(small), tlc_kernel=16, device=torch.device("cpu"), loader=StandIn)
    _run_threads(eng, ["A", "A", "A"])
    assert eng.contexts == 1 and len(StandIn.all) == 1
    assert StandIn.most_running == 1 and StandIn.all[0].calls == 9


def test_a_second_stream_without_a_file_to_load_is_refused(small):
    StandIn.reset()
    eng = OnStreams(StandIn(), _static_key(small), tlc_kernel=16, device=torch.device("cpu"))
    OnStreams.current.stream = "A"
    eng(torch.rand(1, 3, 8, 8))
    OnStreams.current.stream = "B"
    with pytest.raises(RuntimeError, match="cannot give a second stream its own execution context"):
        eng(torch.rand(1, 3, 8, 8))


def test_engine_for_loads_another_context_from_the_cached_file(monkeypatch, small, tmp_path):
    # the default loader of an engine made with a path reads that file again
    loaded = []
    monkeypatch.setattr(engine, "load_engine", lambda path, device=None: loaded.append(path) or StandIn())
    StandIn.reset()
    eng = OnStreams(StandIn(), _static_key(small), tlc_kernel=16, device=torch.device("cpu"), path=tmp_path / "e.ep")
    for stream in "ABA":
        OnStreams.current.stream = stream
        eng(torch.rand(1, 3, 8, 8))
    assert loaded == [tmp_path / "e.ep"] and eng.contexts == 2


# --- dlgsa-build-engine builds what the trt backend asks for ---

def _request(argv):
    args = build_cli.build_parser().parse_args(argv)
    settings = build_cli.run_settings(args)
    h, w, shapes = build_cli.engine_size(args, settings)
    return settings, h, w, shapes


def test_the_default_build_is_the_engine_the_trt_backend_asks_for():
    settings, h, w, shapes = _request(["--size", "960x540"])
    built = engine_key(build_cli.load_network(settings), precision=build_cli.engine_precision(settings),
                       batch=settings.batch, height=h, width=w, shapes=shapes, gpu=GPU)
    # the backend as the video front ends run it: their packaged model (light-video x2) as it
    # keeps it (fp16 on the GPU), a static engine for the frame size, fp16, batch 1
    # (create_backend_upscaler's engine_for call)
    from dlgsa_vs.runtime.packaged import VIDEO_DEFAULT_MODEL

    backend_model = load_model(None, variant=VIDEO_DEFAULT_MODEL, scale=None, tlc=True).eval().to(torch.float16)
    asked = engine_key(backend_model, precision="fp16", batch=1, height=540, width=960, gpu=GPU)
    assert built == asked and not built.dynamic


def test_with_tiles_the_build_is_for_the_tile_crop_the_upscaler_feeds():
    from dlgsa_vs.runtime.inference import tile_spans

    _, h, w, shapes = _request(["--size", "1920x1080", "--tile", "512", "512", "--tile-pad", "16"])
    assert (h, w, shapes) == (544, 544, None)
    assert (h, w) == (tile_spans(1080, 512, 16)[0].size, tile_spans(1920, 512, 16)[0].size)
    _, h, w, _ = _request(["--size", "400x300", "--tile", "512", "512"])  # tiles larger than the frame
    assert (h, w) == (300, 400)


def test_without_a_size_the_build_asks_for_one(capsys):
    assert build_cli.main([]) == 2
    err = capsys.readouterr().err
    assert "give --size WxH" in err and "trt backend" in err and len(err.strip().splitlines()) == 1
    _, h, w, shapes = _request(["--min", "64x64"])  # dynamic only when asked for
    assert h is None and shapes.min_hw == (64, 64)
    with pytest.raises(build_cli.UsageError, match="--tile goes with --size"):
        _request(["--min", "64x64", "--tile", "256", "256"])


def test_list_says_which_entries_the_trt_backend_can_use(small, tmp_path):
    cache = EngineCache(tmp_path)
    now = runtime_versions()
    static = engine_key(small, precision="fp16", height=20, width=28, gpu=GPU)
    dynamic = engine_key(small, precision="fp16", shapes=ShapeRange((16, 16), (24, 30), (48, 64)), gpu=GPU)
    old = engine_key(small, precision="fp16", height=40, width=40, gpu=GPU)
    old = type(old)(**{**old.fields(), "key_version": 1})
    other_gpu = engine_key(small, precision="fp16", height=20, width=28, gpu=("NVIDIA other", "9.0"))
    for k in (static, dynamic, old, other_gpu):
        cache.get_or_build(k, lambda p: p.write_bytes(b"engine"), lambda p: p, log=None)
    uses = {e.key: build_cli.backend_use(e, cache, now, [GPU]) for e in cache.list()}
    assert uses == {static: "yes", dynamic: "no: dynamic", old: "no: other versions", other_gpu: "no: other GPU"}
    out = io.StringIO()
    build_cli.print_table(cache, out, current=now, gpus=[GPU])
    text = out.getvalue()
    assert "trt backend" in text and "4 engine(s)" in text and "the trt backend can use 1" in text
