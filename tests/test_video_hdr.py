"""HDR10 static metadata (mastering display, content light level) survives the upscale into
x265 and SVT-AV1 outputs, read back by ffprobe (and by PyAV's decoder)."""
from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction

import av
import pytest

from video_support import run_cli, video_facts, write_clip

ONE = ("--threads", "1")
# BT.2020 primaries, D65, 1000 cd/m2 mastering display, MaxCLL 1000, MaxFALL 400 (x265 units)
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
PRIMARIES = {"red_x": 0.68, "red_y": 0.32, "green_x": 0.265, "green_y": 0.69, "blue_x": 0.15, "blue_y": 0.06,
             "white_point_x": 0.3127, "white_point_y": 0.329, "max_luminance": 1000.0, "min_luminance": 0.0001}


@pytest.fixture(scope="module")
def hdr_clip(tmp_path_factory):
    """10-bit HEVC, BT.2020 / PQ, with the metadata in SEI messages (frame side data)."""
    return write_clip(tmp_path_factory.mktemp("hdr") / "hdr10.mkv", frames=3, codec="libx265",
                      pix_fmt="yuv420p10le", colour=(9, 1, 9, 16),
                      options={"crf": "12", "x265-params": f"master-display={MASTER}:max-cll=1000,400:log-level=error"})


def ffprobe_hdr(path) -> dict:
    """The first frame's mastering display and content light side data, as ffprobe reads them."""
    ffprobe = shutil.which("ffprobe")
    if not ffprobe:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg): the output's HDR10 metadata "
                    "is checked with it")
    run = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
                          "-show_frames", "-show_entries", "frame=side_data_list", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    found = {}
    for frame in json.loads(run.stdout)["frames"][:1]:
        for sd in frame.get("side_data_list", []):
            found[sd["side_data_type"]] = sd
    return found


def _value(text) -> float:
    return float(Fraction(str(text)))


def assert_hdr10(path, tolerance: float) -> None:
    sd = ffprobe_hdr(path)
    assert "Mastering display metadata" in sd and "Content light level metadata" in sd, sd
    md = sd["Mastering display metadata"]
    for key, want in PRIMARIES.items():
        assert _value(md[key]) == pytest.approx(want, rel=tolerance, abs=1e-4), (key, md[key])
    cll = sd["Content light level metadata"]
    assert (cll["max_content"], cll["max_average"]) == (1000, 400)


def pyav_hdr10(path):
    from dlgsa_vs.video.colour import read_hdr10

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            return read_hdr10(c.streams.video[0].codec_context.coded_side_data, frame.side_data)


def test_input_has_the_metadata(hdr_clip):
    hdr = pyav_hdr10(hdr_clip)
    assert hdr is not None and hdr.luminance == (1000.0, 0.0001) and (hdr.max_cll, hdr.max_fall) == (1000, 400)


@pytest.mark.parametrize("args, name, codec", [
    (("-c", "libx265"), "x265.mkv", "hevc"),
    (("-c", "libsvtav1"), "svt.mkv", "av1"),
    ((), "default.mp4", "hevc"),     # libx264 cannot write it: the default becomes libx265
    ((), "default.webm", "av1"),     # libvpx-vp9 neither (nor 10-bit): libsvtav1
])
def test_hdr10_metadata_is_kept(tmp_path, capsys, micro_model, hdr_clip, args, name, codec):
    out = tmp_path / name
    rc, err = run_cli(capsys, hdr_clip, "-o", out, "-m", micro_model, *args, *ONE)
    assert rc == 0, err
    assert "not copied" not in err, err
    f = video_facts(out)
    assert {"libdav1d": "av1"}.get(f["codec"], f["codec"]) == codec
    assert (f["pix_fmt"], f["primaries"], f["transfer"], f["matrix"]) == ("yuv420p10le", 9, 16, 9)
    hdr = pyav_hdr10(out)
    assert hdr is not None and (hdr.max_cll, hdr.max_fall) == (1000, 400)
    # SVT-AV1 stores chromaticities in 1/65536 and the minimum luminance in 1/16384 cd/m2
    assert_hdr10(out, tolerance=1e-3 if codec == "hevc" else 0.25)


def test_encoder_without_an_option_for_it_says_so(tmp_path, capsys, micro_model, hdr_clip):
    out = tmp_path / "x264.mkv"
    rc, err = run_cli(capsys, hdr_clip, "-o", out, "-m", micro_model, "-c", "libx264", *ONE)
    assert rc == 0, err
    warned = [ln for ln in err.splitlines() if "HDR10 metadata" in ln and ln.startswith("warning: not copied")]
    assert len(warned) == 1 and "-c libx265" in warned[0], err


def test_users_own_x265_params_win(tmp_path, capsys, micro_model, hdr_clip):
    out = tmp_path / "own.mkv"
    rc, err = run_cli(capsys, hdr_clip, "-o", out, "-m", micro_model, "-c", "libx265",
                      "-e", "x265-params=max-cll=500,100:log-level=error", *ONE)
    assert rc == 0, err
    hdr = pyav_hdr10(out)
    assert (hdr.max_cll, hdr.max_fall) == (500, 100) and hdr.luminance == (1000.0, 0.0001)
