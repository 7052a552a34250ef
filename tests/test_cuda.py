"""The network and the cuda backend on an NVIDIA GPU (skipped without one).

Needs torch alone (no VapourSynth, no PyAV), so it also runs on a bare GPU machine:
``scripts/gpu_check.sh`` runs it there.
"""
import threading
import warnings

import pytest
import torch

from conftest import randomize_, small_config
from dlgsa_vs.arch import DLGSANet, build_model
from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv, dynamic_dw_conv_functional
from dlgsa_vs.runtime.backends import BackendError, StreamRunner, select_backend
from dlgsa_vs.runtime.export import ShapeRange, export_program
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.runtime.weights import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GPU = torch.device("cuda")


@pytest.fixture
def no_tf32():
    """fp32 comparisons with true fp32 convolutions: cuDNN uses TF32 by default, which moved the
    light x2 output by up to 8e-4 against the CPU on an H200 (2026-11-26)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def trained():
    return load_model(None, variant="light", scale=2).eval()  # the packaged weights


def test_cuda_fp32_matches_cpu(trained, no_tf32):
    x = torch.rand(2, 3, 45, 61)
    with torch.no_grad():
        ref = trained(x)
        out = trained.to(GPU)(x.to(GPU)).cpu()
    trained.cpu()
    assert (out - ref).abs().max() < 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_half_precision_is_close_to_fp32(trained, dtype, tol):
    x = torch.rand(1, 3, 64, 80, device=GPU)
    ref = Upscaler(trained, GPU, torch.float32)(x)
    out = Upscaler(load_model(None, variant="light", scale=2), GPU, dtype)(x)
    err = (out - ref).abs()
    assert err.mean() < tol / 4 and err.max() < 10 * tol, (err.mean(), err.max())


def test_training_backward_on_cuda_matches_autograd():
    x = torch.randn(2, 16, 20, 24, device=GPU, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2 * 49, 20, 24, device=GPU, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 16, 20, 24, device=GPU, dtype=torch.float64)
    fast = torch.autograd.grad(dynamic_dw_conv(x, w, 7), (x, w), g)
    ref = torch.autograd.grad(dynamic_dw_conv_functional(x, w, 7), (x, w), g)
    for a, b in zip(fast, ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_a_training_step_runs_and_lowers_the_loss():
    torch.manual_seed(0)
    model = build_model("light", 4).to(GPU).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, fused=True)
    lr, hr = torch.rand(4, 3, 24, 24, device=GPU), None
    hr = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_fp16_overflow_falls_back_instead_of_returning_nan():
    model = randomize_(DLGSANet(**small_config())).eval()
    with torch.no_grad():
        model.overlap_embed[0].proj.weight.mul_(3e4)  # activations beyond fp16's 65504
    x = torch.rand(1, 3, 24, 20, device=GPU)
    up = Upscaler(model, GPU, torch.float16)
    with pytest.warns(RuntimeWarning, match="float16 output is not finite.*switching to bfloat16"):
        y = up(x)
    assert up.dtype == torch.bfloat16 and torch.isfinite(y).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        up(x)  # no second switch


def test_stream_runner_gives_the_single_stream_result(trained, no_tf32):
    frames = [torch.rand(1, 3, 48, 64) for _ in range(8)]
    ref = [Upscaler(trained, GPU, torch.float32)(f.to(GPU)).cpu() for f in frames]
    runner = StreamRunner(Upscaler(load_model(None, variant="light", scale=2), GPU, torch.float32), num_streams=3)
    out = [None] * len(frames)

    def work(i):
        out[i] = runner(frames[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(out, ref):
        assert a.device.type == "cpu" and (a - b).abs().max() < 1e-5


def test_tiles_on_cuda_match_the_cpu_tiles(trained, no_tf32):
    x = torch.rand(1, 3, 70, 90)
    cpu = Upscaler(trained, "cpu", torch.float32, tile=(32, 32), tile_pad=8)(x)
    gpu = Upscaler(load_model(None, variant="light", scale=2), GPU, torch.float32, tile=(32, 32), tile_pad=8)(x.to(GPU))
    assert (gpu.cpu() - cpu).abs().max() < 1e-4


def test_auto_picks_a_gpu_backend():
    backend = select_backend("auto")
    assert backend.name in ("trt", "cuda") and backend.device.type == "cuda"
    if backend.name == "cuda":
        assert "TensorRT not used" in backend.reason
        with pytest.raises(BackendError, match="backend trt needs TensorRT"):
            select_backend("trt")
    with pytest.raises(BackendError, match="device_index=99 does not exist"):
        select_backend("cuda", device_index=99)


def test_exported_program_on_cuda_matches_eager(trained, no_tf32):
    model = trained.to(GPU)
    x = torch.rand(1, 3, 40, 52, device=GPU)
    with torch.no_grad():
        ref = model(x)
        static = export_program(model, 40, 52, device=GPU).module()(x)
        dynamic = export_program(model, 0, 0, shapes=ShapeRange((16, 16), (40, 52), (128, 128)),
                                 device=GPU).module()(x, model.tlc_windows(40, 52, GPU))
    model.cpu()
    assert (static - ref).abs().max() < 1e-4 and (dynamic - ref).abs().max() < 1e-4
