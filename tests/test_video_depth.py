"""A 10-bit input stays 10-bit by default in every container; a named encoder is obeyed."""
from __future__ import annotations

import pytest

from video_support import run_cli, video_facts, write_clip

ONE = ("--threads", "1")
AV1 = {"libdav1d": "av1", "libaom-av1": "av1"}   # the AV1 decoder PyAV picks, by its name


@pytest.fixture(scope="module")
def ten_bit(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("depth") / "ten.mkv", frames=3, codec="ffv1",
                      pix_fmt="yuv420p10le")


@pytest.mark.parametrize("ext, codec", [(".webm", "av1"), (".mp4", "h264"), (".mkv", "h264")])
def test_ten_bit_stays_ten_bit_by_default(tmp_path, capsys, micro_model, ten_bit, ext, codec):
    out = tmp_path / f"out{ext}"
    rc, err = run_cli(capsys, ten_bit, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    f = video_facts(out)
    assert (AV1.get(f["codec"], f["codec"]), f["pix_fmt"], f["frames"]) == (codec, "yuv420p10le", 3)
    if ext == ".webm":
        assert "libvpx-vp9 cannot encode 10-bit yuv420p10le here: using libsvtav1, which can" in err, err


def test_named_vp9_keeps_its_meaning(tmp_path, capsys, micro_model, ten_bit):
    out = tmp_path / "vp9.webm"
    rc, err = run_cli(capsys, ten_bit, "-o", out, "-m", micro_model, "-c", "libvpx-vp9", *ONE)
    assert rc == 0, err
    f = video_facts(out)
    assert (f["codec"], f["pix_fmt"]) == ("vp9", "yuv420p")
    assert "libvpx-vp9 cannot encode yuv420p10le: writing yuv420p" in err, err


def test_eight_bit_webm_is_still_vp9(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "eight.mkv", frames=2, codec="ffv1")
    out = tmp_path / "out.webm"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    assert video_facts(out)["codec"] == "vp9" and "libsvtav1" not in err


def test_asked_pix_fmt_picks_an_encoder_that_takes_it(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "eight.mkv", frames=2, codec="ffv1")
    out = tmp_path / "out.webm"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, "--pix-fmt", "yuv420p10le", *ONE)
    assert rc == 0, err
    f = video_facts(out)
    assert (AV1.get(f["codec"], f["codec"]), f["pix_fmt"]) == ("av1", "yuv420p10le")


def test_twelve_bit_mp4_goes_to_x265(tmp_path, capsys, micro_model):
    """libx264 stops at 10 bits; libx265 keeps 12."""
    src = write_clip(tmp_path / "twelve.mkv", frames=2, codec="ffv1", pix_fmt="yuv420p12le")
    out = tmp_path / "out.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    f = video_facts(out)
    assert (f["codec"], f["pix_fmt"]) == ("hevc", "yuv420p12le")
    assert "libx264 cannot encode 12-bit yuv420p12le here: using libx265, which can" in err, err
