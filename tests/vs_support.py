"""Shared pieces of the VapourSynth tests: fixtures, clips from arrays, y4m reading, PSNR.

Kept out of conftest.py (which other test modules share) so that only the VapourSynth tests
import VapourSynth. Test modules import the fixtures by name.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

from conftest import SHARED_DATA, randomize_, small_config
from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.runtime.weights import default_model_path, save_safetensors

VS_PACKAGE = Path(vs.__file__).resolve().parent
PLUGIN_DIR = VS_PACKAGE / "plugins"


@pytest.fixture(scope="session")
def core() -> vs.Core:
    """The real core, with the dlgsa plugin autoloaded from VapourSynth's plugin folder."""
    c = vs.core
    if not hasattr(c, "dlgsa"):
        pytest.fail(f"the dlgsa VapourSynth plugin is not installed in {PLUGIN_DIR}: install the project with "
                    f"`pip install -e .` (it compiles dlgsa_vs/vapoursynth/plugin.c; needs a C compiler)")
    return c


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A real DLGSANet, small enough for fast tests, saved as safetensors (random weights)."""
    torch.manual_seed(1234)
    model = randomize_(DLGSANet(**small_config()))
    return save_safetensors(model, tmp_path_factory.mktemp("models") / "small_x2.safetensors")


@pytest.fixture(scope="session")
def light_x2() -> Path:
    path = default_model_path("light", 2)
    if not path.is_file():
        pytest.skip(f"the packaged DLGSANet-light x2 weights are missing ({path}): the quality test needs trained "
                    f"weights")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vspipe(tmp_path_factory):
    """Runs the real vspipe of this environment; its VSScript configuration lives in a temp folder.

    vspipe embeds Python through libvsscript, which needs to know which Python to load
    (`vapoursynth config` writes that to $XDG_CONFIG_HOME/vapoursynth/vapoursynth.toml);
    using a temporary XDG_CONFIG_HOME leaves the user's configuration alone.
    """
    exe = VS_PACKAGE / "vspipe"
    if not exe.is_file():
        pytest.fail(f"vspipe not found at {exe}")
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path_factory.mktemp("xdg")))
    subprocess.run([sys.executable, "-m", "vapoursynth", "config"], env=env, check=True, capture_output=True)

    def run(*args, timeout=120) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, timeout=timeout)

    return run


def clip_from_arrays(frames: list[list[np.ndarray]], fmt: int, props: list[dict] | None = None,
                     fpsnum: int = 24, fpsden: int = 1) -> vs.VideoNode:
    """A clip whose frame n has the planes ``frames[n]`` and the properties ``props[n]``."""
    f0 = frames[0][0]
    blank = vs.core.std.BlankClip(format=fmt, width=f0.shape[1], height=f0.shape[0], length=len(frames),
                                  fpsnum=fpsnum, fpsden=fpsden)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p, plane in enumerate(frames[n]):
            np.copyto(np.asarray(out[p]), plane)
        if props:
            out.props.update(props[n])
        return out

    return blank.std.ModifyFrame(blank, fill)


def planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.array(frame[p]) for p in range(frame.format.num_planes)]


def random_rgb(n: int, width: int, height: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Smooth-ish random RGB pictures in [0, 1] (float32 planes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.random((3, height // 4 + 1, width // 4 + 1), dtype=np.float32)
        pic = low.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width]
        pic = np.clip(pic + 0.1 * rng.standard_normal(pic.shape, dtype=np.float32), 0, 1)
        out.append([np.ascontiguousarray(p) for p in pic])
    return out


def read_y4m(data: bytes) -> tuple[dict[str, str], list[list[np.ndarray]]]:
    """Header fields and frames (list of planes) of an 8-bit 4:2:0 / 4:4:4 / mono YUV4MPEG2 stream."""
    end = data.index(b"\n")
    fields = data[:end].decode().split()
    assert fields[0] == "YUV4MPEG2", fields[0]
    header = {f[0]: f[1:] for f in fields[1:]}
    w, h = int(header["W"]), int(header["H"])
    chroma = header.get("C", "420jpeg")
    if chroma.startswith("420"):
        shapes = [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
    elif chroma.startswith("444"):
        shapes = [(h, w)] * 3
    elif chroma.startswith("mono"):
        shapes = [(h, w)]
    else:
        raise ValueError(f"unsupported y4m chroma {chroma}")
    frames, pos = [], end + 1
    while pos < len(data):
        line_end = data.index(b"\n", pos)
        assert data[pos:line_end].startswith(b"FRAME"), data[pos:pos + 10]
        pos = line_end + 1
        frame = []
        for shape in shapes:
            size = shape[0] * shape[1]
            frame.append(np.frombuffer(data, np.uint8, size, pos).reshape(shape))
            pos += size
        frames.append(frame)
    return header, frames


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0, shave: int = 0) -> float:
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak * peak / mse))
