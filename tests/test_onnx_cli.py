"""dlgsa-export-onnx, run as a command (real torch exporter, real onnxruntime)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.cli import export_onnx as cli
from dlgsa_vs.runtime.weights import load_model, save_safetensors
from conftest import randomize_, small_config

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[onnx])")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Randomised weights with a trained model's output range (~[0, 1]): the command's fp32
    limit (1e-4, absolute) is meant for those; raw random weights reach outputs of ~10."""
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config()))
    with torch.no_grad():
        model.upsample[0].weight.mul_(0.05)
        model.upsample[0].bias.mul_(0.05)
    return save_safetensors(model, tmp_path_factory.mktemp("w") / "small.safetensors")


def export(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlgsa_vs.cli.export_onnx", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def static_run(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "sub" / "static.onnx"
    return out, export("-m", weights, "--size", "30x24", "-o", out)


def test_static_fp32_file_matches_pytorch(weights, static_run):
    out, res = static_run
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out) and out.is_file()
    assert "verified with onnxruntime (CPU) at 30x24: max abs err" in res.stderr
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


def scatter_reductions(path) -> set:
    import onnx

    return {a.s.decode() for n in onnx.load(str(path)).graph.node if n.op_type.startswith("Scatter")
            for a in n.attribute if a.name == "reduction"}


def test_tlc_files_have_no_scatter_add_and_run_the_same_every_time(weights, static_run, dynamic_fp16_run):
    # TLC's overlapping windows were once summed with a scatter-add: ONNX Runtime's threaded CPU
    # kernel raced on the repeated positions (a different result each run), TensorRT cannot parse it
    model = load_model(weights)
    for path, (h, w), fp16 in ((static_run[0], (24, 30), False), (dynamic_fp16_run[0], (150, 190), True)):
        assert not {"add", "mul", "max", "min"} & scatter_reductions(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 4
        s = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = torch.rand(1, 3, h, w)
        feeds = {"input": (x.half() if fp16 else x).numpy()}
        if fp16:  # the dynamic file: 150x190 has two overlapping 96-pixel windows along each axis
            wh, ww = model.tlc_windows(h, w)
            assert wh.shape[0] == ww.shape[0] == 2
            feeds.update(windows_h=wh.numpy(), windows_w=ww.numpy())
        runs = [s.run(None, feeds)[0].astype(np.float32) for _ in range(6)]
        with torch.no_grad():
            ref = model(x).numpy()
        assert all(np.array_equal(runs[0], r) for r in runs[1:])
        assert np.abs(runs[0] - ref).max() <= (1e-2 if fp16 else 1e-4)


@pytest.fixture(scope="module")
def dynamic_fp16_run(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("dynamic") / "dyn16.onnx"
    return out, export("-m", weights, "--min", "16x16", "--opt", "30x24", "--max", "200x200", "--fp16", "-o", out)


def test_dynamic_fp16_file_takes_the_windows_and_runs(weights, dynamic_fp16_run):
    out, res = dynamic_fp16_run
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
    (["--size", "30x24", "--min", "16x16"], "not both"),
    (["--size", "24"], "is not a size WxH"),
    (["--size", "1x30"], "smallest supported LR size"),
    (["--min", "16x16", "--max", "64x64", "--verify-size", "99x20"], "outside"),
    (["--size", "30x24", "-o", "x.txt"], "should end in .onnx"),
    (["--size", "30x24", "--opset", "11"], "--opset must be >= 18"),
    (["--variant", "tiny", "--scale", "4", "--size", "30x24"], "no packaged weights for tiny x4"),
])
def test_usage_errors_are_one_line_with_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_default_output_name(weights, tmp_path):
    model = load_model(weights)
    from dlgsa_vs.runtime.export import ShapeRange

    assert cli.default_name(model, None, 24, 30, None, False) == "dlgsanet_custom_x2_30x24.onnx"
    assert cli.default_name(load_model(weights, tlc=False), None, None, None, ShapeRange((16, 16), (24, 30), (64, 64)),
                            True) == "dlgsanet_custom_x2_16x16-64x64_notlc_fp16.onnx"
    assert cli.default_name(model, "light-video", 24, 30, None, False) == "dlgsanet_light_video_x2_30x24.onnx"


@pytest.mark.parametrize("verbose", [False, True])
def test_other_errors_are_one_line_with_code_1_and_a_traceback_with_v(verbose, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["--variant", "light", "-s", "2", "--size", "30x24", "-o", str(blocker / "x.onnx")]
    assert cli.main(argv + ["-v"] * verbose) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: FileExistsError: ")
    assert ("Traceback (most recent call last)" in err) == verbose
    assert verbose or len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"
