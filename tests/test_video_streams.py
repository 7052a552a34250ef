"""dlgsa-upscale --num-streams: batches in flight at once (on CUDA streams), results in order.

The pipeline takes any upscaler with ``num_streams`` and ``apply(work)``. On the CPU the
StreamRunner runs one pass at a time under its lock, so its batches finish in order; on a GPU
they overlap and finish in any order. ``ParallelRunner`` below is that contract without the
lock (calls truly in parallel, the network releasing the GIL while it sleeps unevenly), so
the hand-over to the writer must put batches back in order: the file that comes out must be
the one a single stream writes, frames and copied audio packets alike.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from video_support import assert_one_line_error, decoded_planes, run_cli, stream_packets, video_facts, write_clip


class UnevenNearest(torch.nn.Module):
    """A real network: exact 2x pixel replication, taking longer for some batches than for
    others (by the frame's mean), so that batches in flight finish out of order; records the
    order in which its calls finish (by the batch's mean)."""
    upscale = 2

    def __init__(self):
        super().__init__()
        self.finished: list[float] = []

    def forward(self, x):
        key = round(x.mean().item(), 6)
        time.sleep(0.002 * (int(key * 1000) % 7))
        self.finished.append(key)
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class ParallelRunner:
    """``num_streams`` and ``apply`` as the pipeline uses them, calls running concurrently (as
    on CUDA streams)."""

    def __init__(self, upscaler, num_streams: int):
        self.upscaler, self.num_streams = upscaler, num_streams
        self.scale, self.device, self.batch = upscaler.scale, upscaler.device, upscaler.batch

    def apply(self, work):
        return work(self.upscaler)


@pytest.mark.parametrize("runner", ["StreamRunner", "parallel"])
@pytest.mark.parametrize("streams, batch", [(3, 1), (2, 2)])
def test_streams_write_the_single_stream_file(tmp_path, runner, streams, batch):
    from dlgsa_vs.runtime.backends import StreamRunner
    from dlgsa_vs.runtime.inference import Upscaler
    from dlgsa_vs.video.job import upscale_video
    from dlgsa_vs.video.sample import make_sample

    src = make_sample(tmp_path / "in.mp4")  # 24 frames with AAC audio
    one, many = tmp_path / "one.mkv", tmp_path / "many.mkv"
    serial, network = UnevenNearest(), UnevenNearest()
    upscale_video(src, Upscaler(serial, batch=batch), one, encoder="ffv1")
    upscaler = Upscaler(network, batch=batch)
    runner = StreamRunner(upscaler, streams) if runner == "StreamRunner" else ParallelRunner(upscaler, streams)
    result = upscale_video(src, runner, many, encoder="ffv1")
    assert sorted(network.finished) == sorted(serial.finished)
    if isinstance(runner, ParallelRunner):  # the batches really finished out of order
        assert network.finished != serial.finished
    assert result.stats.frames == 24 and len(result.stats.batches) == -(-24 // batch)
    a, b = video_facts(one), video_facts(many)
    assert a["frames"] == b["frames"] == 24 and a["times"] == b["times"]
    for fa, fb in zip(decoded_planes(one), decoded_planes(many), strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert stream_packets(one, "audio") == stream_packets(many, "audio") != []


def test_num_streams_option(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "in.mkv", frames=3)
    rc, err = run_cli(capsys, src, "--model", micro_model, "--backend", "cpu", "--num-streams", "2",
                      "-o", tmp_path / "out.mkv")
    assert rc == 0 and video_facts(tmp_path / "out.mkv")["frames"] == 3
    assert "note: --num-streams 2 is not used on the CPU" in err
    rc, err = run_cli(capsys, src, "--model", micro_model, "--num-streams", "0", "-o", tmp_path / "bad.mkv")
    assert rc == 2 and not (tmp_path / "bad.mkv").exists()
    assert_one_line_error(err, "--num-streams", "0")


def test_stream_runner_is_the_upscaler_for_its_users(micro_model):
    """Front ends hand a StreamRunner where they would hand the Upscaler: its attributes."""
    from dlgsa_vs.runtime.backends import StreamRunner, create_upscaler

    up = create_upscaler(model_path=str(micro_model), backend="cpu", tile=(0, 0), batch=2)
    runner = StreamRunner(up, 2)
    assert (runner.num_streams, runner.batch, runner.scale, runner.dtype) == (2, 2, 2, torch.float32)
    assert runner.tile_for(48, 64) == up.tile_for(48, 64)
    x = torch.rand(1, 3, 12, 16)
    assert torch.equal(runner(x), up(x))
    with pytest.raises(AttributeError):
        runner.no_such_attribute
