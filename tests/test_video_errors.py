"""Every way a run can go wrong ends with one line saying why, and nothing half-written."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from video_support import (SCRIPT, assert_one_line_error, leftovers, raw_h264, run_cli, run_script,
                           set_rlimit_fsize, sha256, shared_file, video_facts, write_clip)

ONE = ("--threads", "1")


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4", frames=4)


def _no_output(folder, *names):
    assert leftovers(folder) == []
    for n in names:
        assert not (folder / n).exists(), n


# --- the input ------------------------------------------------------------------------------

def test_missing_file(tmp_path, capsys, micro_model):
    rc, err = run_cli(capsys, tmp_path / "nope.mp4", "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "input not found", "nope.mp4")


def test_folder_and_empty_file(tmp_path, capsys, micro_model):
    rc, err = run_cli(capsys, tmp_path, "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "is a folder")
    (tmp_path / "empty.mkv").write_bytes(b"")
    rc, err = run_cli(capsys, tmp_path / "empty.mkv", "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "is empty")


@pytest.mark.parametrize("name", ["junk.mp4", "junk.mkv", "junk.bin"])
def test_not_a_video(tmp_path, capsys, micro_model, name):
    (tmp_path / name).write_bytes(random.Random(0).randbytes(4000))
    rc, err = run_cli(capsys, tmp_path / name, "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, name)
    _no_output(tmp_path, "junk_x2.mp4", "junk_x2.mkv")


def test_audio_only_file(tmp_path, capsys, micro_model):
    src = tmp_path / "song.m4a"
    with av.open(str(src), "w") as out:
        s = out.add_stream("aac", rate=16000)
        s.codec_context.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    rc, err = run_cli(capsys, src, "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "has no video stream", "1 audio")


def test_unsupported_codec(tmp_path, capsys, micro_model):
    """A video stream in a codec this FFmpeg cannot decode (EVC: no decoder in the build)."""
    try:
        av.Codec("evc", "r")
        pytest.skip("this FFmpeg build decodes EVC: no undecodable codec to test with")
    except Exception:
        pass
    src = tmp_path / "evc.mp4"
    with av.open(str(src), "w") as out:
        s = out.add_mux_stream("evc", rate=25, width=64, height=48)
        s.time_base = Fraction(1, 90000)
        for i in range(3):
            p = av.Packet(b"\x00\x00\x01" + bytes(200))
            p.pts = p.dts = i * 3600
            p.time_base = Fraction(1, 90000)
            p.stream = s
            out.mux(p)
    rc, err = run_cli(capsys, src, "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "unsupported codec")


def test_truncated_mp4_without_index(tmp_path, capsys, micro_model):
    """moov at the end (ffmpeg's default), file cut: nothing can be located."""
    src = shared_file("video", "carphone_pristine.mp4")
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    rc, err = run_cli(capsys, cut, "-m", micro_model)
    assert rc == 2
    assert_one_line_error(err, "truncated", "moov")
    _no_output(tmp_path, "cut_x2.mp4")


def test_truncated_mp4_with_index_first(tmp_path, capsys, micro_model):
    """moov first (faststart), file cut: found from the index before any work."""
    src = write_clip(tmp_path / "fast.mp4", frames=30, options={"crf": "0"})
    fast = tmp_path / "faststart.mp4"
    with av.open(str(src)) as a, av.open(str(fast), "w", options={"movflags": "faststart"}) as b:
        o = b.add_stream_from_template(a.streams.video[0], opaque=True)
        for p in a.demux(a.streams.video[0]):
            if p.size:
                p.stream = o
                b.mux(p)
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    rc, err = run_cli(capsys, cut, "-m", micro_model, *ONE)
    assert rc == 2
    assert_one_line_error(err, "is truncated", "30 video frames", "--frames")
    _no_output(tmp_path, "cut_x2.mp4")


def test_truncated_mkv(tmp_path, capsys, micro_model):
    """Matroska has no frame index up front: the shortfall is found at the end, and the
    output so far is removed."""
    src = write_clip(tmp_path / "long.mkv", frames=40, options={"crf": "0"})
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    rc, err = run_cli(capsys, cut, "-m", micro_model, *ONE)
    assert rc == 2
    assert_one_line_error(err, "is truncated", "--frames")
    _no_output(tmp_path, "cut_x2.mkv")


def test_corrupt_frames_are_reported_with_timestamps(tmp_path, capsys, micro_model):
    """Damaged packets: frames the decoder conceals are kept and listed; frames it cannot
    produce are listed as missing, with the exit status 3; none is duplicated."""
    src = shared_file("video", "carphone_pristine.mp4")
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size, p.pts) for p in c.demux(video=0) if p.size]
    data = bytearray(src.read_bytes())
    rnd = random.Random(1)
    for k in (50, 51):  # the same damage as found to lose one frame and conceal others
        pos, size, _ = packets[k]
        for j in range(pos + 8, pos + size):
            data[j] = rnd.randrange(256)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    out = tmp_path / "bad_x2.mp4"
    rc, err = run_cli(capsys, bad, "-o", out, "-m", micro_model, "--frames", "70", *ONE)
    assert rc == 3, err
    assert "Traceback" not in err
    f = video_facts(out)
    lost = [ln for ln in err.splitlines() if "missing from the output" in ln]
    assert len(lost) == 1
    times = [float(t) for t in lost[0].split("t = ")[1].rstrip(" s").split(", ")]
    assert f["frames"] == 70                                           # --frames counts output frames
    assert sorted(set(f["times"])) == f["times"]                      # no duplicates
    src_times = [float(t) for t in video_facts(src)["times"][:70 + len(times)]]
    assert sorted([float(t) for t in f["times"]] + times) == pytest.approx(src_times, abs=6e-4)  # 3 decimals
    concealed = [ln for ln in err.splitlines() if "concealed by the decoder" in ln]
    assert len(concealed) == 1


def test_frame_size_change(tmp_path, capsys, micro_model):
    src = tmp_path / "two_sizes.h264"
    src.write_bytes(raw_h264(64, 48, 4) + raw_h264(80, 64, 4))
    rc, err = run_cli(capsys, src, "-m", micro_model, *ONE)
    assert rc == 2
    assert_one_line_error(err, "frame size changes mid-stream", "64x48 -> 80x64")
    _no_output(tmp_path, "two_sizes_x2.mkv")


def test_odd_dimensions(tmp_path, capsys, micro_model, micro_model_x3):
    """65x49: x2 gives 130x98 (fine); x3 gives 195x147, which 4:2:0 H.264 cannot hold."""
    src = write_clip(tmp_path / "odd.mkv", width=65, height=49, codec="ffv1", frames=2)
    rc, err = run_cli(capsys, src, "-m", micro_model_x3, *ONE)
    assert rc == 2
    assert_one_line_error(err, "odd dimensions", "195x147", "--pix-fmt yuv444p")
    _no_output(tmp_path, "odd_x3.mkv")
    rc, err = run_cli(capsys, src, "-m", micro_model, *ONE)
    assert rc == 0, err
    f = video_facts(tmp_path / "odd_x2.mkv")
    assert (f["width"], f["height"], f["frames"]) == (130, 98, 2)
    rc, err = run_cli(capsys, src, "-m", micro_model_x3, "--pix-fmt", "yuv444p", "-o", tmp_path / "o.mkv", *ONE)
    assert rc == 0, err
    assert video_facts(tmp_path / "o.mkv")["width"] == 195


# --- options and output ----------------------------------------------------------------------

def test_output_equal_to_input_is_refused(tmp_path, capsys, micro_model, clip):
    before = sha256(clip)
    for target in (clip, tmp_path / "." / "clip.mp4"):
        rc, err = run_cli(capsys, clip, "-o", target, "-m", micro_model)
        assert rc == 2
        assert_one_line_error(err, "would overwrite the input")
    os.link(clip, tmp_path / "hardlink.mp4")
    rc, err = run_cli(capsys, clip, "-o", tmp_path / "hardlink.mp4", "-m", micro_model)
    assert rc == 2
    assert sha256(clip) == before


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@pytest.mark.parametrize("args,fragments", [
    (["-o", "{tmp}/x.xyz"], ["cannot write .xyz files"]),
    (["-o", "{tmp}/x.webm", "-c", "libx264"], [".webm files cannot hold libx264"]),
    (["-c", "nope"], ["unknown encoder 'nope'"]),
    (["-c", "aac"], ["not a video one"]),
    (["-e", "preset"], ["KEY=VALUE"]),
    (["-e", "no_such_option=1"], ["does not know the option", "no_such_option"]),
    (["--pix-fmt", "yuv444p", "-c", "libsvtav1"], ["libsvtav1 cannot encode yuv444p"]),
    pytest.param(["--backend", "trt"], ["--backend trt needs an NVIDIA GPU", "use --backend cpu"], marks=NO_GPU),
    (["--batch", "0"], ["--batch 0 is invalid: it must be >= 1"]),
    (["--tile", "-8", "16"], ["--tile -8 16 is invalid: it must be >= 0 (0 = no tiling)"]),
    (["--tile-pad", "-1"], ["--tile-pad -1 is invalid: it must be >= 0"]),
    (["--device-index", "-1"], ["--device-index -1 is invalid: it must be >= 0"]),
    (["-m", "{tmp}/none.pth"], ["-m/--model ", "none.pth is not a file", "or leave -m/--model out"]),
    (["--start", "abc"], ["cannot read the time"]),
    (["--start", "99"], ["no video frame at or after"]),
    (["--frames", "0"], ["--frames must be >= 1"]),
    (["--preview", "50"], ["has only 4 frames"]),
    (["--preview", "1", "-o", "{tmp}/p.jpg"], ["writes a PNG"]),
    (["-o", "{tmp}/nodir/x.mp4"], ["does not exist"]),
    (["-o", "{tmp}/noext"], ["has no extension"]),
])
def test_bad_options(tmp_path, capsys, micro_model, clip, args, fragments):
    args = [a.format(tmp=tmp_path) for a in args]
    rc, err = run_cli(capsys, clip, "-m", micro_model, *args, *ONE)
    assert rc == 2
    assert_one_line_error(err, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_cuda_backend_without_cuda(capsys, micro_model, clip):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    rc, err = run_cli(capsys, clip, "-m", micro_model, "--backend", "cuda")
    assert rc == 2
    assert_one_line_error(err, "--backend cuda needs an NVIDIA GPU, but", "use --backend cpu")


def test_missing_packaged_weights_is_one_line(capsys, clip):
    rc, err = run_cli(capsys, clip, "--variant", "full", "-s", "4")
    assert rc == 2
    assert_one_line_error(err, "no packaged weights for full x4", "-m/--model")


def test_no_input(capsys):
    rc, err = run_cli(capsys)
    assert rc == 2
    assert_one_line_error(err, "give a video file")


def test_help_and_argument_errors_do_not_load_torch():
    """`--help` and a usage error come back without importing torch (seconds on a cold disk)."""
    probe = ("import sys\n"
             "from dlgsa_vs.cli.video import main\n"
             "try:\n    rc = main(sys.argv[1:])\n"
             "except SystemExit as stop:\n    rc = stop.code\n"
             "assert 'torch' not in sys.modules, 'torch was imported'\n"
             "sys.exit(rc)\n")
    for args, rc in ((["--help"], 0), (["--no-such-option"], 2)):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == rc, done.stderr


# --- interrupted and full-disk runs, as real processes ----------------------------------------------

def _wait_for_part(folder, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if leftovers(folder):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig,name", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_interrupted_run_leaves_nothing(tmp_path, sig, name):
    # The packaged light model (~1 s per frame here) on a long input, so that the run is surely
    # still going when the signal lands: with the micro model an idle machine finished first.
    (tmp_path / "in").mkdir()
    src = write_clip(tmp_path / "in" / "long.mkv", frames=600, codec="ffv1", width=96, height=72)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    out = tmp_path / "int_x2.mp4"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(src), "-o", str(out), "--threads", "1"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for_part(tmp_path, proc), "the run never started writing"
        time.sleep(0.5)               # well inside the run (600 frames)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"interrupted ({name}): stopped, the partial output was removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_file_size_limit(tmp_path, micro_model):
    """The write fails part way (EFBIG under ulimit -f): one line, no partial file."""
    src = write_clip(tmp_path / "in.mkv", frames=12, codec="ffv1", width=96, height=72)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_script(src, "-o", out_dir / "big.mkv", "-m", micro_model, "-c", "ffv1", "--threads", "1",
                      preexec_fn=set_rlimit_fsize(150_000))
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc.stderr, "file too large")
    assert list(out_dir.iterdir()) == []


def test_disk_full(tmp_path, micro_model):
    """A real full file system (a 200 kB tmpfs in a private mount namespace; needs root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    src = write_clip(tmp_path / "in.mkv", frames=12, codec="ffv1", width=96, height=72)
    full = tmp_path / "full"
    full.mkdir()
    script = (f"mount -t tmpfs -o size=200k tmpfs {full} && "
              f"{sys.executable} {SCRIPT} {src} -o {full}/big.mkv -m {micro_model} -c ffv1 --threads 1; "
              f"rc=$?; ls -A {full} >&2; exit $rc")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300)
    if "mount:" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: disk full"), proc.stderr  # and `ls` listed nothing


def test_make_sample_errors(tmp_path, capsys):
    rc, err = run_cli(capsys, "--make-sample", tmp_path / "s.webm")
    assert rc == 2
    assert_one_line_error(err, "give it a .mp4, .mkv or .mov name")
    rc, err = run_cli(capsys, "--make-sample", tmp_path / "nodir" / "s.mp4")
    assert rc == 2
    assert_one_line_error(err, "does not exist")
    assert list(tmp_path.iterdir()) == []
