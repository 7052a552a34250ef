"""The cluster mode (dlgsa_vs.cluster) on a local Ray cluster: real clips with B-frames,
audio, subtitles and chapters, real PyAV, the micro network; FFV1 output so that frames compare exactly with a
single-process dlgsa-upscale run. Also: a worker that dies mid-chunk, a driver killed with
SIGKILL and resumed, batch mode, and the message without Ray."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from video_support import REPO, decoded_planes, signal_after_first_chunk, stream_packets, video_facts, write_clip

CHUNK_SECONDS = "0.8"      # keyframes every 10 frames at 12 fps: 5 chunks of 48 frames


def _audio_subtitles_chapters(container):
    a = container.add_stream("aac", rate=48000)
    a.layout = "stereo"
    sub = container.add_mux_stream("subrip")
    sub.time_base = Fraction(1, 1000)
    sub.metadata["language"] = "deu"
    container.set_chapters([
        {"id": 1, "start": 0, "end": 1700, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
        {"id": 2, "start": 1700, "end": 4000, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}}])

    def mux(c):
        for i in range(48000 * 4 // 1024 + 1):
            t = (np.arange(1024) + i * 1024) / 48000
            f = av.AudioFrame.from_ndarray(np.stack([np.sin(440 * t), np.cos(330 * t)]).astype(np.float32) * 0.2,
                                           format="fltp", layout="stereo")
            f.sample_rate, f.pts = 48000, i * 1024
            c.mux(a.encode(f))
        c.mux(a.encode(None))
        for i in range(7):   # a line every 0.55 s: some in every segment, one across a cut
            p = av.Packet(f"line {i}".encode())
            p.pts = p.dts = 150 + 550 * i
            p.duration = 500 if i != 2 else 900
            p.time_base = Fraction(1, 1000)
            p.stream = sub
            c.mux(p)
    return mux


def make_clip(path: Path, frames: int = 48) -> Path:
    """Moving picture, 12 fps (1/1000 time base), x264 with 3 B-frames, a keyframe every
    10 frames, AAC audio, SubRip subtitles and two chapters."""
    return write_clip(path, width=48, height=32, pts=[i * 83 for i in range(frames)],
                      options={"crf": "12", "bf": "3", "g": "10", "keyint_min": "10", "sc_threshold": "0"},
                      extra=_audio_subtitles_chapters)


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray", reason='ray is not installed (pip install "dlgsa-vs[cluster]")')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory, micro_model):
    """The clip and its single-process FFV1 upscale (1 torch thread, like each Ray task)."""
    from dlgsa_vs.cli.video import main

    d = tmp_path_factory.mktemp("cluster")
    clip = make_clip(d / "clip.mkv")
    threads = torch.get_num_threads()
    try:
        assert main([str(clip), "-m", str(micro_model), "-c", "ffv1", "--threads", "1", "-q",
                     "-o", str(d / "single.mkv")]) == 0
    finally:
        torch.set_num_threads(threads)
    return d, clip, d / "single.mkv", micro_model


def assert_same(out: Path, ref: Path) -> None:
    a, b = video_facts(out), video_facts(ref)
    assert a["frames"] == b["frames"] == 48
    assert a["times"] == b["times"]
    assert {k: v for k, v in a.items() if k != "times"} == {k: v for k, v in b.items() if k != "times"}
    for i, (fa, fb) in enumerate(zip(decoded_planes(out), decoded_planes(ref))):
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb)), f"frame {i} differs"
    assert stream_packets(out, "audio") == stream_packets(ref, "audio")
    assert stream_packets(out, "subtitle") == stream_packets(ref, "subtitle")
    assert len(stream_packets(out, "subtitle")) == 7
    with av.open(str(out)) as a, av.open(str(ref)) as b:
        chapters = [(c["start"] * c["time_base"], c["end"] * c["time_base"], c["metadata"]) for c in a.chapters()]
        assert chapters == [(c["start"] * c["time_base"], c["end"] * c["time_base"], c["metadata"])
                            for c in b.chapters()]
        assert [c[2]["title"] for c in chapters] == ["One", "Two"]


def ray_cli(*args) -> int:
    from dlgsa_vs.cli.ray import main

    return main([str(a) for a in args])


def test_ray_output_equals_single_process(work, ray_address, capsys):
    d, clip, single, model = work
    out = d / "ray.mkv"
    t = time.perf_counter()
    rc = ray_cli(clip, "-m", model, "-c", "ffv1", "-o", out, "--chunk-seconds", CHUNK_SECONDS)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "48 frames in 5 chunks (5 computed now, 0 kept)" in err, err
    assert_same(out, single)
    assert not (d / "ray.mkv.chunks").exists()            # work folder removed after success
    assert not [p for p in d.iterdir() if ".part-" in p.name]
    print(f"ray run: {time.perf_counter() - t:.1f} s")


def test_ray_workers_run_the_vulkan_backend(work, ray_address, capsys):
    """backend vulkan on the Ray workers (Mesa's llvmpipe here), in fp32: every frame within one
    code value of the single-process cpu run (ncnn's arithmetic differs from torch's in the last
    bits; the micro network's outputs round the same to within one)."""
    from dlgsa_vs.runtime.vulkan.devices import vulkan_problem

    if vulkan_problem() is not None:
        pytest.skip(f"no vulkan backend here: {vulkan_problem()}")
    d, clip, single, model = work
    out = d / "ray_vulkan.mkv"
    rc = ray_cli(clip, "-m", model, "-c", "ffv1", "-o", out, "--chunk-seconds", CHUNK_SECONDS,
                 "--backend", "vulkan", "--precision", "fp32")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert video_facts(out)["frames"] == video_facts(single)["frames"] == 48
    for fa, fb in zip(decoded_planes(out), decoded_planes(single), strict=True):
        assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(fa, fb))


def _kill_one_chunk_task(marker: Path, stop: threading.Event) -> None:
    """From outside, as a crash would: SIGKILL the first Ray worker seen running a chunk (Ray
    names a busy worker's process ``ray::chunk_task``), once, and leave ``marker``."""
    import psutil

    while not stop.is_set():
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if "ray::chunk_task" in " ".join(proc.info["cmdline"] or ()):
                time.sleep(0.1)  # mid-chunk: the network loaded, frames under way
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    break  # it finished first: try the next one
                marker.write_text(f"{proc.info['pid']}\n")
                return
        time.sleep(0.02)


def test_worker_killed_mid_chunk_is_retried(work, ray_address, capsys):
    d, clip, single, model = work
    marker = d / "crashed-once"
    out = d / "crash.mkv"
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_chunk_task, args=(marker, stop), daemon=True)
    killer.start()
    try:
        rc = ray_cli(clip, "-m", model, "-c", "ffv1", "-o", out, "--chunk-seconds", CHUNK_SECONDS, "--keep-chunks")
    finally:
        stop.set()
        killer.join()
    err = capsys.readouterr().err
    assert rc == 0, err
    assert marker.exists()                       # a chunk's first attempt did die (SIGKILL)
    assert_same(out, single)
    manifest = json.loads((d / "crash.mkv.chunks" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["chunks"]] == ["done"] * 5


def test_driver_killed_then_resumed(work, ray_address, capsys):
    d, clip, single, model = work
    out = d / "resumed.mkv"
    manifest_path = d / "resumed.mkv.chunks" / "manifest.json"
    # One task at a time (2 CPUs each), so that the driver dies with chunks still to do.
    cmd = [sys.executable, "-m", "dlgsa_vs.cli.ray", str(clip), "-m", str(model), "-c", "ffv1", "-o",
           str(out), "--chunk-seconds", CHUNK_SECONDS, "--address", ray_address, "--cpus-per-task", "2",
           "--threads", "1", "-q"]
    rc, err = signal_after_first_chunk(cmd, manifest_path, signal.SIGKILL, timeout=120, poll=0.05)
    assert rc == -signal.SIGKILL, err
    assert not out.exists()
    m = json.loads(manifest_path.read_text())
    done_before = [c["index"] for c in m["chunks"] if c["status"] == "done"]
    assert 1 <= len(done_before) < 5
    sums = {c["index"]: c["checksum"] for c in m["chunks"] if c["status"] == "done"}

    rc = ray_cli(clip, "-m", model, "-c", "ffv1", "-o", out, "--chunk-seconds", CHUNK_SECONDS, "--threads", "1",
                 "--keep-chunks")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"resuming clip.mkv: {len(done_before)} of 5 chunks already done" in err, err
    assert f"({5 - len(done_before)} computed now, {len(done_before)} kept)" in err, err
    m2 = json.loads(manifest_path.read_text())
    assert m2["runs"] == 2
    for c in m2["chunks"]:
        if c["index"] in done_before:        # not recomputed: made by run 1, same bytes
            assert c["run"] == 1 and c["checksum"] == sums[c["index"]]
        else:
            assert c["run"] == 2
    assert_same(out, single)


def test_batch_of_files_and_a_folder(work, ray_address, capsys, tmp_path):
    d, clip, single, model = work
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(clip, inputs / "a.mkv")
    short = make_clip(inputs / "b.mkv", frames=24)
    outs = tmp_path / "out"
    outs.mkdir()
    rc = ray_cli(inputs, "-m", model, "-c", "ffv1", "-o", outs, "--chunk-seconds", CHUNK_SECONDS)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert_same(outs / "a_x2.mkv", single)
    b = video_facts(outs / "b_x2.mkv")
    assert b["times"] == video_facts(short)["times"] and b["width"] == 96


def test_changed_settings_start_afresh(work, ray_address, capsys):
    from dlgsa_vs.segments import manifest as mf

    d, clip, single, model = work
    fresh = mf.new(clip, d / "x.mkv", {"encoder": "ffv1"}, [dict(start=None, end=830, frames=10)])
    other = mf.new(clip, d / "x.mkv", {"encoder": "libx264"}, [dict(start=None, end=830, frames=10)])
    assert mf.compatible(fresh, fresh) and not mf.compatible(other, fresh)


def test_without_ray_one_line_and_exit_2(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from dlgsa_vs.cli.video import main\n"
            f"sys.exit(main([{str(tmp_path / 'in.mkv')!r}, '--ray']))")
    (tmp_path / "in.mkv").write_bytes(b"x")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ['error: the --ray mode needs Ray: pip install "dlgsa-vs[cluster]"'], r.stderr
