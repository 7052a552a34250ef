#!/usr/bin/env python
"""Train DLGSANet from folders of HR images (LR made with MATLAB-compatible bicubic) or a pack.

    python scripts/train.py --variant light --scale 2 --iters 20000 --out runs/light_x2
    python scripts/train.py --out runs/light_x2            # resumes from runs/light_x2/last.pt
    python scripts/train.py --scale 4 --init runs/light_x2/ema.safetensors --out runs/light_x4
    python scripts/train.py --data pack.npz --minutes 6 --init ... --out runs/gpu_x2   # time budget
    python scripts/train.py --data .gpu/degrade_pack_x2_x4.npz --init dlgsa_vs/models/dlgsanet_light_x2.safetensors \
        --lr 2e-4 --minutes 45 --out runs/video_x2        # compressed-video LR (a degradation pack)

A degradation pack (``make_train_pack.py --degrade``) brings its own LR for each image: the
bicubic LR passed through a real encoder (or left clean, for a share), in one or more draws
(``--draws``: each patch takes one at random); the target stays the clean HR, and the
held-aside images are validated on their (first) degraded LR too.

L1 loss (``--loss mse`` for the squared error), Adam (lr 5e-4, betas 0.9/0.99), step schedule (halving at the given fractions of
the run) or, with ``--minutes``, a cosine decay over a wall-clock budget (for a lent GPU whose
speed is not known in advance); EMA of the weights (0.999). Every ``--ckpt-every`` iterations: ``last.pt`` (the
resumable state) and ``ema.safetensors`` (the weights to ship); every ``--val-every``:
Y-PSNR of the EMA model on held-aside images, appended to ``val.jsonl``. ``config.json``
records the arguments and the exact files trained on (with checksums).

Ctrl-C (or SIGTERM) finishes the current step, saves ``last.pt`` and exits with 130 (143); the
same command resumes. A ``--minutes`` run that was interrupted goes on with its own budget and
schedule; one that had finished is extended by a new budget (warm-up and cosine from there).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
try:  # the progress bar only: a lent GPU machine may have torch and numpy and nothing else
    from tqdm import tqdm
except ImportError:
    tqdm = None


class NoProgressBar:
    """Where tqdm is not installed: no bar (train.jsonl and the validation lines still log)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass

from dlgsa_vs.arch import build_model
from dlgsa_vs.train.metrics import psnr_y
from dlgsa_vs.train.loop import (EMA, PairedPatches, degradation_pack_config, load_checkpoint,
                               load_training_images, read_degradation_pack, save_checkpoint)
from dlgsa_vs.runtime.weights import read_state_dict, save_safetensors

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"
LOSSES = {"l1": torch.nn.functional.l1_loss, "mse": torch.nn.functional.mse_loss}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="light", choices=["tiny", "light", "full"])
    ap.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    ap.add_argument("--data", nargs="+", default=[str(DATA / "T91"), str(DATA / "BSD200")],
                    help="folders of HR training images and/or image packs (.npz, "
                         "scripts/make_train_pack.py), or one degradation pack (--degrade) "
                         "(default: ../shared/data/train/{T91,BSD200})")
    ap.add_argument("--val-count", type=int, default=8,
                    help="hold the last N training images aside for validation (default 8)")
    ap.add_argument("--val-crop", type=int, default=192, help="HR centre crop for validation")
    ap.add_argument("--out", required=True, help="run folder: checkpoints, logs, config")
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="LR patch side (authors: 48)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--milestones", type=float, nargs="*", default=[0.5, 0.8, 0.9, 0.95],
                    help="fractions of --iters where the learning rate halves (authors' 250k/400k/"
                         "450k/475k of 500k)")
    ap.add_argument("--minutes", type=float,
                    help="train for this many minutes of wall-clock time with a cosine learning-rate "
                         "decay over them (instead of --iters and --milestones)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="with --minutes: linear learning-rate warm-up over this many iterations "
                         "(for a fresh optimizer on --init weights)")
    ap.add_argument("--loss", default="l1", choices=sorted(LOSSES),
                    help="pixel loss against the HR patch: l1 (default, the authors'), or mse (what "
                         "PSNR measures: the mean, not the median, of what the LR allows)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--reset-ema", action="store_true",
                    help="on resume, restart the EMA from the current weights (with its warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="warm start from weights (e.g. a trained x2 model for x4): "
                                   "every tensor whose shape matches is copied, the upsampler is not")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the training step's network (fuses the dynamic convolution's "
                         "shifted sums: meant for GPUs; on a small CPU the eager step is faster)")
    ap.add_argument("--kernels", default="auto", choices=["auto", "triton", "torch"],
                    help="the network's fused Triton kernels (forward and backward) or its torch forms; auto "
                         "(default): triton on a CUDA GPU where triton imports")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def read_data(sources: list[str], scale: int):
    """(HR images, their LR or None for bicubic, the degradation pack's settings or None)."""
    packs = [s for s in sources if degradation_pack_config(s) is not None]
    if not packs:
        return load_training_images(sources), None, None
    if len(sources) > 1:
        sys.exit(f"error: {packs[0]} is a degradation pack, which brings its own LR: pass it alone "
                 f"as --data")
    try:
        config, images, lrs = read_degradation_pack(packs[0], scale)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    order = sorted(range(len(images)), key=lambda i: images[i].label)  # as folders are read
    return [images[i] for i in order], [lrs[i] for i in order], config


def make_scheduler(optimizer, args):
    milestones = sorted(int(f * args.iters) for f in args.milestones)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.5)


def budget_lr(args, iteration: int, seconds: float) -> float:
    """``--minutes`` schedule: linear warm-up, then cosine from --lr to 0 over the time budget."""
    warm = min(1.0, (iteration + 1) / args.warmup) if args.warmup else 1.0
    done = min(1.0, seconds / (60 * args.minutes))
    return args.lr * warm * 0.5 * (1 + math.cos(math.pi * done))


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: PairedPatches, crop: int, device: str) -> float:
    """Mean Y-PSNR (crop border = scale) over centre crops of the held-aside images (their
    first LR draw: the same input whatever the pack's number of draws)."""
    s = pairs.scale
    p = crop // s
    scores = []
    for draws, hr in zip(pairs.lr, pairs.hr):
        lr = draws[0]
        y0, x0 = max((lr.shape[0] - p) // 2, 0), max((lr.shape[1] - p) // 2, 0)
        lr_c = lr[y0:y0 + p, x0:x0 + p]
        hr_c = hr[y0 * s:(y0 + p) * s, x0 * s:(x0 + p) * s]
        x = torch.from_numpy(np.ascontiguousarray(lr_c)).permute(2, 0, 1)[None].float().div(255).to(device)
        sr = model(x).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
        scores.append(psnr_y(sr, hr_c, crop_border=s))
    return float(np.mean(scores))


def warm_start(model: torch.nn.Module, path: str) -> int:
    state, _ = read_state_dict(path)
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return len(take)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))

    t0 = time.time()
    images, lrs, degraded = read_data(args.data, args.scale)
    cut = len(images) - args.val_count
    try:
        train = PairedPatches(images[:cut], args.scale, args.patch, lrs and lrs[:cut])
    except ValueError as exc:
        sys.exit(f"error: training images: {exc}; pass larger images or a smaller --patch")
    try:
        val = PairedPatches(images[cut:], args.scale, args.val_crop // args.scale,
                            lrs and lrs[cut:]) if images[cut:] else None
    except ValueError as exc:
        sys.exit(f"error: validation images (the last {args.val_count} of --data): {exc}; "
                 f"pass a smaller --val-crop or --val-count 0")
    log(f"data: {len(train)} training images, {len(val) if val else 0} for validation "
        f"({'degraded LR from the pack' if degraded else 'bicubic LR'}; read in {time.time() - t0:.0f} s)")

    torch.manual_seed(args.seed)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # the 1x1 convolutions dominate; TF32 is
        torch.backends.cudnn.allow_tf32 = True        # ample for an L1-trained SR network
    model = build_model(args.variant, args.scale).to(args.device).train().set_kernels(args.kernels)
    if not args.quiet:
        print(f"kernels {args.kernels} -> {model.kernels} ({model.kernels_reason})", file=sys.stderr)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99),
                                 **({"fused": True} if cuda else {}))
    scheduler = make_scheduler(optimizer, args)
    ema = EMA(model, args.ema)
    start, wall, ema_start = 0, 0.0, 0
    stage = None  # (wall seconds, iteration) where the current --minutes budget began
    stage_budget = 0.0  # seconds: the budget of the run that wrote the checkpoint (its --minutes)

    ckpt = out / "last.pt"
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, wall = state["iteration"], state.get("wall_seconds", 0.0)
        ema_start = state.get("ema_start", 0)
        stage = state.get("budget_stage")
        stage_budget = 60 * (state["args"].get("minutes") or 0)
        log(f"resumed from {ckpt} at iteration {start}")
        if args.reset_ema:
            ema.model.load_state_dict(model.state_dict())
            ema_start = start
            log("EMA restarted from the current weights")
    elif args.init:
        n = warm_start(model, args.init)
        ema.model.load_state_dict(model.state_dict())
        log(f"warm start: {n} tensors from {args.init}")

    config = dict(vars(args), lr_inputs=degraded and {"pack": degraded["degrade"], "draws": degraded["draws"],
                                           "drawn": degraded["drawn"]},
                  train_images=[f"{im.label} {im.digest}" for im in train.images],
                  val_images=[f"{im.label} {im.digest}" for im in (val.images if val else [])],
                  torch=torch.__version__, machine=platform.platform(), cpu_count=os.cpu_count(),
                  gpu=torch.cuda.get_device_name(args.device) if cuda else None)
    (out / "config.json").write_text(json.dumps(config, indent=1))

    forward = torch.compile(model) if args.compile else model  # shares the parameters
    pixel_loss = LOSSES[args.loss]

    def checkpoint(iteration: int) -> None:
        save_checkpoint(ckpt, model=model.state_dict(), ema=ema.model.state_dict(),
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        iteration=iteration, wall_seconds=wall, ema_start=ema_start, args=vars(args),
                        budget_stage=stage)
        save_safetensors(ema.model, out / "ema.safetensors", iterations=str(iteration),
                         training_data="+".join(Path(d).name for d in args.data),
                         wall_seconds=f"{wall:.0f}", device=args.device)

    budget = 60 * args.minutes if args.minutes else None

    def seconds_left() -> float:
        """Of the current --minutes budget."""
        return budget - (wall - stage[0])

    if budget is not None:
        # An interrupted stage continues its schedule (re-sized to this --minutes); a stage that
        # ran its own budget out (or an --iters run, or a --minutes already spent) is extended
        # by a new stage: warm-up and cosine again from here. The checkpoint's own --minutes decides:
        # a larger --minutes on a finished stage must not re-open it half-way down its cosine.
        if stage is None or wall - stage[0] >= min(stage_budget, budget):
            stage = (wall, start)
        else:
            log(f"continuing the time budget: {seconds_left() / 60:.1f} of {args.minutes:g} minutes left")

    def finished(done: int) -> bool:
        return seconds_left() <= 0 if budget is not None else done >= args.iters

    stop = []  # Ctrl-C / SIGTERM: finish the step, save, exit (a second Ctrl-C aborts at once)

    def request_stop(signum, frame):
        if stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.append(signum)
        log("\nstopping after this step (the checkpoint is saved; run the same command to resume)")

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = (tqdm(total=None if budget else args.iters, initial=start, disable=args.quiet,
                dynamic_ncols=True, desc=f"{args.variant} x{args.scale}") if tqdm is not None else NoProgressBar())
    loss_log = open(out / "train.jsonl", "a")
    tick = time.time()
    done = start
    while not (finished(done) or stop):
        it = done
        if budget is not None:
            for group in optimizer.param_groups:
                group["lr"] = budget_lr(args, it - stage[1], wall - stage[0])
        lr_img, hr_img = train.batch(args.seed, it, args.batch, args.patch)
        if cuda:  # pinned memory: the copies queue behind the GPU's work instead of waiting for it
            lr_img = lr_img.pin_memory().to(args.device, non_blocking=True)
            hr_img = hr_img.pin_memory().to(args.device, non_blocking=True)
        else:  # channels-last input: ~10% faster steps on the CPU (measured, bench/README.md)
            lr_img = lr_img.contiguous(memory_format=torch.channels_last)
        loss = pixel_loss(forward(lr_img), hr_img)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if budget is None:
            scheduler.step()
        ema.update(model, it - ema_start)
        now = time.time()
        wall += now - tick
        tick = now
        done = it + 1
        bar.update()
        if done % 20 == 0:  # .item() waits for the GPU: not on every step
            lr = optimizer.param_groups[0]["lr"]
            eta = {} if budget is None else {"left": f"{max(0.0, seconds_left()) / 60:.1f}min"}
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}", **eta)
            loss_log.write(json.dumps(dict(iteration=done, loss=loss.item(), lr=lr,
                                           wall_seconds=round(wall, 1))) + "\n")
            loss_log.flush()
        last = finished(done) or bool(stop)
        if done % args.ckpt_every == 0 or last:
            checkpoint(done)
        if val is not None and (done % args.val_every == 0 or (last and not stop)):
            ema.model.eval()
            score = validate(ema.model, val, args.val_crop, args.device)
            with open(out / "val.jsonl", "a") as fh:
                fh.write(json.dumps(dict(iteration=done, psnr_y=round(score, 3), wall_seconds=round(wall, 1))) + "\n")
            log(f"\niteration {done}: validation Y-PSNR {score:.3f} dB (EMA)")
            tick = time.time()  # validation time is not training time
    loss_log.close()
    bar.close()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if stop:
        log(f"interrupted at iteration {done}, {wall:.0f} s of training; saved {ckpt}")
        return 128 + stop[0]
    log(f"stopped at iteration {done}, {wall:.0f} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
