"""torch.export programs (what torch-tensorrt consumes) and ONNX files against eager."""
import numpy as np
import pytest
import torch

from dlgsa_vs.arch import DLGSANet, build_model
from dlgsa_vs.runtime.export import ShapeRange, export_onnx, export_program
from conftest import randomize_, small_config

SIZES = [(40, 52), (17, 90), (100, 33), (48, 48), (16, 16)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_(DLGSANet(**small_config(tlc_kernel=48))).eval()


def eager(model, x):
    with torch.no_grad():
        return model(x)


def test_static_export_matches_eager(model):
    program = export_program(model, 40, 52)
    x = torch.rand(1, 3, 40, 52)
    assert torch.allclose(program.module()(x), eager(model, x), atol=1e-5)


def test_dynamic_export_with_tlc_matches_eager_across_sizes(model):
    program = export_program(model, 0, 0, shapes=ShapeRange((16, 16), (40, 72), (1088, 1088)))
    run = program.module()
    for h, w in SIZES + [(300, 1088)]:
        x = torch.rand(1, 3, h, w)
        assert torch.allclose(run(x, model.tlc_windows(h, w)), eager(model, x), atol=1e-5), (h, w)


def test_dynamic_export_without_tlc_takes_the_image_alone():
    model = randomize_(DLGSANet(**small_config(tlc_flag=False))).eval()
    run = export_program(model, 0, 0, shapes=ShapeRange((16, 16), (32, 32), (256, 256))).module()
    for h, w in SIZES:
        x = torch.rand(1, 3, h, w)
        assert torch.allclose(run(x), eager(model, x), atol=1e-5), (h, w)


@pytest.mark.parametrize("variant,scale", [("light", 2), ("tiny", 4)])
def test_published_variants_export_statically(variant, scale):
    model = randomize_(build_model(variant, scale)).eval()
    x = torch.rand(1, 3, 24, 30)
    ref = eager(model, x)  # randomised deep nets reach large values: compare relative to them
    assert (export_program(model, 24, 30).module()(x) - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_shape_range_is_validated():
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeRange((64, 64), (32, 32), (128, 128))


onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[onnx])")


def ort_run(path, feeds):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in feeds.items()})[0])


def test_onnx_static_matches_pytorch(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx", 40, 52)
    x = torch.rand(1, 3, 40, 52)
    assert (ort_run(path, {"input": x}) - eager(model, x)).abs().max() <= 1e-4
    assert not list(tmp_path.glob(".*.part"))


def test_onnx_dynamic_matches_pytorch(model, tmp_path):
    path = export_onnx(model, tmp_path / "d.onnx", 0, 0, shapes=ShapeRange((16, 16), (40, 72), (512, 512)))
    for h, w in SIZES:
        x = torch.rand(1, 3, h, w)
        wh, ww = model.tlc_windows(h, w)
        out = ort_run(path, {"input": x, "windows_h": wh, "windows_w": ww})
        assert (out - eager(model, x)).abs().max() <= 1e-4, (h, w)
