"""``dlgsa-export-onnx --4d``: the network's static <= 4-D form as ONNX (the graph vs-mlrt's
NCNN_VK / OV_GPU / ORT_DML backends take), equal to the network in onnxruntime and OpenVINO."""
import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.cli import export_onnx as cli
from dlgsa_vs.runtime.weights import load_model, save_safetensors

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install .[onnx])")
onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[onnx])")


@pytest.fixture(scope="module")
def four_d_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx4d")
    torch.manual_seed(7)
    weights = save_safetensors(randomize_(DLGSANet(**small_config())), folder / "small.safetensors")
    out = folder / "small_4d.onnx"
    assert cli.main(["-m", str(weights), "--size", "40x24", "--4d", "-o", str(out)]) == 0  # verified inside
    return weights, out


def _reference(weights, x):
    with torch.no_grad():
        return load_model(str(weights)).eval()(torch.from_numpy(x)).numpy()


def test_four_d_file_has_only_4d_tensors_and_no_scatter(four_d_file):
    _weights, path = four_d_file
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"ScatterND", "ScatterElements", "GatherND"}
    ranks = [len(v.type.tensor_type.shape.dim) for v in [*model.graph.value_info, *model.graph.output]
             if v.type.tensor_type.HasField("shape")]
    assert ranks and max(ranks) <= 4


def test_four_d_file_equals_the_network_in_onnxruntime(four_d_file):
    weights, path = four_d_file
    x = np.random.default_rng(1).random((1, 3, 24, 40), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], _reference(weights, x), rtol=1e-4, atol=1e-4)


def test_four_d_file_equals_the_network_in_openvino(four_d_file):
    ov = pytest.importorskip("openvino", reason="openvino not installed (pip install .[openvino])")
    weights, path = four_d_file
    x = np.random.default_rng(2).random((1, 3, 24, 40), dtype=np.float32)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled([x])[0], _reference(weights, x), rtol=1e-4, atol=1e-4)


def test_four_d_is_for_one_static_size(capsys):
    assert cli.main(["--variant", "light", "--min", "16x16", "--max", "64x64", "--4d"]) == 2
    err = capsys.readouterr().err
    assert "--4d exports one static size" in err and len(err.strip().splitlines()) == 1
