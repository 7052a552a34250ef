"""The dynamic depth-wise conv against a direct float64 loop written from the formula."""
import pytest
import torch

from dlgsa_vs.arch.dynamic_conv import (FORMULATIONS, _DynamicDWConvFunction, dynamic_dw_conv,
                                        dynamic_dw_conv_fused_1x1)


def direct_loop(x, weight, k):
    """out[n,c,y,x] = sum_ij w[n, c // (C/G), i, j, y, x] * xpad[n, c, y+i, x+j], zero padding."""
    n, c, h, w = x.shape
    weight = weight.reshape(n, -1, k, k, h, w)
    per_group = c // weight.shape[1]
    p = k // 2
    out = torch.zeros_like(x)
    for ni in range(n):
        for ci in range(c):
            for i in range(k):
                for j in range(k):
                    for y in range(h):
                        for xx in range(w):
                            yy, xs = y + i - p, xx + j - p
                            if 0 <= yy < h and 0 <= xs < w:
                                out[ni, ci, y, xx] += weight[ni, ci // per_group, i, j, y, xx] * x[ni, ci, yy, xs]
    return out


@pytest.fixture(scope="module")
def case():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 5, 8, dtype=torch.float64, generator=g)   # 2 groups of 3 channels
    w = torch.randn(2, 2 * 9, 5, 8, dtype=torch.float64, generator=g)  # 3x3 kernels
    return x, w, direct_loop(x, w, 3)


@pytest.mark.parametrize("name", FORMULATIONS)
def test_every_formulation_matches_the_direct_loop(case, name):
    x, w, ref = case
    with torch.no_grad():
        out = FORMULATIONS[name](x, w, 3)
    assert torch.allclose(out, ref, atol=1e-12)


def test_seven_by_seven_with_six_channels_per_kernel():
    x = torch.randn(1, 12, 9, 10, dtype=torch.float64)
    w = torch.randn(1, 2 * 49, 9, 10, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(dynamic_dw_conv(x, w, 7), direct_loop(x, w, 7), atol=1e-12)


def test_fused_hypernetwork_projection_equals_conv_then_dynamic_conv():
    x = torch.randn(2, 12, 9, 11, dtype=torch.float64)
    hidden = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    proj = torch.nn.Conv2d(3, 2 * 49, 1).double()
    with torch.no_grad():
        ref = direct_loop(x, proj(hidden), 7)
        out = dynamic_dw_conv_fused_1x1(x, hidden, proj.weight, proj.bias, 7)
    assert torch.allclose(out, ref, atol=1e-12)


def test_handwritten_backward_passes_gradcheck():
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2 * 9, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _DynamicDWConvFunction.apply(a, b, 3), (x, w))


def test_training_path_gradients_equal_autograd_of_the_plain_sum():
    x = torch.randn(2, 12, 8, 9, requires_grad=True)
    w = torch.randn(2, 2 * 49, 8, 9, requires_grad=True)
    g = torch.randn(2, 12, 8, 9)
    ref = torch.autograd.grad(FORMULATIONS["functional"](x, w, 7), (x, w), g)
    out = torch.autograd.grad(dynamic_dw_conv(x, w, 7), (x, w), g)
    for a, b in zip(ref, out):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_runs_in_half_precision(dtype):
    x = torch.randn(1, 12, 8, 8)
    w = torch.randn(1, 2 * 49, 8, 8) * 0.1
    ref = direct_loop(x.double(), w.double(), 7).float()
    with torch.no_grad():
        out = dynamic_dw_conv(x.to(dtype), w.to(dtype), 7).float()
    assert (out - ref).abs().max() / ref.abs().max() < 0.03
