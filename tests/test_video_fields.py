"""Interlaced and telecined sources (issue #38): ``--deinterlace auto`` tells each kind of
clip apart, deinterlaces (bwdif) or inverse-telecines (fieldmatch + decimate) before the
network, and leaves progressive files bit for bit as before. Clips are made with real
encoders (fields_support); the network is a micro DLGSANet that repeats pixels, so the
output shows what the network was given."""
from __future__ import annotations

from fractions import Fraction

import pytest

from dlgsa_vs.video.fields import plan
from dlgsa_vs.video.probe import probe
from fields_support import (FILM, NTSC, encode, idet_frames, numbered, read_number, save_nearest_model,
                            scene, woven)
from video_support import assert_one_line_error, run_cli, stream_packets, video_facts

W, H = 128, 96


@pytest.fixture(scope="module")
def nearest(tmp_path_factory):
    return save_nearest_model(tmp_path_factory.mktemp("models") / "nearest_x2.safetensors")


def _interlaced(path, order="tff", codec="libx264", frames=16, audio=False):
    return encode(path, [woven(i, order, W, H) for i in range(frames)], codec=codec, flag=order,
                  interlaced_coding=True, audio=audio)


def _telecined(path, film_frames=40):
    return encode(path, [numbered(i, W, H) for i in range(film_frames)],
                  filters="telecine=first_field=top:pattern=23")


def _progressive(path, flag="progressive"):
    return encode(path, [scene(2 * i, W, H) for i in range(12)], flag=flag,
                  interlaced_coding=flag != "progressive")


CLIPS = {   # name: (maker, expected mode, expected order, words of the summary)
    "interlaced TFF H.264": (lambda p: _interlaced(p / "tff.mp4"), "bwdif", "tff",
                             "interlaced TFF (stream flag + idet 16/16 frames): bwdif, 29.97i -> 59.94p"),
    "interlaced BFF MPEG-2": (lambda p: _interlaced(p / "bff.mpg", "bff", "mpeg2video"), "bwdif", "bff",
                              "interlaced BFF (stream flag + idet"),
    "telecined film": (lambda p: _telecined(p / "film.mp4"), "ivtc", "tff",
                       "telecined TFF (idet 20/50 frames with a repeated field, 3:2 pulldown): inverse "
                       "telecine (fieldmatch + decimate), 29.97 -> 23.976p"),
    "progressive flagged interlaced": (lambda p: _progressive(p / "pfi.mkv", "tff"), "none", None,
                                       "progressive (idet 12/12 frames progressive, though flagged "
                                       "interlaced): kept as is"),
    "interlaced flagged progressive": (lambda p: encode(p / "ifp.mp4", [woven(i, "bff", W, H) for i in range(16)]),
                                       "bwdif", "bff", "interlaced BFF (idet 16/16 frames): bwdif"),
    "progressive": (lambda p: _progressive(p / "p.mp4"), "none", None, "progressive (idet 12/12"),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_auto_tells_each_kind_of_source_apart(tmp_path, name):
    make, mode, order, words = CLIPS[name]
    info = probe(make(tmp_path))
    try:
        t = plan(info, "auto")
    finally:
        info.container.close()
    assert t.mode == mode, t.summary()
    if order:
        assert t.order == order, t.summary()
    assert words in t.summary()
    assert plan(probe(make(tmp_path)), "off") is None


@pytest.mark.parametrize("order,codec,ext", [("tff", "libx264", "mp4"), ("bff", "mpeg2video", "ts")])
def test_interlaced_becomes_field_rate_progressive_without_combing(tmp_path, capsys, nearest, order, codec, ext):
    src = _interlaced(tmp_path / f"in.{ext}", order, codec, frames=12, audio=True)
    woven_out, out = tmp_path / "woven.mp4", tmp_path / "out.mp4"
    rc, err = run_cli(capsys, src, "-o", woven_out, "-m", nearest, "--deinterlace", "off", "--threads", "1")
    assert rc == 0, err
    rc, err = run_cli(capsys, src, "-o", out, "-m", nearest, "--threads", "1")
    assert rc == 0, err
    assert f"interlaced {order.upper()} (stream flag + idet 12/12 frames): bwdif, 29.97i -> 59.94p" in err
    assert "24 frames 128x96 -> 256x192" in err

    # The metric can fail: today's output, scaled back, is combed in every frame ...
    assert idet_frames(woven_out, (W, H)) == [order] * 12
    # ... the deinterlaced one is not (bwdif has no neighbour for the very first and last field)
    verdicts = idet_frames(out, (W, H))
    assert len(verdicts) == 24 and verdicts[1:-1] == ["progressive"] * 22, verdicts

    facts = video_facts(out)
    times = [t - facts["times"][0] for t in facts["times"]]
    assert times == [k * Fraction(1001, 60000) for k in range(24)]        # 59.94p, exact
    import av

    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.field_order == 1          # tagged progressive
        assert Fraction(v.average_rate) == 2 * NTSC
    audio = stream_packets(out, "audio")
    source_audio = stream_packets(src, "audio")
    assert len(audio) == len(source_audio)                # the whole sound, at its own times
    lead = source_audio[0][0] - video_facts(src)["times"][0]
    assert abs(audio[0][0] - facts["times"][0] - lead) < Fraction(1, 1000)  # (the muxers' own rounding)


def test_telecined_film_comes_back_frame_for_frame(tmp_path, capsys, nearest):
    src = _telecined(tmp_path / "film.mp4", film_frames=40)
    assert video_facts(src)["frames"] == 50
    out = tmp_path / "out.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", nearest, "--threads", "1")
    assert rc == 0, err
    assert "inverse telecine (fieldmatch + decimate), 29.97 -> 23.976p" in err
    import av

    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        numbers = [read_number(f.to_ndarray()[:f.height], 2) for f in frames]
        times = [f.pts * Fraction(v.time_base) for f in frames]
    assert numbers == list(range(40))                     # every film frame, once, in order
    assert times == [k / FILM for k in range(40)]         # 23.976p, exact
    assert idet_frames(out, (W, H)) == ["progressive"] * 40


@pytest.mark.parametrize("flag", ["progressive", "tff"])
def test_progressive_output_is_byte_identical_to_off(tmp_path, capsys, nearest, flag):
    src = _progressive(tmp_path / "in.mkv", flag)
    outs = []
    for mode in ("off", "auto"):
        outs.append(tmp_path / f"{mode}.mkv")
        rc, err = run_cli(capsys, src, "-o", outs[-1], "-m", nearest, "--deinterlace", mode, "--threads", "1")
        assert rc == 0, err
    # the video stream bit for bit (the files differ only in the random segment UID mkv writes)
    assert stream_packets(outs[0], "video") == stream_packets(outs[1], "video")
    if flag == "tff":
        assert "progressive (idet 12/12 frames progressive, though flagged interlaced): kept as is" in err


@pytest.mark.parametrize("mode,frames,expected", [("auto", 7, 7), ("bwdif-frame", None, 12), ("ivtc", 6, 6),
                                                  ("ivtc", None, 10)])   # decimate: 1 of each whole 5
def test_frame_accounting_follows_the_output(tmp_path, capsys, nearest, mode, frames, expected):
    src = _interlaced(tmp_path / "in.mkv", frames=12)
    out = tmp_path / "out.mkv"
    extra = ["--frames", frames] if frames else []
    rc, err = run_cli(capsys, src, "-o", out, "-m", nearest, "--deinterlace", mode, "--threads", "1", *extra)
    assert rc == 0, err
    assert video_facts(out)["frames"] == expected
    assert f"{expected} frames 128x96" in err


def test_unknown_mode_is_one_usage_line(tmp_path, capsys, nearest):
    src = _progressive(tmp_path / "in.mkv")
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, src, "-m", nearest, "--deinterlace", "yadif")
    assert exc.value.code == 2
    assert "--deinterlace: invalid choice: 'yadif'" in capsys.readouterr().err


def test_ray_refuses_what_it_cannot_deinterlace(tmp_path, capsys, nearest):
    pytest.importorskip("ray", reason="ray is not installed (pip install .[cluster])")
    src = _interlaced(tmp_path / "in.mkv", frames=8)
    rc, err = run_cli(capsys, src, "-m", nearest, "--ray", "--deinterlace", "bwdif")
    assert rc == 2 and "--deinterlace bwdif is not available with --ray yet" in err, err
    rc, err = run_cli(capsys, src, "-m", nearest, "--ray")
    assert rc == 2, err
    assert_one_line_error(err, "in.mkv is interlaced (stream flag + idet 8/8 frames): Ray runs do not "
                               "deinterlace yet; upscale it without --ray, or add --deinterlace off")
    assert not list(tmp_path.glob("*_x2*"))


def test_a_still_picture_leaves_the_choice_to_the_flags():
    """idet sees no combing either way on a still picture: the stream's flag decides then."""
    from dlgsa_vs.video.fields import Evidence, decide

    still = Evidence(stream_order="bff", sampled=60, flagged=60, progressive=3)
    t = decide(still, "auto", NTSC)
    assert (t.mode, t.order) == ("bwdif", "bff")
    assert t.summary() == "interlaced BFF (stream flag + idet undecided on 60 frames): bwdif, 29.97i -> 59.94p"
    unflagged = Evidence(stream_order=None, sampled=60, progressive=3)
    assert decide(unflagged, "auto", NTSC).mode == "none"
    forced = decide(unflagged, "bwdif-frame", Fraction(25))
    assert forced.summary() == ("progressive (idet undecided on 60 frames, no field flags): bwdif at frame "
                                "rate, 25 -> 25p")


def test_preview_shows_the_deinterlaced_frame(tmp_path, capsys, nearest):
    """--preview N counts output frames and shows the frame the network gets: frame 5 of the
    59.94p output is the second field of stored frame 2, not the woven frame."""
    import numpy as np

    from dlgsa_vs.image.imageio import read_image

    src = _interlaced(tmp_path / "in.mkv", frames=8)
    rc, err = run_cli(capsys, src, "-m", nearest, "--preview", "5", "--threads", "1")
    assert rc == 0, err
    assert "interlaced TFF (stream flag + idet 8/8 frames): bwdif, 29.97i -> 59.94p" in err
    right = read_image(tmp_path / "in_x2_preview5.png")[:, 2 * W:, 0].astype(np.float32)[::2, ::2]
    luma_like = (right - right.mean()) / right.std()
    second_field = scene(5, W, H).astype(np.float32)
    woven_frame = woven(2, "tff", W, H).astype(np.float32)

    def corr(a):
        a = (a - a.mean()) / a.std()
        return float((a * luma_like).mean())

    assert corr(second_field) > 0.9 and corr(second_field) > corr(woven_frame), (corr(second_field),
                                                                                 corr(woven_frame))


@pytest.mark.parametrize("mode", ["auto", "ivtc"])
def test_frames_cut_the_sound_at_the_last_output_frame(tmp_path, capsys, nearest, mode):
    """The filters read ahead (bwdif one frame, decimate a cycle of five); the copied streams
    still end where the output video ends, as without deinterlacing."""
    src = _interlaced(tmp_path / "in.mp4", frames=24, audio=True)
    out = tmp_path / "out.mkv"
    rc, err = run_cli(capsys, src, "-o", out, "-m", nearest, "--deinterlace", mode, "--frames", 7, "--threads", "1")
    assert rc == 0, err
    facts = video_facts(out)
    frame = Fraction(1, 1) / (2 * NTSC if mode == "auto" else FILM)
    video_end = facts["times"][-1] + frame
    audio = stream_packets(out, "audio")
    assert facts["frames"] == 7
    assert audio[-1][0] < video_end <= audio[-1][0] + audio[-1][2] + Fraction(1, 1000), (audio[-1], video_end)


def test_start_and_frames_on_telecined_film(tmp_path, capsys, nearest):
    """--start seeks in the input clock, --frames counts film frames: 0.5 s in, frames 12-20."""
    import av

    src = _telecined(tmp_path / "film.mp4", film_frames=40)
    out = tmp_path / "out.mp4"
    rc, err = run_cli(capsys, src, "-o", out, "-m", nearest, "--start", "0.5", "--frames", 9, "--threads", "1")
    assert rc == 0 and "missing" not in err, err
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        assert [read_number(f.to_ndarray()[:f.height], 2) for f in frames] == list(range(12, 21))
        assert [f.pts * Fraction(v.time_base) for f in frames] == [k / FILM for k in range(9)]


def test_library_call_with_colour_on_the_device(tmp_path, nearest):
    """upscale_video(deinterlace="auto") on the path the CUDA and TensorRT backends take (the
    reader hands sample planes over, the colour conversion runs where the network does; here
    torch on the CPU): the deinterlaced frames reach it the same way."""
    from dlgsa_vs.runtime.backends import create_upscaler
    from dlgsa_vs.video.job import upscale_video

    src = _interlaced(tmp_path / "in.mkv", frames=4)
    upscaler = create_upscaler(model_path=str(nearest), backend="cpu")
    r = upscale_video(src, upscaler, tmp_path / "out.mkv", on_device=True, deinterlace="auto")
    assert r.fields is not None and (r.fields.mode, r.fields.order) == ("bwdif", "tff")
    assert r.stats.frames == 8 and video_facts(r.output)["frames"] == 8
    assert idet_frames(r.output, (W, H))[1:-1] == ["progressive"] * 6
    r = upscale_video(src, upscaler, tmp_path / "plain.mkv")     # the library's default: off
    assert r.fields is None and r.stats.frames == 4


def test_idet_alone_does_not_overrule_a_file_that_says_progressive():
    """On small frames with motion idet can call most frames combed (a 176x144 clip flagged
    progressive: 45/60 BFF); the file's word then stands unless the rows themselves alternate."""
    import av
    import numpy as np

    from dlgsa_vs.video.fields import Evidence, comb_seen_in, decide

    said = dict(stream_order="progressive", sampled=60, bff=45, progressive=11)
    kept = decide(Evidence(**said, comb_seen=0), "auto", None)
    assert kept.mode == "none" and "but the stream says progressive" in kept.summary()
    assert decide(Evidence(**said, comb_seen=40), "auto", None).mode == "bwdif"
    assert decide(Evidence(**{**said, "stream_order": None}, comb_seen=0), "auto", None).mode == "bwdif"

    y, x = np.mgrid[0:64, 0:96]
    smooth = (128 + 60 * np.sin(x / 7.0) * np.cos(y / 9.0)).astype(np.uint8)
    woven = smooth.copy()
    woven[1::2] = np.roll(smooth, 6, axis=1)[1::2]  # the other field, from a moment later
    frame = lambda a: av.VideoFrame.from_ndarray(a, format="gray")  # noqa: E731
    assert comb_seen_in(frame(woven)) and not comb_seen_in(frame(smooth))
