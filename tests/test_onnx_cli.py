"""dlgsa-export-onnx, run as a command (real torch exporter, real onnxruntime)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.trt import export_onnx as cli
from dlgsa_vs.weights import load_model, save_safetensors
from conftest import randomize_, small_config

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[onnx])")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_safetensors(randomize_(DLGSANet(**small_config())), tmp_path_factory.mktemp("w") / "small.safetensors")


def export(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlgsa_vs.trt.export_onnx", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def static_run(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "sub" / "static.onnx"
    return out, export("-m", weights, "--size", "24x30", "-o", out)


def test_static_fp32_file_matches_pytorch(weights, static_run):
    out, res = static_run
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out) and out.is_file()
    assert "verified with onnxruntime (CPU) at 24x30: max abs err" in res.stderr
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left
    assert "torchvision" not in res.stderr  # the exporter's own notes are kept quiet

    s = session(out)
    assert [i.name for i in s.get_inputs()] == ["input"] and [o.name for o in s.get_outputs()] == ["output"]
    assert s.get_inputs()[0].shape == [1, 3, 24, 30] and s.get_inputs()[0].type == "tensor(float)"
    model = load_model(weights)
    x = torch.rand(1, 3, 24, 30)
    with torch.no_grad():
        ref = model(x).numpy()
    got = s.run(None, {"input": x.numpy()})[0]
    assert got.shape == (1, 3, 48, 60) and np.abs(got - ref).max() <= 1e-4


def test_dynamic_fp16_file_takes_the_windows_and_runs(weights, tmp_path):
    out = tmp_path / "dyn16.onnx"
    res = export("-m", weights, "--min", "16x16", "--opt", "24x30", "--max", "64x64", "--fp16", "-o", out)
    assert res.returncode == 0, res.stderr
    assert "fp16 file against the fp32 PyTorch output" in res.stderr
    assert res.stderr.count("verified with onnxruntime") == 2  # the smallest size and an odd one

    s = session(out)
    inputs = {i.name: i for i in s.get_inputs()}
    assert list(inputs) == ["input", "windows_h", "windows_w"]
    assert inputs["input"].type == "tensor(float16)" and inputs["windows_h"].type == "tensor(int64)"
    assert all(isinstance(d, str) for d in inputs["input"].shape[2:])  # symbolic height and width
    model = load_model(weights)
    for h, w in [(16, 16), (40, 23)]:
        x = torch.rand(1, 3, h, w)
        wh, ww = model.tlc_windows(h, w)
        got = s.run(None, {"input": x.half().numpy(), "windows_h": wh.numpy(), "windows_w": ww.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        assert got.dtype == np.float16 and got.shape == (1, 3, 2 * h, 2 * w)
        assert np.abs(got.astype(np.float32) - ref).max() <= 1e-2 * max(1.0, np.abs(ref).max())


def test_a_failed_verification_writes_no_file(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "FP32_LIMIT", 0.0)  # no float computation is that exact: the check must fail
    out = tmp_path / "never.onnx"
    assert cli.main(["-m", str(weights), "--size", "20x20", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: verification failed, no file written: at 20x20 the ONNX output differs" in err
    assert list(tmp_path.iterdir()) == []


def test_verify_finds_a_file_of_other_weights(weights, static_run):
    path = static_run[0]
    other = load_model(weights)
    with torch.no_grad():
        other.upsample[0].bias.add_(0.01)
    assert cli.verify(path, load_model(weights), [(24, 30)], 1, False, lambda _m: None) is None
    assert "differs from PyTorch" in cli.verify(path, other, [(24, 30)], 1, False, lambda _m: None)


@pytest.mark.parametrize("argv,message", [
    ([], "choose the input size"),
    (["--size", "24x30", "--min", "16x16"], "not both"),
    (["--size", "24"], "is not a size HxW"),
    (["--size", "1x30"], "smallest supported LR size"),
    (["--min", "16x16", "--max", "64x64", "--verify-size", "99x20"], "outside"),
    (["--size", "24x30", "-o", "x.txt"], "should end in .onnx"),
    (["--size", "24x30", "--opset", "11"], "--opset must be >= 18"),
    (["--variant", "tiny", "--scale", "4", "--size", "24x30"], "no packaged weights for tiny x4"),
])
def test_usage_errors_are_one_line_with_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dlgsa-export-onnx: error: ")
    assert list(tmp_path.iterdir()) == []


def test_default_output_name(weights, tmp_path):
    model = load_model(weights)
    from dlgsa_vs.export import ShapeRange

    assert cli.default_name(model, 24, 30, None, False) == "dlgsanet_custom_x2_24x30.onnx"
    assert cli.default_name(load_model(weights, tlc=False), None, None, ShapeRange((16, 16), (24, 30), (64, 64)),
                            True) == "dlgsanet_custom_x2_16x16-64x64_notlc_fp16.onnx"
