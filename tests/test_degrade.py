"""Compressed-input degradations (dlgsa_vs.train.degrade) through real encoders with PyAV, and the
scripts that use them (eval_sr.py --degrade, make_train_pack.py --degrade). Tiny images."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlgsa_vs.train.degrade import (ENCODERS, Degradation, DegradeConfig, degrade_image, degrade_images,
                              parse_spec, roundtrip)
from dlgsa_vs.train.metrics import psnr_y

REPO = Path(__file__).resolve().parents[1]


def _image(h=40, w=52, seed=0):
    """Smooth gradients plus texture and an edge: something an encoder has to work on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 200 + 20, y / h * 180 + 30, (x + y) / (h + w) * 150 + 50], -1)
    base[:, w // 2:] += 40
    img = base + rng.normal(0, 18, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_roundtrip_changes_image_keeps_size(encoder):
    img = _image(37, 45)  # odd sizes: padded for 4:2:0 and cropped back
    out = degrade_image(img, Degradation(encoder, 45))
    assert out.shape == img.shape and out.dtype == np.uint8
    p = psnr_y(out, img, 0)
    assert np.isfinite(p) and 15 < p < 40, p
    inter = degrade_image(img, Degradation(encoder, 45, frames=4, target=2, max_shift=2),
                          np.random.default_rng(3))
    assert inter.shape == img.shape and inter.dtype == np.uint8
    q = psnr_y(inter, img, 0)
    assert np.isfinite(q) and 15 < q < 40, q
    assert not np.array_equal(inter, out)


def test_low_crf_is_closer_than_high_crf():
    img = _image()
    hi = psnr_y(degrade_image(img, Degradation("libx264", 15)), img, 0)
    lo = psnr_y(degrade_image(img, Degradation("libx264", 40)), img, 0)
    assert hi > lo + 3, (hi, lo)


def test_sequence_has_inter_frames():
    """A sequence is encoded as one stream: its later frames differ from an intra encode."""
    img = _image()
    frames = [np.roll(img, k, axis=1) for k in range(4)]
    seq = roundtrip(frames, "libx264", 30)
    assert len(seq) == 4 and all(f.shape == img.shape for f in seq)
    alone = roundtrip([frames[2]], "libx264", 30)[0]
    assert not np.array_equal(seq[2], alone)


def test_deterministic_from_seed_and_clean_share_bit_identical():
    imgs = [_image(seed=i) for i in range(8)]
    cfg = DegradeConfig(seed=7, clean_share=0.4, frames=3)
    a, da = degrade_images(imgs, cfg)
    b, db = degrade_images(imgs, cfg)
    assert da == db and all(np.array_equal(x, y) for x, y in zip(a, b))
    c, dc = degrade_images(imgs, DegradeConfig(seed=8, clean_share=0.4, frames=3))
    assert dc != da
    clean = [i for i, d in enumerate(da) if d.encoder is None]
    dirty = [i for i, d in enumerate(da) if d.encoder is not None]
    assert clean and dirty, da
    for i in clean:
        assert np.array_equal(a[i], imgs[i]) and a[i] is not imgs[i]
    for i in dirty:
        assert a[i].shape == imgs[i].shape and not np.array_equal(a[i], imgs[i])
    # one image's draw does not depend on the others
    one, d1 = degrade_images(imgs[5:6], cfg, start=5)
    assert d1[0] == da[5] and np.array_equal(one[0], a[5])
    all_clean, _ = degrade_images(imgs[:2], DegradeConfig(clean_share=1.0))
    assert all(np.array_equal(x, y) for x, y in zip(all_clean, imgs[:2]))


def test_parse_spec():
    assert parse_spec("libx264:30") == ("libx264", 30)
    assert parse_spec("x265:23") == ("libx265", 23)
    assert parse_spec("svtav1:30") == ("libsvtav1", 30)
    for bad in ("libx264", "foo:3", "libx264:abc", "libx264:99"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def _bench(tmp_path, scale=2, n=2):
    from dlgsa_vs.image.imageio import write_png
    from dlgsa_vs.image.imresize import bicubic_downscale

    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for i in range(n):
        hr = _image(64 + 8 * i, 72, seed=10 + i)
        write_png(hr_dir / f"im{i}.png", hr)
        write_png(lr_dir / f"im{i}x{scale}.png", bicubic_downscale(hr, scale))
    return hr_dir, lr_dir


def test_eval_sr_degrade(tmp_path):
    hr_dir, lr_dir = _bench(tmp_path)
    out = tmp_path / "res.json"
    base = [sys.executable, str(REPO / "scripts" / "eval_sr.py"), "--hr", str(hr_dir), "--lr", str(lr_dir),
            "--scale", "2"]
    cmd = base + ["--degrade", "clean", "--degrade", "libx264:35", "--degrade", "svtav1:30",
                  "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "libx264:35" in r.stdout and "means" in r.stdout
    res = json.loads(out.read_text())["results"]
    assert [x["degradation"]["spec"] for x in res] == ["clean", "libx264:35", "svtav1:30"]
    assert res[1]["degradation"]["encoder"] == "libx264" and res[2]["degradation"]["encoder"] == "libsvtav1"
    clean, x264 = res[0]["mean"], res[1]["mean"]
    assert res[0]["model_info"]["model"] == "packaged" and clean["model"] is not None
    # compressed input is worse for bicubic and for the bicubic-trained network, against the clean HR
    assert x264["bicubic"]["psnr"] < clean["bicubic"]["psnr"] - 0.5
    assert x264["model"]["psnr"] < clean["model"]["psnr"] - 0.5
    # the clean row is today's evaluation
    from dlgsa_vs.train.evaluate import evaluate

    today = evaluate(hr_dir, 2, None, lr_dir=lr_dir)
    assert abs(today["mean"]["bicubic"]["psnr"] - clean["bicubic"]["psnr"]) < 1e-9
    # inter mode: measured frame is a P/B frame, deterministic from its seed
    runs = []
    for _ in range(2):
        r = subprocess.run(base + ["--model", "bicubic", "--degrade", "libx265:33", "--degrade-frames", "3",
                                       "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(out.read_text()))
    assert runs[0]["degradation"]["frames"] == 3 and runs[0]["degradation"]["measured_frame"] == 1
    assert runs[0]["mean"] == runs[1]["mean"]
    bad = subprocess.run(base + ["--model", "bicubic", "--degrade", "libfoo:3"], capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 2 and "ENCODER:CRF" in bad.stderr


def test_make_train_pack_degrade(tmp_path):
    from dlgsa_vs.image.imageio import write_png
    from dlgsa_vs.image.imresize import bicubic_downscale, modcrop
    from dlgsa_vs.train.loop import load_image_pack, read_degradation_pack

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(5):
        write_png(src / f"a{i}.png", _image(66 + 4 * i, 70, seed=20 + i))
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_train_pack
    finally:
        sys.path.remove(str(REPO / "scripts"))
    packs = []
    for name in ("p1.npz", "p2.npz"):
        out = tmp_path / name
        assert make_train_pack.main([str(src), "-o", str(out), "--degrade", "--scale", "2", "--scale", "4",
                                     "--seed", "3", "--clean-share", "0.3"]) == 0
        packs.append(out)
    # the HR part is a plain image pack
    hrs = load_image_pack(packs[0])
    assert [im.label for im in hrs] == [f"imgs/a{i}.png" for i in range(5)]
    for scale in (2, 4):
        cfg, images, lrs = read_degradation_pack(packs[0], scale)
        cfg2, _, lrs2 = read_degradation_pack(packs[1], scale)
        assert cfg == cfg2 and cfg["degrade"]["seed"] == 3 and cfg["scales"] == [2, 4]
        assert cfg["degrade"]["clean_share"] == 0.3 and len(cfg["images"]) == 5

        n_clean = 0
        assert all(len(draws) == 1 for draws in lrs)  # one draw unless asked
        for image, (lr,), (lr2,) in zip(images, lrs, lrs2):
            label, hr = image.label, modcrop(image.pixels, scale)
            assert np.array_equal(lr, lr2), label  # deterministic from the seed
            assert lr.dtype == np.uint8 and lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
            assert hr.shape[0] % scale == 0 and hr.shape[1] % scale == 0
            clean = bicubic_downscale(hr, scale)
            n_clean += np.array_equal(lr, clean)
        with np.load(packs[0]) as pack:
            kinds = [str(x) for x in pack[f"lr_x{scale}_degradations"]]
        assert n_clean == kinds.count("clean")
        assert any(k.startswith("lib") for k in kinds), kinds
    with pytest.raises(ValueError, match="no x3 LR in this pack"):
        read_degradation_pack(packs[0], 3)


def test_an_interrupted_degradation_pack_leaves_nothing(tmp_path):
    """Ctrl-C while the LR are encoded (the long part): no file at the output path, not even
    the HR part, and no temporary left (an earlier version wrote the HR pack there first)."""
    from dlgsa_vs.image.imageio import write_png

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        write_png(src / f"a{i}.png", _image(66, 70, seed=40 + i))
    out = tmp_path / "pack.npz"
    code = ("import sys, dlgsa_vs.train.degrade as d\n"
            "real = d.degrade_images\n"
            "def interrupt_after_one(lrs, config, start=0, draw=0):\n"
            "    real(lrs[:1], config, start=start, draw=draw)  # the real encoders run, then Ctrl-C arrives\n"
            "    raise KeyboardInterrupt\n"
            "d.degrade_images = interrupt_after_one\n"
            f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
            "import make_train_pack\n"
            f"make_train_pack.main([{str(src)!r}, '-o', {str(out)!r}, '--degrade', '--scale', '2'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0 and "KeyboardInterrupt" in r.stderr, r.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


def test_train_script_learns_from_the_degraded_lr(tmp_path):
    """train.py on a degradation pack: the patches come from the pack's LR (not a fresh
    bicubic one), the run records the pack's settings, and a pack mixed with more data is refused."""
    from dlgsa_vs.image.imageio import write_png
    from dlgsa_vs.image.imresize import bicubic_downscale, modcrop
    from dlgsa_vs.train.loop import PairedPatches, read_degradation_pack

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(5):
        write_png(src / f"b{i}.png", _image(72, 76 + 4 * i, seed=40 + i))
    pack = tmp_path / "deg.npz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_train_pack.py"), str(src), "-o", str(pack),
                    "--degrade", "--scale", "2", "--clean-share", "0"], check=True, capture_output=True)
    _, images, lrs = read_degradation_pack(pack, 2)
    pairs = PairedPatches(images, 2, 16, lrs)
    for image, (lr,) in zip(images, pairs.lr):
        assert not np.array_equal(lr, bicubic_downscale(modcrop(image.pixels, 2), 2)), image.label
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs.lr, lrs))

    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny", "--scale", "2",
           "--data", str(pack), "--val-count", "1", "--val-crop", "32", "--batch", "2", "--patch", "16",
           "--iters", "3", "--ckpt-every", "3", "--val-every", "3", "--threads", "1", "--quiet",
           "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["lr_inputs"]["pack"]["clean_share"] == 0
    assert sum(v for k, v in config["lr_inputs"]["drawn"]["2"].items() if k != "inter") == 5
    assert len(config["train_images"]) == 4 and (out / "ema.safetensors").exists()

    mixed = subprocess.run(cmd[:7] + [str(pack), str(src)] + cmd[8:-1] + [str(tmp_path / "run2")],
                           capture_output=True, text=True, timeout=300)
    assert mixed.returncode == 1 and "is a degradation pack, which brings its own LR" in mixed.stderr
    wrong = subprocess.run([*cmd[:5], "4", *cmd[6:-1], str(tmp_path / "run3")], capture_output=True,
                           text=True, timeout=300)
    assert wrong.returncode == 1 and "no x4 LR in this pack" in wrong.stderr, wrong.stderr


def test_a_pack_of_several_draws(tmp_path):
    """make_train_pack.py --draws 2: the first draw is the 1-draw pack's (same seed), the second
    its own; PairedPatches' patches take both; train.py trains on it and records the draws."""
    from dlgsa_vs.image.imageio import write_png
    from dlgsa_vs.train.loop import PairedPatches, read_degradation_pack

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(4):
        write_png(src / f"c{i}.png", _image(64, 68 + 4 * i, seed=60 + i))
    make = [sys.executable, str(REPO / "scripts" / "make_train_pack.py"), str(src), "--degrade", "--scale", "2",
            "--clean-share", "0", "--seed", "5", "--encoders", "libx264", "-o"]
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    subprocess.run(make + [str(one)], check=True, capture_output=True)
    made = subprocess.run(make + [str(two), "--draws", "2"], check=True, capture_output=True, text=True)
    assert '"libx264": 8' in made.stdout  # both draws counted
    cfg, images, lrs = read_degradation_pack(two, 2)
    _, _, lrs_one = read_degradation_pack(one, 2)
    assert cfg["draws"] == 2 and [len(d) for d in lrs] == [2] * 4
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(lrs, lrs_one))  # the first draw: unchanged
    assert any(not np.array_equal(a, b) for a, b in lrs)  # the second: a draw of its own (CRF, frames)
    with np.load(two) as pack:
        assert len(pack["lr_x2_draw1_degradations"]) == 4

    # patches take either draw: two distinguishable "draws" (all black, all white) of one image
    black, white = (np.full(lrs[0][0].shape, v, np.uint8) for v in (0, 255))
    pairs = PairedPatches(images[:1], 2, 8, [[black, white]])
    means = pairs.batch(0, 0, 32, 8)[0].mean(dim=(1, 2, 3))
    assert set(means.tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="is not the HR"):
        PairedPatches(images[:1], 2, 8, [[black, black[1:]]])

    out = tmp_path / "run"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny", "--scale", "2",
                          "--data", str(two), "--val-count", "1", "--val-crop", "32", "--batch", "2", "--patch",
                          "16", "--iters", "2", "--ckpt-every", "2", "--val-every", "2", "--threads", "1",
                          "--quiet", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((out / "config.json").read_text())["lr_inputs"]["draws"] == 2
    bad = subprocess.run(make + [str(tmp_path / "bad.npz"), "--draws", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--draws 0: give 1 or more" in bad.stderr
