"""The Triton kernels compile for a real GPU, and their launches fit a 4K frame (no GPU needed).

``dlgsa_vs.arch.kernels.compile_check`` plans every launch the wrappers make (light and full, TLC
on and off, inference on 1 x C x 2160 x 3840 and a training step, fp32 / fp16 / bf16) on meta
tensors and lowers each distinct specialization with ``triton.compile`` to a cubin for
cuda:90. It runs in a child process: under ``TRITON_INTERPRET=1`` nothing compiles, and other
tests may set it. The grid and offset arithmetic is checked here on meta tensors directly.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlgsa_vs.arch import kernels

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(kernels.triton_version() is None, reason="triton is not installed")
STACK_FRAME_MAX = 64  # bytes per thread (see the test below)
KERNEL_NAMES = {"_dyn_conv_fwd_kernel", "_dyn_conv_grad_x_kernel", "_dyn_conv_grad_taps_kernel",
                "_segment_gram_kernel", "_segment_matmul_kernel"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("compile") / "compile.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "dlgsa_vs.arch.kernels.compile_check", "--arch", "90",
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.exists(), (proc.stdout + proc.stderr)[-4000:]
    return dict(json.loads(out.read_text()), rc=proc.returncode, log=(proc.stdout + proc.stderr)[-6000:])


def test_every_specialization_compiles_to_a_cubin(compiled):
    failed = [r for r in compiled["results"] if "error" in r]
    assert not failed and compiled["rc"] == 0, failed or compiled["log"]
    assert {r["kernel"] for r in compiled["results"]} == KERNEL_NAMES
    for r in compiled["results"]:
        assert {"ttir", "ttgir", "llir", "ptx", "cubin"} <= set(r["stages"]), r["kernel"]


def test_each_kernel_is_compiled_for_fp32_fp16_and_bf16(compiled):
    # the dtype of the first pointer: the input the wrappers pass (x, grad_out, a, or u)
    for name in KERNEL_NAMES:
        sigs = [r["signature"] for r in compiled["results"] if r["kernel"] == name]
        first = "u_ptr" if name == "_segment_matmul_kernel" else next(iter(sigs[0]))
        assert {s[first] for s in sigs} == {"*fp32", "*fp16", "*bf16"}, (name, first)


def test_block_sizes_are_powers_of_two_and_nothing_spills(compiled):
    for r in compiled["results"]:
        for k, v in r["constexprs"].items():
            if k.startswith("BLOCK_"):
                assert v >= 1 and v & (v - 1) == 0, (r["kernel"], k, v)
        res = r["resources"]
        if res is not None:  # cuobjdump ships with triton's nvidia backend
            assert res["local"] == 0, (r["kernel"], r["constexprs"], res)  # no spills
            # A small stack frame without spills: triton 3.6's ptxas (CUDA 12.8) gives the fp16
            # _segment_matmul_kernel at D=15 (full) 40 bytes, with no .local in its PTX; triton
            # 3.8's (CUDA 12.9) gives 0. Bounded here, measured by gpu_check's roofline rows.
            assert res["stack"] <= STACK_FRAME_MAX, (r["kernel"], r["constexprs"], res)
            assert res["reg"] <= 255, (r["kernel"], res)


def test_plane_offsets_are_computed_in_int64(compiled):
    """Channel, tap and batch offsets scale with H*W: at C*H*W >= 2**31 (full at 8K, or the
    fp32 tap gradients) int32 wraps. The kernels multiply them in int64 (in-plane int32)."""
    for r in compiled["results"]:
        ttir = r["ttir"]
        block = r["constexprs"].get("BLOCK_CG") or r["constexprs"].get("BLOCK_D")
        if r["kernel"] == "_segment_matmul_kernel":  # scalar head/channel offsets times the channel stride
            assert re.search(r"%u_rows\S* = arith\.muli \S+, %u_sc64 : i64", ttir), r["kernel"]
        else:  # a vector of channel indices times the plane size or channel stride
            assert re.search(rf"arith\.muli \S+, \S+ : tensor<{block}xi64>", ttir), (r["kernel"], block)


def test_a_4k_frame_fits_the_grid_limits_and_large_strides_become_int64():
    from dlgsa_vs.arch.kernels import compile_check as cc
    from dlgsa_vs.arch.kernels._launch import GRID_X_MAX, GRID_YZ_MAX

    for variant in ("light", "full"):
        for tlc in (96, 48, None):
            named = cc.launches(variant, 1, 2160, 3840, torch.float16, tlc, backward=True)
            assert {launch.name for _, launch in named} == KERNEL_NAMES
            for where, launch in named:
                x, y, z = launch.grid
                assert 1 <= x <= GRID_X_MAX and 1 <= y <= GRID_YZ_MAX and 1 <= z <= GRID_YZ_MAX, where
                if launch.name != "_segment_gram_kernel":  # pixel tiles cover the map (Gram: below)
                    assert y * launch.constexprs["BLOCK_R"] >= 2160 and z * launch.constexprs["BLOCK_W"] >= 3840
    # the Gram grid has one program per segment: x4's 48-pixel windows on 2160 x 3840
    from dlgsa_vs.arch.kernels import global_attention_triton as ga

    rows, cols = ga.device_plan(2160, 3840, 48, torch.device("meta"))
    gram = dict(cc.launches("light", 1, 2160, 3840, torch.float16, 48, backward=False))
    launch = next(v for k, v in gram.items() if k.startswith("segment_gram"))
    assert launch.grid[1] == rows["bounds"].shape[0] * cols["bounds"].shape[0] <= GRID_YZ_MAX
    # full (C = 90): qkv's batch stride 270 * 2160 * 3840 > 2**31 is passed as i64
    full = cc.specialize(next(v for k, v in dict(
        cc.launches("full", 1, 2160, 3840, torch.float16, 96, backward=False)).items() if k.startswith("segment_gram")))
    light = cc.specialize(launch)
    assert 270 * 2160 * 3840 > 2**31 and full.signature["a_sb"] == "i64"
    assert light.signature["a_sb"] == "i32"  # 144 * 2160 * 3840 < 2**31


def test_a_grid_past_cudas_limit_is_refused_before_launch():
    """A launch whose y/z grid passes 65535 is an error at planning time (the caller then
    runs the torch form), not a launch failure on the GPU."""
    from dlgsa_vs.arch.kernels import global_attention_triton as ga

    h = w = 8192
    rows, cols = ga.device_plan(h, w, 16, torch.device("meta"))  # ~1000 segments per axis
    a = torch.empty(1, 48, h, w, device="meta", dtype=torch.float16)
    with pytest.raises(ValueError, match="exceeds CUDA's limits"):
        ga.gram_launch(a, a, rows["bounds"], cols["bounds"], 6)


def test_a_plane_past_int32_is_refused():
    from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc

    weight, bias = torch.empty(9, 1, device="meta"), torch.empty(9, device="meta")
    for w, fits in ((2**15 - 1, True), (2**15, False)):  # 2**16 rows: 2**31 - 2**16 or 2**31 elements
        x = torch.empty(1, 6, 2**16, w, device="meta")
        hidden = torch.empty(1, 1, 2**16, w, device="meta")
        if fits:
            assert dc.fwd_launch(x, hidden, weight, bias, x, 3).grid[1:] == (2**14, 2**10)
        else:
            with pytest.raises(ValueError, match=r"2\*\*31"):
                dc.fwd_launch(x, hidden, weight, bias, x, 3)


def test_the_torch_apis_the_kernels_use_exist():
    """torch.library.custom_op / register_fake / register_autograd / opcheck (torch >= 2.4) and
    torch.compiler.is_exporting (>= 2.6): the GPU machine has torch 2.11."""
    assert callable(torch.library.custom_op) and callable(torch.library.opcheck)
    assert callable(torch.compiler.is_exporting) and callable(torch.compiler.is_compiling)
    from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc

    assert hasattr(dc.dyn_conv, "register_fake") and hasattr(dc.dyn_conv, "register_autograd")


def test_the_compiled_shapes_are_the_networks():
    """compile_check's table of variant sizes (the kernels do not import the network) equals
    what dlgsa_vs.arch builds: the dyn_conv weight and the attention heads of each variant."""
    from dlgsa_vs.arch.dlgsanet import KernelHyperNet, SparseGlobalAttention, default_tlc_kernel
    from dlgsa_vs.arch.variants import build_model
    from dlgsa_vs.arch.kernels import compile_check as cc

    assert cc.TLC_KERNELS == (default_tlc_kernel(2), default_tlc_kernel(4))
    for variant, s in cc.NETWORK_SHAPES.items():
        net = build_model(variant, 2)
        hyper = next(m for m in net.modules() if isinstance(m, KernelHyperNet))
        attn = next(m for m in net.modules() if isinstance(m, SparseGlobalAttention))
        proj = hyper.conv2[0].weight
        assert hyper.kernel_size == s["k"]
        assert tuple(proj.shape) == (s["groups"] * s["k"] ** 2, s["hidden"], 1, 1), variant
        assert attn.qkv.weight.shape[0] == 3 * s["dim"] and attn.num_heads == s["heads"], variant
