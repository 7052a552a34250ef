"""Y-channel PSNR and SSIM as used by the super-resolution literature.

* Y is BT.601 luma as MATLAB ``rgb2ycbcr`` computes it for double input in
  ``[0, 1]``: ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (0..255 scale,
  range 16..235). It is kept in floating point and **not** rounded (the
  BasicSR / EDSR convention; MATLAB on a ``uint8`` image would round Y to an
  integer).
* PSNR: ``10 log10(255^2 / MSE)`` on Y after removing ``crop_border`` pixels on
  each side; ``inf`` for identical images.
* SSIM: Wang et al. with an 11x11 Gaussian window (sigma 1.5), constants
  ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2``, 'valid' filtering, mean of the
  SSIM map, computed on Y in 0..255 (BasicSR ``calculate_ssim``; MATLAB
  ``ssim_index`` without its automatic downsampling).

Inputs are ``uint8`` (0..255) or float (0..1) arrays of shape ``H x W x 3``
(RGB) or ``H x W`` / ``H x W x 1``. A one-channel (grayscale) image ``g`` is
treated exactly like its three-channel expansion, so its Y is
``16 + 219 * g/255``: gray images give the same numbers whether or not they
were expanded to RGB on loading.

``full_range_y=True`` rescales Y to ``(Y - 16) * 255/219`` (0..255), so a gray
image's "Y" is its grey value itself. That is how the classic MATLAB
evaluation code (SRCNN / VDSR era) treats one-channel images such as Set14
``bridge``; with the default BT.601 mapping bridge scores
``20*log10(255/219) = 1.32 dB`` higher, which moves a Set14 mean by +0.094 dB.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["to_float01", "rgb_to_y", "psnr_y", "ssim_y", "gaussian_window", "psnr", "ssim"]

_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def to_float01(img: np.ndarray) -> np.ndarray:
    """``uint8`` -> float64 / 255; float input is taken to be in ``[0, 1]`` already."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64)
    raise TypeError(f"unsupported dtype {img.dtype}: use uint8 or float in [0, 1]")


def rgb_to_y(img: np.ndarray, full_range_y: bool = False) -> np.ndarray:
    """BT.601 luma (MATLAB ``rgb2ycbcr``) on the 0..255 scale, as float64 ``H x W``.

    Studio range 16..235 by default; ``full_range_y=True`` gives ``(Y-16)*255/219``.
    """
    x = to_float01(img)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim == 2:  # grayscale: same as R = G = B = x
        x = x[:, :, None] * np.ones(3)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected HxW, HxWx1 or HxWx3, got shape {x.shape}")
    if full_range_y:
        return x @ (_Y_COEFFS * (255.0 / 219.0))
    return 16.0 + x @ _Y_COEFFS


def _crop(img: np.ndarray, crop_border: int) -> np.ndarray:
    c = int(crop_border)
    if c < 0:
        raise ValueError("crop_border must be >= 0")
    if c == 0:
        return img
    if 2 * c >= img.shape[0] or 2 * c >= img.shape[1]:
        raise ValueError(f"crop_border {c} leaves nothing of a {img.shape[:2]} image")
    return img[c:-c, c:-c]


def _y_pair(sr, hr, crop_border, full_range_y=False):
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"size mismatch: {sr.shape} vs {hr.shape}")
    return (_crop(rgb_to_y(sr, full_range_y), crop_border),
            _crop(rgb_to_y(hr, full_range_y), crop_border))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR of two same-shape float arrays."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0,
           full_range_y: bool = False) -> float:
    """PSNR (dB) between the Y channels of ``sr`` and ``hr``, borders cropped."""
    y_sr, y_hr = _y_pair(sr, hr, crop_border, full_range_y)
    return psnr(y_sr, y_hr)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (``cv2.getGaussianKernel`` / ``fspecial`` factor)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'valid' 2-D filtering with the separable window ``outer(g, g)``."""
    n = g.size
    h, w = img.shape
    rows = np.zeros((h - n + 1, w), dtype=np.float64)
    for k in range(n):
        rows += g[k] * img[k : k + h - n + 1]
    out = np.zeros((h - n + 1, w - n + 1), dtype=np.float64)
    for k in range(n):
        out += g[k] * rows[:, k : k + w - n + 1]
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0,
         window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of two same-shape 2-D float arrays (Gaussian window, 'valid')."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two equal 2-D arrays, got {a.shape} and {b.shape}")
    if min(a.shape) < window:
        raise ValueError(f"image {a.shape} smaller than the {window}x{window} SSIM window")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    g = gaussian_window(window, sigma)
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    mu_a2, mu_b2, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _filter_valid(a * a, g) - mu_a2
    var_b = _filter_valid(b * b, g) - mu_b2
    cov = _filter_valid(a * b, g) - mu_ab
    ssim_map = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0,
           full_range_y: bool = False) -> float:
    """SSIM between the Y channels (0..255) of ``sr`` and ``hr``, borders cropped."""
    y_sr, y_hr = _y_pair(sr, hr, crop_border, full_range_y)
    return ssim(y_sr, y_hr)
