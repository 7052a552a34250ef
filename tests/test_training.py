"""Training pieces: the image pack, the time-budget schedule, and a real (short) train.py run."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from dlgsa_vs.arch import build_model
from dlgsa_vs.image.imageio import write_png
from dlgsa_vs.train.loop import (TrainingImage, load_image_pack, load_training_images, pixel_digest,
                               save_image_pack)
from dlgsa_vs.runtime.weights import load_model

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from train import budget_lr  # noqa: E402


def images(n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = rng.integers(40, 90, size=2)
        # smooth content plus noise and the extreme values, so every byte value path is used
        y, x = np.mgrid[0:h, 0:w]
        base = (127 + 120 * np.sin(x / 7.0 + i) * np.cos(y / 5.0))[..., None] + rng.normal(0, 20, (h, w, 3))
        px = np.clip(base, 0, 255).astype(np.uint8)
        px[0, 0], px[-1, -1] = 0, 255
        out.append(TrainingImage(f"set/{i:02d}.png", pixel_digest(px), px))
    return out


def test_image_pack_round_trip_is_exact_and_smaller(tmp_path):
    ims = images()
    path = save_image_pack(tmp_path / "p.npz", ims)
    back = load_image_pack(path)
    assert [b.label for b in back] == [a.label for a in ims]
    for a, b in zip(ims, back):
        assert b.pixels.dtype == np.uint8 and np.array_equal(a.pixels, b.pixels) and a.digest == b.digest
    assert path.stat().st_size < sum(im.pixels.nbytes for im in ims)
    assert not list(tmp_path.glob(".*part"))


def test_folder_and_pack_give_the_same_images(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    ims = images(3)
    for im in ims:
        write_png(folder / Path(im.label).name, im.pixels)
    from_folder = load_training_images([folder])
    from_pack = load_training_images([save_image_pack(tmp_path / "p.npz", from_folder)])
    assert [(i.label, i.digest) for i in from_folder] == [(i.label, i.digest) for i in ims]
    assert [(i.label, i.digest) for i in from_pack] == [(i.label, i.digest) for i in ims]


def test_budget_schedule_warms_up_then_decays_to_zero():
    args = Namespace(lr=1e-3, warmup=10, minutes=1.0)
    assert budget_lr(args, 0, 0) == pytest.approx(1e-4)
    assert budget_lr(args, 9, 0) == pytest.approx(1e-3)
    assert budget_lr(args, 100, 30) == pytest.approx(0.5e-3)
    assert budget_lr(args, 100, 60) == pytest.approx(0.0, abs=1e-12)
    assert budget_lr(args, 100, 90) == pytest.approx(0.0, abs=1e-12)  # past the budget: stays 0
    assert math.isclose(budget_lr(Namespace(lr=1e-3, warmup=0, minutes=2.0), 0, 0), 1e-3)


def test_train_script_runs_a_time_budget_and_resumes(tmp_path):
    pack = save_image_pack(tmp_path / "p.npz", images(6, seed=1))
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny", "--scale", "2",
           "--data", str(pack), "--val-count", "2", "--val-crop", "32", "--batch", "2", "--patch", "16",
           "--minutes", "0.05", "--warmup", "2", "--ckpt-every", "5", "--val-every", "5", "--threads", "1",
           "--quiet", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    val = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert val and all(np.isfinite(v["psnr_y"]) for v in val)
    config = json.loads((out / "config.json").read_text())
    assert len(config["train_images"]) == 4 and len(config["val_images"]) == 2
    assert config["train_images"][0].startswith("set/00.png ")
    model = load_model(out / "ema.safetensors")  # a loadable, shippable file
    assert model.upscale == 2
    done = val[-1]["iteration"]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # resumes from last.pt
    assert second.returncode == 0, second.stderr
    val2 = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert val2[-1]["iteration"] > done


def test_train_script_saves_on_ctrl_c_and_continues_the_same_budget(tmp_path):
    """Ctrl-C saves and exits 130; the same command then finishes the *same* time budget
    (its cosine schedule goes on), and running it once more adds a new stage."""
    pack = save_image_pack(tmp_path / "p.npz", images(6, seed=2))
    out = tmp_path / "run"
    budget_s = 15
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny", "--scale", "2",
           "--data", str(pack), "--val-count", "2", "--val-crop", "32", "--batch", "2", "--patch", "16",
           "--minutes", str(budget_s / 60), "--warmup", "2", "--ckpt-every", "5", "--val-every", "1000",
           "--threads", "1", "--out", str(out)]
    ckpt = out / "last.pt"

    def state():
        return torch.load(ckpt, map_location="cpu", weights_only=True)

    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ckpt.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGINT, err
    assert "interrupted at iteration" in err
    first = state()
    assert first["wall_seconds"] < budget_s and tuple(first["budget_stage"]) == (0.0, 0)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "continuing the time budget" in again.stderr
    second = state()
    assert second["iteration"] > first["iteration"]
    assert tuple(second["budget_stage"]) == (0.0, 0)  # the same stage, no fresh warm-up
    assert budget_s <= second["wall_seconds"] < budget_s + 5  # the budget counted once, not twice

    # A finished stage is not re-opened by a larger --minutes: a new stage starts.
    longer_s = budget_s + 5
    extend = subprocess.run(cmd[:cmd.index("--minutes") + 1] + [str(longer_s / 60)]
                            + cmd[cmd.index("--minutes") + 2:], capture_output=True, text=True, timeout=300)
    assert extend.returncode == 0, extend.stderr
    assert "continuing the time budget" not in extend.stderr
    third = state()
    assert tuple(third["budget_stage"]) == (second["wall_seconds"], second["iteration"])
    assert third["wall_seconds"] >= second["wall_seconds"] + longer_s


def test_train_script_loss_option_trains_on_that_loss(tmp_path):
    """--loss mse: with the learning rate 0 the model stays the initial one, so both runs log
    their loss of the same network on the same batch; in [0, 1], L1^2 <= MSE <= L1 (Jensen,
    and e^2 <= |e|), and they differ."""
    pack = save_image_pack(tmp_path / "p.npz", images(6, seed=3))
    logged = {}
    for loss in ("l1", "mse"):
        out = tmp_path / loss
        run = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny",
                              "--scale", "2", "--data", str(pack), "--val-count", "1", "--val-crop", "32",
                              "--batch", "2", "--patch", "16", "--iters", "20", "--lr", "0", "--loss", loss,
                              "--ckpt-every", "20", "--val-every", "1000", "--threads", "1", "--quiet",
                              "--out", str(out)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        logged[loss] = json.loads((out / "train.jsonl").read_text().splitlines()[-1])["loss"]
        assert json.loads((out / "config.json").read_text())["loss"] == loss
    assert logged["l1"] ** 2 <= logged["mse"] < logged["l1"]


def test_train_script_names_images_too_small_for_the_patches(tmp_path):
    """Images smaller than the patches or the validation crops: one error line naming the option
    to change, before any training (the images here are 40-89 px, LR 20-44 px at x2)."""
    pack = save_image_pack(tmp_path / "p.npz", images(6, seed=3))
    base = [sys.executable, str(REPO / "scripts" / "train.py"), "--variant", "tiny", "--scale", "2",
            "--data", str(pack), "--val-count", "1", "--iters", "1", "--threads", "1", "--quiet"]
    for extra, says in ((["--patch", "48", "--val-crop", "32"], "smaller --patch"),
                        (["--patch", "16", "--val-crop", "192"], "smaller --val-crop")):
        out = tmp_path / says.split()[-1].strip("-")
        run = subprocess.run(base + extra + ["--out", str(out)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], run.stderr
        assert "large enough" in lines[0] and not (out / "ema.safetensors").exists()


@pytest.mark.skipif(os.environ.get("DLGSA_SLOW_TESTS") != "1",
                    reason="slow: compiling a training step takes ~12 min on 2 cores; DLGSA_SLOW_TESTS=1 runs it")
def test_compiled_training_step_matches_eager():
    """train.py --compile: the compiled network (functional dynamic conv, inductor) gives the
    eager loss and gradients of one training step."""
    torch.manual_seed(0)
    model = build_model("tiny", 2).train()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)
    results = []
    for forward in (model, torch.compile(model)):
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(forward(x), y)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    for a, b in zip(eager_grads, compiled_grads):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-6)
