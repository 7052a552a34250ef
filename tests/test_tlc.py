"""Vectorised TLC against the authors' window loop, written out directly."""
import math

import pytest
import torch
import torch.nn.functional as F

from dlgsa_vs.arch.dlgsanet import SparseGlobalAttention
from dlgsa_vs.arch.tlc import window_starts
from conftest import randomize_


def authors_windows(h, w, k):
    """Window origins exactly as the authors' ``grids`` loop places them."""
    k1, k2 = min(h, k), min(w, k)
    nr, nc = (h - 1) // k1 + 1, (w - 1) // k2 + 1
    step_j = k2 if nc == 1 else math.ceil((w - k2) / (nc - 1) - 1e-8)
    step_i = k1 if nr == 1 else math.ceil((h - k1) / (nr - 1) - 1e-8)
    out, i, last_i = [], 0, False
    while i < h and not last_i:
        j = 0
        if i + k1 >= h:
            i, last_i = h - k1, True
        last_j = False
        while j < w and not last_j:
            if j + k2 >= w:
                j, last_j = w - k2, True
            out.append((i, j))
            j += step_j
        i += step_i
    return out, k1, k2


def attend(qkv, heads, temperature):
    """ReLU channel attention on one map, from the specification."""
    b, c3, h, w = qkv.shape
    q, k, v = [t.reshape(b, heads, c3 // 3 // heads, h * w) for t in qkv.chunk(3, dim=1)]
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = torch.relu(q @ k.transpose(-2, -1) * temperature)
    return (attn @ v).reshape(b, c3 // 3, h, w)


def reference_tlc(module, x):
    qkv = module.qkv_dwconv(module.qkv(x))
    b, _, h, w = qkv.shape
    origins, k1, k2 = authors_windows(h, w, module.tlc_kernel)
    out = torch.zeros(b, qkv.shape[1] // 3, h, w, dtype=x.dtype)
    count = torch.zeros(1, 1, h, w, dtype=x.dtype)
    for n in range(b):  # the authors assert b == 1: run each image on its own
        for i, j in origins:
            win = attend(qkv[n:n + 1, :, i:i + k1, j:j + k2], module.num_heads, module.temperature)
            out[n:n + 1, :, i:i + k1, j:j + k2] += win
            if n == 0:
                count[..., i:i + k1, j:j + k2] += 1
    return module.project_out(out / count)


@pytest.mark.parametrize("length,k", [(100, 48), (180, 48), (97, 96), (320, 72), (48, 48), (49, 48),
                                      (1088, 48), (3000, 48), (5, 48)])
def test_window_starts_match_the_authors_loop(length, k):
    ref = sorted({i for i, _ in authors_windows(length, 1, k)[0]})
    padded = max(length, k)  # maps smaller than k are padded to k, as tlc.pad_to_window does
    starts = window_starts(padded, k, torch.device("cpu")).tolist()
    assert starts == (ref if len(ref) > 1 else ref * 2)  # one window is listed twice


@pytest.mark.parametrize("h,w", [(20, 33), (16, 16), (9, 40), (7, 5), (50, 17)])
def test_tlc_attention_equals_the_per_window_loop(h, w):
    module = randomize_(SparseGlobalAttention(12, 6, tlc=True, tlc_kernel=16, activation="relu")).eval().double()
    x = torch.randn(3, 12, h, w, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(module(x), reference_tlc(module, x), atol=1e-10)


def test_tlc_off_is_attention_over_the_whole_map():
    module = randomize_(SparseGlobalAttention(12, 6, tlc=False, tlc_kernel=16, activation="relu")).eval().double()
    x = torch.randn(2, 12, 30, 21, dtype=torch.float64)
    with torch.no_grad():
        ref = module.project_out(attend(module.qkv_dwconv(module.qkv(x)), 6, module.temperature))
        assert torch.allclose(module(x), ref, atol=1e-10)


@pytest.mark.parametrize("h,w,k", [(37, 50, 16), (100, 33, 48), (16, 16, 16), (5, 7, 16), (97, 200, 96)])
def test_a_map_padded_to_a_multiple_of_k_sums_to_the_same_numbers(h, w, k):
    # dynamic exports pad symbolic sizes up to a multiple of k (no sym_max, tlc._pad_amount):
    # the windows, placed for max(size, k), give the same sums there, and zeros past it
    from dlgsa_vs.arch.tlc import _pad_amount, from_windows, tlc_windows

    wh, ww = tlc_windows(h, w, k, torch.device("cpu"))
    windows = torch.randn(2 * wh.shape[0] * ww.shape[0], 3, k, k)
    hk, wk = max(h, k), max(w, k)
    exact = from_windows(windows, wh, ww, hk, wk)
    rh, rw = h + (k - h % k) % k, w + (k - w % k) % k
    assert rh % k == 0 and rw % k == 0 and rh >= hk and rw >= wk
    assert _pad_amount(h, k) == hk - h  # plain ints are padded exactly
    for unique in (True, False):
        rounded = from_windows(windows, wh, ww, rh, rw, unique_writes=unique)
        assert torch.equal(rounded[..., :hk, :wk], exact)
        assert not rounded[..., hk:, :].any() and not rounded[..., :, wk:].any()  # zeros, not 0 / 0
