"""Automatic tiles (dlgsa_vs/runtime/tiling.py) and out-of-memory recovery in the Upscaler."""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from dlgsa_vs.runtime import tiling
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.inference import OutOfMemory, Upscaler, is_out_of_memory, network_input_hw, tile_spans
from dlgsa_vs.runtime.settings import RunSettings, SettingsError
from conftest import randomize_, small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConvUpscaler(torch.nn.Sequential):
    upscale = 2

    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                         torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))


class Limited(torch.nn.Module):
    """A stand-in for the allocator's limit: a real torch.OutOfMemoryError above ``limit`` input pixels."""

    def __init__(self, net, limit, error=torch.OutOfMemoryError):
        super().__init__()
        self.net, self.limit, self.error, self.sizes = net, limit, error, []
        self.upscale = net.upscale

    def forward(self, x):
        self.sizes.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB (stand-in)")
        return self.net(x)


@pytest.mark.parametrize("hw,pixels", [((1080, 1920), 288 * 288), ((2160, 3840), 288 * 288),
                                       ((1080, 1920), 60_000), ((300, 500), 20_000), ((97, 31), 1000)])
def test_the_chosen_tile_fits_the_budget_and_covers_the_frame(hw, pixels):
    tile = tiling.choose_tile(*hw, pixels, 16, 96)
    ch, cw = network_input_hw(*hw, tile, 16)
    assert ch * cw <= pixels or tile == (tiling.MIN_TILE, tiling.MIN_TILE)
    for length, t in zip(hw, tile):
        spans = tile_spans(length, t, 16)
        assert [i for s in spans for i in range(s.own_start, s.own_end)] == list(range(length))
        assert len({s.size for s in spans}) == 1  # equal crops: the tiles batch


def test_a_frame_within_the_budget_runs_whole():
    assert tiling.choose_tile(540, 960, 540 * 960, 16, 96) == (0, 0)
    assert tiling.choose_tile(540, 960, 540 * 960 - 1, 16, 96) != (0, 0)


def test_halving_the_tile_down_to_the_minimum():
    assert tiling.halve((0, 0), 1080, 1920) == (1080, 960)
    assert tiling.halve((200, 100), 1080, 1920) == (100, 100)
    assert tiling.halve((16, 16), 1080, 1920) is None
    assert tiling.halve((16, 40), 1080, 1920) == (16, 20)


def test_settings_default_is_auto_and_zero_keeps_whole_frames():
    assert RunSettings().tile == "auto"
    assert RunSettings(tile=(0, 0)).tile == (0, 0)
    assert RunSettings(tile="AUTO").tile == "auto"
    assert RunSettings.from_dict(RunSettings().to_dict()).tile == "auto"
    assert RunSettings.from_dict(RunSettings(tile=(32, 16)).to_dict()).tile == (32, 16)
    with pytest.raises(SettingsError, match="tile='big' is invalid"):
        RunSettings(tile="big")


def test_cli_tile_option():
    import argparse

    from dlgsa_vs.cli.common import add_model_options, settings_from_args, usage_message

    ap = argparse.ArgumentParser()
    add_model_options(ap, "light")
    parse = lambda *a: settings_from_args(ap.parse_args(list(a)))  # noqa: E731
    assert parse().tile == "auto" and parse("--tile", "auto").tile == "auto"
    assert parse("--tile", "0", "0").tile == (0, 0) and parse("--tile", "320", "180").tile == (180, 320)
    with pytest.raises(SettingsError) as err:
        parse("--tile", "320")
    assert usage_message(err.value) == "--tile 320 is invalid: give W H in LR pixels (0 0 = whole frames) or auto"


def test_auto_on_the_cpu_is_capped_by_speed_and_memory(monkeypatch):
    model = DLGSANet(**small_config())
    auto = tiling.plan(model, "cpu", torch.float32)
    assert auto.max_pixels <= tiling.CPU_FASTEST_CROP_PIXELS and "speed" in auto.reason
    monkeypatch.setattr(tiling, "available_ram", lambda: 1 << 28)  # 256 MiB available: memory decides
    auto = tiling.plan(model, "cpu", torch.float32, batch=2)
    assert auto.max_pixels == int(0.5 * (1 << 28) / (tiling.cpu_bytes_per_pixel(model) * 2))
    assert "memory" in auto.reason
    line = auto.summary(1080, 1920, 16)
    assert line.startswith("tile auto -> ") and "1920x1080 frames" in line and "\n" not in line


def test_auto_tiles_give_the_whole_frame_output_closely():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_kernel=16)))
    frames = torch.rand(1, 3, 60, 72)
    whole = Upscaler(model, tile=(0, 0))(frames)
    auto = tiling.AutoTiles(1600, "test", 16)
    up = Upscaler(model, tile=auto, tile_pad=8)
    assert up.tile_for(60, 72) != (0, 0)
    mse = ((whole - up(frames)) ** 2).mean()
    assert mse < 1e-3


def test_out_of_memory_halves_the_tile_and_keeps_every_frame():
    torch.manual_seed(0)
    net = ConvUpscaler()
    frames = torch.rand(3, 3, 64, 80)
    whole = Upscaler(net)(frames)
    limited = Limited(net, limit=40 * 48)  # whole frames and 64x40 tiles do not fit, 32x40 ones do
    up = Upscaler(limited, tile=(0, 0), tile_pad=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = up(frames)
    assert torch.allclose(out, whole, atol=1e-6)  # the same frames, recomputed in tiles
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 2 and all("\n" not in m and "out of memory" in m for m in messages)
    assert "recomputing with 40x64 tiles" in messages[0] and "40x32 tiles" in messages[1]
    kept = (up.tile_h, up.tile_w)
    limited.sizes.clear()
    assert torch.allclose(up(frames), whole, atol=1e-6)  # kept for the rest of the run: no new failure
    assert (up.tile_h, up.tile_w) == kept and all(s[2] * s[3] <= 40 * 48 for s in limited.sizes)


def test_cpu_allocation_failures_count_as_out_of_memory():
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: "
                                         "can't allocate memory: you tried to allocate 123 bytes"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    net = ConvUpscaler()
    up = Upscaler(Limited(net, limit=1000, error=MemoryError), tile=(0, 0), tile_pad=2)
    with pytest.warns(RuntimeWarning, match="out of memory on the cpu"):
        assert up(torch.rand(1, 3, 40, 40)).shape == (1, 3, 80, 80)


def test_below_the_minimum_tile_is_one_line_error():
    up = Upscaler(Limited(ConvUpscaler(), limit=10), tile=(0, 0), tile_pad=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OutOfMemory) as err:
            up(torch.rand(1, 3, 40, 40))
    assert "\n" not in str(err.value) and "smallest the network takes (16 px)" in str(err.value)


def test_other_errors_are_not_retried():
    class Broken(ConvUpscaler):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        Upscaler(Broken())(torch.rand(1, 3, 8, 8))


def test_a_real_allocation_failure_under_a_memory_limit_is_recovered():
    """A child process with an address-space limit (RLIMIT_AS): torch's CPU allocator really fails
    on the whole frame, and the Upscaler finishes the frame in smaller tiles."""
    code = textwrap.dedent("""
        import resource, sys, warnings
        import torch
        sys.path.insert(0, "tests")
        from dlgsa_vs.arch import DLGSANet
        from dlgsa_vs.runtime.inference import Upscaler
        from conftest import small_config
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = DLGSANet(**small_config(dim=24, tlc_kernel=32))
        up = Upscaler(model, tile=(0, 0), tile_pad=8)
        small = torch.rand(1, 3, 64, 64)
        up(small)  # warm: thread pools, code paths
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20), resource.RLIM_INFINITY))
        frame = torch.rand(1, 3, 512, 512)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = up(frame)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("OK", tuple(out.shape), (up.tile_h, up.tile_w), len(caught), flush=True)
        for w in caught:
            print(w.message)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0].split()
    assert first[0] == "OK" and done.stdout.splitlines()[0].startswith("OK (1, 3, 1024, 1024)")
    assert "out of memory on the cpu" in done.stdout and "can't allocate memory" in done.stdout


def test_video_pipeline_words_memory_errors_once():
    """What the Upscaler could not recover (already at the smallest tile) reaches the video
    command line as its own line, not with advice to use tiles it has already tried."""
    from dlgsa_vs.video.pipeline import _memory_error

    x = torch.zeros(2, 3, 48, 64)
    smallest = OutOfMemory("out of memory on the cpu even with 16x16 tiles of a 64x48 frame (batch 2), ...")
    assert str(_memory_error(x, smallest)) == str(smallest)
    other = str(_memory_error(x, MemoryError("can't allocate memory")))
    assert other.startswith("out of memory upscaling 2 frame(s) of 64x48: use --batch 1") and "--tile" not in other
