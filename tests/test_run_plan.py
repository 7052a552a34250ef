"""run_plan.resolve: the settings turned into decided values, once (issue #26).

The GPU backends' plans are made here with a ``Backend`` value for a CUDA device: resolving
needs no GPU except to measure an ``auto`` tile budget there (not done in these tests).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from dlgsa_vs.runtime.cpu_features import cpu_precision
from dlgsa_vs.runtime.cpu_runner import choose_engine, openvino_problem
from dlgsa_vs.runtime.run_plan import Backend, BackendError, RunPlan, resolve, select_backend
from dlgsa_vs.runtime.settings import Names, RunSettings, SettingsError
from dlgsa_vs.runtime.tiling import AutoTiles, network_input_hw

CPU = Backend("cpu", torch.device("cpu"), "asked for")
CUDA = Backend("cuda", torch.device("cuda", 0), "asked for")
TRT = Backend("trt", torch.device("cuda", 0), "asked for")
OPTIONS = Names({"precision": "--precision", "kernels": "--kernels"}, "option")


def test_cpu_plan_values():
    plan = resolve(RunSettings(backend="cpu", tile=(0, 0), batch=2, num_streams=3, precision="fp32"),
                   select_backend("cpu"))
    assert (plan.precision, plan.dtype, plan.model_dtype, plan.kernels, plan.tile, plan.engine_hw) == (
        "fp32", torch.float32, torch.float32, "torch", (0, 0), None)
    assert (plan.batch, plan.num_streams, plan.tile_pad, plan.device) == (2, 3, 16, torch.device("cpu"))
    assert (plan.cpu_engine, plan.cpu_engine_reason) == ("torch", "")
    assert plan.summary() == "cpu float32 (as asked) in torch" and plan.notes(OPTIONS) == []
    auto = resolve(RunSettings(backend="auto", tile=(0, 0), precision="fp32"), CPU)
    assert auto.summary() == "cpu float32 (as asked) in torch; auto: asked for"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.precision = "fp16"


def test_cpu_precision_follows_the_cpu_and_is_said():
    """No precision asked: the CPU's own choice (bf16 only with native bf16, cpu_features) and
    its engine (cpu_runner.choose_engine), said once in the summary with the reasons; the model
    stays float32 (cpu_runner converts its own copy)."""
    plan = resolve(RunSettings(backend="cpu", tile=(0, 0)), CPU)
    precision, reason = cpu_precision(None)
    engine, why = choose_engine(precision)
    assert (plan.precision, plan.precision_reason, plan.model_dtype) == (precision, reason, torch.float32)
    assert (plan.cpu_engine, plan.cpu_engine_reason) == (engine, why)
    assert plan.notes(OPTIONS) == []  # nothing asked that is not done
    dtype = "bfloat16" if precision == "bf16" else "float32"
    assert plan.summary() == f"cpu {dtype} ({reason}) in {engine}" + (f" ({why})" if why else "")
    bf16 = resolve(RunSettings(tile=(0, 0), precision="bf16", cpu_engine="torch"), CPU)
    assert (bf16.precision, bf16.dtype, bf16.model_dtype, bf16.cpu_engine) == (
        "bf16", torch.bfloat16, torch.float32, "torch")
    assert bf16.compute().startswith("bfloat16 (as asked") and bf16.compute().endswith(" in torch (as asked)")
    assert resolve(RunSettings(tile=(0, 0), precision="fp16"), CUDA).cpu_engine is None


def test_openvino_asked_where_it_cannot_run_names_the_way_out():
    if openvino_problem() is None:
        pytest.skip("OpenVINO is installed here: the engine can run")
    with pytest.raises(BackendError) as err:
        resolve(RunSettings(tile=(0, 0), precision="bf16", cpu_engine="openvino"), CPU)
    assert err.value.field == "cpu_engine" and err.value.render(Names({"cpu_engine": "--cpu-engine"}, "option")) == (
        "--cpu-engine openvino cannot run: openvino is not installed: pip install openvino, or use --cpu-engine torch")


def test_precision_is_decided_once_per_backend():
    assert resolve(RunSettings(tile=(0, 0)), CUDA).precision == "fp16"  # the GPU default
    assert resolve(RunSettings(tile=(0, 0), precision="fp32"), TRT, input_hw=(90, 160)).precision == "fp32"
    assert resolve(RunSettings(tile=(0, 0), precision="bf16"), CUDA).model_dtype == torch.bfloat16
    plan = resolve(RunSettings(tile=(0, 0), precision="fp16"), CPU)
    assert plan.precision == "fp32"
    assert plan.notes(OPTIONS) == ["--precision fp16 -> fp32 (fp16 has no fast path on the CPU)"]
    assert plan.notes()[0].startswith("precision fp16 -> fp32 (")


def test_kernels_line_and_choice():
    plan = resolve(RunSettings(tile=(0, 0), kernels="torch"), CPU)
    assert (plan.kernels, plan.kernels_reason) == ("torch", "requested")
    assert plan.notes(OPTIONS)[-1] == "kernels torch -> torch (requested)"
    assert resolve(RunSettings(tile=(0, 0)), CUDA).notes() != []  # a GPU says its kernels
    trt = resolve(RunSettings(tile=(0, 0), kernels="triton"), TRT, input_hw=(90, 160))
    assert trt.kernels == "torch" and trt.notes() == []  # an engine holds the torch forms


@pytest.mark.parametrize("tile", [(0, 0), (64, 48), (200, 400)])
def test_engine_size_is_the_tile_crop_of_the_frame(tile):
    plan = resolve(RunSettings(tile=tile, tile_pad=8), TRT, input_hw=(270, 480))
    assert plan.engine_hw == network_input_hw(270, 480, tile, 8)
    assert resolve(RunSettings(tile=tile), CUDA, input_hw=(270, 480)).engine_hw is None


def test_build_engine_asks_the_plan():
    """dlgsa-build-engine's engine size and precision are the trt backend's plan for the run."""
    from dlgsa_vs.cli import build_engine as be

    args = be.build_parser().parse_args(["--size", "480x270", "--tile", "200", "100", "--tile-pad", "8"])
    settings = be.run_settings(args)
    plan = resolve(settings, TRT, input_hw=(270, 480))
    assert be.engine_size(args, settings) == (*plan.engine_hw, None) == (116, 216, None)
    assert be.engine_precision(settings) == plan.precision == "fp16"


def test_auto_tiles_are_a_budget_measured_on_the_model():
    from dlgsa_vs.arch import DLGSANet

    with pytest.raises(TypeError, match="pass model="):
        resolve(RunSettings(), CPU)
    model = DLGSANet(dim=6, groups=1, blocks=1, upscale=2)
    plan = resolve(RunSettings(), CPU, model=model)
    assert isinstance(plan.tile, AutoTiles) and plan.tile.max_pixels > 0
    assert model.kernels == plan.kernels == "torch"  # the model was given the plan's forms


def test_what_cannot_run_is_an_error():
    with pytest.raises(BackendError, match="needs the frame size up front"):
        resolve(RunSettings(tile=(0, 0)), TRT)
    with pytest.raises(SettingsError, match="apply to the cuda backend only"):
        resolve(RunSettings(tile=(0, 0), compile=True, backend="auto"), CPU)


def test_the_upscaler_keeps_its_plan(tmp_path):
    from dlgsa_vs.runtime.backends import create_backend_upscaler

    up = create_backend_upscaler(RunSettings(variant="light", scale=2, tile=(32, 32)), CPU)
    assert isinstance(up.plan, RunPlan) and up.plan.tile == (32, 32) and up.tile_for(90, 160) == (32, 32)
    assert up.dtype == up.plan.model_dtype
