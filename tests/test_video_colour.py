"""YUV <-> RGB with the stream's own matrix, range and chroma siting (dlgsa_vs.video.colour)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from dlgsa_vs.video.colour import (Colour, frame_to_rgb, output_colour, planar_equivalent,
                                   planes_to_rgb, resolve_colour, rgb_to_planes, write_planes)
from dlgsa_vs.video.errors import VideoError
from dlgsa_vs.video.encode import choose_pix_fmt


def _rgb(h=24, w=32, seed=0):
    return np.random.default_rng(seed).random((3, h, w)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["yuv444p", "yuv444p10le", "yuv444p12le", "gbrp", "gbrp10le"])
@pytest.mark.parametrize("matrix", [1, 6, 9, 8, 7])
@pytest.mark.parametrize("rng", [1, 2])
def test_444_round_trip_is_exact(fmt, matrix, rng):
    """Planes -> RGB -> planes gives the same codes back: no drift through the pipeline."""
    layout = planar_equivalent(fmt)
    colour = Colour(matrix, rng, 1, 1, 1)
    planes = rgb_to_planes(_rgb(), layout, colour)
    back = rgb_to_planes(planes_to_rgb(planes, layout, colour), layout, colour)
    for a, b in zip(planes, back):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_known_colours_bt709_and_bt601():
    """Limited-range BT.709 and BT.601 codes of a pure red, from the standards' equations."""
    layout = planar_equivalent("yuv444p")
    red = np.zeros((3, 2, 2), np.float32)
    red[0] = 1.0
    y709, cb709, cr709 = (p[0, 0] for p in rgb_to_planes(red, layout, Colour(1, 1, 1, 1, 1)))
    y601, cb601, cr601 = (p[0, 0] for p in rgb_to_planes(red, layout, Colour(6, 1, 6, 1, 1)))
    assert (y709, cb709, cr709) == (63, 102, 240)   # 16 + 219*0.2126, 128 - 112*0.2126/0.9278, 240
    assert (y601, cb601, cr601) == (81, 90, 240)    # 16 + 219*0.299, 128 - 112*0.299/0.886, 240
    full = rgb_to_planes(red, layout, Colour(1, 2, 1, 1, 1))
    assert (full[0][0, 0], full[2][0, 0]) == (54, 255)   # 255*0.2126; 128 + 127.5 -> 255


def test_matrix_is_read_from_the_stream_not_swscales_default():
    """The same codes read as BT.709 and BT.601 differ; ours agrees with swscale told the
    right matrix (swscale untold would use BT.601)."""
    layout = planar_equivalent("yuv420p")
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx / 63, yy / 47, (xx + yy) / 110]).astype(np.float32)
    col709 = Colour(1, 1, 1, 1, 1)
    planes = rgb_to_planes(rgb, layout, col709)
    frame = write_planes(planes, layout, 64, 48)
    ours709 = planes_to_rgb(planes, layout, col709) * 255
    ours601 = planes_to_rgb(planes, layout, Colour(6, 1, 6, 1, 1)) * 255
    sws709 = frame.reformat(format="rgb24", src_colorspace=1, src_color_range=1, dst_color_range=2,
                            interpolation="BICUBIC").to_ndarray().transpose(2, 0, 1).astype(np.float32)
    assert np.abs(ours709 - sws709).mean() < 2.5
    assert np.abs(ours601 - ours709).max() > 20
    assert np.abs(ours709 - rgb * 255).mean() < 1.0    # back to the picture it was made from


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv420p10le"])
def test_chroma_siting_is_used(fmt):
    """Down- and upsampling with the stream's chroma location loses less than with the wrong one."""
    layout = planar_equivalent(fmt)
    y, x = np.mgrid[0:32, 0:48].astype(np.float32)
    rgb = np.stack([0.5 + 0.4 * np.sin(x / 2.3), 0.5 + 0.4 * np.cos(y / 1.9), 0.5 + 0.3 * np.sin((x + y) / 3)])
    for loc, wrong in ((1, 2), (2, 1)):
        planes = rgb_to_planes(rgb, layout, Colour(1, 1, 1, 1, loc))
        right = np.abs(planes_to_rgb(planes, layout, Colour(1, 1, 1, 1, loc)) - rgb).mean()
        other = np.abs(planes_to_rgb(planes, layout, Colour(1, 1, 1, 1, wrong)) - rgb).mean()
        assert right < other


def test_odd_sizes_and_repacked_formats():
    """Odd 4:2:0 frames (chroma rounded up) and packed formats read through their planar twin."""
    layout = planar_equivalent("yuv420p")
    rgb = _rgb(23, 31)
    colour = Colour(6, 1, 6, 1, 1)
    planes = rgb_to_planes(rgb, layout, colour)
    assert [p.shape for p in planes] == [(23, 31), (12, 16), (12, 16)]
    frame = write_planes(planes, layout, 31, 23)
    direct = frame_to_rgb(frame, colour)
    for packed in ("nv12", "yuyv422"):
        if packed == "yuyv422":
            continue  # a repack from 4:2:0 to 4:2:2 is a resampling, not a repack
        repacked = frame.reformat(format=packed, src_color_range=1, dst_color_range=1)
        assert np.array_equal(frame_to_rgb(repacked, colour), direct)
    assert planar_equivalent("p010le").name == "yuv420p10le"
    assert planar_equivalent("rgb24").name == "gbrp"
    assert planar_equivalent("yuvj420p").full_range


def test_guesses_like_players_and_says_so():
    yuv = planar_equivalent("yuv420p")
    sd = resolve_colour(2, 0, 2, 2, 0, 720, 576, yuv)
    assert (sd.matrix, sd.range, sd.primaries) == (6, 1, 5)
    assert set(sd.guessed) == {"matrix", "range", "primaries", "transfer"}
    hd = resolve_colour(2, 0, 2, 2, 0, 1920, 1080, yuv)
    assert hd.matrix == 1 and hd.primaries == 1
    tagged = resolve_colour(9, 1, 9, 16, 3, 64, 48, planar_equivalent("yuv420p10le"))
    assert (tagged.matrix, tagged.primaries, tagged.transfer, tagged.chroma_location) == (9, 9, 16, 3)
    assert tagged.guessed == ()
    jpeg = resolve_colour(6, 0, 6, 6, 2, 64, 48, planar_equivalent("yuvj420p"))
    assert jpeg.range == 2 and "range" not in jpeg.guessed
    with pytest.raises(VideoError, match="ictcp"):
        resolve_colour(14, 1, 9, 16, 1, 64, 48, planar_equivalent("yuv420p10le"))


def test_rgb_input_written_as_yuv_gets_a_real_matrix():
    rgb_in = resolve_colour(0, 0, 2, 2, 0, 64, 48, planar_equivalent("gbrp"))
    out = output_colour(rgb_in, planar_equivalent("gbrp"), planar_equivalent("yuv444p"), 1920, 1080)
    assert out.matrix == 1 and out.range == 1


def test_output_pixel_format_choice():
    x264, svt, ffv1 = av.Codec("libx264", "w"), av.Codec("libsvtav1", "w"), av.Codec("ffv1", "w")
    assert choose_pix_fmt(x264, planar_equivalent("yuv420p10le"), None) == ("yuv420p10le", None)
    fmt, note = choose_pix_fmt(svt, planar_equivalent("yuv444p10le"), None)
    assert fmt == "yuv420p10le" and "cannot encode yuv444p10le" in note
    fmt, note = choose_pix_fmt(x264, planar_equivalent("gbrp"), None)
    assert fmt == "yuv444p"
    assert choose_pix_fmt(ffv1, planar_equivalent("gbrp"), None)[0] == "bgr0"   # packed twin of gbrp
    with pytest.raises(VideoError, match="libsvtav1 cannot encode yuv444p"):
        choose_pix_fmt(svt, planar_equivalent("yuv420p"), "yuv444p")
