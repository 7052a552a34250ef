"""What a new user met with dlgsa-upscale (issue #36): each defect, on tiny clips made here
with real encoders, and the features such users expect (--version, -y, progress lines, ...)."""
from __future__ import annotations

import av
import pytest

from video_support import assert_one_line_error, leftovers, run_cli, write_clip

ONE = ("--threads", "1")


def _without_track_durations(path):
    """The clip as muxers other than FFmpeg's write Matroska/WebM (browsers' MediaRecorder,
    live recorders): no per-track DURATION tag, only the segment's duration. The tag's name
    is renamed in place (same length), which leaves every element valid."""
    data = path.read_bytes()
    assert data.count(b"DURATION") == 1
    path.write_bytes(data.replace(b"DURATION", b"DURATIOX"))
    with av.open(str(path)) as c:
        assert c.streams.video[0].duration is None and "DURATION" not in c.streams.video[0].metadata
        assert c.duration
    return path


def _faststart(src, dst):
    with av.open(str(src)) as a, av.open(str(dst), "w", options={"movflags": "faststart"}) as b:
        o = b.add_stream_from_template(a.streams.video[0], opaque=True)
        for p in a.demux(a.streams.video[0]):
            if p.size:
                p.stream = o
                b.mux(p)
    return dst


def _clip(tmp_path, ext: str, frames: int = 12):
    codec = "libvpx-vp9" if ext == "webm" else "libx264"
    opts = {"crf": "4", "b": "0"} if ext == "webm" else {"crf": "0"}
    path = write_clip(tmp_path / f"whole.{ext}", frames=frames, codec=codec, options=opts)
    if ext == "webm":
        _without_track_durations(path)
    if ext == "mp4":
        path = _faststart(path, tmp_path / "fast.mp4")
    return path


# --- 1. truncated files, every container ------------------------------------------------------

@pytest.mark.parametrize("segments", [(), ("--chunk-seconds", "0.3")], ids=["one-pass", "segmented"])
@pytest.mark.parametrize("ext", ["webm", "mkv", "mp4", "ts"])
def test_truncated_file_is_refused(tmp_path, capsys, micro_model, ext, segments):
    """One pass, and a resumable run in segments (what videos longer than --chunk-seconds get)."""
    whole = _clip(tmp_path, ext)
    rc, err = run_cli(capsys, whole, "-o", tmp_path / "whole_out.mkv", "-m", micro_model, *segments, *ONE)
    assert rc == 0, err          # the intact file passes
    assert ("segment" in err) == bool(segments), err
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * 0.55) | 1])    # as head -c cuts: anywhere
    rc, err = run_cli(capsys, cut, "-m", micro_model, *segments, *ONE)
    assert rc == 2, err
    assert_one_line_error(err, "is truncated", "--frames")
    assert leftovers(tmp_path) == [] and not (tmp_path / f"cut_x2.{ext}").exists()
    assert "prematurely" not in err


# --- 4. options range-checked as usage errors ---------------------------------------------------

@pytest.mark.parametrize("args,fragments", [
    (["--crf", "99"], ["--crf 99 is out of range for libx264", "0 (best) to 51"]),
    (["--crf", "52", "-c", "libx265"], ["--crf 52 is out of range for libx265", "51"]),
    (["--crf", "64", "-c", "libsvtav1", "-o", "{tmp}/o.mkv"], ["--crf 64 is out of range for libsvtav1", "63"]),
    (["--crf", "-1", "-o", "{tmp}/o.webm"], ["--crf -1 is out of range for libvpx-vp9", "63"]),
    (["--crf", "60", "-c", "h264_nvenc"], ["--crf 60 is out of range for h264_nvenc", "CQ", "51"]),
    (["--tile", "8", "8"], ["--tile 8 8 is invalid", "0 (the whole frame) or >= 16"]),
    (["--tile", "0", "12"], ["--tile 0 12 is invalid", ">= 16"]),
])
def test_options_out_of_range(tmp_path, capsys, micro_model, args, fragments):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    rc, err = run_cli(capsys, clip, "-m", micro_model, *[a.format(tmp=tmp_path) for a in args], *ONE)
    assert rc == 2
    assert_one_line_error(err, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_crf_and_tile_at_their_limits_run(tmp_path, capsys, micro_model):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    rc, err = run_cli(capsys, clip, "-m", micro_model, "--crf", "51", "--tile", "16", "0", "-q", *ONE)
    assert rc == 0, err


# --- 7. an output folder that takes no files: one line naming the path, exit 2 ----------------

def test_output_where_no_file_can_be_made(tmp_path, capsys, micro_model):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    rc, err = run_cli(capsys, clip, "-m", micro_model, "-o", "/proc/out.mp4", *ONE)
    assert rc == 2
    assert_one_line_error(err, "cannot write /proc/out.mp4", "choose another -o")


# --- no silent overwrite (as FFmpeg), -y to replace ------------------------------------------

def test_existing_output_is_refused_unless_y(tmp_path, capsys, micro_model):
    clip = write_clip(tmp_path / "clip.mp4", frames=2)
    out = tmp_path / "clip_x2.mp4"
    out.write_bytes(b"keep me")
    rc, err = run_cli(capsys, clip, "-m", micro_model, *ONE)
    assert rc == 2
    assert_one_line_error(err, "clip_x2.mp4 already exists", "-y (--overwrite)")
    assert out.read_bytes() == b"keep me"
    png = tmp_path / "p.png"
    png.write_bytes(b"keep me")
    rc, err = run_cli(capsys, clip, "-m", micro_model, "--preview", "0", "-o", png, *ONE)
    assert rc == 2 and png.read_bytes() == b"keep me"
    assert_one_line_error(err, "p.png already exists")
    rc, err = run_cli(capsys, clip, "-m", micro_model, "-y", "-q", *ONE)
    assert rc == 0, err
    assert out.stat().st_size > 1000


def test_make_sample_does_not_overwrite(tmp_path, capsys):
    sample = tmp_path / "s.mp4"
    sample.write_bytes(b"mine")
    rc, err = run_cli(capsys, "--make-sample", sample)
    assert rc == 2 and sample.read_bytes() == b"mine"
    assert_one_line_error(err, "s.mp4 already exists", "-y")
    rc, err = run_cli(capsys, "--make-sample", sample, "--overwrite", "-q")
    assert rc == 0, err
    assert sample.stat().st_size > 1000


# --- 2. a stream the output cannot hold is said before the first frame ------------------------

def _ass_subtitles(container):
    from fractions import Fraction

    sub = container.add_mux_stream("ass")
    sub.time_base = Fraction(1, 1000)

    def mux(c):
        for i in range(2):
            p = av.Packet(f"{i},0,Default,,0,0,0,,line {i}".encode())
            p.pts = p.dts = 100 * i
            p.duration, p.time_base, p.stream = 100, Fraction(1, 1000), sub
            c.mux(p)
    return mux


def test_stream_that_cannot_be_copied_is_said_up_front(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "subs.mkv", frames=3, extra=_ass_subtitles)
    rc, err = run_cli(capsys, src, "-o", tmp_path / "o.mp4", "-m", micro_model, *ONE)
    assert rc == 0, err
    lines = err.strip().splitlines()
    warned = [i for i, ln in enumerate(lines) if ln.startswith("warning: not copied: #1 subtitle ssa")]
    summary = [i for i, ln in enumerate(lines) if "-> " in ln and "frames" in ln]
    assert len(warned) == 1 and "use -o *.mkv" in lines[warned[0]], err     # said once
    assert warned[0] < summary[0], err                                        # before the run


# --- 3. --frames / --start cut the copied streams to the video's range -------------------------

@pytest.mark.parametrize("args", [("--frames", "2"), ("--start", "0.5", "--frames", "3")])
def test_frames_trim_the_copied_streams(tmp_path, capsys, micro_model, args):
    from video_support import stream_packets, video_facts
    from dlgsa_vs.video.sample import make_sample

    src = make_sample(tmp_path / "in.mp4")        # 12 fps H.264 (B-frames) with AAC audio
    out = tmp_path / "o.mkv"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *args, *ONE)
    assert rc == 0, err
    frames = video_facts(out)["times"]
    end = frames[-1] + (frames[1] - frames[0])          # the last frame's end (constant rate)
    audio = stream_packets(out, "audio")
    assert audio, "the audio of the range is copied"
    assert all(p[0] < end for p in audio), (frames, [float(p[0]) for p in audio])   # no sound past the picture
    assert audio[-1][0] + audio[-1][2] >= frames[-1]                                 # ... nor less


# --- --version on every command, --list-models on the upscaling ones ---------------------------

@pytest.mark.parametrize("module,prog", [("video", "dlgsa-upscale"), ("ray", "dlgsa-upscale-ray"),
                                         ("upscale_image", "dlgsa-upscale-image"),
                                         ("compare_models", "dlgsa-compare"),
                                         ("build_engine", "dlgsa-build-engine"),
                                         ("export_onnx", "dlgsa-export-onnx")])
def test_version_on_every_command(capsys, module, prog):
    import importlib

    from dlgsa_vs._version import __version__

    main = importlib.import_module(f"dlgsa_vs.cli.{module}").main
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {__version__} (dlgsa-vs)"


@pytest.mark.parametrize("module,default", [("video", "light-video"), ("upscale_image", "light"),
                                            ("ray", "light-video")])
def test_list_models(capsys, module, default):
    import importlib

    main = importlib.import_module(f"dlgsa_vs.cli.{module}").main
    with pytest.raises(SystemExit) as stop:
        main(["--list-models"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert f"{default} (default)" in out
    light = next(ln for ln in out.splitlines() if ln.startswith("light "))
    assert "x2, x3, x4" in light and "clean" in light
    video = next(ln for ln in out.splitlines() if ln.startswith("light-video"))
    assert "x2, x4" in video and "compressed video" in video


# --- HDR (PQ / HLG) to .mp4: HEVC 10-bit by default, not H.264 High 10 ----------------------------

@pytest.mark.parametrize("transfer", [16, 18])
def test_hdr_defaults_to_x265_ten_bit(tmp_path, capsys, micro_model, transfer):
    from video_support import video_facts

    src = write_clip(tmp_path / "hdr.mkv", frames=2, codec="ffv1", pix_fmt="yuv420p10le",
                     colour=(9, 1, 9, transfer))
    out = tmp_path / "o.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    facts = video_facts(out)
    assert facts["codec"] == "hevc" and facts["pix_fmt"] == "yuv420p10le" and facts["transfer"] == transfer
    assert "encoding HEVC with libx265" in err, err
    sdr = write_clip(tmp_path / "sdr.mkv", frames=2, codec="ffv1", pix_fmt="yuv420p10le")
    rc, err = run_cli(capsys, sdr, "-o", tmp_path / "s.mp4", "-m", micro_model, *ONE)
    assert rc == 0 and video_facts(tmp_path / "s.mp4")["codec"] == "h264", err    # SDR 10-bit: unchanged


# --- progress without a terminal; a short summary line ------------------------------------------

@pytest.mark.parametrize("segments", [(), ("--chunk-seconds", "0.1")], ids=["one-pass", "segmented"])
def test_progress_lines_without_a_terminal(tmp_path, capsys, micro_model, monkeypatch, segments):
    from dlgsa_vs.video import progress

    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)    # every update (the default: every 30 s)
    clip = write_clip(tmp_path / "clip.mp4", frames=3)
    rc, err = run_cli(capsys, clip, "-m", micro_model, *segments, *ONE)   # capsys: stderr is no terminal
    assert rc == 0 and ("segment" in err) == bool(segments), err
    lines = [ln for ln in err.splitlines() if ln.startswith("progress: clip.mp4 ")]
    assert lines and lines[-1].startswith("progress: clip.mp4 3/3 frames (100%), "), err
    assert "/3 frames (" in lines[0] and "left" in lines[0] and ("fps" in lines[0] or "s/frame" in lines[0])
    if not segments:
        assert len(lines) == 3 and "1/3 frames (33%)" in lines[0], err
    rc, err = run_cli(capsys, clip, "-m", micro_model, "-y", "-q", *segments, *ONE)
    assert rc == 0 and err == ""                                # -q: silent


def test_summary_is_short_and_says_the_device_once(tmp_path, capsys, micro_model):
    clip = write_clip(tmp_path / "clip.mp4", frames=1)
    rc, err = run_cli(capsys, clip, "-m", micro_model, *ONE)
    assert rc == 0, err
    summary = next(ln for ln in err.splitlines() if " -> " in ln and "of video" in ln)
    assert "1 frame 64x48 -> 128x96" in summary and "1 frames" not in summary, summary
    assert "auto:" not in summary and "(the CPU" not in summary, summary     # the reasons: in the note
    assert sum("auto: " in ln for ln in err.splitlines()) == 1, err


def test_rates_read_as_people_read_them():
    from dlgsa_vs.video.progress import plural, rate_text

    assert rate_text(24, 57.4) == "2.39 s/frame" and rate_text(24, 2.0) == "12.00 fps"
    assert plural(1, "frame") == "1 frame" and plural(0, "frame") == "0 frames"


# --- 8. W x H in every message of the video command, as --tile W H takes it ------------------------

def test_width_by_height_everywhere(tmp_path, capsys, micro_model):
    clip = write_clip(tmp_path / "wide.mp4", frames=1, width=64, height=32)
    rc, err = run_cli(capsys, clip, "-m", micro_model, "--tile", "32", "16", *ONE)
    assert rc == 0, err
    assert "1 frame 64x32 -> 128x64" in err, err
    assert "tile 32x16 LR" in err, err
    rc, err = run_cli(capsys, clip, "-m", micro_model, "--tile", "32", "8", "-y", *ONE)
    assert rc == 2
    assert_one_line_error(err, "--tile 32 8 is invalid")


def test_ray_refuses_an_existing_output_unless_y(tmp_path, capsys, micro_model):
    pytest.importorskip("ray")
    from dlgsa_vs.cli.ray import main

    clip = write_clip(tmp_path / "clip.mkv", frames=2)
    out = tmp_path / "clip_x2.mkv"
    out.write_bytes(b"keep me")
    rc = main([str(clip), "-m", str(micro_model)])      # refused before any cluster starts
    assert rc == 2 and out.read_bytes() == b"keep me"
    assert_one_line_error(capsys.readouterr().err, "clip_x2.mkv already exists", "-y")
