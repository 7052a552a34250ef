"""Export DLGSANet to ONNX, checked with onnxruntime against PyTorch.

    dlgsa-export-onnx --variant light --scale 2 --size 960x540 -o light_x2_540p.onnx
    dlgsa-export-onnx -m net_g.pth --min 16x16 --opt 960x540 --max 1920x1088 --no-tlc
    dlgsa-export-onnx --size 256x256 --fp16
    dlgsa-export-onnx --size 270x480 --4d     # <= 4-D tensors: vs-mlrt's NCNN_VK / OV_GPU / ORT_DML

Sizes are LR pixels, width x height (WxH, as FFmpeg); the graph's tensors are (N, 3, H, W). Input ``input`` (N, 3, H, W) in [0, 1], output ``output``
(N, 3, sH, sW); a dynamic export with TLC on also takes ``windows_h`` / ``windows_w`` (see
docs/tensorrt.md: vs-mlrt wants a static file, or --no-tlc). The file is written under a
temporary name and appears only once it has been exported and verified.
"""
from __future__ import annotations

import copy
import logging
import os
import sys
import time
from pathlib import Path

import torch

from ..runtime.packaged import VIDEO_DEFAULT_MODEL
from ..runtime.settings import RunSettings, SettingsError
from ..runtime.trt.program import tlc_on
from ..runtime.weights import WeightsError, detect_config, load_model, variant_name
from .common import (Parser, UsageError, add_model_options, fail, fail_unexpected, one_line, settings_from_args,
                     usage_message, weights_message)
from .shapes import add_shape_options, hw_text, parse_hw, shape_from_args

PROG = "dlgsa-export-onnx"
MIN_OPSET = 18
FP32_LIMIT = 1e-4
FP16_RELATIVE_LIMIT = 1e-2


def max_opset() -> int:
    """The newest opset torch's ONNX exporter writes (onnxscript's, where it is installed)."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:  # a torch without it: let the exporter judge
        return 10**6
    return int(ONNX_MAX_OPSET)


def build_parser() -> Parser:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_model_options(ap, VIDEO_DEFAULT_MODEL, tiles=False)
    add_shape_options(ap)
    g = ap.add_argument_group("output")
    g.add_argument("-o", "--output", metavar="FILE.onnx",
                   help="default: dlgsanet_<variant>_x<scale>_<size>[_notlc][_fp16].onnx in the current folder")
    g.add_argument("--fp16", action="store_const", const="fp16", dest="precision",
                   help="half-precision weights, input and output")
    g.add_argument("--4d", action="store_true", dest="four_d",
                   help="the network's static form in tensors of at most 4 dimensions (no scatter; TLC windows "
                        "as constants), for runtimes that take only that: vs-mlrt's NCNN_VK, OV_GPU, ORT_DML")
    g.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    g.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check against PyTorch")
    g.add_argument("--verify-size", type=parse_hw, action="append", metavar="WxH",
                   help="size(s) to check a dynamic file at (default: the smallest and one odd size in range)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show the exporter's log and the Python traceback of unexpected errors")
    return ap


def default_name(model, name: str | None, height, width, shapes, fp16: bool, four_d: bool = False) -> str:
    """``name``: the packaged model's (light-video, ...); a model file is named by its architecture."""
    variant = (name or variant_name(detect_config(model.state_dict()))).replace("-", "_")
    size = hw_text((height, width)) if shapes is None else f"{hw_text(shapes.min_hw)}-{hw_text(shapes.max_hw)}"
    tlc = "" if tlc_on(model) else "_notlc"
    return f"dlgsanet_{variant}_x{model.upscale}_{size}{tlc}{'_4d' if four_d else ''}{'_fp16' if fp16 else ''}.onnx"


def run_settings(args) -> RunSettings:
    """The network, TLC, batch and precision these options ask for (raises SettingsError):
    the file is exported and verified on the CPU."""
    return settings_from_args(args, backend="cpu")


def verify_sizes(height, width, shapes, requested) -> list[tuple[int, int]]:
    if shapes is None:
        if requested and set(requested) != {(height, width)}:
            raise UsageError(f"--verify-size {hw_text(requested[0])}: a static file is verified at its own size "
                             f"(--size {width}x{height}); --verify-size is for --min/--opt/--max files")
        return [(height, width)]
    if requested:
        bad = [hw for hw in requested if not all(a <= v <= b for a, v, b in zip(shapes.min_hw, hw, shapes.max_hw))]
        if bad:
            raise UsageError(f"--verify-size {hw_text(bad[0])} is outside --min {hw_text(shapes.min_hw)} .. "
                             f"--max {hw_text(shapes.max_hw)}")
        return list(dict.fromkeys(requested))
    odd = tuple(min(max(v, lo), hi) for v, lo, hi in zip((67, 93), shapes.min_hw, shapes.max_hw))
    return list(dict.fromkeys([shapes.min_hw, odd]))


def verify(path: Path, model, sizes, batch: int, fp16: bool, log) -> str | None:
    """Run the file with onnxruntime (CPU) and compare with fp32 PyTorch; None when it passes,
    else what failed."""
    try:
        import onnxruntime
    except ImportError:
        return ('onnxruntime is not installed, so the file cannot be verified: pip install "dlgsa-vs[onnx]", '
                'or pass --no-verify')
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    log(f"{PROG}: inputs " + ", ".join(f"{i.name} {i.type} {i.shape}" for i in session.get_inputs()))
    net = copy.deepcopy(model).eval().float()
    gen = torch.Generator().manual_seed(0)
    for h, w in sizes:
        x = torch.rand(batch, 3, h, w, generator=gen)
        feeds = {"input": (x.half() if fp16 else x).numpy()}
        if "windows_h" in names:
            wh, ww = net.tlc_windows(h, w)
            feeds.update(windows_h=wh.numpy(), windows_w=ww.numpy())
        start = time.monotonic()
        with torch.no_grad():
            ref = net(x)
        out = torch.from_numpy(session.run(None, feeds)[0]).float()
        if out.shape != ref.shape:
            return f"at {w}x{h} onnxruntime gave shape {tuple(out.shape)}, PyTorch {tuple(ref.shape)}"
        err = (out - ref).abs().max().item()
        if fp16:
            limit = FP16_RELATIVE_LIMIT * max(1.0, ref.abs().max().item())
            rule = f"{FP16_RELATIVE_LIMIT:g} x max(1, max|output|): fp16 file against the fp32 PyTorch output"
        else:
            limit, rule = FP32_LIMIT, "fp32"
        log(f"{PROG}: verified with onnxruntime (CPU) at {w}x{h}: max abs err {err:.3g} "
            f"(limit {limit:.3g}, {rule}; {time.monotonic() - start:.1f} s)")
        if not err <= limit:
            return f"at {w}x{h} the ONNX output differs from PyTorch by {err:.3g} (limit {limit:.3g})"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if not args.verbose:  # the exporter's notes (torchvision ops skipped, ...) are not the user's business
        for name in ("torch.onnx", "onnx_ir", "onnxscript"):
            logging.getLogger(name).setLevel(logging.ERROR)
    tmp: Path | None = None
    try:
        settings = run_settings(args)
    except SettingsError as exc:
        return fail(usage_message(exc))
    fp16 = settings.precision == "fp16"
    try:
        if not MIN_OPSET <= args.opset <= max_opset():
            raise UsageError(f"--opset must be >= {MIN_OPSET} (torch's ONNX exporter), got {args.opset}"
                             if args.opset < MIN_OPSET else
                             f"--opset {args.opset} is invalid: torch's ONNX exporter writes opsets "
                             f"{MIN_OPSET}..{max_opset()}")
        height, width, shapes = shape_from_args(args, default_dynamic=False)
        if args.four_d and shapes is not None:
            raise UsageError("--4d exports one static size: use --size WxH instead of --min/--opt/--max")
        sizes = verify_sizes(height, width, shapes, args.verify_size)
        if args.output is not None and Path(args.output).suffix != ".onnx":
            raise UsageError(f"the output name should end in .onnx: {args.output}")
        if settings.threads:
            torch.set_num_threads(settings.threads)
        model = load_model(settings.model_path, settings.variant, settings.scale, tlc=settings.tlc)
        name = None if settings.model_path else settings.variant
        out = Path(args.output or default_name(model, name, height, width, shapes, fp16, args.four_d))
        if out.suffix != ".onnx":
            raise UsageError(f"the output name should end in .onnx: {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.unverified.onnx")
        from ..runtime.export import export_onnx

        start = time.monotonic()
        log(f"{PROG}: exporting {'a dynamic' if shapes else 'a static'}{' <= 4-D' if args.four_d else ''} "
            f"{'fp16' if fp16 else 'fp32'} graph "
            f"({hw_text(shapes.min_hw) + '..' + hw_text(shapes.max_hw) if shapes else hw_text((height, width))}, "
            f"batch {settings.batch}, TLC {'on' if settings.tlc else 'off'})")
        export_onnx(copy.deepcopy(model), tmp, height or 0, width or 0, batch=settings.batch, shapes=shapes,
                    fp16=fp16, opset=args.opset, four_d=args.four_d)
        log(f"{PROG}: exported in {time.monotonic() - start:.1f} s")
        if not args.no_verify:
            problem = verify(tmp, model, sizes, settings.batch, fp16, log)
            if problem:
                return fail(f"verification failed, no file written: {one_line(problem)}", 1)
        os.replace(tmp, out)
        print(out)
        return 0
    except UsageError as exc:
        return fail(one_line(exc))
    except WeightsError as exc:
        return fail(one_line(weights_message(exc)))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no file was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        return fail_unexpected(exc, args.verbose)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
