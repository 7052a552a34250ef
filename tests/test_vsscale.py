"""dlgsa_vs.integrations.vsscale.DLGSA: the network as a vs-jetpack scaler, on the real core with real vsjetpack.

Each check compares against what the scaler promises to be: our VapourSynth filter
(``dlgsa_vs.upscale``) by the chosen factor, then the vskernels kernel to the exact size.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vsscale", reason="vsjetpack is not installed (vsscale, vskernels): "
                                      "pip install 'dlgsa-vs[vsjetpack]'")
import vapoursynth as vs  # noqa: E402
from vs_support import clip_from_arrays, core, light_x2, planes, random_rgb, small_model  # noqa: E402,F401
from vskernels import Bilinear, Catrom, Hermite, Scaler  # noqa: E402

from dlgsa_vs import upscale  # noqa: E402
from dlgsa_vs.integrations.vsscale import DLGSA  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _kernels_plugins(core):  # noqa: F811
    if not hasattr(core, "resize2"):
        pytest.skip("vskernels' kernels call core.resize2, which is not installed: "
                    "pip install 'vsjetpack[kernels]' (vapoursynth-resize2, -descale, vs-placebo)")


def rgb_clip(width: int = 24, height: int = 16, seed: int = 3) -> vs.VideoNode:
    return clip_from_arrays(random_rgb(1, width, height, seed=seed), vs.RGBS)


def as_format(clip: vs.VideoNode, fmt: int) -> vs.VideoNode:
    family = vs.core.get_video_format(fmt).color_family
    out = clip.resize.Point(format=fmt, matrix=None if family == vs.RGB else 1)
    return out.std.SetFrameProps(_Matrix=1) if family == vs.YUV else out


def same_frames(a: vs.VideoNode, b: vs.VideoNode) -> bool:
    fa, fb = a.get_frame(0), b.get_frame(0)
    return all(np.array_equal(x, y) for x, y in zip(planes(fa), planes(fb)))


def test_factor_is_the_smallest_packaged_one_that_reaches_the_target():
    clip = vs.core.std.BlankClip(width=100, height=50, format=vs.RGBS, length=1)
    auto = DLGSA()
    assert [auto.factor_for(clip, w, h) for w, h in
            [(100, 50), (150, 60), (200, 100), (201, 100), (250, 120), (300, 150), (301, 150), (1000, 500)]] \
        == [2, 2, 2, 3, 3, 3, 4, 4]  # beyond x4: the x4 network, then the kernel
    assert auto.factor_for(clip, 100, 140) == 3  # the larger ratio of the two sides counts
    # light-video is packaged at x2 and x4 only, light at all three
    assert DLGSA(variant="light-video").factor_for(clip, 250, 125) == 4
    assert DLGSA(variant="light").factor_for(clip, 250, 125) == 3
    # a fixed scale or a model file decides by itself
    assert DLGSA(scale=3).factor_for(clip, 200, 100) is None
    assert DLGSA(model_path="m.pth").factor_for(clip, 200, 100) is None


@pytest.mark.parametrize("fmt", [vs.RGBS, vs.RGB24, vs.YUV420P8, vs.YUV444P10, vs.GRAY8, vs.GRAYS])
def test_scale_is_the_filter_then_the_kernel(core, small_model, fmt):  # noqa: F811
    clip = as_format(rgb_clip(), fmt)
    out = DLGSA(model_path=small_model, backend="cpu").scale(clip, 38, 30)
    assert (out.format.id, out.width, out.height, out.num_frames) == (fmt, 38, 30, 1)
    expected = Catrom().scale(upscale(clip, model_path=small_model, backend="cpu"), 38, 30)
    assert same_frames(out, expected)
    # and the network did run: the kernel alone gives something else
    assert not same_frames(out, Catrom().scale(clip, 38, 30))


def test_exact_multiple_is_the_filter_output_itself(core, small_model):  # noqa: F811
    clip = as_format(rgb_clip(), vs.YUV420P8)
    out = DLGSA(model_path=small_model, backend="cpu").scale(clip, 48, 32)
    assert same_frames(out, upscale(clip, model_path=small_model, backend="cpu"))
    assert out.get_frame(0).props["_Matrix"] == 1  # the filter keeps the clip's properties


def test_filter_options_and_kernel_are_passed_through(core, small_model):  # noqa: F811
    clip = rgb_clip(32, 24)
    scaler = DLGSA(model_path=small_model, backend="cpu", tile_w=16, tile_h=16, tile_pad=4, tlc=False,
                   kernel=Hermite)
    out = scaler.scale(clip, 50, 40)
    filtered = upscale(clip, model_path=small_model, backend="cpu", tile_w=16, tile_h=16, tile_pad=4, tlc=False)
    assert same_frames(out, Hermite().scale(filtered, 50, 40))
    assert not same_frames(out, Catrom().scale(filtered, 50, 40))
    assert "tile_w=16" in str(scaler) and "model_path=" in str(scaler)


def test_shift_is_in_input_pixels_as_in_vskernels(core, small_model, light_x2):  # noqa: F811
    clip = rgb_clip(24, 16)
    # the resampler gets the shift in pixels of the network's output (x2 here)
    out = DLGSA(model_path=small_model, backend="cpu").scale(clip, 40, 28, shift=(0.25, -0.5))
    sr = upscale(clip, model_path=small_model, backend="cpu")
    assert same_frames(out, Catrom().scale(sr, 40, 28, (0.5, -1.0)))

    # and so the picture lands where Catrom().scale(clip, w, h, shift) puts it: a smooth picture
    # through the trained x2 network, shifted by 0.75 input pixels to the left
    y, x = np.mgrid[0:24, 0:32].astype(np.float32)
    pic = 0.5 + 0.3 * np.sin(2 * np.pi * x / 14) * np.cos(2 * np.pi * y / 11)
    smooth = clip_from_arrays([[pic, pic, pic]], vs.RGBS)
    shift = (0.0, 0.75)
    got = planes(DLGSA(model_path=light_x2, backend="cpu").scale(smooth, 40, 30, shift).get_frame(0))[1]

    def err(ref_shift: tuple[float, float]) -> float:
        ref = planes(Catrom().scale(smooth, 40, 30, ref_shift).get_frame(0))[1]
        return float(np.abs(got - ref)[4:-4, 4:-4].mean())

    right, unshifted, twice = err(shift), err((0.0, 0.0)), err((0.0, 1.5))
    assert right < unshifted / 3 and right < twice / 3, (right, unshifted, twice)


def test_packaged_weights_by_the_chosen_factor(core):  # noqa: F811
    clip = as_format(rgb_clip(16, 12), vs.YUV420P8)
    out = DLGSA(variant="light", backend="cpu").scale(clip, 40, 30)  # x2.5: the x3 network
    assert (out.width, out.height, out.format.id) == (40, 30, vs.YUV420P8)
    assert same_frames(out, Catrom().scale(upscale(clip, variant="light", scale=3, backend="cpu"), 40, 30))


def test_vsjetpack_helpers_take_it(core, small_model):  # noqa: F811
    import vsscale

    # by name, as vs-jetpack resolves ScalerLike strings
    assert isinstance(Scaler.ensure_obj("DLGSA"), DLGSA)
    gray = as_format(rgb_clip(32, 24), vs.GRAYS)
    dlgsa = DLGSA(model_path=small_model, backend="cpu")
    # Rescale: descale to 12 lines with Bilinear, double with the network, back to the size
    rs = vsscale.Rescale(gray, 12, Bilinear, upscaler=dlgsa)
    assert (rs.doubled.width, rs.doubled.height) == (2 * rs.descale.width, 24)
    assert same_frames(rs.doubled, upscale(rs.descale, model_path=small_model, backend="cpu"))
    up = rs.upscale
    assert (up.width, up.height) == (32, 24)
    up.get_frame(0)
    # supersample (Scaler's own helper) goes through scale()
    ss = dlgsa.supersample(gray, 1.5)
    assert (ss.width, ss.height) == (48, 36)
    assert same_frames(ss, Catrom().scale(upscale(gray, model_path=small_model, backend="cpu"), 48, 36))


def test_bad_input_is_one_clear_error(core, small_model):  # noqa: F811
    clip = rgb_clip()
    scaler = DLGSA(model_path=small_model, backend="cpu")
    with pytest.raises(vs.Error, match=r"^DLGSA\.scale: width=-4 is invalid: pass a positive integer"):
        scaler.scale(clip, -4, 30)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: clip must be a video clip"):
        scaler.scale("clip.mkv", 40, 30)
    variable = vs.core.std.Splice([clip, as_format(clip, vs.YUV444P8)], mismatch=True)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: the clip has a variable format"):
        scaler.scale(variable, 40, 30)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: tile_w=-8 is invalid"):
        DLGSA(model_path=small_model, backend="cpu", tile_w=-8).scale(clip, 40, 30)
