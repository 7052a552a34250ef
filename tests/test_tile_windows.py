"""Tiles given the whole frame's TLC windows (arch/tlc.crop_windows) and cut on their grid
(tiling.tile_spans with a window): tiles attend as the whole frame does."""
import math

import pytest
import torch

from dlgsa_vs.runtime import tiling
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.arch.tlc import crop_window_layout, crop_windows, from_windows, tlc_windows, to_windows, window_starts
from dlgsa_vs.runtime.inference import Upscaler
from conftest import randomize_, small_config

CPU = torch.device("cpu")


def frame_windows(length, k):
    return window_starts(length, k, CPU).tolist()


@pytest.mark.parametrize("length,k", [(100, 16), (160, 16), (257, 24), (1080, 96)])
def test_a_crop_keeps_the_frame_windows_inside_it_and_edge_windows_only_where_one_is_missing(length, k):
    frame = frame_windows(length, k)
    for size in (k, k + 7, 2 * k + 3, length // 2):
        for crop in sorted({0, 1, k // 2, length // 3, length - size}):
            starts, weights = crop_window_layout(length, crop, size, k)
            inside = [s - crop for s in frame if s >= crop and s + k <= crop + size]
            assert list(starts[:len(inside)]) == inside
            assert all(all(v == 1.0 for v in wt) for wt in weights[:len(inside)])
            assert len(starts) - len(inside) <= 2  # at most one edge window per side
            total = [0.0] * size
            for s, wt in zip(starts, weights):
                for i in range(k):
                    total[s + i] += wt[i]
            for p in range(size):
                covering = [s for s in frame if s <= crop + p < s + k]
                kept = sum(1 for s in covering if s >= crop and s + k <= crop + size)
                left = any(s < crop for s in covering)
                right = any(s + k > crop + size for s in covering)
                assert total[p] == kept + left + right, (crop, size, p)


def test_a_crop_that_is_the_whole_axis_or_under_a_window_keeps_its_own_windows():
    assert crop_window_layout(300, 0, 300, 24) == (tuple(frame_windows(300, 24)), ())
    assert crop_window_layout(300, 40, 20, 24)[1] == ()
    assert crop_windows((300, 200), (0, 0), (300, 200), 24, CPU) is None


def test_unit_weights_give_the_plain_average():
    torch.manual_seed(0)
    wh, ww = tlc_windows(40, 52, 16, CPU)
    windows = to_windows(torch.rand(2, 5, 40, 52), wh, ww)
    ones = (torch.ones(wh.shape), torch.ones(ww.shape))
    assert torch.allclose(from_windows(windows, wh, ww, 40, 52, weights=ones), from_windows(windows, wh, ww, 40, 52))


@pytest.mark.parametrize("length,tile,pad,k", [(1920, 192, 16, 96), (1080, 360, 16, 96), (480, 100, 8, 16)])
def test_cuts_land_on_the_window_grid_and_tiles_keep_their_size(length, tile, pad, k):
    spans = tiling.tile_spans(length, tile, pad, k)
    assert [i for s in spans for i in range(s.own_start, s.own_end)] == list(range(length))
    assert len({s.size for s in spans}) == 1 and all(s.own_end - s.own_start <= tile for s in spans)
    assert all(s.crop <= s.own_start - min(pad, s.own_start) and s.own_end + pad <= s.crop + s.size
               or s.crop + s.size == length for s in spans)
    frame = frame_windows(length, k)
    step = frame[1] - frame[0]
    for s in spans[1:]:
        # no owned pixel next to a cut needs more than the windows' overlap from an edge window
        assert tiling._cut_cost(s.own_start, frame, k, pad) <= k - step
    if length % k == 0:  # windows side by side: cuts exactly on window starts
        assert all(s.own_start % k == 0 for s in spans)


def psnr(a, b):
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


@pytest.mark.parametrize("hw", [(64, 80), (90, 100)])
def test_tiles_with_the_frame_windows_are_closer_to_the_whole_frame(hw):
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_kernel=16)))
    frames = torch.rand(1, 3, *hw)
    whole = Upscaler(model, tile=(0, 0))(frames)
    auto = Upscaler(model, tile=tiling.AutoTiles(1600, "test", 16), tile_pad=8)
    tile = auto.tile_for(*hw)
    assert tile != (0, 0)
    # the same tiles through a wrapper: the network places windows of its own in each crop
    own = Upscaler(model, tile=tile, tile_pad=8, network=lambda x: model(x))
    framed, placed = psnr(whole, auto(frames)), psnr(whole, own(frames))
    assert framed > placed + 4, (framed, placed)


def test_batched_tiles_with_different_windows_run_apart():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_kernel=16)))
    frames = torch.rand(1, 3, 64, 80)
    auto = tiling.AutoTiles(1600, "test", 16)
    one = Upscaler(model, tile=auto, tile_pad=8)(frames)
    assert torch.allclose(Upscaler(model, tile=auto, tile_pad=8, batch=4)(frames), one, atol=1e-5)
