"""The VapourSynth filter's colour conversion where the network runs (filter.device_stage, used
on CUDA GPUs for integer YUV/GRAY clips), run here with the CPU as the device: its codes equal
the video front end's numpy conversion, and stay close to the zimg path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import vapoursynth as vs

from dlgsa_vs.runtime.backends import StreamRunner, create_upscaler
from dlgsa_vs.video import colour as vcolour
from dlgsa_vs.vapoursynth import colour as vscolour
from dlgsa_vs.vapoursynth import filter as vsfilter
from dlgsa_vs.vapoursynth.colour import RANGE_PROP
from vs_support import clip_from_arrays, core, planes, random_rgb, small_model  # noqa: F401 (fixtures)

FRAME_PROPS = [  # per frame: matrix, range, chroma location (VapourSynth's numbering)
    {"_Matrix": 1, RANGE_PROP: vs.RANGE_LIMITED, "_ChromaLocation": 0},
    {"_Matrix": 6, RANGE_PROP: vs.RANGE_FULL, "_ChromaLocation": 2},
    {"_Matrix": 9, RANGE_PROP: vs.RANGE_LIMITED, "_ChromaLocation": 1},
]


def smooth_rgb(n: int, width: int, height: int) -> list[list[np.ndarray]]:
    """Frames of soft colour waves: where linear and bicubic chroma resampling nearly agree."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return [[(0.5 + 0.4 * np.sin(xx / 6 + c + i) * np.cos(yy / 5 - c)).astype(np.float32) for c in range(3)]
            for i in range(n)]


def source(fmt: int, props=FRAME_PROPS, smooth: bool = False) -> vs.VideoNode:
    n = len(props)
    rgb = clip_from_arrays(smooth_rgb(n, 40, 28) if smooth else random_rgb(n, 40, 28, seed=11), vs.RGBS)
    frames = [planes(rgb.resize.Bicubic(format=fmt, matrix=1, range_s="limited").get_frame(n))
              for n in range(len(props))]
    return clip_from_arrays(frames, fmt, props)


def numpy_reference(upscaler, frame_planes, layout, props) -> list[np.ndarray]:
    """What the video front end computes for one frame: video.colour in numpy, the network."""
    full = props.get(RANGE_PROP) == vs.RANGE_FULL
    matrix = 1 if layout.family == "gray" else props["_Matrix"]  # GRAY goes back with BT.709 weights
    colour = vcolour.Colour(matrix, vcolour.RANGE_PC if full else vcolour.RANGE_TV,
                            2, 2, props.get("_ChromaLocation", 0) + 1)
    rgb = vcolour.planes_to_rgb(frame_planes, layout, colour)
    up = upscaler(torch.from_numpy(rgb)[None])[0].numpy()
    return vcolour.rgb_to_planes(up, layout, colour)


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV422P10, vs.YUV444P16, vs.GRAY8, vs.GRAY12])
@pytest.mark.parametrize("batch", [1, 2])
def test_device_conversion_equals_the_numpy_conversion(core, small_model, fmt, batch):
    clip = source(fmt)
    upscaler = create_upscaler(model_path=str(small_model), backend="cpu", batch=batch)
    layout = vscolour.device_layout(clip.format)
    out = vsfilter.device_stage(clip, StreamRunner(upscaler), batch, vscolour.Overrides(), layout)
    assert (out.format.id, out.width, out.height, out.num_frames) == (fmt, 80, 56, clip.num_frames)
    for n, props in enumerate(FRAME_PROPS):
        expected = numpy_reference(upscaler, planes(clip.get_frame(n)), layout, props)
        got = planes(out.get_frame(n))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype
            diff = np.abs(g.astype(np.int32) - e.astype(np.int32))
            if batch == 1:
                assert not diff.any(), (n, fmt)
            else:  # two frames in one pass: the convolutions may sum in another order
                assert diff.max() <= 1 and diff.mean() < 0.01, (n, fmt, diff.max(), diff.mean())


def test_device_conversion_is_close_to_the_zimg_path(core, small_model):
    clip = source(vs.YUV420P10, smooth=True)
    upscaler = create_upscaler(model_path=str(small_model), backend="cpu")
    layout = vscolour.device_layout(clip.format)
    zimg = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")

    def mean_diff(over: vscolour.Overrides) -> np.ndarray:
        """Mean |device - zimg| in 10-bit codes, per frame and plane."""
        device = vsfilter.device_stage(clip, StreamRunner(upscaler), 1, over, layout)
        return np.array([[np.abs(a.astype(np.int32) - b.astype(np.int32)).mean()
                          for a, b in zip(planes(device.get_frame(n)), planes(zimg.get_frame(n)))]
                         for n in range(clip.num_frames)])

    right = mean_diff(vscolour.Overrides())
    # frame 0 is BT.709: read it as BT.601 for the scale of a real conversion mistake
    wrong = mean_diff(vscolour.Overrides(matrix=6))[0]
    # linear against bicubic chroma, amplified by the random-weight network: a few codes
    assert right.max() < 8, right
    assert (wrong > 3 * right[0]).any(), (wrong, right[0])


def test_a_frame_the_device_cannot_convert_names_the_way_out(core, small_model):
    clip = source(vs.YUV444P8, FRAME_PROPS[:1] + [{"_Matrix": 12, "_Primaries": 9}])
    upscaler = create_upscaler(model_path=str(small_model), backend="cpu")
    out = vsfilter.device_stage(clip, StreamRunner(upscaler), 1, vscolour.Overrides(),
                                vscolour.device_layout(clip.format))
    out.get_frame(0)
    with pytest.raises(vs.Error, match=r"frame 1: matrix 12 \(chromaticity-derived NCL\) is converted on the CPU "
                                       r"only: convert the clip to RGBS"):
        out.get_frame(1)


def test_which_clips_convert_on_the_device():
    assert vscolour.device_layout(vs.core.get_video_format(vs.YUV420P10)).name == "yuv420p10le"
    assert vscolour.device_layout(vs.core.get_video_format(vs.GRAY8)).name == "gray"
    for fmt in (vs.RGB24, vs.RGBS, vs.YUV444PS, vs.GRAYS):
        assert vscolour.device_layout(vs.core.get_video_format(fmt)) is None
    c = vscolour.device_colour(vscolour.Colour(14, "limited", 0, 16, 9))
    assert c is None  # ICtCp: zimg only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cuda_backend_converts_integer_yuv_on_the_gpu(core, small_model):
    clip = source(vs.YUV420P8)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cuda", num_streams=2)
    upscaler = create_upscaler(model_path=str(small_model), backend="cpu")
    on_cpu = vsfilter.device_stage(clip, StreamRunner(upscaler), 1, vscolour.Overrides(),
                                   vscolour.device_layout(clip.format))
    for n in range(clip.num_frames):
        for a, b in zip(planes(out.get_frame(n)), planes(on_cpu.get_frame(n))):
            diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
            assert diff.mean() < 0.5 and diff.max() <= 8, (n, diff.mean(), diff.max())  # cuDNN's TF32 convs
