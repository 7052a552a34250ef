"""Backend selection, precision rules, the fp16 guard and the stream runner, on this machine."""
import threading

import pytest
import torch

from conftest import randomize_, small_config
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.cpu_features import cpu_precision
from dlgsa_vs.runtime.cpu_runner import CpuNetwork
from dlgsa_vs.runtime.backends import (BackendError, StreamRunner, create_backend_upscaler, resolve_precision,
                               select_backend)
from dlgsa_vs.runtime.settings import Names, RunSettings, SettingsError
from dlgsa_vs.runtime.inference import Upscaler

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_unknown_backend_is_named():
    with pytest.raises(SettingsError, match=r"backend='tpu' is unknown: use one of auto, trt, cuda, cpu"):
        select_backend("tpu")


def test_cpu_is_always_there():
    backend = select_backend("CPU")
    assert backend.name == "cpu" and backend.device == torch.device("cpu")


@no_gpu
def test_auto_without_a_gpu_says_why_it_took_the_cpu():
    backend = select_backend("auto")
    assert backend.name == "cpu"
    assert backend.reason.startswith("no CUDA GPU: ") and ("no CUDA support" in backend.reason
                                                           or "sees no CUDA GPU" in backend.reason)


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "trt"])
def test_gpu_backends_without_a_gpu_are_clear_errors(name):
    with pytest.raises(BackendError, match=rf"^backend {name} needs an NVIDIA GPU, but .*: use backend cpu$"):
        select_backend(name)


def test_precision_rules():
    cpu = select_backend("cpu")
    assert resolve_precision(cpu, RunSettings()) == cpu_precision(None)  # the CPU's own choice
    assert resolve_precision(cpu, RunSettings(precision="fp32")) == ("fp32", "as asked")
    # one policy everywhere: half precision asked for on the CPU is fp32 and one note
    assert resolve_precision(cpu, RunSettings(precision="fp16"))[0] == "fp32"
    notes = []
    up = create_backend_upscaler(RunSettings(variant="light", scale=2, precision="fp16"), cpu, log=notes.append,
                                 names=Names({"precision": "--precision"}, "option"))
    assert up.dtype == torch.float32 and up.network is up.model  # fp32: the model itself, eagerly
    assert notes == ["--precision fp16 -> fp32 (fp16 has no fast path on the CPU)"]
    with pytest.raises(SettingsError, match="precision='fp8' is unknown: use fp16, bf16 or fp32"):
        RunSettings(precision="fp8")


def test_cpu_bf16_runs_the_cpu_runner_and_says_so():
    """bf16 on the CPU (asked, or the CPU's automatic choice): the network is cpu_runner's, the
    upscaler's frames stay float32, and the summary says what computes, in which engine and why."""
    notes = []
    up = create_backend_upscaler(RunSettings(variant="light", scale=2, precision="bf16", cpu_engine="torch",
                                             tile=(0, 0)), select_backend("cpu"), log=notes.append)
    assert isinstance(up.network, CpuNetwork) and up.network.precision == "bf16"
    assert up.dtype == torch.float32 and up.model.mean.dtype == torch.float32
    assert notes == [] and up.plan.compute().endswith(" in torch (as asked)")
    assert up.network.describe() == "torch bf16 (as asked)"
    x = torch.rand(1, 3, 24, 32)
    with torch.inference_mode():
        ref = up.model(x).clamp(0, 1)
    out = up(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 0 < (out - ref).abs().max() < 0.05  # bf16, not fp32, and close to it


def test_cpu_engine_is_for_the_cpu_backend_only():
    with pytest.raises(SettingsError, match="cpu_engine='openvino' applies to the cpu backend only"):
        RunSettings(backend="cuda", cpu_engine="openvino")
    with pytest.raises(SettingsError, match="cpu_engine='onnx' is unknown: use one of auto, torch, openvino"):
        RunSettings(cpu_engine="onnx")


def test_compile_is_for_the_cuda_backend_only():
    with pytest.raises(SettingsError, match="compile and cuda_graphs apply to the cuda backend only"):
        RunSettings(backend="cpu", compile=True)
    auto = RunSettings(variant="light", scale=2, compile=True)  # auto: checked once it resolves
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="compile and cuda_graphs apply to the cuda backend only"):
            create_backend_upscaler(auto)


def test_cpu_backend_upscaler_runs_the_packaged_model():
    up = create_backend_upscaler(RunSettings(variant="light", scale=2, tile=(24, 24), precision="fp32"),
                                 select_backend("cpu"))
    assert up.dtype == torch.float32 and up.network is up.model  # fp32: the model itself, eager
    assert up.network_input_hw(100, 30) == (24 + 2 * 16, 30)
    y = up(torch.rand(1, 3, 20, 28))
    assert y.shape == (1, 3, 40, 56) and 0 <= y.min() and y.max() <= 1


def overflowing_model() -> DLGSANet:
    model = randomize_(DLGSANet(**small_config())).eval()
    with torch.no_grad():
        model.overlap_embed[0].proj.weight.mul_(3e4)  # activations beyond fp16's 65504
    return model


def test_fp16_overflow_is_redone_in_a_wider_type_never_returned():
    model = overflowing_model()
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert not torch.isfinite(model.half()(x.half())).all()  # the premise: fp16 overflows
        expected = model.bfloat16()(x.bfloat16()).float().clamp(0, 1)
    up = Upscaler(model, "cpu", torch.float16)
    with pytest.warns(RuntimeWarning, match=r"float16 output is not finite \(overflow\) on a \(24, 20\) input: "
                                            r"switching to bfloat16 for the rest of the run"):
        y = up(x)
    assert up.dtype == torch.bfloat16 and torch.equal(y, expected)


def test_stream_runner_on_the_cpu_serialises_and_matches():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config())).eval()
    frames = [torch.rand(1, 3, 16, 20) for _ in range(4)]
    ref = [Upscaler(model, "cpu")(f) for f in frames]
    runner = StreamRunner(Upscaler(model, "cpu"), num_streams=2)
    out = [None] * 4
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, runner(frames[i]))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(a, b) for a, b in zip(out, ref))
    with pytest.raises(SettingsError, match="num_streams=0 is invalid: it must be >= 1"):
        StreamRunner(Upscaler(model, "cpu"), 0)


def test_kernels_choice_travels_from_the_settings_to_the_network():
    with pytest.raises(SettingsError, match="kernels='cuda' is unknown: use one of auto, triton, torch"):
        RunSettings(kernels="cuda")
    cpu = select_backend("cpu")
    notes = []
    fp32 = {"variant": "light", "scale": 2, "precision": "fp32"}  # (bf16 CPUs: the same, in cpu_runner)
    auto = create_backend_upscaler(RunSettings(**fp32), cpu, log=notes.append)
    assert auto.model.kernels == "torch" and auto.model.kernels_reason == "auto: device cpu is not CUDA"
    assert notes == []  # the default kernels on the CPU are not worth a line
    asked = create_backend_upscaler(RunSettings(**fp32, kernels="torch"), cpu, log=notes.append)
    assert asked.model.kernels == "torch" and notes == ["kernels torch -> torch (requested)"]
