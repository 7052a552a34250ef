"""Helpers of the video tests: real clips written with PyAV, read back with PyAV, and the
command line run in-process (or as a real subprocess where a signal must be sent)."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SCRIPT = REPO / "scripts" / "upscale_video.py"


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (the tests read ../shared/data next to the repo)")
    return path


def save_micro_model(path: Path, scale: int = 2) -> Path:
    """A real DLGSANet, as small as the architecture allows (fast enough for whole clips)."""
    from dlgsa_vs.arch import DLGSANet
    from dlgsa_vs.runtime.weights import save_safetensors

    torch.manual_seed(scale)
    return save_safetensors(DLGSANet(dim=6, groups=1, blocks=1, upscale=scale), path)


def run_cli(capsys, *args) -> tuple[int, str]:
    """Run dlgsa-upscale in this process; returns (exit status, stderr)."""
    from dlgsa_vs.cli.video import main

    threads = torch.get_num_threads()
    try:
        rc = main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
    return rc, capsys.readouterr().err


def signal_after_first_chunk(cmd: list[str], manifest: Path, sig: int, timeout: float = 180,
                             poll: float = 0.005) -> tuple[int, str]:
    """Run ``cmd`` (a segmented or Ray run) and send it ``sig`` as soon as its ``manifest``
    records a finished chunk; returns (its exit status, its stderr)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                m = json.loads(manifest.read_text())
            except (OSError, ValueError):
                m = None
            if m and any(c["status"] == "done" for c in m["chunks"]):
                proc.send_signal(sig)
                break
            time.sleep(poll)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode()


def run_script(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary outputs left in a folder (there must be none)."""
    return sorted(p.name for p in Path(folder).iterdir() if ".part-" in p.name)


# --- writing clips ---------------------------------------------------------------------------

def pattern(i: int, width: int, height: int) -> np.ndarray:
    """(3, H, W) float RGB test picture, different in every frame. It stays inside
    [0.1, 0.9], so that its YUV codes, however rounded, are inside the RGB cube."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.4 * np.sin((x + 3 * i) / 5.0)
    g = 0.5 + 0.4 * np.cos((y - 2 * i) / 4.0)
    b = 0.1 + 0.8 * ((x + y + 5 * i) % 16) / 15.0
    return np.stack([r, g, b])


def write_clip(path: Path, *, width: int = 64, height: int = 48, pts: list[int] | None = None,
               time_base: Fraction = Fraction(1, 1000), frames: int = 8, codec: str = "libx264",
               pix_fmt: str = "yuv420p", colour=(1, 1, 1, 1), chroma_location: int = 1,
               sar: Fraction | None = None, rotation: float | None = None, title: str | None = None,
               extra=None, options: dict | None = None, make_frame=None) -> Path:
    """A clip encoded with PyAV. pts: frame timestamps in ``time_base`` (VFR if uneven).
    colour: (matrix, range, primaries, transfer) codes. extra(container): adds other streams
    and returns a callable(container) that muxes their packets."""
    from dlgsa_vs.video.colour import Colour, planar_equivalent, rgb_to_planes, tag_frame, write_planes

    if pts is None:
        pts = [i * 100 for i in range(frames)]
    container = av.open(str(path), "w")
    rate = Fraction(len(pts) - 1, 1) / ((pts[-1] - pts[0]) * time_base) if len(pts) > 1 else Fraction(10)
    stream = container.add_stream(codec, rate=rate)
    cc = stream.codec_context
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.time_base = time_base
    stream.time_base = time_base
    matrix, rng, prim, trc = colour
    cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = matrix, rng, prim, trc
    cc.chroma_sample_location = chroma_location
    if sar:
        cc.sample_aspect_ratio = sar
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if title:
        stream.metadata["title"] = title
    cc.options = dict(options or ({"crf": "12"} if codec in ("libx264", "libx265") else {}))
    mux_extra = extra(container) if extra else None
    layout = planar_equivalent(pix_fmt)
    col = Colour(matrix if matrix != 2 else 1, rng if rng else 1, prim, trc, chroma_location)
    for i, p in enumerate(pts):
        rgb = make_frame(i) if make_frame else pattern(i, width, height)
        frame = write_planes(rgb_to_planes(rgb, layout, col), layout, width, height)
        if pix_fmt != layout.name:
            frame = frame.reformat(format=pix_fmt)
        tag_frame(frame, col, layout)
        frame.pts = p
        frame.time_base = time_base
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    if mux_extra:
        mux_extra(container)
    container.close()
    return path


def raw_h264(width: int, height: int, frames: int) -> bytes:
    """An H.264 elementary stream (no container, no timestamps)."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="h264")
    s = out.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    for i in range(frames):
        f = av.VideoFrame.from_ndarray((pattern(i, width, height).transpose(1, 2, 0) * 255).astype(np.uint8),
                                       format="rgb24").reformat(format="yuv420p")
        f.pts = i
        out.mux(s.encode(f))
    out.mux(s.encode(None))
    out.close()
    return buf.getvalue()


# --- reading clips ------------------------------------------------------------------------------

def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = [s for s in c.streams.video if not (s.disposition & (1 << 10))][0]
        cc = v.codec_context
        facts = dict(width=cc.width, height=cc.height, pix_fmt=cc.format.name, codec=cc.name,
                     sar=Fraction(v.sample_aspect_ratio) if v.sample_aspect_ratio and
                     v.sample_aspect_ratio.numerator else None,
                     matrix=cc.colorspace, range=cc.color_range, primaries=cc.color_primaries,
                     transfer=cc.color_trc, time_base=Fraction(v.time_base), metadata=dict(v.metadata),
                     display_matrix=(cc.coded_side_data or {}).get("display_matrix"),
                     container_metadata=dict(c.metadata), format=c.format.name,
                     duration=c.duration)
        times = []
        for frame in c.decode(v):
            times.append(frame.pts * Fraction(v.time_base))
        facts["times"] = times
        facts["frames"] = len(times)
    return facts


def stream_packets(path: Path, kind: str, index_of_kind: int = 0) -> list[tuple]:
    """(pts s, dts s, duration s, bytes) of every packet of one stream."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind and s.discard != 48]
        s = streams[index_of_kind]
        tb = Fraction(s.time_base)
        out = []
        for p in c.demux(s):
            if p.size:
                out.append((None if p.pts is None else p.pts * tb, None if p.dts is None else p.dts * tb,
                            (p.duration or 0) * tb, bytes(p)))
    return out


def decoded_planes(path: Path, limit: int | None = None) -> list[list[np.ndarray]]:
    from dlgsa_vs.video.colour import read_planes

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(read_planes(frame)[0])
            if limit and len(out) >= limit:
                break
    return out


def set_rlimit_fsize(limit: int):
    """preexec_fn for a subprocess: a file-size limit, with SIGXFSZ ignored (write gets EFBIG)."""
    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply
