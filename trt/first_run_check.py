#!/usr/bin/env python3
"""First run of dlgsa-vs's TensorRT path on a machine with an NVIDIA GPU and TensorRT.

The TensorRT code (dlgsa_vs/runtime/trt) is built and tested on machines without TensorRT, against
torch-tensorrt's source only (tests/test_trt_contract.py). This script checks on a real GPU
the three things that could only be read, not run, there:

1. engine dtype: a small static fp16 engine is built through the cache (``engine_for``); its
   saved program and its TensorRT input binding must be fp16, and its output must match
   PyTorch fp32 on the same frames;
2. two streams: frames run on two CUDA streams at once (one execution context each) must give
   the same frames as a single-stream run, with one context per stream;
3. dynamic TLC: a dynamic engine with TLC windows is built and its saved graph is counted:
   TensorRT segments (``tensorrt.execute_engine`` calls) and the PyTorch ops between them
   (the goal is one segment and no PyTorch ops but size bookkeeping).

    python trt/first_run_check.py                 # packaged light x2, a throwaway cache
    python trt/first_run_check.py --keep-cache DIR --device-index 1

Prints a table (check, result, detail) and exits 0 when every check passed, 1 otherwise, 2 when
TensorRT cannot run here. Builds take a few minutes on first use.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

SIZE = (64, 96)  # LR height x width of the static engine: small, so the build is quick
DYNAMIC = ((32, 32), (64, 96), (128, 160))
# aten ops of a saved graph that are size bookkeeping, not computation left to PyTorch
BOOKKEEPING = ("aten.sym_size", "aten.sym_numel", "aten.sym_stride", "aten._assert", "aten.sym_constrain")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="first_run_check.py", description=__doc__.splitlines()[0],
                                 epilog="See the module docstring (and docs/tensorrt.md) for what each check means.")
    ap.add_argument("--variant", default="light", choices=["tiny", "light", "full"], help="packaged weights (light)")
    ap.add_argument("-s", "--scale", type=int, default=2, choices=[2, 3, 4], help="scale (2)")
    ap.add_argument("--device-index", type=int, default=0, help="CUDA device (0)")
    ap.add_argument("--keep-cache", metavar="DIR", help="build into this engine cache and keep it (default: a "
                    "temporary folder, removed at the end, so every run builds afresh)")
    ap.add_argument("--frames", type=int, default=8, help="frames per stream check (8)")
    return ap


def binding_dtypes(program) -> list[str]:
    """The input binding dtypes of every TensorRT engine inside a saved program, read with
    TensorRT's own API from the serialized engines (best effort: torch-tensorrt's
    packaging of engines is internal)."""
    import base64

    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    found = []
    for value in list(program.constants.values()):
        if not isinstance(value, torch.ScriptObject):
            continue
        info = [v for _, v in value.__obj_flatten__()]
        raw = info[torch.ops.tensorrt.ENGINE_IDX()]
        engine = runtime.deserialize_cuda_engine(base64.b64decode(raw) if isinstance(raw, str) else raw)
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                found.append(f"{name}:{engine.get_tensor_dtype(name)}")
    return found


def graph_pieces(program) -> tuple[int, list[str]]:
    """(TensorRT segments, PyTorch tensor ops) of a saved program. Python-level calls
    (``operator.getitem`` of an engine's outputs, int arithmetic on sizes) and aten's size
    queries and asserts are bookkeeping, not counted."""
    import torch

    segments, torch_ops = 0, []
    for node in program.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        name = str(node.target)
        if "execute_engine" in name:
            segments += 1
        elif not name.startswith(BOOKKEEPING):
            torch_ops.append(name)
    return segments, torch_ops


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import torch

    from dlgsa_vs.runtime.export import ShapeRange
    from dlgsa_vs.runtime.trt.engine import engine_for, load_program, program_input_dtype, trt_available
    from dlgsa_vs.runtime.weights import load_model

    ok, reason = trt_available(args.device_index)
    if not ok:
        print(f"first_run_check: TensorRT cannot run here: {reason}", file=sys.stderr)
        return 2
    print(f"first_run_check: {reason}", file=sys.stderr)
    dev = torch.device("cuda", args.device_index)
    torch.cuda.set_device(dev)
    rows: list[tuple[str, bool | None, str]] = []
    tmp = None if args.keep_cache else tempfile.TemporaryDirectory(prefix="dlgsa-first-run-")
    cache = Path(args.keep_cache or tmp.name)
    model = load_model(variant=args.variant, scale=args.scale)
    eager = load_model(variant=args.variant, scale=args.scale).to(dev).eval()

    def check(name: str, run) -> None:
        start = time.monotonic()
        try:
            passed, detail = run()
        except Exception as exc:  # noqa: BLE001 - every failure is a row of the table
            passed, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        rows.append((name, passed, f"{detail} ({time.monotonic() - start:.0f} s)"))

    state: dict = {}

    def static_fp16():
        eng = engine_for(model, precision="fp16", height=SIZE[0], width=SIZE[1], device=dev, cache=cache)
        state["engine"] = eng
        program = load_program(eng.path, dev)
        saved = program_input_dtype(program)
        try:
            bindings = binding_dtypes(program)
        except Exception as exc:  # noqa: BLE001 - internal packaging: report, rely on the run below
            bindings = [f"unreadable ({type(exc).__name__})"]
        x = torch.rand(2, 3, *SIZE, device=dev)
        with torch.no_grad():
            ref = eager(x)
        y = eng(x)  # fp16 frames into the engine: the old fp32-binding engine failed right here
        err = (y - ref).abs().max().item()
        fp16 = saved == torch.float16 and all("HALF" in b for b in bindings if "unreadable" not in b)
        return fp16 and err <= 2e-2, (f"saved input {saved}, bindings {', '.join(bindings) or 'none found'}; "
                                      f"max |TensorRT fp16 - PyTorch fp32| = {err:.2e} (<= 2e-2)")

    def two_streams():
        eng = state.get("engine")
        if eng is None:
            return None, "skipped: no static engine"
        frames = [torch.rand(1, 3, *SIZE, device=dev) for _ in range(2 * args.frames)]
        single = [eng(f) for f in frames]  # one stream (the default one)
        torch.cuda.synchronize(dev)
        out: list = [None] * len(frames)
        streams = [torch.cuda.Stream(dev) for _ in range(2)]
        start = threading.Barrier(2)

        def work(k: int) -> None:
            start.wait()
            with torch.cuda.stream(streams[k]):
                for i in range(k, len(frames), 2):
                    out[i] = eng(frames[i])
            streams[k].synchronize()

        for _ in range(3):  # a few rounds: a race between contexts shows up as a differing frame
            threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            diff = max((a - b).abs().max().item() for a, b in zip(out, single))
            if diff > 1e-3:
                break
        return diff <= 1e-3 and eng.contexts >= 3, (f"max |two streams - one stream| = {diff:.2e}; "
                                                    f"{eng.contexts} execution contexts (default stream + 2)")

    def dynamic_tlc():
        rng = ShapeRange(*DYNAMIC)
        eng = engine_for(model, precision="fp16", shapes=rng, device=dev, cache=cache)
        segments, torch_ops = graph_pieces(load_program(eng.path, dev))
        x = torch.rand(1, 3, 45, 131, device=dev)  # a size inside the range, not the opt one
        with torch.no_grad():
            err = (eng(x) - eager(x)).abs().max().item()
        listed = ", ".join(sorted(set(torch_ops))[:6]) + (" ..." if len(set(torch_ops)) > 6 else "")
        return segments == 1 and not torch_ops and err <= 2e-2, (
            f"{segments} TensorRT segment(s), {len(torch_ops)} PyTorch op(s) between them"
            f"{': ' + listed if torch_ops else ''}; max error at 45x131 {err:.2e}")

    check("static fp16 engine: dtype and output", static_fp16)
    check("two CUDA streams vs one", two_streams)
    check("dynamic TLC engine: one piece", dynamic_tlc)
    if tmp is not None:
        tmp.cleanup()

    width = max(len(r[0]) for r in rows)
    print(f"{'check'.ljust(width)}  result  detail")
    for name, passed, detail in rows:
        result = "skip" if passed is None else "PASS" if passed else "FAIL"
        print(f"{name.ljust(width)}  {result.ljust(6)}  {detail}")
    return 0 if all(p is not False for _, p, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
