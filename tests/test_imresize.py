"""MATLAB-compatible bicubic imresize, checked against the MATLAB-made Set5/Set14 LR files."""
from pathlib import Path

import numpy as np
import pytest

from dlgsa_vs.image.imageio import read_image, read_image_info, write_png
from dlgsa_vs.image.imresize import (bicubic_downscale, bicubic_upscale, contributions, cubic,
                               imresize, modcrop)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCH = DATA / "benchmarks"
SETS = ("Set5", "Set14")


def _need_benchmarks():
    missing = [s for s in SETS if not (BENCH / s / "HR").is_dir()]
    if missing:
        pytest.skip(f"benchmark data not found: {', '.join(str(BENCH / s) for s in missing)} "
                    "(shared data folder ../shared/data next to the repository is absent)")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matches_matlab_lr_files(scale, capsys):
    """imresize(modcrop(HR, s), 1/s, 'bicubic') on uint8 vs MATLAB's output files."""
    _need_benchmarks()
    worst, total, count, differing, report = 0, 0, 0, 0, []
    for set_name in SETS:
        for hr_path in sorted((BENCH / set_name / "HR").glob("*.png")):
            lr_path = BENCH / set_name / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
            hr, gray = read_image_info(hr_path)
            ref = read_image(lr_path)
            ours = bicubic_downscale(hr, scale)
            assert ours.shape == ref.shape, (hr_path.name, ours.shape, ref.shape)
            d = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
            worst = max(worst, int(d.max()))
            total += int(d.sum())
            count += d.size
            differing += int((d > 0).sum())
            report.append(f"{set_name}/{hr_path.stem}{' (gray)' if gray else ''}: "
                          f"max {int(d.max())} mean {d.mean():.5f}")
    mean = total / count
    summary = (f"x{scale}: {len(report)} images, max |diff| {worst}, mean |diff| {mean:.6f}, "
               f"{differing} of {count} samples differ")
    with capsys.disabled():
        print(f"\n[imresize vs MATLAB] {summary}")
    assert worst <= 2 and mean < 0.05, summary + "\n" + "\n".join(report)


def test_gray_lr_files_are_gray():
    _need_benchmarks()
    _, gray = read_image_info(BENCH / "Set14" / "HR" / "bridge.png")
    _, gray_lr = read_image_info(BENCH / "Set14" / "LR_bicubic" / "X2" / "bridgex2.png")
    assert gray and gray_lr


def test_cubic_kernel():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5])
    expect = [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625]
    np.testing.assert_allclose(cubic(x), expect, atol=1e-15)


def test_contributions_normalised_and_in_range():
    for n_in, n_out in [(10, 5), (9, 3), (12, 3), (5, 10), (7, 21), (13, 6)]:
        idx, w = contributions(n_in, n_out, n_out / n_in)
        assert idx.shape == w.shape and idx.shape[0] == n_out
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        assert idx.min() >= 0 and idx.max() < n_in


def test_halving_taps_and_symmetric_border():
    # x1/2 with antialiasing: width 8 -> 10 taps, minus the all-zero outer columns.
    idx, w = contributions(8, 4, 0.5)
    assert idx.shape[1] == 8
    # first output pixel centre is at 1.5 (1-based): taps 2-based mirrored -> 1,0,0,1,... (0-based)
    assert list(idx[0, :4]) == [2, 1, 0, 0]
    np.testing.assert_allclose(w[0], w[0][::-1], atol=1e-15)  # symmetric around the centre


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(scale=0.5), dict(scale=1 / 3), dict(scale=3),
                                dict(output_shape=(17, 40)), dict(output_shape=(5, 7))])
def test_constant_image_stays_constant(dtype, kw):
    value = 173 if dtype == np.uint8 else 0.3719
    img = np.full((24, 30, 3), value, dtype=dtype)
    out = imresize(img, **kw)
    assert out.dtype == dtype
    if dtype == np.uint8:
        assert np.all(out == value)
    else:
        np.testing.assert_allclose(out, value, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_shapes():
    img = np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    assert imresize(img, scale=2).shape == (60, 90, 3)
    assert imresize(img, scale=1 / 3).shape == (10, 15, 3)
    assert imresize(img, scale=0.25).shape == (8, 12, 3)  # ceil like MATLAB
    assert imresize(img[..., 0], scale=4).shape == (120, 180)
    assert imresize(img, output_shape=(7, 100)).shape == (7, 100, 3)
    assert bicubic_upscale(img, 4).shape == (120, 180, 3)
    lr = bicubic_downscale(np.zeros((31, 47, 3), np.uint8), 3)
    assert lr.shape == (10, 15, 3)
    assert modcrop(np.zeros((31, 47)), 4).shape == (28, 44)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, scale=2, output_shape=(60, 90))


def test_uint8_and_float_agree_up_to_rounding():
    rng = np.random.default_rng(1)
    img = rng.integers(40, 216, (33, 27, 3), dtype=np.uint8)  # no saturation in the passes
    a = imresize(img, scale=1 / 3).astype(np.float64)
    b = imresize(img.astype(np.float64), scale=1 / 3)
    assert np.abs(a - b).max() <= 1.0
    # float input is not clipped: a step edge overshoots below 0 / above 1
    step = np.zeros((16, 16))
    step[:, 8:] = 1.0
    up = imresize(step, scale=2)
    assert up.min() < 0 and up.max() > 1


def test_upscale_integer_scale_matches_explicit_weights():
    # x2 enlargement of a 1-D ramp: interior samples interpolate a line exactly.
    ramp = np.tile(np.arange(16, dtype=np.float64), (4, 1))
    up = imresize(ramp, scale=2)
    expect = (np.arange(32) + 0.5) / 2 - 0.5  # MATLAB's pixel-centre mapping
    np.testing.assert_allclose(up[0, 3:-3], expect[3:-3], atol=1e-12)


def test_png_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (9, 5), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    write_png(tmp_path / "gray.png", gray)
    back, was_gray = read_image_info(tmp_path / "rgb.png")
    assert not was_gray and np.array_equal(back, rgb)
    back, was_gray = read_image_info(tmp_path / "gray.png")
    assert was_gray and back.shape == (9, 5, 3) and all(np.array_equal(back[..., c], gray)
                                                          for c in range(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.png", "rgb.png"]  # no temp left
