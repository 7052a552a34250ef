"""dlgsa-upscale on real files: real decode, a real (tiny) DLGSANet, real encode, read back."""
from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np

from dlgsa_vs.image.imageio import read_image
from dlgsa_vs.image.imresize import bicubic_upscale
from video_support import (leftovers, pattern, run_cli, sha256, shared_file, stream_packets, video_facts,
                           write_clip)

ONE = ("--threads", "1")


def test_carphone_whole_clip(tmp_path, capsys, micro_model):
    """Every frame, each at its own timestamp, twice the size, SAR and colour description kept."""
    src = shared_file("video", "carphone_pristine.mp4")
    before = sha256(src)
    out = tmp_path / "carphone_x2.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    a, b = video_facts(src), video_facts(out)
    assert (b["width"], b["height"]) == (2 * a["width"], 2 * a["height"]) == (352, 288)
    assert b["frames"] == a["frames"] == 120
    assert b["times"] == a["times"]                 # exact: mp4 -> mp4 keeps the time base
    assert a["sar"] == b["sar"] == Fraction(128, 117)
    assert b["pix_fmt"] == "yuv420p"
    # untagged SD input: read as BT.601 limited range, and the output says so explicitly
    assert (b["matrix"], b["range"], b["primaries"], b["transfer"]) == (6, 1, 5, 1)
    assert "guessed" in err and "carphone_x2.mp4: 120 frames 176x144 -> 352x288" in err
    assert sha256(src) == before
    assert leftovers(tmp_path) == []


def test_realshort_audio_untouched(tmp_path, capsys, micro_model):
    """AAC packets bit-identical with the same timestamps; duration and metadata kept."""
    src = shared_file("video", "realshort.mp4")
    out = tmp_path / "realshort_x2.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    a, b = video_facts(src), video_facts(out)
    assert (b["width"], b["height"]) == (640, 480)
    assert b["frames"] == a["frames"] == 36
    assert b["times"] == a["times"]
    assert stream_packets(out, "audio") == stream_packets(src, "audio")
    assert abs(b["duration"] - a["duration"]) <= 25_000          # microseconds
    assert b["metadata"]["language"] == "eng"
    assert b["container_metadata"]["creation_time"] == a["container_metadata"]["creation_time"]
    assert "copied 1 audio" in err


def test_mkv_output_timestamps_to_the_millisecond(tmp_path, capsys, micro_model):
    src = shared_file("video", "realshort.mp4")
    out = tmp_path / "realshort_x2.mkv"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, "--frames", "12", *ONE)
    assert rc == 0, err
    a, b = video_facts(src), video_facts(out)
    assert b["frames"] == 12
    assert all(abs(x - y) <= Fraction(1, 2000) for x, y in zip(a["times"][:12], b["times"]))
    src_audio = [p for p in stream_packets(src, "audio") if p[0] < a["times"][12]]
    out_audio = stream_packets(out, "audio")
    assert [p[3] for p in out_audio] == [p[3] for p in src_audio]   # same bytes, same packets
    assert all(abs(x[0] - y[0]) <= Fraction(1, 2000) for x, y in zip(out_audio, src_audio))


def test_sample_clip_then_default_output_name(tmp_path, capsys, micro_model):
    """The README's first command: make the sample, upscale it next to itself."""
    sample = tmp_path / "sample.mp4"
    rc, err = run_cli(capsys, "--make-sample", sample)
    assert rc == 0, err
    s = video_facts(sample)
    assert (s["width"], s["height"], s["frames"]) == (160, 90, 24)
    assert len(stream_packets(sample, "audio")) > 50
    rc, err = run_cli(capsys, sample, "-m", micro_model, *ONE)
    assert rc == 0, err
    out = tmp_path / "sample_x2.mp4"
    o = video_facts(out)
    assert (o["width"], o["height"], o["frames"]) == (320, 180, 24)
    assert o["times"] == s["times"]
    assert stream_packets(out, "audio") == stream_packets(sample, "audio")
    assert (o["matrix"], o["range"], o["primaries"], o["transfer"]) == (1, 1, 1, 1)
    assert o["metadata"].get("name") == "dlgsa-vs test picture"   # the track title (MP4 reads it as name)
    assert leftovers(tmp_path) == []


def test_vfr_stays_vfr(tmp_path, capsys, micro_model):
    pts = [0, 40, 80, 200, 240, 400, 410, 420, 700, 1000]          # ms: uneven on purpose
    for ext in ("mp4", "mkv"):
        src = write_clip(tmp_path / f"vfr.{ext}", pts=pts, time_base=Fraction(1, 1000))
        out = tmp_path / f"vfr_x2.{ext}"
        rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
        assert rc == 0, err
        assert video_facts(out)["times"] == video_facts(src)["times"] == [Fraction(p, 1000) for p in pts]


def test_ten_bit_stays_ten_bit_with_its_colour_description(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "hdr.mkv", codec="libx265", pix_fmt="yuv420p10le", colour=(9, 1, 9, 16),
                     chroma_location=3, options={"crf": "10", "x265-params": "log-level=error"})
    out = tmp_path / "hdr_x2.mkv"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    f = video_facts(out)
    assert f["codec"] == "h264" and f["pix_fmt"] == "yuv420p10le"
    assert (f["matrix"], f["range"], f["primaries"], f["transfer"]) == (9, 1, 9, 16)
    assert "guessed" not in err


def test_lossless_colour_path_is_exact(tmp_path):
    """ffv1 4:4:4 in, a nearest-neighbour network, ffv1 out: every output code equals the input
    code it was copied from, for BT.709 limited and BT.601 full range, 8 and 10 bit. Nothing
    in between (matrix, range, rounding) drifts."""
    import torch

    from dlgsa_vs.runtime.inference import Upscaler
    from dlgsa_vs.video.job import upscale_video
    from video_support import decoded_planes

    class Nearest(torch.nn.Module):     # a real network: exact 2x pixel replication
        upscale = 2

        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    for fmt, colour in (("yuv444p", (1, 1, 1, 1)), ("yuv444p10le", (6, 2, 6, 6))):
        src = write_clip(tmp_path / f"in_{fmt}.mkv", codec="ffv1", pix_fmt=fmt, colour=colour, frames=3)
        out = tmp_path / f"out_{fmt}.mkv"
        result = upscale_video(src, Upscaler(Nearest()), out, encoder="ffv1")
        assert result.out.pix_fmt == fmt
        for a, b in zip(decoded_planes(src), decoded_planes(out)):
            for pa, pb in zip(a, b):
                assert np.array_equal(np.repeat(np.repeat(pa, 2, 0), 2, 1), pb)
        f = video_facts(out)
        assert (f["matrix"], f["range"], f["primaries"], f["transfer"]) == colour


def test_streams_metadata_chapters_attachments_rotation(tmp_path, capsys, micro_model):
    """Two audio tracks, subtitles, a font, chapters, titles, languages and rotation survive
    into MKV; into MP4 what it cannot hold is named in one warning line each."""
    realshort = shared_file("video", "realshort.mp4")
    font = bytes(range(256)) * 40

    def extra(container):
        src = av.open(str(realshort))
        aac = container.add_stream_from_template(src.streams.audio[0], opaque=True)
        aac.metadata.update({"language": "eng", "title": "original"})
        flac = container.add_stream("flac", rate=16000)
        flac.codec_context.layout = "mono"
        flac.metadata.update({"language": "fra", "title": "commentary"})
        sub = container.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        sub.metadata["language"] = "deu"
        container.add_attachment("DejaVu.ttf", "application/x-truetype-font", font)
        container.metadata["title"] = "A test film"
        container.set_chapters([
            {"id": 1, "start": 0, "end": 300, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
            {"id": 2, "start": 300, "end": 800, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}}])

        def mux(c):
            for p in src.demux(src.streams.audio[0]):
                if p.size:
                    p.stream = aac
                    c.mux(p)
            tone = (0.2 * np.sin(np.arange(16000 * 0.8) / 3.0)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(np.round(tone * 32767).astype(np.int16), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            c.mux(flac.encode(frame))
            c.mux(flac.encode(None))
            for i, text in enumerate(["Hallo", "Welt"]):
                p = av.Packet(text.encode())
                p.pts = p.dts = 100 + 300 * i
                p.duration = 200
                p.time_base = Fraction(1, 1000)
                p.stream = sub
                c.mux(p)
            src.close()
        return mux

    src = write_clip(tmp_path / "film.mkv", frames=8, rotation=90, title="the picture", extra=extra)
    out = tmp_path / "film_x2.mkv"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, *ONE)
    assert rc == 0, err
    assert "copied 2 audio, 1 subtitle, 1 attachment, 2 chapters" in err
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.metadata["title"] == "A test film"
        assert [(c["start"], c["end"], c["metadata"]) for c in b.chapters()] == \
               [(c["start"], c["end"], c["metadata"]) for c in a.chapters()]
        kinds = [(s.type, s.metadata.get("language"), s.metadata.get("title")) for s in b.streams]
        assert kinds == [("video", None, "the picture"), ("audio", "eng", "original"),
                         ("audio", "fra", "commentary"), ("subtitle", "deu", None), ("attachment", None, None)]
        att = b.streams[4]
        assert att.metadata["filename"] == "DejaVu.ttf" and att.data == font
    for kind, n in (("audio", 0), ("audio", 1), ("subtitle", 0)):
        assert stream_packets(out, kind, n) == stream_packets(src, kind, n)
    rot = video_facts(out)["display_matrix"]
    assert rot is not None and rot == video_facts(src)["display_matrix"]
    with av.open(str(out)) as b:
        assert next(b.decode(video=0)).rotation == 90
    assert struct.unpack("<9i", rot)[1] != 0

    mp4 = tmp_path / "film_x2.mp4"
    rc, err = run_cli(capsys, src, "-o", mp4, "-m", micro_model, *ONE)
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: not copied")]
    assert len(warnings) == 2
    assert "subtitle" in warnings[0] and "mp4 files cannot hold" in warnings[0]
    assert "attachment" in warnings[1]
    for n in (0, 1):   # MP4 stores durations as timestamp differences: compare the rest
        assert [(p[0], p[3]) for p in stream_packets(mp4, "audio", n)] == \
               [(p[0], p[3]) for p in stream_packets(src, "audio", n)]
    with av.open(str(mp4)) as b:
        assert [c["metadata"]["title"] for c in b.chapters()] == ["One", "Two"]


def test_start_and_frames(tmp_path, capsys, micro_model):
    """A range: output starts at 0, frame spacing and audio offsets as in the input."""
    src = shared_file("video", "realshort.mp4")
    out = tmp_path / "part.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, "--start", "0.5", "--frames", "10", *ONE)
    assert rc == 0, err
    a, b = video_facts(src), video_facts(out)
    first = next(i for i, t in enumerate(a["times"]) if t >= Fraction(1, 2))
    offset = a["times"][first]
    assert b["frames"] == 10
    assert b["times"] == [t - offset for t in a["times"][first:first + 10]]
    src_audio = {p[3]: p[0] for p in stream_packets(src, "audio")}
    out_audio = stream_packets(out, "audio")
    # the same shift, rounded to the audio clock (1/48000 s): sync kept to half a sample
    assert out_audio and all(abs(src_audio[p[3]] - offset - p[0]) <= Fraction(1, 96000) for p in out_audio)
    assert min(src_audio[p[3]] for p in out_audio) >= offset


def test_preview_png(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "clip.mp4", frames=6, codec="libx264")
    rc, err = run_cli(capsys, src, "--preview", "4", "-m", micro_model, *ONE)
    assert rc == 0, err
    png = tmp_path / "clip_x2_preview4.png"
    side = read_image(png)
    assert side.shape == (96, 256, 3)
    from dlgsa_vs.video.colour import Colour, frame_to_rgb
    from dlgsa_vs.video.preview import to_uint8

    with av.open(str(src)) as c:
        frame = [f for _, f in zip(range(5), c.decode(video=0))][-1]
        lr = to_uint8(frame_to_rgb(frame, Colour(1, 1, 1, 1, 1)))
    assert np.array_equal(side[:, :128], bicubic_upscale(lr, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_x2_preview4.png"]


def test_encoders_and_options(tmp_path, capsys, micro_model_x3):
    """x3, VP9 in WebM by default, x265 with -e options, ffv1 lossless: all decode back."""
    src = write_clip(tmp_path / "in.mkv", frames=3, width=40, height=30)
    for name, args, codec in (("a.webm", [], "vp9"), ("b.mkv", ["-c", "libx265", "--crf", "30", "-e", "preset=ultrafast",
                                                                 "-e", "x265-params=log-level=error"], "hevc"),
                              ("c.mkv", ["-c", "ffv1"], "ffv1"), ("d.mp4", ["-c", "libsvtav1", "-e", "preset=12"], "av1")):
        rc, err = run_cli(capsys, src, "-o", tmp_path / name, "-m", micro_model_x3, *args, *ONE)
        assert rc == 0, (name, err)
        f = video_facts(tmp_path / name)
        assert (f["codec"].startswith(codec) or codec in f["codec"]), f["codec"]
        assert (f["width"], f["height"], f["frames"]) == (120, 90, 3)


def test_quiet_prints_nothing(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "q.mp4", frames=2)
    rc, err = run_cli(capsys, src, "-q", "-m", micro_model, *ONE)
    assert rc == 0 and err == ""
    assert video_facts(tmp_path / "q_x2.mp4")["frames"] == 2


def test_batches_give_the_same_frames(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "b.mkv", frames=5, codec="ffv1", pix_fmt="yuv444p")
    outs = []
    for batch in ("1", "3"):
        out = tmp_path / f"b{batch}.mkv"
        rc, err = run_cli(capsys, src, "-o", out, "-m", micro_model, "-c", "ffv1", "--batch", batch, *ONE)
        assert rc == 0, err
        from video_support import decoded_planes
        outs.append(decoded_planes(out))
    assert len(outs[0]) == len(outs[1]) == 5
    for a, b in zip(*outs):
        for pa, pb in zip(a, b):
            assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 1


def test_pattern_helper_is_deterministic():
    assert np.array_equal(pattern(3, 8, 6), pattern(3, 8, 6))


def test_edit_list_preroll_is_not_a_lost_frame(tmp_path, capsys, micro_model):
    """An MP4 cut without re-encoding starts with packets its edit list hides (decoded for
    reference, never shown): they are not reported missing, and the frames match."""
    src = shared_file("video", "carphone_pristine.mp4")
    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(src)) as a, av.open(str(trimmed), "w") as b:
        v = a.streams.video[0]
        o = b.add_stream_from_template(v, opaque=True)
        cut = int(Fraction(11, 10) / Fraction(v.time_base))        # hide the first 1.1 s
        for p in a.demux(v):
            if p.size:
                p.pts, p.dts = p.pts - cut, p.dts - cut
                p.stream = o
                b.mux(p)
    t = video_facts(trimmed)
    assert t["frames"] < 120
    out = tmp_path / "trimmed_x2.mp4"
    rc, err = run_cli(capsys, trimmed, "-o", out, "-m", micro_model, "--frames", "20", *ONE)
    assert rc == 0, err
    assert "missing" not in err and "warning" not in err
    assert video_facts(out)["times"] == t["times"][:20]



def test_opening_svt_av1_leaves_the_scheduling_alone():
    """SVT-AV1 run as root switches the thread that opens it to SCHED_FIFO 99, and every later
    child process (vspipe, ffprobe) inherits that: real-time spinning threads that starved a
    vspipe run here. open_codec puts the policy back. Checked in child processes, so this test
    process keeps its own."""
    import os
    import subprocess
    import sys

    code = ("import os, sys, av; from fractions import Fraction; from dlgsa_vs.video.encode import open_codec\n"
            "cc = av.CodecContext.create('libsvtav1', 'w')\n"
            "cc.width, cc.height, cc.pix_fmt, cc.time_base = 64, 64, 'yuv420p', Fraction(1, 24)\n"
            "(cc.open if sys.argv[1] == 'plain' else lambda: open_codec(cc))()\n"
            "print(os.sched_getscheduler(0))")

    def policy(how: str) -> int:
        res = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return int(res.stdout.split()[-1])

    if os.geteuid() == 0:  # the premise, where it holds: a plain open changes the policy
        assert policy("plain") == os.SCHED_FIFO
    assert policy("open_codec") == os.SCHED_OTHER


def test_packaged_model_choice(tmp_path, capsys):
    """Without -m the video weights run (inputs are compressed video); --variant light picks
    the paper-protocol ones; the summary says which ran; -m names its file."""
    from video_support import decoded_planes

    src = write_clip(tmp_path / "clip.mkv", frames=2, codec="ffv1")
    outputs = {}
    for name, args in (("light-video", ()), ("light", ("--variant", "light"))):
        out = tmp_path / f"{name}.mkv"
        rc, err = run_cli(capsys, src, "-o", out, "-c", "ffv1", *args, *ONE)
        assert rc == 0, err
        assert f"(x2, {name}, ffv1 " in err, err
        outputs[name] = decoded_planes(out)
    assert any(not np.array_equal(a, b) for fa, fb in zip(outputs["light"], outputs["light-video"])
               for a, b in zip(fa, fb))
    from dlgsa_vs.runtime.weights import default_model_path

    rc, err = run_cli(capsys, src, "-o", tmp_path / "file.mkv", "-c", "ffv1", "-m",
                      default_model_path("light", 2), *ONE)
    assert rc == 0 and "(x2, dlgsanet_light_x2.safetensors, ffv1 " in err, err
    assert all(np.array_equal(a, b) for a, b in zip(decoded_planes(tmp_path / "file.mkv")[0], outputs["light"][0]))


def test_x3_default_is_light_where_light_video_has_no_x3(tmp_path, capsys):
    src = write_clip(tmp_path / "clip.mkv", frames=1, codec="ffv1", width=32, height=24)
    rc, err = run_cli(capsys, src, "-o", tmp_path / "x3.mkv", "-c", "ffv1", "-s", "3", *ONE)
    assert rc == 0 and "(x3, light, ffv1 " in err, err
