"""Reusing the upscale of unchanged tiles (dlgsa_vs/runtime/reuse.py, issue #37): exact reuse gives the
frames of reuse off on the same tile grid (through the CLI on an x264 clip, and through the real
VapourSynth core in any request order), the cache stays under its cap, tolerance compares with
the original input, letterbox tiles hit within a frame, and off is today's path."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.backends import create_upscaler
from dlgsa_vs.runtime.inference import Upscaler
from dlgsa_vs.runtime.reuse import TileCache
from dlgsa_vs.runtime.settings import RunSettings, SettingsError
from conftest import randomize_, small_config
from video_support import decoded_planes, pattern, run_cli, write_clip

ONE = ("--threads", "1")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(5)
    return randomize_(DLGSANet(**small_config()))


def held_scene(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """(3, H, W) RGB: a still background, letterbox bars, and a square that moves on every
    second frame (animation held on twos)."""
    rgb = pattern(0, width, height).copy()
    rgb[:, :8], rgb[:, -8:] = 0.1, 0.1
    x = 4 + 6 * (i // 2)
    rgb[:, 16:28, x:x + 12] = 0.8
    return rgb


def test_exact_reuse_equals_off_through_the_cli_on_an_x264_clip(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "held.mp4", frames=6, codec="libx264", make_frame=held_scene)
    outs, errs = {}, {}
    for mode in ("off", "exact"):
        out = tmp_path / f"{mode}.mkv"
        rc, errs[mode] = run_cli(capsys, src, "-o", out, "-m", micro_model, "-c", "ffv1", "--tile", "16", "16",
                                 "--tile-pad", "4", "--reuse", mode, *ONE)
        assert rc == 0, errs[mode]
        outs[mode] = decoded_planes(out)
    assert len(outs["off"]) == len(outs["exact"]) == 6
    for a, b in zip(outs["off"], outs["exact"]):
        assert all(np.array_equal(pa, pb) for pa, pb in zip(a, b))
    said = [line for line in errs["exact"].splitlines() if "reuse exact:" in line]
    assert len(said) == 1, errs["exact"]
    share = int(said[0].split("reuse exact: ")[1].split("%")[0])
    assert share >= 30, said[0]  # the background, the bars and the held frames
    assert "of tiles" not in errs["off"]


def test_vapoursynth_frames_in_shuffled_parallel_order_equal_reuse_off(net, tmp_path):
    vs = pytest.importorskip("vapoursynth")
    import dlgsa_vs
    from dlgsa_vs.runtime.weights import save_safetensors
    from vs_support import clip_from_arrays, planes

    model = save_safetensors(net, tmp_path / "small.safetensors")
    frames = [[np.ascontiguousarray(p, dtype=np.float32) for p in held_scene(i)] for i in range(8)]
    clip = clip_from_arrays(frames, vs.RGBS)
    kw = dict(model_path=model, backend="cpu", tile_w=16, tile_pad=4)
    off = dlgsa_vs.upscale(clip, reuse="off", **kw)
    ref = [planes(off.get_frame(n)) for n in range(clip.num_frames)]
    core = vs.core
    threads = core.num_threads
    core.num_threads = max(threads, 2)
    try:
        on = dlgsa_vs.upscale(clip, **kw)  # reuse exact is the default
        order = list(range(clip.num_frames))
        random.Random(3).shuffle(order)
        got = {n: f.result() for n, f in [(n, on.get_frame_async(n)) for n in order]}
    finally:
        core.num_threads = threads
    for n in range(clip.num_frames):
        assert all(np.array_equal(a, b) for a, b in zip(planes(got[n]), ref[n])), f"frame {n}"
    from dlgsa_vs.runtime.backends import open_runner
    from dlgsa_vs.runtime.settings import RunSettings

    # the filter's runner (open_runner hands every caller with the same settings the same one)
    runner = open_runner(RunSettings(model_path=str(model), backend="cpu", tile=(16, 16), tile_pad=4),
                         (clip.height, clip.width), torch.float32)
    assert runner.upscaler.reuse.stats.tiles_reused > 0


def test_the_cache_stays_under_its_cap(net):
    crop_bytes = 3 * 24 * 24 * 4 + 3 * 32 * 32 * 4  # a 24x24 crop (tile 16, pad 4) and its owned 32x32 output
    cache = TileCache(cap_bytes=5 * crop_bytes)
    up = Upscaler(net, tile=(16, 16), tile_pad=4, reuse=cache)
    for i in range(3):
        up(torch.rand(1, 3, 48, 64))
        assert 0 < cache.nbytes <= cache.cap_bytes
    assert len(cache._entries) <= 5


def test_tolerance_compares_with_the_original_input_never_a_chain(net):
    cache = TileCache(64 << 20, tolerance=2)
    up = Upscaler(net, tile=(0, 0), reuse=cache)
    base = torch.rand(1, 3, 24, 32).mul_(200).round_().add_(20)  # 8-bit code values, room to drift
    outs = [up(base.add(step).div(255)) for step in range(5)]  # +1 code value per frame
    # frames 1 and 2 are within 2 of frame 0's input; frame 3 is 3 away from it (only 1 from frame 2,
    # which reused): computed; frame 4 is within 1 of frame 3's input
    assert cache.stats.frames_reused == 3
    assert torch.equal(outs[1], outs[0]) and torch.equal(outs[2], outs[0])
    assert not torch.equal(outs[3], outs[0]) and torch.equal(outs[4], outs[3])
    assert torch.equal(outs[3], Upscaler(net)(base.add(3).div(255)))


def test_letterbox_and_flat_tiles_hit_within_one_frame(net):
    frame = torch.rand(1, 3, 64, 96)
    frame[:, :, :24] = 0.0  # a bar of whole tiles
    cache = TileCache(64 << 20)
    tiled = Upscaler(net, tile=(16, 16), tile_pad=4, reuse=cache)(frame)
    assert cache.stats.frames == 1 and cache.stats.tiles_reused >= 3  # the middle tiles of the bar share their place's signature
    assert torch.equal(tiled, Upscaler(net, tile=(16, 16), tile_pad=4)(frame))


def test_reuse_off_is_todays_path_and_options_are_checked(net, tmp_path, capsys):
    from dlgsa_vs.runtime.weights import save_safetensors

    model = str(save_safetensors(net, tmp_path / "m.safetensors"))
    assert create_upscaler(model_path=model, backend="cpu", reuse="off").reuse is None
    assert create_upscaler(model_path=model, backend="cpu").reuse.mode == "exact"
    x = torch.rand(2, 3, 24, 40)
    off = create_upscaler(model_path=model, backend="cpu", precision="fp32", reuse="off")
    assert torch.equal(off(x), Upscaler(off.model)(x))  # reuse None: the code path of before
    with pytest.raises(SettingsError, match="reuse_tolerance=2 applies only with reuse on"):
        RunSettings(reuse="off", reuse_tolerance=2)
    with pytest.raises(SettingsError, match="reuse='fast' is unknown"):
        RunSettings(reuse="fast")
    rc, err = run_cli(capsys, tmp_path / "none.mp4", "--reuse", "off", "--reuse-tolerance", "2")
    assert rc == 2 and err.strip().count("\n") == 0 and "--reuse-tolerance 2 applies only" in err, err


def test_auto_switches_itself_off_where_nothing_repeats(net):
    from dlgsa_vs.runtime.reuse import AUTO_PROBE_FRAMES

    cache = TileCache(64 << 20, mode="auto")
    up = Upscaler(net, reuse=cache)
    for _ in range(AUTO_PROBE_FRAMES + 2):
        up(torch.rand(1, 3, 16, 16))
    assert not cache.enabled and cache.nbytes == 0 and cache.stats.frames == AUTO_PROBE_FRAMES
    assert up.reuse_summary().startswith(f"reuse auto -> off after {AUTO_PROBE_FRAMES} frames (0% of tiles")
    held = TileCache(64 << 20, mode="auto")
    up = Upscaler(net, reuse=held)
    x = torch.rand(1, 3, 16, 16)
    for _ in range(AUTO_PROBE_FRAMES + 2):
        up(x)
    assert held.enabled and held.stats.frames_reused == AUTO_PROBE_FRAMES + 1
