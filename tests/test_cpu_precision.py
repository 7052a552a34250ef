"""The fast CPU path (dlgsa_vs.runtime.cpu_runner) against the fp32 model: the quality floor of bf16 (>= 50 dB
PSNR against the fp32 output) and the engines' contract. Speed lives in scripts/bench_cpu_precision.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, randomize_, small_config
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.cpu_runner import (EngineUnavailable, TorchCpuNetwork, choose_engine, model_digest, openvino_problem,
                                 prepare_cpu_model)
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.runtime.weights import load_model

FLOOR_DB = 50.0
BF16_CEILING_DB = 90.0  # fp32 against fp32 is exact or ~130 dB: a higher PSNR means bf16 never ran
SET5_LR = SHARED_DATA / "benchmarks" / "Set5" / "LR_bicubic" / "X2"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two float images in [0, 1] (clamped first, as the Upscaler returns them)."""
    mse = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def smooth_image(h: int, w: int) -> torch.Tensor:
    """A deterministic natural-looking RGB test card: gradients, a disc edge and some texture."""
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.08).float()
    texture = 0.1 * torch.sin(40 * x) * torch.cos(25 * y)
    rgb = torch.stack([0.2 + 0.6 * x + texture, 0.3 + 0.5 * y * disc, 0.8 - 0.5 * x * y + 0.5 * texture])
    return rgb.clamp(0, 1)[None]


@pytest.fixture(scope="module")
def light_x2():
    return load_model(variant="light", scale=2)


@torch.inference_mode()
def fp32_reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.float()(x.contiguous(memory_format=torch.channels_last))


def test_torch_bf16_meets_the_floor_on_the_packaged_weights(light_x2):
    x = smooth_image(40, 56)
    ref = fp32_reference(light_x2, x)
    net = prepare_cpu_model(light_x2, "bf16", "torch")
    out = net(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (1, 3, 80, 112)
    db = psnr(out, ref)
    assert FLOOR_DB <= db < BF16_CEILING_DB, f"bf16 vs fp32: {db:.2f} dB"  # above the ceiling: it ran in fp32
    # the caller's model is untouched (fp32): the Upscaler's fallback and the exports use it
    assert all(p.dtype == torch.float32 for p in light_x2.parameters())


def test_torch_bf16_meets_the_floor_on_a_set5_crop(light_x2):
    if not SET5_LR.is_dir():
        pytest.skip(f"benchmark data not found: {SET5_LR} (the shared data folder ../shared/data is absent)")
    from dlgsa_vs.image.imageio import read_image
    from dlgsa_vs.runtime.inference import image_to_tensor

    x = image_to_tensor(read_image(SET5_LR / "butterflyx2.png"))[..., 20:68, 30:94]
    ref = fp32_reference(light_x2, x)
    db = psnr(prepare_cpu_model(light_x2, "bf16", "torch")(x), ref)
    assert FLOOR_DB <= db < BF16_CEILING_DB, f"bf16 vs fp32 on a Set5 crop: {db:.2f} dB"


def test_fp32_torch_engine_is_the_model_itself(light_x2):
    x = smooth_image(24, 32)
    net = prepare_cpu_model(light_x2, "fp32", "torch")
    assert net.model is light_x2
    assert torch.equal(net(x), fp32_reference(light_x2, x))


def test_as_the_network_of_an_upscaler_in_tiles(light_x2):
    """Wired as the Upscaler's network (dtype fp32): tiled and batched frames come out clamped and close."""
    frames = torch.cat([smooth_image(40, 48), smooth_image(40, 48).flip(-1)])
    net = prepare_cpu_model(light_x2, "bf16", "torch")
    fast = Upscaler(light_x2, network=net, tile=(24, 24), tile_pad=8, batch=2)(frames)
    ref = Upscaler(light_x2, tile=(24, 24), tile_pad=8, batch=2)(frames)
    assert fast.shape == ref.shape == (2, 3, 80, 96)
    assert float(fast.min()) >= 0 and float(fast.max()) <= 1
    assert psnr(fast, ref) >= FLOOR_DB - 5  # tiles place their own TLC windows here: a looser bound


def test_bad_arguments_are_errors(light_x2):
    with pytest.raises(ValueError, match="fp16"):
        prepare_cpu_model(light_x2, "fp16", "torch")
    with pytest.raises(ValueError, match="CPU engine must be torch or openvino, got 'auto'"):
        prepare_cpu_model(light_x2, "bf16", "auto")  # decided before: choose_engine


def test_the_export_key_follows_the_weights_and_tlc():
    model = randomize_(DLGSANet(**small_config())).eval()
    same = DLGSANet(**small_config()).eval()
    same.load_state_dict(model.state_dict())
    assert model_digest(model) == model_digest(same)
    other = DLGSANet(**small_config()).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert model_digest(other) != model_digest(model)
    assert model_digest(same.set_tlc(False)) != model_digest(model)


@pytest.mark.skipif(openvino_problem() is not None, reason=f"OpenVINO not usable: {openvino_problem()}")
@pytest.mark.parametrize("tlc", [True, False])
def test_openvino_engine_against_fp32(tmp_path, tlc):
    """Our ONNX export through OpenVINO, a small network (exports in seconds): fp32 equals the
    model, bf16 meets the floor, two shapes and a batch, each size exported once and cached on disk."""
    model = randomize_(DLGSANet(**small_config(tlc_flag=tlc))).eval()
    notes: list[str] = []
    net32 = prepare_cpu_model(model, "fp32", "openvino", cache_dir=tmp_path, log=notes.append)
    assert net32.engine == "openvino" and not notes  # nothing exported before a size is seen
    for h, w in [(20, 36), (17, 16)]:  # TLC on: windows of 16 px, two per axis or one
        x = torch.rand(2, 3, h, w)
        ref = fp32_reference(model, x)
        out = net32(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        torch.testing.assert_close(out, ref, atol=2e-4, rtol=1e-3)
        assert net32.onnx_path(h, w).is_file()
    assert len(list(tmp_path.glob("*.onnx"))) == 2 and len(notes) == 4
    net16 = prepare_cpu_model(model, "bf16", "openvino", cache_dir=tmp_path, log=notes.append)
    x = smooth_image(20, 36)
    db = psnr(net16(x), fp32_reference(model, x))
    assert len(notes) == 4  # the cached file is reused: no second export
    # random weights amplify rounding (~40 dB here): OpenVINO's bf16 is no worse than torch's
    torch_db = psnr(prepare_cpu_model(model, "bf16", "torch")(x), fp32_reference(model, x))
    assert torch_db - 1 <= db < BF16_CEILING_DB, f"OpenVINO bf16 {db:.2f} dB, torch bf16 {torch_db:.2f} dB vs fp32"


@pytest.mark.skipif(openvino_problem() is not None, reason=f"OpenVINO not usable: {openvino_problem()}")
def test_openvino_bf16_meets_the_floor(tmp_path):
    """The floor on a small network with its initial weights (the packaged light network takes
    ~100 s per size to export on 2 cores: its floor is measured by scripts/bench_cpu_precision.py)."""
    model = DLGSANet(**small_config()).eval()
    x = smooth_image(20, 36)
    db = psnr(prepare_cpu_model(model, "bf16", "openvino", cache_dir=tmp_path)(x), fp32_reference(model, x))
    assert FLOOR_DB <= db < BF16_CEILING_DB, f"OpenVINO bf16 vs fp32: {db:.2f} dB"


def test_auto_engine_is_openvino_for_bf16_where_installed_and_says_why():
    problem = openvino_problem()
    assert choose_engine("bf16") == (("openvino", "OpenVINO is installed") if problem is None else ("torch", problem))
    assert choose_engine("fp32") == ("torch", "")  # OpenVINO f32 is not reliably faster
    assert choose_engine("bf16", "torch") == ("torch", "as asked")
    if problem is None:
        assert choose_engine("fp32", "openvino") == ("openvino", "as asked")
    else:
        with pytest.raises(EngineUnavailable, match="openvino is not installed: pip install openvino"):
            choose_engine("bf16", "openvino")
    with pytest.raises(ValueError, match="CPU engine must be one of auto, torch, openvino, got 'onnx'"):
        choose_engine("bf16", "onnx")


def test_fp32_torch_is_the_eager_model(tmp_path):
    model = DLGSANet(**small_config()).eval()
    net = prepare_cpu_model(model, "fp32", "torch")
    assert isinstance(net, TorchCpuNetwork) and net.model is model and net.body is None
    assert net.describe() == "torch fp32"


@pytest.mark.skipif(openvino_problem() is not None, reason=f"OpenVINO not usable: {openvino_problem()}")
def test_openvino_failure_runs_eager_torch_with_one_warning(tmp_path):
    """An export that cannot be written (the cache folder is a file) is a warning and eager torch."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    model = DLGSANet(**small_config()).eval()
    net = prepare_cpu_model(model, "bf16", "openvino", cache_dir=blocked)
    x = smooth_image(20, 36)
    with pytest.warns(RuntimeWarning, match="OpenVINO could not prepare 36x20 frames"):
        out = net(x)
    assert net.engine == "torch" and "OpenVINO failed" in net.describe()
    torch.testing.assert_close(out, prepare_cpu_model(model, "bf16", "torch")(x))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(x)  # said once
