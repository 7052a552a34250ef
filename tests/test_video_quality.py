"""The upscaled video beats bicubic: a clip built from Set5/Set14 (encode HR -> make the LR
clip with MATLAB's bicubic -> upscale with the packaged light x2 network -> compare with HR)."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dlgsa_vs.image.imageio import read_image
from dlgsa_vs.image.imresize import bicubic_downscale, bicubic_upscale
from dlgsa_vs.train.metrics import psnr_y
from dlgsa_vs.runtime.weights import default_model_path
from video_support import run_cli, shared_file

HR_W, HR_H = 192, 128   # centre crops: every Set5/Set14 image is at least this big
IMAGES = ["Set5/HR/baby.png", "Set5/HR/bird.png", "Set5/HR/butterfly.png", "Set5/HR/head.png",
          "Set14/HR/comic.png", "Set14/HR/foreman.png", "Set14/HR/lenna.png", "Set14/HR/zebra.png"]


def _model() -> Path:
    # DLGSA_TEST_LIGHT_X2 lets a training run's weights be tried before they are packaged.
    path = Path(os.environ.get("DLGSA_TEST_LIGHT_X2") or default_model_path("light", 2))
    if not path.is_file():
        pytest.skip(f"packaged light x2 weights not found ({path}): the quality test needs trained weights")
    return path


def _write_rgb_clip(path: Path, frames: list[np.ndarray], fps: int = 5) -> None:
    """Lossless RGB (FFV1), so the comparison measures the network and nothing else."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "bgr0"
        s.codec_context.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(s.encode(f))
        out.mux(s.encode(None))


def _read_rgb_clip(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_upscaled_clip_beats_bicubic(tmp_path, capsys):
    model = _model()
    crops = []
    for name in IMAGES:
        img = read_image(shared_file("benchmarks", *name.split("/")))
        h, w = img.shape[:2]
        y, x = (h - HR_H) // 2, (w - HR_W) // 2
        crops.append(np.ascontiguousarray(img[y:y + HR_H, x:x + HR_W]))
    hr_clip = tmp_path / "hr.mkv"
    _write_rgb_clip(hr_clip, crops)
    hr = _read_rgb_clip(hr_clip)
    assert all(np.array_equal(a, b) for a, b in zip(hr, crops))
    lr = [bicubic_downscale(f, 2) for f in hr]
    lr_clip = tmp_path / "lr.mkv"
    _write_rgb_clip(lr_clip, lr)

    out = tmp_path / "lr_x2.mkv"
    rc, err = run_cli(capsys, lr_clip, "-o", out, "-m", model, "-c", "ffv1", "--threads", "1")
    assert rc == 0, err
    sr = _read_rgb_clip(out)
    assert len(sr) == len(hr) and sr[0].shape == hr[0].shape

    ours = [psnr_y(s, h, crop_border=2) for s, h in zip(sr, hr)]
    bicubic = [psnr_y(bicubic_upscale(lo, 2), h, crop_border=2) for lo, h in zip(lr, hr)]
    gain = float(np.mean(ours) - np.mean(bicubic))
    print(f"PSNR-Y: network {np.mean(ours):.2f} dB, bicubic {np.mean(bicubic):.2f} dB, gain {gain:+.2f} dB")
    assert gain > 0.5, (ours, bicubic)
    assert sum(o > b for o, b in zip(ours, bicubic)) >= len(hr) - 1
