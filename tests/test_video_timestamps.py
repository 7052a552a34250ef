"""Decode timestamps: libx265 leaves them uninitialised for clips of one or two frames (its
b-frame delay is measured from frames that never came); the writer rebuilds impossible ones
and leaves good ones alone."""
from __future__ import annotations

from fractions import Fraction

import av
import pytest

from dlgsa_vs.video.errors import VideoError
from dlgsa_vs.video.encode import DecodeTimestamps
from video_support import run_cli, stream_packets, video_facts, write_clip

TB = Fraction(1, 1000)


def _packets(pts: list[int], dts: list[int]) -> list[av.Packet]:
    out = []
    for p, d in zip(pts, dts):
        packet = av.Packet(b"\0")
        packet.pts, packet.dts, packet.time_base = p, d, TB
        out.append(packet)
    return out


@pytest.mark.parametrize("frames", [1, 2])
def test_short_x265_clip_muxes_into_mp4(tmp_path, capsys, micro_model, frames):
    src = write_clip(tmp_path / "short.mkv", frames=frames, codec="ffv1")
    out = tmp_path / "out.mp4"
    for _ in range(3):   # the dts left by libx265 are whatever its memory held: try a few
        rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, "-c", "libx265",
                          "--threads", "1")
        assert rc == 0, err
        assert video_facts(out)["frames"] == frames
        times = stream_packets(out, "video")
        assert [p[0] for p in times] == [Fraction(i, 10) for i in range(frames)]
        assert all(dts <= pts for pts, dts, *_ in times), times
        out.unlink()


def test_good_dts_are_left_alone():
    check = DecodeTimestamps("libx265", TB, Fraction(10))
    first = _packets([0, 400, 200], [-200, -100, 0])   # b-frames: dts before pts
    second = _packets([100, 300], [100, 200])
    assert [p.dts for p in check(first) + check(second)] == [-200, -100, 0, 100, 200]
    assert check.rebuilt == 0


def test_impossible_dts_are_rebuilt_before_each_pts():
    check = DecodeTimestamps("libx265", TB, Fraction(10))
    garbage = 9187201950435737472
    packets = check(_packets([0, 300, 100, 200], [garbage, garbage + 100, garbage + 200, garbage + 300]))
    dts = [p.dts for p in packets]
    assert dts == [-100, 0, 100, 200]
    assert all(d <= p.pts for d, p in zip(dts, packets)) and check.rebuilt == 4
    far_back = check(_packets([400], [400 - 61_000]))   # over a minute before its pts
    assert far_back[0].dts == 400


def test_unrepairable_dts_say_which_encoder():
    check = DecodeTimestamps("libfoo", TB, Fraction(10))
    check(_packets([0, 100], [0, 100]))
    with pytest.raises(VideoError, match="the encoder libfoo gave impossible decode timestamps"):
        check(_packets([50], [50]))   # cannot come after dts 100 and stay before pts 50
