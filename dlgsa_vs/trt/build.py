"""Build (or list, or clear) the cached TensorRT engines of DLGSANet.

    dlgsa-build-engine --variant light --scale 2 --size 540x960          # static, fp16
    dlgsa-build-engine --size 1080x1920 --tile 512 512                    # the 544x544 tile engine
    dlgsa-build-engine -m net_g.pth --min 64x64 --opt 540x960 --max 1088x1920 --precision bf16
    dlgsa-build-engine --list
    dlgsa-build-engine --clear [--stale]

The engine goes into the cache that the ``trt`` backend reads (``docs/tensorrt.md``). With
``--size`` (the video's LR frame size, plus ``--tile``/``--tile-pad`` as given to the upscaler)
and the same network, precision and batch as the run, this builds exactly the engine the
backend will ask for (a static one), so a build here saves the first video the minutes of
building. Dynamic engines (``--min/--opt/--max``) are for Python's ``engine_for``; the backend
does not use them. Sizes are LR pixels, height x width. The engine's path is printed on
stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import sys

from ..export import ShapeRange
from ..weights import WeightsError
from ._cli import (Parser, UsageError, add_model_options, add_shape_options, fail, fail_unexpected, load_from_args,
                   shape_from_args)
from .cache import CacheEntry, EngineCache, EngineCacheError, runtime_versions

PROG = "dlgsa-build-engine"
DEFAULT_TILE_PAD = 16  # the upscaler's default --tile-pad


def build_parser() -> Parser:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0],
                epilog="--size (with --tile/--tile-pad when the run tiles) builds the static engine the trt "
                       "backend asks for; --min/--opt/--max a dynamic one for Python's engine_for, which the "
                       "backend does not use.")
    add_model_options(ap)
    add_shape_options(ap)
    t = ap.add_argument_group("tiles (as given to dlgsa-upscale / core.dlgsa.Upscale)")
    t.add_argument("--tile", type=int, nargs=2, metavar=("W", "H"),
                   help="the run's LR tiles of W x H pixels: the engine is built for the tile crop of --size")
    t.add_argument("--tile-pad", type=int, default=DEFAULT_TILE_PAD, metavar="N",
                   help=f"the run's LR context around each tile (default {DEFAULT_TILE_PAD})")
    g = ap.add_argument_group("engine")
    g.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default="fp16", help="default fp16")
    g.add_argument("--workspace", type=float, metavar="GiB", help="TensorRT builder workspace limit (default: TensorRT's)")
    g.add_argument("--opt-level", type=int, choices=range(6), metavar="0..5",
                   help="TensorRT builder optimisation level (default 3; higher builds longer)")
    g.add_argument("--device-index", type=int, default=0, help="CUDA device to build for (default 0)")
    g.add_argument("--force", action="store_true", help="rebuild even if the cache holds this engine")
    g.add_argument("--no-check", action="store_true",
                   help="skip comparing the engine's output with PyTorch's after the build")
    c = ap.add_argument_group("cache")
    c.add_argument("--cache-dir", metavar="DIR", help="engine cache folder (default: $DLGSA_CACHE_DIR, else "
                   "$XDG_CACHE_HOME/dlgsa-vs/engines, else ~/.cache/dlgsa-vs/engines)")
    c.add_argument("--list", action="store_true", help="list the cached engines and exit")
    c.add_argument("--clear", action="store_true", help="remove cached engines and exit")
    c.add_argument("--stale", action="store_true",
                   help="with --clear: only entries built with other TensorRT / torch-tensorrt / torch / "
                        "dlgsa-vs versions, or unreadable")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the Python traceback of unexpected errors")
    return ap


def engine_size(args: argparse.Namespace) -> tuple[int | None, int | None, ShapeRange | None]:
    """(height, width, None) of the static engine the trt backend asks for with these options
    (the tile crop of --size when tiling, as the upscaler computes it), or (None, None, range)
    for --min/--opt/--max. Raises UsageError without a size."""
    ranged = any(v is not None for v in (args.min, args.opt, args.max))
    if args.size is None and not ranged:
        raise UsageError("give --size HxW, the video's LR frame size (with --tile W H if the run tiles): that "
                         "builds the static engine the trt backend asks for; --min/--opt/--max build a dynamic "
                         "one for Python's engine_for")
    height, width, shapes = shape_from_args(args, default_dynamic=True)
    if args.tile_pad < 0:
        raise UsageError(f"--tile-pad must be >= 0, got {args.tile_pad}")
    if args.tile is None:
        return height, width, shapes
    if shapes is not None:
        raise UsageError("--tile goes with --size (the frame size whose tiles the engine takes)")
    tile_w, tile_h = args.tile
    if min(tile_w, tile_h) < 0:
        raise UsageError(f"--tile sizes must be >= 0, got {tile_w} {tile_h}")
    from ..inference import tile_spans

    return (tile_spans(height, tile_h, args.tile_pad)[0].size, tile_spans(width, tile_w, args.tile_pad)[0].size,
            None)


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
    head = ["digest", "network", "prec", "LR size (HxW)", "batch", "TLC", "GPU", "TensorRT", "weights",
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

    from .engine import PRECISION_DTYPES

    key = engine.key
    h, w = key.opt_hw
    x = torch.rand(key.batch, 3, h, w, device=engine.device)
    dtype = PRECISION_DTYPES[key.precision]
    net = copy.deepcopy(model).eval().to(engine.device, dtype)
    with torch.no_grad():
        ref = net(x.to(dtype)).float()
    y = engine(x).float()
    err = (y - ref).abs().max().item()
    log(f"{PROG}: check at {h}x{w}: max |TensorRT - PyTorch {key.precision}| = {err:.3g} "
        f"(output range {ref.min().item():.3g}..{ref.max().item():.3g})")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    cache = EngineCache(args.cache_dir)
    try:
        if args.list or args.clear:
            if args.list and args.clear:
                raise UsageError("--list and --clear do not go together")
            if args.list:
                print_table(cache)
                return 0
            removed = cache.clear(stale_only=args.stale)
            freed = sum(e.size_bytes for e in removed)
            print(f"removed {len(removed)} {'stale ' if args.stale else ''}engine(s), {freed / 2**20:.1f} MiB, "
                  f"from {cache.root}")
            return 0
        if args.stale:
            raise UsageError("--stale goes with --clear")
        height, width, shapes = engine_size(args)
        model = load_from_args(args)

        from .engine import engine_for, trt_available

        ok, reason = trt_available(args.device_index)
        if not ok:
            return fail(PROG, f"cannot build a TensorRT engine here: {reason}", 1)
        log(f"{PROG}: {reason}")
        if shapes is not None:
            log(f"{PROG}: note: a dynamic engine is for Python's engine_for(shapes=...); the trt backend asks for "
                f"static ones (--size)")
        engine = engine_for(model, precision=args.precision, batch=args.batch, height=height, width=width,
                            shapes=shapes, device=f"cuda:{args.device_index}", cache=cache, force=args.force,
                            workspace_gib=args.workspace, optimization_level=args.opt_level, log=log)
        if not args.no_check:
            _check(engine, model, log)
        print(engine.path)
        return 0
    except (UsageError, WeightsError) as exc:
        return fail(PROG, str(exc), 2)
    except EngineCacheError as exc:
        return fail(PROG, str(exc), 1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no engine was added to the cache", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        return fail_unexpected(PROG, exc, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
