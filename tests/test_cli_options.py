"""Every run option's bad values through the real command lines: one line naming the option,
exit 2, nothing written (the settings' rules, worded with each tool's flags)."""
from __future__ import annotations

import pytest
import torch

from dlgsa_vs.cli import ray, upscale_image

BAD = [
    (["--tile", "-8", "16"], "--tile -8 16 is invalid: it must be >= 0 (0 = no tiling)"),
    (["--tile-pad", "-1"], "--tile-pad -1 is invalid: it must be >= 0"),
    (["--batch", "0"], "--batch 0 is invalid: it must be >= 1"),
    (["--threads", "0"], "--threads 0 is invalid: it must be >= 1"),
    (["--device-index", "-2"], "--device-index -2 is invalid: it must be >= 0"),
    (["-m", "/nonexistent/net.pth"], "-m/--model /nonexistent/net.pth is not a file"),
]


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args,message", BAD, ids=[a[0] for a, _ in BAD])
def test_image_cli_bad_values(tmp_path, capsys, args, message):
    rc = upscale_image.main(["--demo", "-o", str(tmp_path / "out.png"), *args])
    assert rc == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,message", BAD, ids=[a[0] for a, _ in BAD])
def test_ray_cli_bad_values(tmp_path, capsys, args, message):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # never opened: the options are checked first
    rc = ray.main([str(clip), *args])
    assert rc == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_image_cli_names_the_backend_flag(tmp_path, capsys):
    rc = upscale_image.main(["--demo", "-o", str(tmp_path / "out.png"), "--backend", "cuda"])
    assert rc == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--backend cuda needs an NVIDIA GPU" in line and line.endswith("use --backend cpu")


def test_fp16_on_the_cpu_is_a_note_not_an_error(tmp_path, capsys):
    rc = upscale_image.main(["--demo", "-o", str(tmp_path / "d_x2.png"), "--backend", "cpu", "--fp16"])
    assert rc == 0 and (tmp_path / "d_x2.png").is_file()
    assert "--precision fp16 -> fp32 (fp16 has no fast path on the CPU)" in capsys.readouterr().err


def test_cpu_precision_and_engine_options(tmp_path, capsys):
    """--precision bf16 --cpu-engine torch on the cpu backend: the summary line says what computed,
    why and in which engine; --cpu-engine with another backend is one error naming the fix."""
    rc = upscale_image.main(["--demo", "-o", str(tmp_path / "d.png"), "--backend", "cpu", "--precision", "bf16",
                             "--cpu-engine", "torch"])
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "d.png").is_file()
    assert "on cpu bfloat16 (as asked; " in err and err.rstrip().endswith(" in torch (as asked)")
    rc = upscale_image.main(["--demo", "-o", str(tmp_path / "e.png"), "--backend", "cuda", "--cpu-engine", "openvino"])
    line = one_line_error(capsys.readouterr().err)
    assert rc == 2 and not (tmp_path / "e.png").exists()
    assert line.endswith("--cpu-engine openvino applies to the cpu backend only: leave it out, or use --backend cpu")
