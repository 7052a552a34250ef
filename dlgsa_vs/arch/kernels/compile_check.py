"""Compile every kernel specialization the wrappers launch for a CUDA target, without a GPU.

The wrappers plan their launches (``fwd_launch``, ``gram_launch``, ... return a
:class:`~dlgsa_vs.arch.kernels._launch.Launch`); here they plan them on *meta* tensors (shapes,
dtypes and strides without storage) for the shapes the network runs: DLGSANet light and full
at x2 and x4 on a 1 x C x 2160 x 3840 frame (TLC on and off) and on training crops, in fp32,
fp16 and bf16. Each distinct specialization (argument types as Triton's JIT would give them,
including its int64 promotion of large ints, its ``== 1`` constants and its divisibility
attributes, plus the wrappers' constexprs) is then lowered by ``triton.compile`` through
TTIR, TTGIR, LLVM IR and PTX to a cubin (Triton ships ptxas) for ``cuda:<arch>``: what a GPU
would compile at the first launch, minus the driver's load.

Must run without ``TRITON_INTERPRET`` (under the interpreter ``triton.jit`` gives no
compilable function). Uses ``triton.compiler.ASTSource``, ``triton.compile(src, target=)``,
``triton.backends.compiler.GPUTarget`` and ``triton.runtime.jit.native_specialize_impl``,
which Triton 3.6 and 3.8 have alike.

    python -m dlgsa_vs.arch.kernels.compile_check --arch 90 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

import torch

from ._common import interpreting
from ._launch import GRID_YZ_MAX, Launch

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FRAME_4K = (2160, 3840)
TRAIN_CROP = (32, 48, 48)  # batch, height, width (scripts/train.py's light x4 crops)


@dataclass
class Spec:
    """One specialization: what Triton's JIT would key a compiled kernel on."""

    kernel: object
    signature: dict[str, str]
    constexprs: dict[tuple[int], object]
    attrs: dict[tuple[int], list]
    where: list[str] = field(default_factory=list)  # the launches that use it

    @property
    def key(self) -> tuple:
        return (self.kernel.__name__, tuple(self.signature.items()), tuple(sorted(self.constexprs.items())),
                tuple(sorted((k, str(v)) for k, v in self.attrs.items())))


# The kernel-relevant sizes of the DLGSANet variants (dim C, attention heads, dynamic-conv
# groups = C / 6, hypernetwork channels = C / 4, kernel 7) and the TLC windows of x2 / x4.
# The kernels sit below the network and do not import it; tests/test_kernels_compile.py holds
# these equal to what dlgsa_vs.arch builds.
NETWORK_SHAPES = {"light": dict(dim=48, heads=6, groups=8, hidden=12, k=7),
                  "full": dict(dim=90, heads=6, groups=15, hidden=22, k=7)}
TLC_KERNELS = (96, 48)


def network_shapes(variant: str) -> dict[str, int]:
    """The kernel-relevant sizes of one DLGSANet variant (``NETWORK_SHAPES``)."""
    return NETWORK_SHAPES[variant]


def launches(variant: str, n: int, h: int, w: int, dtype: torch.dtype, tlc_kernel: int | None,
             backward: bool, device: str | torch.device = "meta") -> list[tuple[str, Launch]]:
    """The launches the wrappers make for one layer of ``variant`` on an n x C x h x w map."""
    from . import dynamic_conv_triton as dc
    from . import global_attention_triton as ga

    s = network_shapes(variant)
    c, k, groups, ch, heads = s["dim"], s["k"], s["groups"], s["hidden"], s["heads"]
    d = c // heads
    e = dict(device=device, dtype=dtype)
    x, out = torch.empty(n, c, h, w, **e), torch.empty(n, c, h, w, **e)
    hidden = torch.empty(n, ch, h, w, **e)
    weight, bias = torch.empty(groups * k * k, ch, **e), torch.empty(groups * k * k, **e)
    where = f"{variant} {n}x{c}x{h}x{w} {str(dtype).removeprefix('torch.')} tlc={tlc_kernel}"
    out_list = [(f"dyn_conv fwd, {where}", dc.fwd_launch(x, hidden, weight, bias, out, k))]
    if backward:
        grad_taps = torch.empty(n, groups * k * k, h * w, device=device, dtype=torch.float32)
        out_list += [(f"dyn_conv grad_x, {where}", dc.grad_x_launch(out, hidden, weight, bias, x, k)),
                     (f"dyn_conv grad_taps, {where}", dc.grad_taps_launch(out, x, grad_taps, k, groups))]
    qkv = torch.empty(n, 3 * c, h, w, **e)
    q, kk, v = ga.dense_planes(qkv[:, :c]), ga.dense_planes(qkv[:, c:2 * c]), ga.dense_planes(qkv[:, 2 * c:])
    rows, cols = ga.device_plan(h, w, tlc_kernel, torch.device(device))
    sh, sw = rows["bounds"].shape[0], cols["bounds"].shape[0]
    m = torch.empty(n, heads, sh, sw, d, d, device=device, dtype=torch.float32)
    out_list += [(f"segment_gram, {where}", ga.gram_launch(q, kk, rows["bounds"], cols["bounds"], heads)),
                 (f"segment_matmul, {where}", ga.matmul_launch(m, v, out, rows["index"], cols["index"]))]
    return out_list


def all_launches(dtypes=DTYPES) -> list[tuple[str, Launch]]:
    """Every launch of inference on a 4K frame (light, full; TLC windows of x2 and x4, TLC
    off) and of a training step on crops, per dtype."""
    out = []
    for dtype in dtypes:
        for variant in NETWORK_SHAPES:
            for tlc in (*TLC_KERNELS, None):
                out += launches(variant, 1, *FRAME_4K, dtype, tlc, backward=False)
            out += launches(variant, *TRAIN_CROP, dtype, None, backward=True)
    return out


def specialize(launch: Launch) -> Spec:
    """The signature, constants and attributes Triton's JIT derives from the launch's
    arguments (``native_specialize_impl``, as ``JITFunction.run`` calls it)."""
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl

    fn = launch.kernel
    names = fn.arg_names
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, value) in enumerate(zip(names, launch.args)):
        ty, key = native_specialize_impl(BaseBackend, value, False, True, True)[:2]
        signature[name] = ty
        if ty == "constexpr":
            constexprs[(i,)] = key
        elif isinstance(key, str):
            attrs[(i,)] = BaseBackend.parse_attr(key)
    for name, value in launch.constexprs.items():
        signature[name] = "constexpr"
        constexprs[(names.index(name),)] = value
    missing = [n for n in names if n not in signature]
    if missing:
        raise ValueError(f"{fn.__name__}: launch leaves parameters {missing} unset")
    return Spec(fn, {n: signature[n] for n in names}, constexprs, attrs)


def unique_specs(named: list[tuple[str, Launch]]) -> list[Spec]:
    specs: dict[tuple, Spec] = {}
    for where, launch in named:
        spec = specialize(launch)
        specs.setdefault(spec.key, spec).where.append(where)
    return list(specs.values())


def resource_usage(cubin: bytes) -> dict[str, int] | None:
    """Registers, local memory (spills) and shared memory of a cubin, from ``cuobjdump
    --dump-resource-usage`` (shipped with Triton; None where it is missing or fails)."""
    import os
    import re
    import subprocess
    import tempfile

    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.isfile(tool):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as fh:
            fh.write(cubin)
        try:
            text = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True,
                                  timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    found = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text))
    return {k.lower(): int(v) for k, v in found.items()} or None


def compile_spec(spec: Spec, arch: int = 90) -> dict:
    """Lower one specialization to a cubin for cuda:``arch``; returns what each stage gave."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    t0 = time.perf_counter()
    compiled = triton.compile(ASTSource(spec.kernel, spec.signature, spec.constexprs, spec.attrs),
                              target=GPUTarget("cuda", arch, 32))
    md = compiled.metadata
    return dict(kernel=spec.kernel.__name__, signature=spec.signature,
                constexprs={spec.kernel.arg_names[k[0]]: v for k, v in spec.constexprs.items()},
                stages=sorted(compiled.asm), shared_bytes=md.shared, num_warps=md.num_warps,
                resources=resource_usage(compiled.asm["cubin"]), ttir=compiled.asm["ttir"], seconds=round(time.perf_counter() - t0, 2), used_by=spec.where)


def max_grid_yz(named: list[tuple[str, Launch]]) -> int:
    return max(max(launch.grid[1:]) for _, launch in named)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (90: H100/H200)")
    ap.add_argument("--json", help="write the results here (one entry per specialization)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "fp16", "bf16"], choices=["fp32", "fp16", "bf16"])
    args = ap.parse_args(argv)
    if interpreting():
        print("compile_check: TRITON_INTERPRET=1 is set; unset it (the interpreter compiles nothing)")
        return 2
    import triton

    dtypes = [dict(fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16)[d] for d in args.dtypes]
    named = all_launches(dtypes)
    specs = unique_specs(named)
    print(f"triton {triton.__version__}: {len(named)} launches, {len(specs)} specializations, "
          f"largest grid y/z {max_grid_yz(named)} (limit {GRID_YZ_MAX}), target cuda:{args.arch}")
    results, failed = [], 0
    for spec in specs:
        try:
            r = compile_spec(spec, args.arch)
            res = r["resources"] or {}
            print(f"ok   {r['kernel']:28} {r['seconds']:5.1f} s  regs {res.get('reg', '?'):>3} "
                  f"spill {res.get('local', '?'):>3}  shared {r['shared_bytes']:6}  "
                  f"{' '.join(f'{k}={v}' for k, v in r['constexprs'].items())}  "
                  f"[{', '.join(t for t in spec.signature.values() if t != 'constexpr')}]", flush=True)
        except Exception as e:  # report every failing specialization, not just the first
            failed += 1
            msg = (str(e).strip().splitlines() or [""])[0][:300]
            r = dict(kernel=spec.kernel.__name__, signature=spec.signature, error=f"{type(e).__name__}: {msg}",
                     used_by=spec.where)
            print(f"FAIL {r['kernel']:28} {r['error']}", flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(triton=triton.__version__, arch=args.arch, launches=len(named),
                           max_grid_yz=max_grid_yz(named), results=results), fh, indent=1, default=str)
    print(f"{len(specs) - failed} of {len(specs)} specializations compiled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
