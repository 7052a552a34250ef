"""The VapourSynth filter in-process: core.dlgsa.Upscale / dlgsa_vs.upscale on a real core.

Frames are tiny (<= 64x48) and the network is a small real DLGSANet with random weights, so
that these tests check the plumbing (formats, colours, props, batching, threads, errors) fast.
"""
from __future__ import annotations

import inspect
import threading
import time

import numpy as np
import pytest
import torch
import vapoursynth as vs

import dlgsa_vs
from dlgsa_vs.runtime.backends import create_upscaler
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.vapoursynth import filter as vsfilter
from dlgsa_vs.vapoursynth.colour import RANGE_PROP
from vs_support import clip_from_arrays, core, planes, psnr, random_rgb, small_model  # noqa: F401 (fixtures)


def reference(model_path, frames, **kw) -> np.ndarray:
    """The inference core's output for RGB float frames (list of 3 planes each)."""
    x = torch.from_numpy(np.stack([np.stack(f).astype(np.float32) for f in frames])).clamp(0, 1)
    return create_upscaler(model_path=str(model_path), backend="cpu", **kw)(x).numpy()


def frames_of(clip: vs.VideoNode) -> list[list[np.ndarray]]:
    return [planes(clip.get_frame(n)) for n in range(clip.num_frames)]


# --- the namespace and the Python function ------------------------------------------------------

def test_plugin_signature_matches_the_python_function(core):
    names = [a.split(":")[0] for a in core.dlgsa.Upscale.signature.split(";") if a]
    assert names == list(inspect.signature(dlgsa_vs.upscale).parameters)
    assert core.dlgsa.Version()["version"] == dlgsa_vs.__version__


def test_rgbs_output_equals_the_inference_core(core, small_model):
    src = random_rgb(3, 40, 24, seed=1)
    clip = clip_from_arrays(src, vs.RGBS)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    assert (out.format.id, out.width, out.height, out.num_frames) == (vs.RGBS, 80, 48, 3)
    ref = reference(small_model, src)
    got = np.stack([np.stack(f) for f in frames_of(out)])
    assert np.abs(got - ref).max() <= 1e-6
    # the Python function is the same filter
    same = dlgsa_vs.upscale(clip, model_path=small_model, backend="cpu")
    assert np.array_equal(np.stack([np.stack(f) for f in frames_of(same)]), got)


def test_rgbh_stays_rgbh_within_half_precision(core, small_model):
    src = [[p.astype(np.float16) for p in f] for f in random_rgb(2, 32, 24, seed=2)]
    out = core.dlgsa.Upscale(clip_from_arrays(src, vs.RGBH), model_path=str(small_model), backend="cpu")
    assert out.format.id == vs.RGBH
    got = np.stack([np.stack(f) for f in frames_of(out)]).astype(np.float32)
    assert np.abs(got - reference(small_model, src)).max() <= 1e-3


def test_batches_and_tiles_give_the_inference_core_output_in_order(core, small_model):
    src = random_rgb(5, 48, 32, seed=3)  # 5 frames: batch=2 pads the last group
    clip = clip_from_arrays(src, vs.RGBS)
    ref = reference(small_model, src)
    batched = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu", batch=2)
    assert batched.num_frames == 5 and batched.fps == clip.fps
    got = np.stack([np.stack(f) for f in frames_of(batched)])
    assert np.abs(got - ref).max() <= 1e-5  # every frame matches its own reference: order kept
    tiled = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu", tile_w=16, tile_pad=4)
    ref_tiled = reference(small_model, src, tile=(16, 16), tile_pad=4)
    got = np.stack([np.stack(f) for f in frames_of(tiled)])
    assert np.abs(got - ref_tiled).max() <= 1e-6


def test_tlc_switch_reaches_the_network(core, small_model):
    src = random_rgb(1, 112, 24, seed=9)  # wider than the x2 TLC window (96): TLC changes the result
    clip = clip_from_arrays(src, vs.RGBS)
    outs = {}
    for tlc in (0, 1):
        out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu", tlc=tlc)
        outs[tlc] = np.stack(planes(out.get_frame(0)))
        assert np.abs(outs[tlc] - reference(small_model, src, tlc=bool(tlc))[0]).max() <= 1e-6
    assert np.abs(outs[0] - outs[1]).max() > 1e-4


# --- formats, colours and properties -----------------------------------------------------------

def yuv_clip(fmt: int, n: int = 2, width: int = 32, height: int = 24, props: list[dict] | None = None):
    rgb = clip_from_arrays(random_rgb(n, width, height, seed=4), vs.RGBS)
    clip = rgb.resize.Bicubic(format=fmt, matrix=1, range_s="limited")
    clip = clip.std.SetFrameProps(_Matrix=1, _SARNum=4, _SARDen=3, Custom=7, **{RANGE_PROP: vs.RANGE_LIMITED})
    return clip if props is None else clip_from_arrays(frames_of(clip), fmt, props)


def manual_pipeline(clip: vs.VideoNode, model_path, n: int, **colour) -> list[np.ndarray]:
    """Frame n upscaled by converting with resize by hand, the inference core, and back."""
    rgb = clip.resize.Bicubic(format=vs.RGBS, **{k[:-2] + "_in_s" if k.endswith("_s") else k + "_in": v
                                                 for k, v in colour.items()})
    up = reference(model_path, [planes(rgb.get_frame(n))])[0]
    back = clip_from_arrays([list(up)], vs.RGBS).resize.Bicubic(format=clip.format.id, **colour)
    return planes(back.get_frame(0))


def test_yuv420p8_in_and_out_with_props_kept(core, small_model):
    clip = yuv_clip(vs.YUV420P8)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    assert (out.format.id, out.width, out.height, out.num_frames, out.fps) == (
        vs.YUV420P8, 64, 48, clip.num_frames, clip.fps)
    for n in range(clip.num_frames):
        frame = out.get_frame(n)
        assert dict(frame.props) == dict(clip.get_frame(n).props)  # _SAR*, _Matrix, custom props ...
        expected = manual_pipeline(clip, small_model, n, matrix=1, range_s="limited", chromaloc=0)
        for got, exp in zip(planes(frame), expected):
            assert np.array_equal(got, exp)


def test_each_frame_is_converted_with_its_own_matrix_and_range(core, small_model):
    base = yuv_clip(vs.YUV444P8)
    props = [{"_Matrix": 1, RANGE_PROP: vs.RANGE_LIMITED}, {"_Matrix": 6, RANGE_PROP: vs.RANGE_FULL}]
    clip = clip_from_arrays(frames_of(base), vs.YUV444P8, props)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    for n, (p, rng) in enumerate(zip(props, ["limited", "full"])):
        frame = out.get_frame(n)
        assert frame.props["_Matrix"] == p["_Matrix"] and frame.props[RANGE_PROP] == p[RANGE_PROP]
        expected = manual_pipeline(clip, small_model, n, matrix=p["_Matrix"], range_s=rng)
        assert all(np.array_equal(g, e) for g, e in zip(planes(frame), expected))


def test_colour_parameters_override_the_props(core, small_model):
    clip = yuv_clip(vs.YUV420P8).std.SetFrameProps(_Matrix=2)  # unspecified
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: frame 0 of the YUV420P8 clip has _Matrix=2 "
                                       r"\(unspecified\).*pass matrix=1 \(BT\.709"):
        core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu", matrix=6, range=vs.RANGE_FULL)
    frame = out.get_frame(0)
    assert frame.props["_Matrix"] == 6 and frame.props[RANGE_PROP] == vs.RANGE_FULL  # how it was encoded
    expected = manual_pipeline(clip, small_model, 0, matrix=6, range_s="full", chromaloc=0)
    assert all(np.array_equal(g, e) for g, e in zip(planes(frame), expected))


def test_a_later_frame_without_matrix_fails_with_the_message(core, small_model):
    base = yuv_clip(vs.YUV444P8)
    clip = clip_from_arrays(frames_of(base), vs.YUV444P8, [dict(_Matrix=1), dict(_Matrix=2)])
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    out.get_frame(0)
    with pytest.raises(vs.Error, match=r"dlgsa\.Upscale: frame 1 of the YUV444P8 clip has _Matrix=2"):
        out.get_frame(1)


@pytest.mark.parametrize("fmt", [vs.GRAY8, vs.GRAY16, vs.GRAYS, vs.RGB24, vs.RGB48, vs.YUV420P10, vs.YUV422P8,
                                 vs.YUV444PS])
def test_other_formats_come_back_in_their_format(core, small_model, fmt):
    rgb = clip_from_arrays(random_rgb(1, 32, 24, seed=5), vs.RGBS)
    family = core.get_video_format(fmt).color_family
    clip = rgb.resize.Point(format=fmt, matrix=None if family == vs.RGB else 1)
    clip = clip.std.SetFrameProps(_Matrix=1) if family == vs.YUV else clip
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
    frame = out.get_frame(0)
    assert (out.format.id, frame.width, frame.height) == (fmt, 64, 48)
    if fmt in (vs.RGB24, vs.GRAY8):
        # integer RGB and GRAY: the same as converting by hand around the inference core
        if fmt == vs.RGB24:
            src = planes(clip.resize.Point(format=vs.RGBS).get_frame(0))
        else:
            g = planes(clip.resize.Point(format=vs.GRAYS).get_frame(0))[0]
            src = [g, g, g]
        up = clip_from_arrays([list(reference(small_model, [src])[0])], vs.RGBS)
        back = up.resize.Point(format=fmt, matrix=None if fmt == vs.RGB24 else 1)
        assert all(np.array_equal(g, e) for g, e in zip(planes(frame), planes(back.get_frame(0))))


# --- threads ------------------------------------------------------------------------------------

def test_frames_run_in_parallel_but_cpu_passes_one_at_a_time(core, small_model, monkeypatch):
    lock = threading.Lock()
    state = {"frames": 0, "max_frames": 0, "passes": 0, "max_passes": 0}
    runner_call, upscaler_call = vsfilter.StreamRunner.__call__, Upscaler.__call__

    def count(key, delta):
        with lock:
            state[key] += delta
            state["max_" + key] = max(state["max_" + key], state[key])

    def frame(self, x):  # the frame callback, before the CPU lock
        count("frames", 1)
        time.sleep(0.3)  # long enough for the other worker thread to enter too
        try:
            return runner_call(self, x)
        finally:
            count("frames", -1)

    def forward(self, x):  # inside the lock
        count("passes", 1)
        try:
            return upscaler_call(self, x)
        finally:
            count("passes", -1)

    monkeypatch.setattr(vsfilter.StreamRunner, "__call__", frame)
    monkeypatch.setattr(Upscaler, "__call__", forward)
    threads = core.num_threads
    core.num_threads = max(threads, 2)
    try:
        clip = clip_from_arrays(random_rgb(4, 16, 16, seed=6), vs.RGBS)
        out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu")
        for f in [out.get_frame_async(n) for n in range(4)]:
            f.result()
    finally:
        core.num_threads = threads
    assert state["max_frames"] >= 2, "VapourSynth ran the frames one at a time"
    assert state["max_passes"] == 1, "forward passes overlapped on the CPU"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_streams_give_the_cpu_result(core, small_model):
    src = random_rgb(4, 48, 32, seed=7)
    clip = clip_from_arrays(src, vs.RGBS)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cuda", num_streams=2, batch=2)
    got = np.stack([np.stack(f) for f in frames_of(out)])
    ref = reference(small_model, src)
    assert np.abs(got - ref).mean() <= 2e-3 and np.abs(got - ref).max() <= 3e-2  # cuDNN convs use TF32


# --- errors -------------------------------------------------------------------------------------

ERRORS = [
    (dict(scale=5), r"scale=5 is not available: DLGSANet models upscale by 2, 3 or 4"),
    (dict(variant="huge"), r"variant='huge' is unknown: use one of 'tiny', 'light', 'light-video', 'full'"),
    (dict(model_path="/nonexistent/m.pth"), r"model_path='/nonexistent/m.pth' is not a file"),
    (dict(backend="tpu"), r"backend='tpu' is unknown: use one of auto, trt, cuda, cpu"),
    (dict(tile_w=-8), r"tile_w=-8 is invalid: it must be >= 0 \(0 = no tiling\)"),
    (dict(tile_pad=-1), r"tile_pad=-1 is invalid: it must be >= 0"),
    (dict(batch=0), r"batch=0 is invalid: it must be >= 1"),
    (dict(num_streams=0), r"num_streams=0 is invalid: it must be >= 1"),
    (dict(device_index=-1), r"device_index=-1 is invalid"),
    (dict(fp16=2), r"fp16 must be 0/1"),
    (dict(kernels="cuda"), r"kernels='cuda' is unknown: use one of auto, triton, torch"),
    (dict(precision="fp8"), r"precision='fp8' is unknown: use fp16, bf16 or fp32"),
    (dict(cpu_engine="onnx"), r"cpu_engine='onnx' is unknown: use one of auto, torch, openvino"),
    (dict(backend="cuda", cpu_engine="torch"), r"cpu_engine='torch' applies to the cpu backend only: leave it out, "
                                               r"or use backend cpu"),
    (dict(matrix=3), r"matrix=3 is not a matrix VapourSynth's resize can convert"),
    (dict(range=2), r"range=2 is invalid: use vs\.RANGE_FULL \(\d\) or vs\.RANGE_LIMITED \(\d, TV range\)"),
    (dict(transfer=3), r"transfer=3 is not a transfer code VapourSynth knows"),
    (dict(primaries=0), r"primaries=0 is not a primaries code VapourSynth knows"),
]


@pytest.mark.parametrize("kwargs,message", ERRORS, ids=[next(iter(k)) + "=" + str(next(iter(k.values())))
                                                        for k, _ in ERRORS])
def test_bad_arguments_name_the_problem_and_the_fix(core, kwargs, message):
    clip = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=1)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: " + message):
        core.dlgsa.Upscale(clip, **kwargs)


def test_model_file_errors(core, small_model, tmp_path):
    clip = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=1)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: .*small_x2\.safetensors is a x2 model but scale=3 was asked"):
        core.dlgsa.Upscale(clip, model_path=str(small_model), scale=3)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: .* holds a DLGSANet-custom but variant='light' was asked"):
        core.dlgsa.Upscale(clip, model_path=str(small_model), variant="light")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: .*broken\.safetensors is not a readable safetensors file"):
        core.dlgsa.Upscale(clip, model_path=str(broken))
    from dlgsa_vs.runtime.weights import default_model_path
    if default_model_path("full", 4).is_file():
        pytest.skip("the packaged full x4 weights exist: no missing-weights case to show")
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: no packaged weights for full x4: .* Pass a model file with "
                                       r"model_path"):
        core.dlgsa.Upscale(clip, variant="full", scale=4)


def test_clips_it_cannot_take(core, small_model):
    m = dict(model_path=str(small_model))
    a = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=1)
    b = core.std.BlankClip(format=vs.YUV420P8, width=16, height=16, length=1)
    c = core.std.BlankClip(format=vs.RGBS, width=32, height=16, length=1)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: the clip has a variable format: make it constant first"):
        core.dlgsa.Upscale(core.std.Splice([a, b], mismatch=True), **m)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: the clip has a variable frame size: make it constant"):
        core.dlgsa.Upscale(core.std.Splice([a, c], mismatch=True), **m)
    rgb32 = core.std.BlankClip(format=core.query_video_format(vs.RGB, vs.INTEGER, 32).id, width=16, height=16)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: RGB96 \(RGB with 32-bit integer samples\) is not supported: "
                                       r"VapourSynth's resize converts integer samples of 8 to 16 bits only"):
        core.dlgsa.Upscale(rgb32, **m)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: clip must be a video clip"):
        dlgsa_vs.upscale("clip.mkv", **m)
    cl = b.std.SetFrameProps(_Matrix=10)  # BT.2020 constant luminance needs the transfer
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: frame 0: matrix 10 \(BT\.2020 CL\) depends on the transfer "
                                       r"function, which is unspecified: pass transfer="):
        core.dlgsa.Upscale(cl, **m)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_backend_without_a_gpu(core, small_model):
    clip = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=1)
    for name in ("cuda", "trt"):
        with pytest.raises(vs.Error, match=rf"^dlgsa\.Upscale: backend {name} needs an NVIDIA GPU, but "
                                           r"(this torch build .* has no CUDA support|torch sees no CUDA GPU .*): "
                                           r"use backend cpu$"):
            core.dlgsa.Upscale(clip, model_path=str(small_model), backend=name)


def test_messages_go_to_stderr_never_stdout(core, small_model, capfd):
    clip = clip_from_arrays(random_rgb(1, 16, 16, seed=8), vs.RGBS)
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), fp16=True)  # auto backend: it says which
    out.get_frame(0)
    captured = capfd.readouterr()
    assert captured.out == ""
    expected = "backend auto -> " + ("" if torch.cuda.is_available() else "cpu (no CUDA GPU: ")
    assert f"dlgsa.Upscale: {expected}" in captured.err
    if not torch.cuda.is_available():
        assert "dlgsa.Upscale: precision fp16 -> fp32 (fp16 has no fast path on the CPU)" in captured.err


def test_precision_and_cpu_engine_on_the_cpu(core, capfd):
    """precision="bf16" on the CPU runs the bf16 CPU path (cpu_runner) and says so; its output is
    within bf16's reach of fp32's (packaged weights: random ones amplify rounding), and
    cpu_engine="torch" is the engine said to run."""
    clip = clip_from_arrays(random_rgb(1, 40, 32, seed=9), vs.RGBS)
    fp32 = core.dlgsa.Upscale(clip, variant="light", backend="cpu", precision="fp32")
    bf16 = core.dlgsa.Upscale(clip, variant="light", backend="cpu", precision="bf16", cpu_engine="torch")
    a, b = (np.stack(frames_of(c)[0]) for c in (fp32, bf16))
    assert bf16.format.id == vs.RGBS and a.shape == b.shape == (3, 64, 80)
    assert not np.array_equal(a, b) and psnr(a, b, peak=1.0) >= 40
    err = capfd.readouterr().err
    assert "dlgsa.Upscale: cpu: float32 (as asked) in torch\n" in err
    assert "dlgsa.Upscale: cpu: bfloat16 (as asked" in err and "in torch (as asked)\n" in err


def test_import_dlgsa_vs_is_lazy():
    import subprocess
    import sys

    code = ("import sys, dlgsa_vs; assert 'torch' not in sys.modules and 'vapoursynth' not in sys.modules; "
            "print(dlgsa_vs.upscale.__module__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "dlgsa_vs.vapoursynth.filter"


def test_default_weights_are_the_video_ones(core):
    """variant: light-video by default (the weights for compressed sources), light on request."""
    rgb = clip_from_arrays(random_rgb(1, 32, 24, seed=5), vs.RGBS)
    got = {name: planes(dlgsa_vs.upscale(rgb, **kw).get_frame(0))
           for name, kw in (("default", {}), ("light-video", {"variant": "light-video"}),
                            ("light", {"variant": "light"}))}
    assert all(np.array_equal(a, b) for a, b in zip(got["default"], got["light-video"]))
    assert not all(np.array_equal(a, b) for a, b in zip(got["default"], got["light"]))
    x3 = planes(dlgsa_vs.upscale(rgb, scale=3).get_frame(0))     # light-video has no x3: light
    assert all(np.array_equal(a, b) for a, b in zip(x3, planes(dlgsa_vs.upscale(rgb, scale=3, variant="light").get_frame(0))))
