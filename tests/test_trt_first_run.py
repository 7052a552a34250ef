"""trt/first_run_check.py (the first run on a GPU with TensorRT) works as far as it can here:
its --help, its refusal without TensorRT, and its graph counting on a plain exported program."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "trt" / "first_run_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("first_run_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_runs_without_tensorrt():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "First run of dlgsa-vs's TensorRT path" in done.stdout
    assert "--device-index" in done.stdout and "--keep-cache" in done.stdout


def test_without_tensorrt_it_says_so_and_exits_2(capsys):
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are here: the script would run its checks")
    assert load_script().main([]) == 2
    assert "TensorRT cannot run here" in capsys.readouterr().err


def test_graph_pieces_counts_pytorch_ops_of_a_program_without_engines():
    class Net(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    program = torch.export.export(Net(), (torch.rand(2, 3),))
    segments, torch_ops = load_script().graph_pieces(program)
    assert segments == 0 and any("relu" in op for op in torch_ops)


def test_size_arithmetic_is_not_counted_as_pytorch_ops():
    from dlgsa_vs.arch import DLGSANet
    from dlgsa_vs.runtime.export import ShapeRange
    from dlgsa_vs.runtime.trt.program import trt_program
    from conftest import small_config

    graph = trt_program(DLGSANet(**small_config(tlc_kernel=16)).eval(), shapes=ShapeRange((16, 16), (24, 30), (48, 64)))
    segments, torch_ops = load_script().graph_pieces(graph.program)
    assert segments == 0 and "aten.conv2d.default" in torch_ops
    assert not any(op.startswith(("aten.sym_size", "operator", "<built-in")) for op in torch_ops)
