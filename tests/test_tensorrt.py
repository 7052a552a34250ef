"""TensorRT engines: built, saved, reloaded through the cache and compared with eager PyTorch
where TensorRT and a CUDA GPU exist; elsewhere, the clear error that says what is missing,
and the engine wrapper (batching, TLC windows, size checks) around a real exported program.
"""
import importlib.util

import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.export import ShapeRange
from dlgsa_vs.cli import build_engine as build_cli
from dlgsa_vs.runtime.trt.cache import EngineCache
from dlgsa_vs.runtime.trt.engine import (TensorRTUnavailable, TrtEngine, build_engine, engine_for, engine_key,
                                 load_engine, trt_available)
from dlgsa_vs.runtime.trt.program import trt_program
from dlgsa_vs.runtime.weights import load_model
from conftest import randomize_, small_config

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture
def gpu_trt():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install \"dlgsa-vs[trt]\" on a machine "
                                           "with an NVIDIA GPU)")
    pytest.importorskip("torch_tensorrt", reason="torch-tensorrt is not installed (pip install \"dlgsa-vs[trt]\")")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    ok, reason = trt_available()
    assert ok, reason


# --- with TensorRT and a GPU ---

@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_engine_is_built_cached_reloaded_and_matches_eager(gpu_trt, tmp_path, dynamic):
    model = load_model()  # the packaged light x2: real weights, outputs in [0, 1]
    shape = dict(shapes=ShapeRange((32, 32), (64, 96), (128, 160))) if dynamic else dict(height=64, width=96)
    logs = []
    engine = engine_for(model, precision="fp16", cache=tmp_path, log=logs.append, **shape)
    assert any("building" in line for line in logs), logs
    assert engine.path.is_file() and engine.path.with_suffix(".json").is_file()

    eager = load_model().cuda().eval()
    sizes = [(64, 96), (33, 150)] if dynamic else [(64, 96)]
    for h, w in sizes:
        x = torch.rand(2, 3, h, w, device="cuda")  # two frames through a batch-1 engine
        with torch.no_grad():
            ref = eager(x)
        out = engine(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert (out - ref).abs().max().item() <= 2e-2, (h, w)  # fp16 engine vs fp32 PyTorch

    logs.clear()
    again = engine_for(model, precision="fp16", cache=tmp_path, log=logs.append, **shape)
    assert not any("building" in line for line in logs) and any("using cached" in line for line in logs), logs
    x = torch.rand(1, 3, 64, 96, device="cuda")
    assert torch.allclose(again(x), engine(x), atol=1e-3)
    direct = TrtEngine(load_engine(engine.path), engine.key, tlc_kernel=model.tlc_kernel,
                       device=torch.device("cuda", 0))
    assert torch.allclose(direct(x), engine(x), atol=1e-3)
    assert [e.key for e in EngineCache(tmp_path).list()] == [engine.key]
    with pytest.raises(ValueError, match="takes LR frames of"):
        engine(torch.rand(1, 3, 200, 200, device="cuda"))


def test_fp16_engine_takes_fp16_and_two_streams_match_one(gpu_trt, tmp_path):
    # the saved program's input is fp16 (an fp32 engine under an fp16 key refused the first
    # frame), and frames on two streams at once, one execution context each, match one stream
    import threading

    from dlgsa_vs.runtime.trt.engine import load_program, program_input_dtype

    model = load_model()
    engine = engine_for(model, precision="fp16", height=64, width=96, cache=tmp_path)
    assert program_input_dtype(load_program(engine.path)) == torch.float16
    frames = [torch.rand(1, 3, 64, 96, device="cuda") for _ in range(8)]
    single = [engine(f) for f in frames]
    torch.cuda.synchronize()
    out = [None] * len(frames)
    streams = [torch.cuda.Stream() for _ in range(2)]
    start = threading.Barrier(2)

    def work(k):
        start.wait()
        with torch.cuda.stream(streams[k]):
            for i in range(k, len(frames), 2):
                out[i] = engine(frames[i])
        streams[k].synchronize()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.contexts == 3  # the default stream's and one per stream
    assert max((a - b).abs().max().item() for a, b in zip(out, single)) <= 1e-3


# --- without TensorRT ---

@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is importable here: the missing-TensorRT error cannot happen")
def test_asking_for_an_engine_without_tensorrt_says_what_is_missing(tmp_path, capsys):
    ok, reason = trt_available()
    assert not ok and "the tensorrt package is not installed" in reason and 'pip install "dlgsa-vs[trt]"' in reason
    model = DLGSANet(**small_config())
    for call in (lambda: engine_for(model, height=32, width=32, cache=tmp_path),
                 lambda: build_engine(model, tmp_path / "x.ep", height=32, width=32),
                 lambda: load_engine(tmp_path / "x.ep")):
        with pytest.raises(TensorRTUnavailable) as info:
            call()
        text = str(info.value)
        assert text.startswith("TensorRT engines cannot be built or run here: ")
        assert "tensorrt package is not installed" in text and "torch_tensorrt" in text
        assert 'pip install "dlgsa-vs[trt]"' in text and "NVIDIA GPU" in text
    assert list(tmp_path.iterdir()) == []  # nothing was started in the cache

    # exit 2, as dlgsa-upscale --backend trt for the same cause (was 1: issue #36)
    assert build_cli.main(["--size", "64x64", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot build a TensorRT engine here: ")
    assert len(err.strip().splitlines()) == 1 and "tensorrt package is not installed" in err


def test_trt_available_never_raises():
    ok, reason = trt_available(device_index=99)
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    if not torch.cuda.is_available():
        assert not ok and "no CUDA GPU" in reason


# --- the engine wrapper around a real exported program (what TensorRT compiles) ---

@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return randomize_(DLGSANet(**small_config(tlc_kernel=16))).eval()


def wrapper(model, batch=1, **shape):
    graph = trt_program(model, batch=batch, **shape)
    key = engine_key(model, precision="fp32", batch=batch, gpu=("CPU stand-in", "0.0"), **shape)
    return TrtEngine(graph.program.module(), key, tlc_kernel=model.tlc_kernel, device=torch.device("cpu"))


def test_engine_wrapper_batches_pads_and_checks_sizes(small):
    engine = wrapper(small, batch=2, height=20, width=28)
    x = torch.rand(3, 3, 20, 28, dtype=torch.float64)  # 3 frames, a batch-2 graph: the last one is padded
    with torch.no_grad():
        ref = small(x.float())
    out = engine(x)
    assert out.dtype == torch.float64 and out.shape == (3, 3, 40, 56)
    assert (out.float() - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert engine.supports(20, 28) and not engine.supports(20, 29)
    assert engine(torch.rand(0, 3, 20, 28)).shape == (0, 3, 40, 56)
    with pytest.raises(ValueError, match=r"takes LR frames of 28x20, got 28x21.*--size 28x21"):
        engine(torch.rand(1, 3, 21, 28))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        engine(torch.rand(3, 20, 28))


def test_engine_wrapper_feeds_the_tlc_windows_of_a_dynamic_graph(small):
    engine = wrapper(small, shapes=ShapeRange((16, 16), (24, 30), (48, 64)))
    for h, w in [(16, 16), (37, 50), (48, 64)]:  # windows of 16 px: several overlapping ones
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = small(x)
        assert (engine(x) - ref).abs().max() <= 1e-5 * ref.abs().max(), (h, w)
    assert set(engine._windows) == {(16, 16), (37, 50), (48, 64)}  # computed once per size
    with pytest.raises(ValueError, match="16x16..64x48"):  # WxH, as the command lines
        engine(torch.rand(1, 3, 49, 20))
