"""Y-PSNR / SSIM against the formulas, computed independently here."""
import math

import numpy as np
import pytest

from dlgsa_vs.train.metrics import psnr_y, rgb_to_y, ssim, ssim_y


def _rand_img(seed, shape=(40, 52, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_rgb_to_y_matlab_values():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                    [128, 64, 32]]], dtype=np.uint8)
    y = rgb_to_y(px)[0]
    expect = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966,
              16 + (65.481 * 128 + 128.553 * 64 + 24.966 * 32) / 255]
    np.testing.assert_allclose(y, expect, atol=1e-9)
    # float input in [0, 1] gives the same
    np.testing.assert_allclose(rgb_to_y(px.astype(np.float32) / 255)[0], expect, atol=1e-4)


def test_gray_is_consistent_with_expanded_rgb():
    g = _rand_img(3, (20, 30))
    rgb = np.repeat(g[..., None], 3, axis=2)
    np.testing.assert_array_equal(rgb_to_y(g), rgb_to_y(rgb))
    np.testing.assert_allclose(rgb_to_y(g), 16 + 219 * g.astype(np.float64) / 255, atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(g, full_range_y=True), g.astype(float), atol=1e-9)
    g2 = np.clip(g.astype(int) + 3, 0, 255).astype(np.uint8)
    rgb2 = np.repeat(g2[..., None], 3, axis=2)
    assert psnr_y(g2, g, 2) == psnr_y(rgb2, rgb, 2)
    assert ssim_y(g2, g, 2) == ssim_y(rgb2, rgb, 2)


def test_psnr_identical_is_inf():
    a = _rand_img(0)
    assert psnr_y(a, a, 4) == math.inf
    assert psnr_y(a, a.copy(), 0) == math.inf


def test_psnr_known_noise():
    hr = _rand_img(1)
    noise = np.random.default_rng(2).integers(-6, 7, hr.shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    c = 3
    # independent Y and PSNR, written out by hand
    def y(img):
        f = img.astype(np.float64)
        return 16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255
    d = (y(sr) - y(hr))[c:-c, c:-c]
    expect = 20 * math.log10(255) - 10 * math.log10(np.sum(d * d) / d.size)
    assert psnr_y(sr, hr, c) == pytest.approx(expect, abs=1e-9)


def test_psnr_constant_offset():
    # a constant Y error of e gives exactly 20 log10(255 / e)
    hr = np.full((16, 16, 3), 100, np.uint8)
    sr = np.full((16, 16, 3), 110, np.uint8)
    e = 10 * 219 / 255
    assert psnr_y(sr, hr, 0) == pytest.approx(20 * math.log10(255 / e), abs=1e-9)


def test_ssim_identical_is_one():
    a = _rand_img(4)
    assert ssim_y(a, a, 4) == pytest.approx(1.0, abs=1e-12)
    flat = np.full((30, 30, 3), 77, np.uint8)
    assert ssim_y(flat, flat, 0) == pytest.approx(1.0, abs=1e-12)


def _naive_ssim(a, b):
    """Direct per-window SSIM: 11x11 Gaussian (sigma 1.5) weights, 'valid' positions."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = np.sum(w * pa), np.sum(w * pb)
            va = np.sum(w * (pa - ma) ** 2)
            vb = np.sum(w * (pb - mb) ** 2)
            cov = np.sum(w * (pa - ma) * (pb - mb))
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_naive_window_loop():
    hr = _rand_img(5, (26, 31, 3))
    # a structured image plus noise, so SSIM is neither ~0 nor ~1
    yy, xx = np.mgrid[0:26, 0:31]
    hr = np.clip(hr * 0.3 + 120 + 80 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 4.0)[..., None],
                 0, 255).astype(np.uint8)
    noise = np.random.default_rng(6).normal(0, 30, hr.shape)
    sr = np.clip(hr + noise, 0, 255).round().astype(np.uint8)
    c = 2
    def y(img):
        f = img.astype(np.float64)
        return 16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255
    expect = _naive_ssim(y(sr)[c:-c, c:-c], y(hr)[c:-c, c:-c])
    got = ssim_y(sr, hr, c)
    assert 0.2 < expect < 0.95
    assert got == pytest.approx(expect, abs=1e-10)


def test_ssim_symmetric_and_bounded():
    a, b = _rand_img(7), _rand_img(8)
    s1, s2 = ssim_y(a, b, 0), ssim_y(b, a, 0)
    assert s1 == pytest.approx(s2, abs=1e-12) and -1 <= s1 < 0.2


def test_errors():
    a = _rand_img(9, (20, 20, 3))
    with pytest.raises(ValueError):
        psnr_y(a, a[:10], 0)
    with pytest.raises(ValueError):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))  # smaller than the window
    with pytest.raises(ValueError):
        psnr_y(a, a, 10)  # nothing left after the crop
