"""dlgsa-upscale-image as a user meets it (issue #36): the output's format is the one its name
says, alpha and grey are kept, several files and folders go in, existing outputs are never
replaced without -y, and a file that is not a picture is one line. Real PyAV/FFmpeg encoders
and the packaged light weights, on pictures of a few hundred pixels."""
from __future__ import annotations

import numpy as np
import pytest

from dlgsa_vs.cli import upscale_image
from dlgsa_vs.image.imageio import read_picture, write_image

FAST = ["--backend", "cpu", "--threads", "1", "--tile", "0", "0"]


def picture(h: int = 12, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 15, y * 20, (x + y) * 8], axis=-1).astype(np.uint8)


def run(capsys, *args: str) -> tuple[int, list[str]]:
    rc = upscale_image.main([*map(str, args), *FAST])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


def error_line(lines: list[str]) -> str:
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, lines
    return errors[0]


@pytest.mark.parametrize("name,magic", [("out.jpg", b"\xff\xd8\xff"), ("out.webp", b"RIFF"),
                                        ("out.tiff", b"II*\x00"), ("out.bmp", b"BM")])
def test_the_output_format_is_the_one_its_name_says(tmp_path, capsys, name, magic):
    # was: PNG data in a file named .jpg, exit 0
    src = write_image(tmp_path / "in.png", picture())
    rc, _ = run(capsys, src, "-o", tmp_path / name)
    assert rc == 0 and (tmp_path / name).read_bytes().startswith(magic)
    assert read_picture(tmp_path / name).rgb.shape == (24, 32, 3)


def test_an_unknown_output_format_is_refused_before_anything_runs(tmp_path, capsys):
    src = write_image(tmp_path / "in.png", picture())
    rc, lines = run(capsys, src, "-o", tmp_path / "out.xyz")
    assert rc == 2 and "cannot write" in error_line(lines) and ".png, .jpg" in error_line(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_alpha_is_kept_and_resized(tmp_path, capsys):
    # was: the alpha channel dropped without a word
    alpha = np.zeros((12, 16), np.uint8)
    alpha[:, 8:] = 255
    src = write_image(tmp_path / "in.png", picture(), alpha)
    rc, lines = run(capsys, src)
    out = read_picture(tmp_path / "in_x2.png")
    assert rc == 0 and "with its alpha (resized)" in lines[-1]
    assert out.alpha is not None and out.alpha.shape == (24, 32)
    assert (out.alpha[:, :14] == 0).all() and (out.alpha[:, 18:] == 255).all()
    # a format without alpha is refused for such a picture, nothing written
    rc, lines = run(capsys, src, "-o", tmp_path / "flat.jpg")
    assert rc == 2 and "has an alpha channel and .jpg files have none" in error_line(lines)
    assert not (tmp_path / "flat.jpg").exists()


def test_grey_stays_grey(tmp_path, capsys):
    # was: grey in, RGB out
    grey = picture()[:, :, 1]
    write_image(tmp_path / "g.png", grey)
    write_image(tmp_path / "ga.png", grey, np.full_like(grey, 128))
    rc, _ = run(capsys, tmp_path / "g.png", tmp_path / "ga.png")
    assert rc == 0
    g, ga = read_picture(tmp_path / "g_x2.png"), read_picture(tmp_path / "ga_x2.png")
    assert g.gray and g.alpha is None and ga.gray and (ga.alpha == 128).all()


def test_several_files_a_folder_and_one_bad_file(tmp_path, capsys):
    shots = tmp_path / "shots"
    shots.mkdir()
    write_image(shots / "a.png", picture())
    write_image(shots / "b.jpg", picture(10, 12))
    (shots / "notes.txt").write_text("not a picture, not taken")
    (tmp_path / "fake.png").write_text("not a picture either")
    rc, lines = run(capsys, shots, tmp_path / "fake.png", "--output-dir", tmp_path / "big", "--format", "webp")
    assert rc == 2
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["a_x2.webp", "b_x2.webp"]
    assert any("fake.png: not an image FFmpeg can decode" in ln for ln in lines)
    assert lines[-1] == "error: 1 of 3 pictures could not be upscaled (said above); the others were"
    # a folder alone goes to <folder>_x2
    rc, _ = run(capsys, shots)
    assert rc == 0 and sorted(p.name for p in (tmp_path / "shots_x2").iterdir()) == ["a_x2.png", "b_x2.png"]
    # -o names one file
    rc, lines = run(capsys, shots, "-o", tmp_path / "x.png")
    assert rc == 2 and "--output-dir" in error_line(lines)


def test_an_existing_output_is_replaced_only_with_y(tmp_path, capsys):
    src = write_image(tmp_path / "in.png", picture())
    (tmp_path / "in_x2.png").write_bytes(b"mine")
    rc, lines = run(capsys, src)
    assert rc == 2 and error_line(lines).endswith("in_x2.png exists: add -y/--overwrite to replace it")
    assert (tmp_path / "in_x2.png").read_bytes() == b"mine"
    rc, _ = run(capsys, src, "-y")
    assert rc == 0 and read_picture(tmp_path / "in_x2.png").rgb.shape == (24, 32, 3)


def test_a_file_that_is_not_a_picture_is_one_line(tmp_path, capsys):
    # was: [Errno 1094995529] ... 'avcodec_send_packet()'
    fake = tmp_path / "fake.png"
    fake.write_text("hello, not a PNG")
    rc, lines = run(capsys, fake)
    assert rc == 2 and lines == [f"error: {fake}: not an image FFmpeg can decode "
                                 f"(invalid data found when processing input)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png"]
