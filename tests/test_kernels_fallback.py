"""The first-call check of the Triton kernels and their fallback to the torch forms.

``dlgsa_vs.arch.kernels.fallback.KernelGuard`` runs a kernel's first call per (kernel, dtype,
shape class) next to the torch reference; an exception or a mismatch gives one warning and
the torch form from then on. The checks that run kernels need ``TRITON_INTERPRET=1`` before
triton is imported, so :func:`test_the_interpreter_checks_pass` runs this file again in a child
process with it set (there the other tests run, here they skip). The broken kernels are real
Triton launches of the shipped kernels with a wrong constexpr (they compute wrong numbers) or
a block size Triton rejects (they raise), passed in through the checker's ``impl`` parameter.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dlgsa_vs.arch import kernels
from dlgsa_vs.arch.kernels import fallback, reference

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = kernels.triton_version() is not None
interp = pytest.mark.skipif(not kernels.interpreting(), reason="runs in the TRITON_INTERPRET=1 child "
                            "(test_the_interpreter_checks_pass)")


# --- here: the references are the network's torch forms ---

def _conv_case(n=1, c=12, groups=2, h=6, w=9, k=7, dtype=torch.float32):
    ch = c // 4
    return (torch.rand(n, c, h, w).to(dtype), torch.randn(n, ch, h, w).to(dtype),
            (torch.randn(groups * k * k, ch, 1, 1) * 0.2).to(dtype), (torch.randn(groups * k * k) * 0.1).to(dtype))


def test_the_dyn_conv_reference_is_the_networks_torch_form():
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_functional, dynamic_dw_conv_fused_1x1

    for k, groups in ((7, 2), (3, 4)):
        case = _conv_case(2, 12, groups, 6, 9, k)
        ref = dynamic_dw_conv_fused_1x1(*case, k)
        assert (reference.dyn_conv(*case, k) - ref).abs().max() <= 1e-5
        x, hidden, weight, bias = leaves = [t.requires_grad_() for t in case]
        grad_out = torch.randn_like(x)
        want = torch.autograd.grad(dynamic_dw_conv_functional(x, F.conv2d(hidden, weight, bias), k), leaves, grad_out)
        got = reference.dyn_conv_grads(grad_out, *case, k)
        for a, b in zip(got, want):
            assert (a - b).abs().max() <= 1e-4 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("tlc_kernel,h,w", [(8, 11, 19), (8, 5, 6), (4, 9, 7), (None, 9, 7)])
def test_the_attention_reference_is_the_networks_torch_form(tlc_kernel, h, w):
    from dlgsa_vs.arch.dlgsanet import SparseGlobalAttention

    m = SparseGlobalAttention(12, 6, tlc_kernel is not None, tlc_kernel or 8, "relu").eval()
    with torch.no_grad():
        m.temperature.copy_(torch.rand_like(m.temperature) + 0.5)
        x = torch.randn(1, 12, h, w)
        want = m(x)  # the module's own TLC / global torch form, then project_out
        qkv = m.qkv_dwconv(m.qkv(x))
        if HAS_TRITON:
            from dlgsa_vs.arch.kernels.global_attention_triton import axis_plan

            windows = (axis_plan(h, tlc_kernel).windows, axis_plan(w, tlc_kernel).windows)
        else:
            pytest.skip("the window plan comes with the triton module")
        got = m.project_out(reference.sparse_attention(qkv, m.temperature, 6, m.act, windows))
    assert (got - want).abs().max() <= 1e-5


def test_the_segment_references_sum_over_their_rectangles():
    a, b = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    bh, bw = [(0, 2), (2, 5)], [(0, 6)]
    g, sa, sb = reference.segment_gram(a, b, bh, bw, 2)
    pa, pb = a[..., 2:5, :].reshape(2, 2, 2, -1), b[..., 2:5, :].reshape(2, 2, 2, -1)
    assert torch.allclose(g[:, :, 1, 0], pa @ pb.transpose(-1, -2), atol=1e-5)
    assert torch.allclose(sa[:, :, 1, 0], (pa * pa).sum(-1), atol=1e-5)
    m = torch.randn(2, 2, 2, 1, 2, 2)
    out = reference.segment_matmul(m, a, bh, bw)
    assert torch.allclose(out[..., :2, :].reshape(2, 2, 2, -1), m[:, :, 0, 0] @ a[..., :2, :].reshape(2, 2, 2, -1),
                          atol=1e-5)


def test_shape_classes_follow_tritons_integer_specialization():
    assert fallback.shape_class(1, 32, 33, 2**31) == (1, 16, 0, -1)
    assert fallback.shape_class(1088, 1920) == fallback.shape_class(544, 960)  # one compiled kernel, one check


def test_tolerances_by_dtype():
    assert fallback.tolerance(torch.float32) < fallback.tolerance(torch.float16) < fallback.tolerance(torch.bfloat16)
    err, scale = fallback.max_error(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))
    assert err == float("inf")  # NaN where the reference is finite is a mismatch
    assert fallback.max_error((None, torch.ones(2)), (None, torch.ones(2))) == (0.0, 1.0)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_the_interpreter_checks_pass():
    env = dict(os.environ, TRITON_INTERPRET="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           "tests/test_kernels_fallback.py", "-k", "interp_"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert "skipped" not in proc.stdout.splitlines()[-1] and " passed" in proc.stdout, tail


# --- in the TRITON_INTERPRET=1 child: real kernels, real failures ---

@pytest.fixture
def guard():
    kernels.set_strict(False)
    kernels.forget_failures()
    yield kernels.GUARD
    kernels.forget_failures()


def _wrong_dyn_conv(x, hidden, proj_weight, proj_bias, kernel_size):
    """The shipped forward kernel launched with K=5 on 7x7 weights: runs, wrong numbers."""
    from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc
    from dlgsa_vs.arch.kernels._launch import Launch

    weight = proj_weight.reshape(proj_weight.shape[0], -1).contiguous()
    out = torch.empty_like(x)
    good = dc.fwd_launch(x.contiguous(), hidden.contiguous(), weight, proj_bias, out, kernel_size)
    Launch(good.kernel, good.grid, good.args, dict(good.constexprs, K=5))()
    return out


def _rejected_dyn_conv(x, hidden, proj_weight, proj_bias, kernel_size):
    """The shipped forward kernel with a channel block of 6: Triton rejects the arange."""
    from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc
    from dlgsa_vs.arch.kernels._launch import Launch

    weight = proj_weight.reshape(proj_weight.shape[0], -1).contiguous()
    out = torch.empty_like(x)
    good = dc.fwd_launch(x.contiguous(), hidden.contiguous(), weight, proj_bias, out, kernel_size)
    Launch(good.kernel, good.grid, good.args, dict(good.constexprs, BLOCK_CG=6))()
    return out


def _calls(fn):
    def counted(*args):
        counted.n += 1
        return fn(*args)

    counted.n = 0
    counted.__name__ = fn.__name__
    return counted


def _network_conv(x, hidden, weight, bias, k, impl=None):
    """What KernelHyperNet does: the kernel's output, or its torch form where it gives None."""
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_fused_1x1

    out = kernels.dynamic_conv(x, hidden, weight, bias, k, impl=impl)
    return dynamic_dw_conv_fused_1x1(x, hidden, weight, bias, k) if out is None else out


@interp
@pytest.mark.parametrize("broken", [_wrong_dyn_conv, _rejected_dyn_conv])
def test_interp_a_broken_kernel_warns_once_and_the_torch_form_runs(guard, broken):
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_fused_1x1

    impl = _calls(broken)
    case = _conv_case()
    eager = dynamic_dw_conv_fused_1x1(*case, 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [_network_conv(*case, 7, impl=impl) for _ in range(3)]
        other = _conv_case(h=5)  # another shape of the same class: known bad, no new warning
        assert torch.equal(_network_conv(*other, 7, impl=impl), dynamic_dw_conv_fused_1x1(*other, 7))
    messages = [str(w.message) for w in caught if "dlgsa" in str(w.message)]
    assert len(messages) == 1, messages
    assert "first-call check" in messages[0] and "torch form" in messages[0] and "\n" not in messages[0]
    assert ("differs" in messages[0]) == (broken is _wrong_dyn_conv)
    assert all(torch.equal(o, eager) for o in outs)
    assert impl.n == 1  # after the first call the bad kernel is not run again


@interp
def test_interp_a_second_bad_shape_class_logs_instead_of_warning(guard, caplog):
    impl = _calls(_wrong_dyn_conv)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, "dlgsa_vs.arch.kernels"):
        warnings.simplefilter("always")
        assert kernels.dynamic_conv(*_conv_case(), 7, impl=impl) is None
        assert kernels.dynamic_conv(*_conv_case(h=16, w=16), 7, impl=impl) is None  # H, W % 16: another class
    assert len([w for w in caught if "dlgsa" in str(w.message)]) == 1
    assert impl.n == 2 and len(guard.bad(f"dyn_conv[{impl.__name__}]")) == 2
    assert any("first-call check" in r.message for r in caplog.records)


@interp
def test_interp_a_good_kernel_is_checked_once_then_runs_alone(guard, caplog):
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_fused_1x1

    case = _conv_case()
    with caplog.at_level(logging.DEBUG, "dlgsa_vs.arch.kernels"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        outs = [kernels.dynamic_conv(*case, 7) for _ in range(3)]
    checked = [r for r in caplog.records if "checked" in r.message]
    assert len(checked) == 1  # the reference ran on the first call only
    assert all(o is not None and (o - dynamic_dw_conv_fused_1x1(*case, 7)).abs().max() <= 1e-4 for o in outs)


@interp
def test_interp_a_wrong_attention_kernel_falls_back(guard):
    from dlgsa_vs.arch.kernels import global_attention_triton as ga

    def doubled_temperature(qkv, temperature, heads, act, tlc_kernel):  # the real kernels, wrong input
        return ga.sparse_attention(qkv, temperature * 2, heads, act, tlc_kernel)

    qkv, temp = torch.randn(1, 36, 9, 10), torch.rand(6, 1, 1) + 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.sparse_attention(qkv, temp, 6, torch.nn.ReLU(), 8, impl=doubled_temperature) is None
        assert kernels.sparse_attention(qkv, temp, 6, torch.nn.ReLU(), 8, impl=doubled_temperature) is None
        good = kernels.sparse_attention(qkv, temp, 6, torch.nn.ReLU(), 8)  # the shipped one passes
    assert len([w for w in caught if "dlgsa" in str(w.message)]) == 1
    assert good is not None


@interp
def test_interp_backward_checks_pass_and_equal_the_torch_gradients(guard):
    from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_functional

    case = [t.requires_grad_() for t in _conv_case(2, 12, 2, 6, 7)]
    grad_out = torch.randn(2, 12, 6, 7)
    got = torch.autograd.grad(kernels.dynamic_conv(*case, 7), case, grad_out)
    x, hidden, weight, bias = case
    want = torch.autograd.grad(dynamic_dw_conv_functional(x, F.conv2d(hidden, weight, bias), 7), case, grad_out)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= 1e-4 * max(1.0, b.abs().max().item())
    qkv = torch.randn(2, 36, 6, 7, requires_grad=True)
    temp = (torch.rand(6, 1, 1) + 0.5).requires_grad_()
    out = kernels.sparse_attention(qkv, temp, 6, torch.nn.ReLU(), None)
    g_qkv, g_temp = torch.autograd.grad(out, (qkv, temp), torch.randn_like(out))
    verdicts = {k[0]: ok for k, ok in guard.verdicts.items()}
    assert verdicts == {"dyn_conv": True, "dyn_conv_backward": True, "sparse_attention": True,
                        "segment_matmul_backward": True, "segment_gram_backward": True}, verdicts


@interp
def test_interp_a_broken_backward_gives_the_torch_gradients(guard):
    """The checker with a broken grad_x launch (K=5 on 7x7 weights) as its kernel: the
    torch reference's gradients come back, with one warning."""
    from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc
    from dlgsa_vs.arch.kernels._launch import Launch

    x, hidden, weight, bias = _conv_case(1, 12, 2, 6, 7)
    grad_out = torch.randn_like(x)
    w2 = weight.reshape(weight.shape[0], -1).contiguous()

    def broken_backward():
        grads = list(dc.dyn_conv_backward(grad_out, x, hidden, weight, bias, 7))
        good = dc.grad_x_launch(grad_out, hidden, w2, bias, grads[0], 7)
        Launch(good.kernel, good.grid, good.args, dict(good.constexprs, K=5))()
        return tuple(grads)

    args = (grad_out, x, hidden, weight, bias, 7)
    want = reference.dyn_conv_grads(*args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            got = guard.run("dyn_conv_backward[broken]", lambda: (x.dtype,), broken_backward,
                            lambda: reference.dyn_conv_grads(*args), x.dtype, (x,),
                            fallback=lambda: reference.dyn_conv_grads(*args))
            assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert len([w for w in caught if "dlgsa" in str(w.message)]) == 1


@interp
def test_interp_strict_mode_raises_the_mismatch(guard):
    kernels.set_strict(True)
    try:
        with pytest.raises(fallback.KernelMismatch, match="differs"):
            kernels.dynamic_conv(*_conv_case(), 7, impl=_wrong_dyn_conv)
    finally:
        kernels.set_strict(False)
