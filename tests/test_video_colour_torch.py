"""The torch form of the frame conversions (dlgsa_vs.video.colour_torch, the GPU-side video
path) against the numpy form, on CPU tensors: the same codes for every layout, matrix, range
and chroma siting, both directions, batched; 16-bit samples survive the int16 transport."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dlgsa_vs.video import colour_torch
from dlgsa_vs.video.colour import Colour, planar_equivalent, planes_to_rgb, rgb_to_planes

CPU = torch.device("cpu")
FORMATS = ["yuv420p", "yuv422p10le", "yuv444p12le", "yuv420p16le", "yuv410p", "gray10le", "gbrp", "gbrp16le"]
COLOURS = [Colour(1, 1, 1, 1, 1), Colour(6, 2, 6, 6, 0), Colour(0, 2, 1, 13, 2),   # bt709 tv, 601 pc, GBR
           Colour(8, 1, 1, 1, 3), Colour(9, 1, 9, 16, 5), Colour(5, 1, 5, 6, 4)]   # YCgCo, 2020, 470bg


def _planes(layout, n, h, w, seed):
    rng = np.random.default_rng(seed)
    top = (1 << layout.depth) - 1
    return [[rng.integers(0, top + 1, size=s, dtype=np.int64).astype(layout.dtype)
             for s in layout.plane_sizes(w, h)] for _ in range(n)]


@pytest.mark.parametrize("fmt, colour", list(itertools.product(FORMATS, COLOURS)))
def test_torch_conversions_give_the_numpy_codes(fmt, colour):
    layout = planar_equivalent(fmt)
    frames = _planes(layout, 2, 18, 22, seed=len(fmt))   # even sizes, and odd below
    want = np.stack([planes_to_rgb(f, layout, colour) for f in frames])
    stacked = [np.stack([f[i] for f in frames]) for i in range(len(frames[0]))]
    got = colour_torch.planes_to_rgb(colour_torch.upload(stacked, CPU), layout, colour)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert np.array_equal(got.numpy(), want)

    rgb = np.random.default_rng(1).random((2, 3, 17, 21), dtype=np.float32)   # odd sizes
    want_planes = [rgb_to_planes(x, layout, colour) for x in rgb]
    got_planes = colour_torch.download(colour_torch.rgb_to_planes(torch.from_numpy(rgb), layout, colour), layout)
    for i, p in enumerate(got_planes):
        assert p.dtype == np.dtype(layout.dtype)
        assert np.array_equal(p, np.stack([w[i] for w in want_planes])), (fmt, colour, i)


def test_sixteen_bit_extremes_travel_unchanged():
    layout = planar_equivalent("yuv444p16le")
    planes = [np.array([[[0, 1, 32767, 32768, 65534, 65535]]], dtype=np.uint16)] * 3
    up = colour_torch.upload(planes, CPU)
    assert up[0].tolist() == [[[0, 1, 32767, 32768, 65534, 65535]]]
    assert all(np.array_equal(a, b) for a, b in zip(colour_torch.download(up, layout), planes))


@pytest.mark.parametrize("pix_fmt, colour", [("yuv420p", (1, 1, 1, 1)), ("yuv422p10le", (9, 2, 9, 16)),
                                             ("gray", (1, 1, 1, 1))])
def test_pipeline_converting_on_the_device_writes_the_same_file(tmp_path, micro_model, pix_fmt, colour):
    """The video pipeline with its conversions where the network runs (as on a GPU; here the
    device is the CPU) writes the frames the CPU-thread conversions write: FFV1, every code."""
    from dlgsa_vs.runtime.backends import create_upscaler
    from dlgsa_vs.video.job import upscale_video
    from video_support import decoded_planes, video_facts, write_clip

    src = write_clip(tmp_path / "in.mkv", frames=5, codec="ffv1", pix_fmt=pix_fmt, colour=colour,
                     chroma_location=2)
    up = create_upscaler(model_path=str(micro_model), backend="cpu", tile=(0, 0), batch=2, threads=1)
    outs = {}
    for on_device in (False, True):
        outs[on_device] = tmp_path / f"out_{on_device}.mkv"
        upscale_video(src, up, outs[on_device], encoder="ffv1", on_device=on_device)
    a, b = video_facts(outs[False]), video_facts(outs[True])
    assert a["frames"] == b["frames"] == 5 and a["times"] == b["times"] and a["pix_fmt"] == b["pix_fmt"]
    for fa, fb in zip(decoded_planes(outs[False]), decoded_planes(outs[True])):
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
