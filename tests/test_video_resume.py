"""Resumable dlgsa-upscale (dlgsa_vs.segments.resume): a real run killed with SIGKILL part-way
through a multi-GOP clip with audio, subtitles and chapters continues where it stopped and
gives the same file as an uninterrupted run (FFV1: every pixel, every timestamp; audio and
subtitle packets bit-exact, the chapters); a state left
by other settings is dropped with a note; copies of the same model under another name keep it;
--no-resume starts over. Real PyAV, real processes, the micro network."""
from __future__ import annotations

import json
import shutil
import signal
import sys

import pytest
import torch

from test_cluster import CHUNK_SECONDS, assert_same, make_clip
from video_support import leftovers, run_cli, signal_after_first_chunk


@pytest.fixture(scope="module")
def clip(tmp_path_factory, micro_model):
    """The clip (5 segments of 0.8 s) and its one-pass FFV1 upscale (--chunk-seconds above
    its length: no segments)."""
    from dlgsa_vs.cli.video import main

    d = tmp_path_factory.mktemp("resume")
    src = make_clip(d / "clip.mkv")
    threads = torch.get_num_threads()
    try:
        assert main([str(src), "-m", str(micro_model), "-c", "ffv1", "--threads", "1", "-q",
                     "--chunk-seconds", "100", "-o", str(d / "one_pass.mkv")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert not (d / "one_pass.mkv.chunks").exists()
    return d, src, d / "one_pass.mkv", micro_model


def test_segmented_run_equals_one_pass(clip, capsys):
    d, src, ref, model = clip
    out = d / "seg.mkv"
    rc, err = run_cli(capsys, src, "-m", model, "-c", "ffv1", "--threads", "1", "-o", out,
                  "--chunk-seconds", CHUNK_SECONDS)
    assert rc == 0, err
    assert "48 frames" in err and "5 segments (5 computed now, 0 kept)" in err, err
    assert_same(out, ref)
    assert not (d / "seg.mkv.chunks").exists()          # state removed on success
    assert leftovers(d) == []


def test_sigkill_mid_run_then_same_command_continues(clip, capsys):
    d, src, ref, model = clip
    out = d / "killed.mkv"
    manifest = d / "killed.mkv.chunks" / "manifest.json"
    args = [str(src), "-m", str(model), "-c", "ffv1", "--threads", "1", "-o", str(out),
            "--chunk-seconds", CHUNK_SECONDS]
    rc, err = signal_after_first_chunk([sys.executable, "-m", "dlgsa_vs.cli.video", *args, "-q"], manifest,
                                       signal.SIGKILL)
    assert rc == -signal.SIGKILL, err
    assert not out.exists()
    m = json.loads(manifest.read_text())
    kept = {c["index"]: c["checksum"] for c in m["chunks"] if c["status"] == "done"}
    assert 1 <= len(kept) < 5

    rc, err = run_cli(capsys, *args, "--keep-chunks")
    assert rc == 0, err
    assert f"resuming: {len(kept)} of 5 segments already done" in err, err
    assert f"({5 - len(kept)} computed now, {len(kept)} kept)" in err, err
    m2 = json.loads(manifest.read_text())
    for c in m2["chunks"]:
        if c["index"] in kept:                      # not recomputed: run 1's bytes
            assert c["run"] == 1 and c["checksum"] == kept[c["index"]]
        else:
            assert c["run"] == 2
    assert_same(out, ref)
    assert leftovers(d) == []

    # the same model under another name is the same model (its weights' hash): all kept
    other = d / "renamed_model.safetensors"
    shutil.copy(model, other)
    out.unlink()
    rc, err = run_cli(capsys, args[0], "-m", other, *args[3:], "--keep-chunks")
    assert rc == 0 and "(0 computed now, 5 kept)" in err, err
    assert_same(out, ref)

    # other settings: the state is dropped with one note and everything is recomputed
    out.unlink()
    rc, err = run_cli(capsys, *args, "--tile-pad", "4", "--keep-chunks")
    assert rc == 0, err
    assert "holds an earlier run's segments for other settings: starting over" in err, err
    assert "(5 computed now, 0 kept)" in err, err

    # --no-resume: starts over although the state matches; success removes the state
    out.unlink()
    rc, err = run_cli(capsys, *args, "--tile-pad", "4", "--no-resume")
    assert rc == 0 and "(5 computed now, 0 kept)" in err and "resuming" not in err, err
    assert not manifest.parent.exists()


def test_other_input_starts_over(clip, capsys, tmp_path):
    d, src, ref, model = clip
    moved = tmp_path / "clip.mkv"
    make_clip(moved, frames=48)
    out = tmp_path / "o.mkv"
    args = ["-m", model, "-c", "ffv1", "--threads", "1", "-o", out, "--chunk-seconds", CHUNK_SECONDS,
            "--keep-chunks"]
    rc, err = run_cli(capsys, moved, *args)
    assert rc == 0, err
    make_clip(moved, frames=60)                     # same name, other content
    out.unlink()
    rc, err = run_cli(capsys, moved, *args)
    assert rc == 0, err
    assert "for another input: starting over" in err, err


def test_sigterm_keeps_finished_segments(clip, capsys, tmp_path):
    d, src, ref, model = clip
    out = tmp_path / "term.mkv"
    manifest = tmp_path / "term.mkv.chunks" / "manifest.json"
    args = [str(src), "-m", str(model), "-c", "ffv1", "--threads", "1", "-o", str(out),
            "--chunk-seconds", CHUNK_SECONDS]
    rc, err = signal_after_first_chunk([sys.executable, "-m", "dlgsa_vs.cli.video", *args, "-q"], manifest,
                                       signal.SIGTERM)
    assert rc == 130, err
    assert "interrupted (SIGTERM)" in err and "run the same command again to continue" in err, err
    assert not out.exists() and leftovers(tmp_path) == []
    assert [p.name for p in manifest.parent.iterdir() if p.name.startswith(".")] == []   # no half chunk
    rc, err = run_cli(capsys, *args)
    assert rc == 0 and "resuming:" in err, err
    assert_same(out, ref)


def test_segmented_x264_with_b_frames_keeps_every_timestamp(clip, capsys):
    """x264 delays its output (B-frames): the NUT segment files start with packets without a
    decode time and the first one is shifted; the join takes both back: same frames, same
    timestamps, same audio as the one-pass x264 run."""
    from video_support import stream_packets, video_facts

    d, src, ref, model = clip
    common = [src, "-m", model, "-c", "libx264", "--crf", "20", "--threads", "1", "-q"]
    rc, err = run_cli(capsys, *common, "-o", d / "x264_one.mkv", "--chunk-seconds", "100")
    assert rc == 0, err
    rc, err = run_cli(capsys, *common, "-o", d / "x264_seg.mkv", "--chunk-seconds", CHUNK_SECONDS)
    assert rc == 0, err
    a, b = video_facts(d / "x264_one.mkv"), video_facts(d / "x264_seg.mkv")
    assert a["frames"] == b["frames"] == 48 and a["times"] == b["times"]
    assert stream_packets(d / "x264_one.mkv", "audio") == stream_packets(d / "x264_seg.mkv", "audio")
