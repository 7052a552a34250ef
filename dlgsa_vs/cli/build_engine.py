"""Build (or list, or clear) the cached TensorRT engines of DLGSANet.

    dlgsa-build-engine --variant light --scale 2 --size 960x540          # static, fp16
    dlgsa-build-engine --size 1920x1080 --tile 512 512                    # the 544x544 tile engine
    dlgsa-build-engine -m net_g.pth --min 64x64 --opt 960x540 --max 1920x1088 --precision bf16
    dlgsa-build-engine --profile 1080p                                    # a preset size (--list-profiles)
    dlgsa-build-engine --list
    dlgsa-build-engine --clear [--stale]

The engine goes into the cache that the ``trt`` backend reads (``docs/tensorrt.md``). With
``--size`` (the video's LR frame size, plus ``--tile``/``--tile-pad`` as given to the upscaler)
and the same network, precision and batch as the run, this builds exactly the engine the
backend will ask for (a static one), so a build here saves the first video the minutes of
building. Dynamic engines (``--min/--opt/--max``) are for Python's ``engine_for``; the backend
does not use them. ``--profile NAME`` takes the sizes of a preset
(``dlgsa_vs/runtime/trt/profiles.toml``). Sizes are LR pixels, width x height (WxH, as FFmpeg and ``--tile W H``).
The engine's path is printed on
stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import sys

from ..runtime.packaged import VIDEO_DEFAULT_MODEL
from ..runtime.settings import GPU_DEFAULT_PRECISION, PRECISIONS, RunSettings, SettingsError
from ..runtime.trt.cache import CacheEntry, EngineCache, EngineCacheError, runtime_versions
from .common import (Parser, UsageError, add_model_options, fail, fail_unexpected, one_line, settings_from_args,
                     usage_message, weights_message)
from .shapes import add_shape_options, hw_text, ranged, shape_from_args

PROG = "dlgsa-build-engine"


def build_parser() -> Parser:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0],
                epilog="--size or --profile (with --tile/--tile-pad when the run tiles) builds the static engine "
                       "the trt backend asks for; --min/--opt/--max (or --profile NAME --dynamic) a dynamic one "
                       "for Python's engine_for, which the backend does not use.")
    add_model_options(ap, VIDEO_DEFAULT_MODEL)
    s = add_shape_options(ap)
    s.add_argument("--profile", metavar="NAME", help="the sizes of a preset (480p, 720p, 1080p, 1440p, 2160p, "
                   "portrait, 4:3-480p, ...; --list-profiles): its static size, or with --dynamic its range")
    s.add_argument("--dynamic", action="store_true", help="with --profile: the preset's min/opt/max range")
    g = ap.add_argument_group("engine")
    g.add_argument("--precision", choices=list(PRECISIONS),
                   help=f"the engine's arithmetic (default {GPU_DEFAULT_PRECISION}, as the trt backend's)")
    g.add_argument("--workspace", type=float, metavar="GiB", help="TensorRT builder workspace limit (default: TensorRT's)")
    g.add_argument("--opt-level", type=int, choices=range(6), metavar="0..5",
                   help="TensorRT builder optimisation level (default 3; higher builds longer)")
    g.add_argument("--device-index", type=int, metavar="N", help="CUDA device to build for (default 0)")
    g.add_argument("--force", action="store_true", help="rebuild even if the cache holds this engine")
    g.add_argument("--no-check", action="store_true",
                   help="skip comparing the engine's output with PyTorch's after the build")
    c = ap.add_argument_group("cache")
    c.add_argument("--cache-dir", metavar="DIR", help="engine cache folder (default: $DLGSA_CACHE_DIR, else "
                   "$XDG_CACHE_HOME/dlgsa-vs/engines, else ~/.cache/dlgsa-vs/engines)")
    c.add_argument("--list", action="store_true", help="list the cached engines and exit")
    c.add_argument("--list-profiles", action="store_true", help="list the size presets of --profile and exit")
    c.add_argument("--clear", action="store_true", help="remove cached engines and exit")
    c.add_argument("--stale", action="store_true",
                   help="with --clear: only entries built with other TensorRT / torch-tensorrt / torch / "
                        "dlgsa-vs versions, or unreadable")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the Python traceback of unexpected errors")
    return ap


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The run these options describe, as the trt backend would get it (raises SettingsError,
    or UsageError for ``--tile auto``: an engine has one size, so the tiles must be named)."""
    settings = settings_from_args(args, backend="trt")
    if settings.tile == "auto":  # the settings' default where the run picks its tiles at run time
        if getattr(args, "tile", None) is not None:
            raise UsageError("--tile auto is chosen at run time: give the run's tiles, --tile W H (or none for "
                             "whole frames)")
        settings = settings.replace(tile=(0, 0))
    return settings


def trt_backend(settings: RunSettings):
    """The trt backend on the settings' GPU, as the run's ``select_backend`` gives it (not
    probed: an engine's plan is known where no GPU is)."""
    import torch

    from ..runtime.run_plan import Backend

    return Backend("trt", torch.device("cuda", settings.device_index), PROG)


def engine_precision(settings: RunSettings) -> str:
    """The engine's precision: the trt backend's (``run_plan.resolve_precision``)."""
    from ..runtime.run_plan import resolve_precision

    return resolve_precision(trt_backend(settings), settings)[0]


def check_build_options(args: argparse.Namespace) -> None:
    """The engine options no settings field checks (raises UsageError)."""
    if args.workspace is not None and not (math.isfinite(args.workspace) and args.workspace > 0):
        raise UsageError(f"--workspace {args.workspace:g} is invalid: it must be a size in GiB > 0")
    if args.cache_dir is not None and os.path.exists(args.cache_dir) and not os.path.isdir(args.cache_dir):
        raise UsageError(f"--cache-dir {args.cache_dir} is not a folder")
    if args.dynamic and args.profile is None:
        raise UsageError("--dynamic goes with --profile NAME (a dynamic range of your own: --min/--opt/--max)")


def profile_size(args: argparse.Namespace):
    """(height, width, None) or (None, None, range) of --profile NAME [--dynamic]."""
    from ..runtime.trt.profiles import ProfileError, get_profile

    if args.size is not None or ranged(args):
        raise UsageError("--profile gives the sizes: not with --size or --min/--opt/--max")
    try:
        profile = get_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(f"--profile {args.profile} {exc}") from None
    if args.dynamic:
        return None, None, profile.shape_range()
    return profile.static[0], profile.static[1], None


def engine_size(args: argparse.Namespace, settings: RunSettings | None = None):
    """(height, width, None) of the static engine the trt backend asks for with these options
    (the tile crop of --size when tiling, as the upscaler computes it: ``network_input_hw``),
    or (None, None, range) for --min/--opt/--max. Raises UsageError without a size."""
    settings = run_settings(args) if settings is None else settings
    if args.profile is not None:
        height, width, shapes = profile_size(args)
    elif args.size is None and not ranged(args):
        raise UsageError("give --size WxH, the video's LR frame size (with --tile W H if the run tiles), or "
                         "--profile NAME: that builds the static engine the trt backend asks for; "
                         "--min/--opt/--max build a dynamic one for Python's engine_for")
    else:
        height, width, shapes = shape_from_args(args, default_dynamic=True)
    if shapes is not None:
        if settings.tile != (0, 0):
            raise UsageError("--tile goes with --size or a static --profile (the frame size whose tiles the "
                             "engine takes)")
        return height, width, shapes
    from ..runtime.run_plan import resolve

    return (*resolve(settings, trt_backend(settings), input_hw=(height, width)).engine_hw, None)


def load_network(settings: RunSettings):
    """The network of the settings (raises WeightsError with the reason and the fix)."""
    from ..runtime.weights import load_model

    return load_model(settings.model_path, settings.variant, settings.scale, tlc=settings.tlc)


def list_profiles(out=None) -> None:
    from ..runtime.trt.profiles import load_profiles

    out = out or sys.stdout
    profiles = load_profiles()
    rows = [["profile", "static (LR WxH)", "dynamic min / opt / max", "for"]]
    rows += [[p.name, hw_text(p.static), " / ".join(map(hw_text, (p.min_hw, p.opt_hw, p.max_hw))), p.description]
             for p in profiles.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1], file=out)


def visible_gpus() -> list[tuple[str, str]] | None:
    """(name, compute capability) of every CUDA device here, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [(p.name, f"{p.major}.{p.minor}") for p in props]


def backend_use(entry: CacheEntry, cache: EngineCache, current: dict | None = None,
                gpus: list[tuple[str, str]] | None = None) -> str:
    """Whether the trt backend can use this entry: "yes", or "no: why". It asks for static
    engines of this software's versions on one of these GPUs (not checked where ``gpus`` is
    None: no CUDA here); its run must then match the rest of the key (network, precision,
    batch, size)."""
    key = entry.key
    if entry.problem or key is None:
        return "no: unusable"
    if key.dynamic:
        return "no: dynamic"
    if cache.is_stale(entry, current):
        return "no: other versions"
    if gpus is not None and (key.gpu_name, key.compute_capability) not in gpus:
        return "no: other GPU"
    return "yes"


def _row(entry: CacheEntry, use: str) -> list[str]:
    key = entry.key
    size = f"{entry.size_bytes / 2**20:.1f}"
    if entry.problem or key is None:
        return [entry.digest[:12], "-", "-", "-", "-", "-", "-", "-", "-", size, use,
                f"UNUSABLE: {entry.problem}"]
    meta = entry.meta or {}
    created = meta.get("created", "?")
    try:
        created = datetime.datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        pass
    return [entry.digest[:12], f"{key.variant} x{key.scale}", key.precision,
            ("dyn " if key.dynamic else "") + key.shape_text(), str(key.batch), "on" if key.tlc else "off",
            f"{key.gpu_name} ({key.compute_capability})", key.tensorrt_version,
            f"{key.weights_sha256[:12]}", size, use, f"{created}, {meta.get('build_seconds', '?')} s"]


def print_table(cache: EngineCache, out=None, current: dict | None = None,
                gpus: list[tuple[str, str]] | None = None) -> int:
    """The cache's entries, one line each, with whether the trt backend can use them.
    ``current`` (software versions) and ``gpus`` default to this machine's."""
    out = out or sys.stdout
    entries = cache.list()
    if not entries:
        print(f"no cached engines in {cache.root}", file=out)
        return 0
    current = runtime_versions() if current is None else current
    gpus = visible_gpus() if gpus is None else gpus
    head = ["digest", "network", "prec", "LR size (WxH)", "batch", "TLC", "GPU", "TensorRT", "weights",
            "MiB", "trt backend", "built"]
    rows = [head] + [_row(e, backend_use(e, cache, current, gpus)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1], file=out)
    total = sum(e.size_bytes for e in entries)
    usable = sum(r[-2] == "yes" for r in rows[1:])
    print(f"{len(entries)} engine(s), {total / 2**20:.1f} MiB in {cache.root}; the trt backend can use {usable} "
          f"(static, these versions{', these GPUs' if gpus is not None else ''})", file=out)
    return len(entries)


def _check(engine, model, log) -> None:
    """One random batch through the engine and through PyTorch on the same GPU and precision."""
    import torch

    from ..runtime.settings import torch_dtype

    key = engine.key
    h, w = key.opt_hw
    x = torch.rand(key.batch, 3, h, w, device=engine.device)
    dtype = torch_dtype(key.precision)
    net = copy.deepcopy(model).eval().to(engine.device, dtype)
    with torch.no_grad():
        ref = net(x.to(dtype)).float()
    y = engine(x).float()
    err = (y - ref).abs().max().item()
    log(f"{PROG}: check at {w}x{h}: max |TensorRT - PyTorch {key.precision}| = {err:.3g} "
        f"(output range {ref.min().item():.3g}..{ref.max().item():.3g})")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    from ..runtime.weights import WeightsError

    try:
        settings = run_settings(args)
        check_build_options(args)
    except SettingsError as exc:
        return fail(usage_message(exc))
    except UsageError as exc:
        return fail(str(exc))
    cache = EngineCache(args.cache_dir)
    try:
        if sum((args.list, args.clear, args.list_profiles)) > 1:
            raise UsageError("--list, --list-profiles and --clear do not go together")
        if args.list_profiles:
            list_profiles()
            return 0
        if args.list:
            print_table(cache)
            return 0
        if args.clear:
            removed = cache.clear(stale_only=args.stale)
            freed = sum(e.size_bytes for e in removed)
            print(f"removed {len(removed)} {'stale ' if args.stale else ''}engine(s), {freed / 2**20:.1f} MiB, "
                  f"from {cache.root}")
            return 0
        if args.stale:
            raise UsageError("--stale goes with --clear")
        height, width, shapes = engine_size(args, settings)
        model = load_network(settings)
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)

        from ..runtime.trt.engine import engine_for, trt_available

        ok, reason = trt_available(settings.device_index)
        if not ok:
            # 2, as dlgsa-upscale --backend trt says for the same cause: the machine cannot do what was asked
            return fail(f"cannot build a TensorRT engine here: {one_line(reason)}", 2)
        log(f"{PROG}: {reason}")
        if shapes is not None:
            log(f"{PROG}: note: a dynamic engine is for Python's engine_for(shapes=...); the trt backend asks for "
                f"static ones (--size)")
        engine = engine_for(model, precision=engine_precision(settings), batch=settings.batch, height=height,
                            width=width, shapes=shapes, device=f"cuda:{settings.device_index}", cache=cache,
                            force=args.force, workspace_gib=args.workspace, optimization_level=args.opt_level,
                            log=log)
        if not args.no_check:
            _check(engine, model, log)
        print(engine.path)
        return 0
    except UsageError as exc:
        return fail(one_line(exc))
    except WeightsError as exc:
        return fail(one_line(weights_message(exc)))
    except EngineCacheError as exc:
        return fail(one_line(exc), 1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no engine was added to the cache", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        return fail_unexpected(exc, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
