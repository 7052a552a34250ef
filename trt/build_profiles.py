#!/usr/bin/env python3
"""Build and verify the TensorRT engines of a list of shape profiles into the engine cache.

Run on the GPU machine that will upscale, with dlgsa-vs[trt] installed. For each profile of
dlgsa_vs/runtime/trt/profiles.toml (``dlgsa-build-engine --list-profiles``) it builds the static
engine the trt backend asks for (``--dynamic``: the profile's min/opt/max engine as well),
exactly as ``dlgsa-build-engine --profile NAME`` does with the same options, then runs random
frames through each engine and through PyTorch (fp32) on the same GPU and checks the largest
difference against the precision's limit (fp16 2e-2, bf16 1e-1, fp32 2e-2: TensorRT may use
TF32), at the static size, or at min, opt and max of a dynamic engine.

    python trt/build_profiles.py 720p 1080p                  # packaged light x2, fp16, batch 1
    python trt/build_profiles.py --all --dynamic -m net_g.pth --precision bf16
    python trt/build_profiles.py 1080p --tile 512 512 --cache-dir /data/engines

Prints a table (profile, engine, LR size, result, detail) and exits 0 when every engine was
built and verified, 1 otherwise, 2 for a usage error or when TensorRT cannot run here.
"""
from __future__ import annotations

import argparse
import sys
import time

LIMITS = {"fp16": 2e-2, "bf16": 1e-1, "fp32": 2e-2}  # max |TensorRT - PyTorch fp32|, output in [0, 1]
PASSED_ON = ("model", "variant", "scale", "no_tlc", "tile", "tile_pad", "threads", "batch", "precision",
             "device_index", "cache_dir", "workspace", "opt_level", "force")  # build_profiles option -> dlgsa-build-engine


def build_parser() -> argparse.ArgumentParser:
    from dlgsa_vs.cli.common import Parser, add_model_options
    from dlgsa_vs.runtime.packaged import VIDEO_DEFAULT_MODEL
    from dlgsa_vs.runtime.settings import PRECISIONS

    ap = Parser(prog="build_profiles.py", description=__doc__.splitlines()[0],
                epilog="The options are dlgsa-build-engine's, with the same defaults (see its --help); the "
                       "profiles: dlgsa-build-engine --list-profiles.")
    ap.add_argument("profiles", nargs="*", metavar="PROFILE", help="profile names (--all: every one)")
    ap.add_argument("--all", action="store_true", help="every profile of the presets file")
    ap.add_argument("--dynamic", action="store_true", help="also build each profile's dynamic (min/opt/max) engine")
    add_model_options(ap, VIDEO_DEFAULT_MODEL)   # dlgsa-build-engine's default
    g = ap.add_argument_group("engine")
    g.add_argument("--batch", type=int, metavar="N", help="frames per call (default 1)")
    g.add_argument("--precision", choices=list(PRECISIONS), help="default fp16")
    g.add_argument("--device-index", type=int, metavar="N", help="CUDA device (default 0)")
    g.add_argument("--workspace", type=float, metavar="GiB", help="TensorRT builder workspace limit")
    g.add_argument("--opt-level", type=int, choices=range(6), metavar="0..5", help="builder optimisation level")
    g.add_argument("--force", action="store_true", help="rebuild engines the cache holds")
    g.add_argument("--cache-dir", metavar="DIR", help="engine cache folder (default: dlgsa-build-engine's)")
    return ap


def engine_argv(args: argparse.Namespace, profile: str, dynamic: bool) -> list[str]:
    """The dlgsa-build-engine options of one engine of this run."""
    argv = ["--profile", profile, "--no-check"] + ["--dynamic"] * dynamic
    for name in PASSED_ON:
        value = getattr(args, name, None)
        flag = "-m" if name == "model" else "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return argv


def verify(engine, model, settings, sizes, precision: str) -> tuple[bool, str]:
    import torch

    dev = engine.device
    eager = model.float().to(dev).eval()
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(settings.batch, 3, h, w, device=dev)
        with torch.no_grad():
            ref = eager(x)
        y = engine(x).float()
        if y.shape != ref.shape or not bool(torch.isfinite(y).all()):
            return False, f"at {w}x{h}: output {tuple(y.shape)}, finite {bool(torch.isfinite(y).all())}"
        worst = max(worst, (y - ref).abs().max().item())
    sizes_text = ", ".join(f"{w}x{h}" for h, w in sizes)
    return worst <= LIMITS[precision], (f"max |TensorRT {precision} - PyTorch fp32| = {worst:.2e} "
                                        f"(<= {LIMITS[precision]:g}) at {sizes_text}")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    from dlgsa_vs.cli import build_engine as be
    from dlgsa_vs.cli.common import UsageError, fail, usage_message
    from dlgsa_vs.runtime.settings import SettingsError
    from dlgsa_vs.runtime.trt.profiles import load_profiles

    profiles = load_profiles()
    names = list(profiles) if args.all else args.profiles
    unknown = [n for n in names if n not in profiles]
    if not names or unknown:
        return fail(f"unknown profile(s) {', '.join(unknown)}: use {', '.join(profiles)}" if unknown else
                    f"name the profiles to build ({', '.join(profiles)}) or pass --all")
    requests = []
    try:
        for name in names:
            for dynamic in (False, True)[:1 + args.dynamic]:
                eargs = be.build_parser().parse_args(engine_argv(args, name, dynamic))
                be.check_build_options(eargs)
                settings = be.run_settings(eargs)
                requests.append((name, dynamic, eargs, settings, be.engine_size(eargs, settings)))
    except SettingsError as exc:
        return fail(usage_message(exc))
    except UsageError as exc:
        return fail(str(exc))

    from dlgsa_vs.runtime.trt.cache import EngineCache
    from dlgsa_vs.runtime.trt.engine import engine_for, trt_available

    settings = requests[0][3]
    ok, reason = trt_available(settings.device_index)
    if not ok:
        print(f"build_profiles: TensorRT cannot run here: {reason}", file=sys.stderr)
        return 2
    print(f"build_profiles: {reason}", file=sys.stderr)
    model = be.load_network(settings)
    cache = EngineCache(args.cache_dir)
    precision = be.engine_precision(settings)
    rows = []
    for name, dynamic, eargs, settings, (h, w, shapes) in requests:
        start = time.monotonic()
        kind = "dynamic" if dynamic else "static"
        size = (f"{shapes.min_hw[1]}x{shapes.min_hw[0]}..{shapes.max_hw[1]}x{shapes.max_hw[0]}" if shapes
                else f"{w}x{h}")
        try:
            engine = engine_for(model, precision=precision, batch=settings.batch, height=h, width=w, shapes=shapes,
                                device=f"cuda:{settings.device_index}", cache=cache, force=args.force,
                                workspace_gib=args.workspace, optimization_level=args.opt_level,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
            sizes = [shapes.min_hw, shapes.opt_hw, shapes.max_hw] if shapes else [(h, w)]
            passed, detail = verify(engine, model, settings, sizes, precision)
            detail = f"{engine.path.name}: {detail}"
        except Exception as exc:  # noqa: BLE001 - every failure is a row of the table
            passed, detail = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        rows.append((name, kind, size, passed, f"{detail} ({time.monotonic() - start:.0f} s)"))
    head = ("profile", "engine", "LR size", "result", "detail")
    table = [head] + [(n, k, s, "PASS" if p else "FAIL", d) for n, k, s, p, d in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(wd) for c, wd in zip(r, widths)) + "  " + r[-1])
    print(f"engines in {cache.root}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
