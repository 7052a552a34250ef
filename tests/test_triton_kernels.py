"""The Triton kernels (dlgsa_vs.arch.kernels): selection, fallback, export, and the kernel checks.

The kernel checks themselves live in tests/triton_interp/kernels_check.py and run here in a
child process: on the CPU with TRITON_INTERPRET=1, which must be set before triton is
imported (this process must not run interpreted), natively on a CUDA GPU.
"""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import randomize_, small_config
from dlgsa_vs.arch import kernels
from dlgsa_vs.arch import tlc
from dlgsa_vs.arch.dlgsanet import DLGSANet

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = kernels.triton_version() is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")


@needs_triton
def test_kernel_checks_pass_in_the_interpreter_or_on_the_gpu():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if torch.cuda.is_available():
        env.pop("TRITON_INTERPRET", None)
    else:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/triton_interp/kernels_check.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"kernel checks failed (rc {proc.returncode}):\n{tail}"
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail


def test_auto_resolves_to_torch_on_the_cpu_with_a_reason():
    choice, reason = kernels.resolve_kernels("auto", torch.device("cpu"))
    assert choice == "torch"
    assert "cpu" in reason and "CUDA" in reason
    assert kernels.resolve_kernels("torch", "cuda") == ("torch", "requested")


def test_unknown_kernel_choice_is_an_error():
    with pytest.raises(ValueError, match="auto, triton, torch"):
        kernels.resolve_kernels("cupy", "cpu")


def test_set_kernels_records_the_choice_on_every_kernel_module():
    net = DLGSANet(**small_config())
    assert net.kernels == "torch"
    net.set_kernels("auto")
    assert (net.kernels, net.kernels_reason) == kernels.resolve_kernels("auto", "cpu")
    if HAS_TRITON:
        net.set_kernels("triton")
        modules = [m for m in net.modules() if type(m).__name__ in ("KernelHyperNet", "SparseGlobalAttention")]
        assert modules and all(m.kernels == "triton" for m in modules)
    assert all(m.kernels == "torch" for m in net.set_kernels("torch").modules() if hasattr(m, "kernels"))


def test_python_window_starts_equal_the_tlc_module():
    for k in (4, 8, 48, 96):
        for length in range(k, 4 * k + 3):
            assert kernels.tlc_window_starts(length, k) == tlc.window_starts(length, k, torch.device("cpu")).tolist()


@needs_triton
@pytest.mark.skipif(torch.cuda.is_available() or kernels.interpreting(),
                    reason="a triton launch on CPU tensors fails only without a GPU and interpreter")
def test_a_kernel_that_cannot_launch_warns_once_and_the_torch_form_runs():
    net = randomize_(DLGSANet(**small_config(tlc_kernel=8))).eval()
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        ref = net(x)
        net.set_kernels("triton")
        kernels.forget_failures()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = net(x)
            again = net(x)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages  # one per kernel, not one per layer or call
    assert all("triton kernel" in m and "torch form" in m and "\n" not in m for m in messages)
    assert torch.equal(out, ref) and torch.equal(again, ref)


@needs_triton
def test_export_with_triton_selected_contains_the_torch_forms():
    net = randomize_(DLGSANet(**small_config(tlc_kernel=8))).eval().set_kernels("triton")
    x = torch.rand(1, 3, 11, 13)
    windows = net.tlc_windows(11, 13)
    with torch.no_grad():
        program = torch.export.export(net, (x, windows))
        ref = net.set_kernels("torch")(x)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert targets and not any("dlgsa" in t for t in targets), sorted(t for t in targets if "dlgsa" in t)
    assert torch.allclose(program.module()(x, windows), ref, atol=1e-5)


def test_importing_the_network_does_not_import_triton():
    code = ("import sys, dlgsa_vs, dlgsa_vs.arch.kernels; from dlgsa_vs.arch.dlgsanet import DLGSANet; "
            "DLGSANet(dim=12, groups=1, blocks=1, upscale=2).set_kernels('torch'); "
            "assert 'triton' not in sys.modules, 'triton imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
