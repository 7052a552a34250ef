"""The inference core: batching, tiling with overlap, clamping, dtype and devices."""
import copy

import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.inference import Upscaler, tile_spans
from conftest import randomize_, small_config


class ConvUpscaler(torch.nn.Sequential):
    """A plain conv network with a known receptive field (radius 2 LR pixels)."""

    upscale = 2

    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                         torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))


def test_tile_spans_cover_the_axis_once_with_equal_crops():
    for length, tile, pad in [(100, 32, 8), (33, 32, 8), (64, 16, 0), (10, 32, 4), (97, 20, 30)]:
        spans = tile_spans(length, tile, pad)
        owned = [i for s in spans for i in range(s.own_start, s.own_end)]
        assert owned == list(range(length))
        assert len({s.size for s in spans}) == 1
        for s in spans:
            assert 0 <= s.crop <= s.own_start and s.own_end <= s.crop + s.size <= length


def test_tiles_with_enough_context_equal_the_whole_frame():
    torch.manual_seed(0)
    net = ConvUpscaler()
    frames = torch.rand(2, 3, 37, 53)
    whole = Upscaler(net)(frames)
    tiled = Upscaler(net, tile=(16, 12), tile_pad=2, batch=4)(frames)
    assert torch.allclose(whole, tiled, atol=1e-6)
    # without context the seams show
    seams = Upscaler(net, tile=(16, 12), tile_pad=0)(frames)
    assert (whole - seams).abs().max() > 1e-3


def test_dlgsanet_tiles_are_close_to_the_whole_frame():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config(tlc_kernel=16)))
    frames = torch.rand(1, 3, 40, 48)
    whole = Upscaler(model)(frames)
    tiled = Upscaler(model, tile=(24, 24), tile_pad=8)(frames)
    assert whole.shape == tiled.shape == (1, 3, 80, 96)
    mse = ((whole - tiled) ** 2).mean()
    assert mse < 1e-3  # windows and context differ slightly at tile borders


def test_output_is_clamped_and_float32_on_the_input_device():
    net = ConvUpscaler()
    with torch.no_grad():
        net[2].bias.fill_(5.0)
    out = Upscaler(net)(torch.rand(1, 3, 8, 8))
    assert out.dtype == torch.float32 and out.max() == 1.0 and out.device.type == "cpu"


def test_batches_give_the_same_frames_as_one_at_a_time():
    torch.manual_seed(0)
    model = randomize_(DLGSANet(**small_config()))
    frames = torch.rand(3, 3, 20, 18)
    one = torch.cat([Upscaler(model)(f[None]) for f in frames])
    assert torch.allclose(Upscaler(model, batch=3)(frames), one, atol=1e-5)


def test_half_precision_on_cpu_runs():
    torch.manual_seed(0)
    model = DLGSANet(**small_config())
    frames = torch.rand(1, 3, 16, 16)
    ref = Upscaler(copy.deepcopy(model))(frames)
    out = Upscaler(model, dtype=torch.bfloat16)(frames)
    assert (out - ref).abs().max() < 0.05


def test_bad_frames_and_options_are_reported():
    with pytest.raises(ValueError, match=r"expected RGB frames shaped \(N, 3, H, W\), got \(3, 8, 8\)"):
        Upscaler(ConvUpscaler())(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="batch=0 is invalid: it must be >= 1"):
        Upscaler(ConvUpscaler(), batch=0)


def test_uint8_frames_are_refused_in_one_line():
    # issue #36: create_upscaler(...)(uint8 frames) returned an all-white frame without a word
    from dlgsa_vs.runtime.backends import create_upscaler

    upscaler = create_upscaler(backend="cpu", tile=(0, 0), threads=1)  # the packaged light x2 weights
    frames = (torch.rand(1, 3, 12, 16) * 255).to(torch.uint8)
    with pytest.raises(TypeError, match=r"^frames are uint8: the upscaler takes float frames in \[0, 1\] "
                                        r"\(uint8 pictures: frames.float\(\) / 255"):
        upscaler(frames)
    out = upscaler(frames.float() / 255)  # the fix the message names
    assert out.shape == (1, 3, 24, 32) and 0.05 < out.mean() < 0.95


def test_frames_far_outside_0_1_warn_once(recwarn):
    # floats in 0..255 came out all white with no warning (issue #36)
    up = Upscaler(ConvUpscaler())
    frames = torch.rand(1, 3, 8, 8)
    up(frames)
    up(frames * 1.2 - 0.1)  # small overshoots, as colour conversions make: no warning
    assert not [w for w in recwarn if "outside" in str(w.message)]
    with pytest.warns(RuntimeWarning, match=r"values from .* to .*, far outside the \[0, 1\] the upscaler "
                                            r"takes \(0..255\? divide by 255\)"):
        up(frames * 255)
    recwarn.clear()
    up(frames * 255)
    assert not [w for w in recwarn if "outside" in str(w.message)]
