"""The vulkan backend (ncnn) on a real Vulkan device: on CI the software one, llvmpipe (Mesa's
``mesa-vulkan-drivers``; ``.ci/run`` installs it). Skipped, with the reason, where ncnn, pnnx
or a Vulkan device is missing. llvmpipe is a CPU emulating a GPU: these tests check results,
and use a very small real network (``micro_model``) where the trained one is not the point."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dlgsa_vs.runtime.run_plan import BackendError, resolve, select_backend
from dlgsa_vs.runtime.settings import RunSettings
from dlgsa_vs.runtime.vulkan.devices import vulkan_devices, vulkan_problem

pytestmark = pytest.mark.skipif(vulkan_problem() is not None, reason=f"no vulkan backend here: {vulkan_problem()}")


def _pnnx_missing() -> bool:
    try:
        import pnnx  # noqa: F401
    except ImportError:
        return True
    return False


needs_pnnx = pytest.mark.skipif(_pnnx_missing(), reason='pnnx is not installed (pip install "dlgsa-vs[vulkan]")')


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """One ncnn cache for the session (conversions are shared between tests), never the user's."""
    root = tmp_path_factory.getbasetemp() / "dlgsa-cache"
    monkeypatch.setenv("DLGSA_CACHE_DIR", str(root))
    return root / "ncnn"


def test_vulkan_asked_for_runs_on_the_device():
    backend = select_backend(RunSettings(backend="vulkan"))
    assert (backend.name, backend.device.type, backend.reason) == ("vulkan", "cpu", "asked for")


def test_auto_never_takes_a_cpu_vulkan_device():
    device = vulkan_devices()[0]
    backend = select_backend(RunSettings(backend="auto"))
    if device.is_cpu and backend.name == "cpu":
        assert f"the Vulkan device {device.name} is a CPU, never chosen automatically" in backend.reason
    elif backend.name == "vulkan":
        assert not device.is_cpu


def test_the_vulkan_runner_reuses_tiles_and_follows_the_gpu_precision_rule(micro_model):
    """Like every backend: the inference core's tile cache is there, and float32 frames (RGBS)
    compute in fp32 by default (run_plan.resolve_precision's one rule)."""
    from dlgsa_vs.runtime.backends import create_backend_upscaler

    settings = RunSettings(model_path=str(micro_model), backend="vulkan", tile=(0, 0))
    assert create_backend_upscaler(settings).reuse is not None  # (nothing converted: graphs load on first use)
    assert resolve(settings, input_dtype=torch.float32).precision == "fp32"


def test_a_missing_device_index_is_one_error():
    with pytest.raises(BackendError, match=r"device_index=7 does not exist: \d+ Vulkan device\(s\) are visible"):
        select_backend(RunSettings(backend="vulkan", device_index=7))


def test_precision_follows_the_device():
    device = vulkan_devices()[0]
    plan = resolve(RunSettings(backend="vulkan", tile=(0, 0)))
    assert plan.precision == ("fp16" if device.fp16 else "fp32")
    assert plan.model_dtype == torch.float32  # ncnn holds its own copy of the weights
    with pytest.raises(BackendError, match="precision='bf16' is not available on the vulkan backend"):
        resolve(RunSettings(backend="vulkan", precision="bf16", tile=(0, 0)))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).double().pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@needs_pnnx
def test_cache_reuses_and_rebuilds_a_damaged_entry(micro_model, _cache):
    from dlgsa_vs.runtime.vulkan.cache import NcnnCacheWarning
    from dlgsa_vs.runtime.vulkan.runner import NcnnNetwork
    from dlgsa_vs.runtime.weights import load_model

    model = load_model(str(micro_model))
    x = torch.rand(1, 3, 20, 28)
    first_log: list[str] = []
    first = NcnnNetwork(model, "fp32", log=first_log.append)(x)
    with torch.no_grad():
        assert _psnr(first, model(x)) >= 60
    again_log: list[str] = []
    assert torch.equal(NcnnNetwork(model, "fp32", log=again_log.append)(x), first)
    assert any("converting" in line for line in first_log) and not any("converting" in line for line in again_log)
    assert any("using the cached ncnn graph" in line for line in again_log)
    (weights,) = _cache.glob(f"{NcnnNetwork(model, 'fp32').key(20, 28).digest()}.bin")
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.warns(NcnnCacheWarning, match="is unusable: the files' sizes"):
        rebuilt = NcnnNetwork(model, "fp32")(x)
    assert torch.equal(rebuilt, first)
    assert not list(_cache.glob(".*.part*"))  # no temporary files left


@needs_pnnx
@pytest.mark.parametrize("precision, floor", [("fp32", 60.0), ("fp16", 45.0)])
def test_quality_against_torch_fp32_with_tiles(micro_model, precision, floor):
    """The backend as the front ends build it, with tiles (one graph for every crop), against the
    fp32 PyTorch output of the whole frame computed with the same per-tile windows."""
    from dlgsa_vs.runtime.backends import create_backend_upscaler
    from dlgsa_vs.runtime.inference import Upscaler

    settings = RunSettings(model_path=str(micro_model), backend="vulkan", precision=precision, tile=(24, 24),
                           tile_pad=4)
    upscaler = create_backend_upscaler(settings)
    if precision == "fp16" and upscaler.plan.precision != "fp16":
        pytest.skip(f"{vulkan_devices()[0].name} has no fp16 storage and arithmetic")
    frames = torch.rand(2, 3, 40, 52)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow fallback
        got = upscaler(frames)
    # the reference: PyTorch in fp32 on the same tiles, each placing its own TLC windows as the graph does
    torch_tiles = Upscaler(upscaler.model, tile=(24, 24), tile_pad=4, network=lambda x: upscaler.model(x))
    assert got.shape == (2, 3, 80, 104)
    assert _psnr(got, torch_tiles(frames)) >= floor


@needs_pnnx
def test_video_cli_backend_vulkan(tmp_path, capsys, micro_model):
    """``dlgsa-upscale clip.mp4 --backend vulkan``: the whole clip, and frames as the cpu backend's."""
    from video_support import decoded_planes, run_cli, video_facts, write_clip

    src = write_clip(tmp_path / "clip.mp4", width=48, height=32, frames=4)
    outs, logs = {}, {}
    for backend in ("vulkan", "cpu"):
        outs[backend] = tmp_path / f"x2_{backend}.mkv"
        rc, logs[backend] = run_cli(capsys, src, "-o", outs[backend], "-m", micro_model, "--backend", backend,
                                    "--precision", "fp32", "--encoder", "ffv1", "--threads", "1")
        assert rc == 0, logs[backend]
    assert "vulkan float32" in logs["vulkan"]
    facts = video_facts(outs["vulkan"])
    assert (facts["width"], facts["height"], facts["frames"]) == (96, 64, 4)
    for a, b in zip(decoded_planes(outs["vulkan"]), decoded_planes(outs["cpu"])):
        for pa, pb in zip(a, b):
            assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 1  # lossless codec: rounding only


@needs_pnnx
def test_vapoursynth_backend_vulkan(micro_model):
    """``dlgsa_vs.upscale(clip, backend="vulkan")`` and ``core.dlgsa.Upscale`` on the real core."""
    vs = pytest.importorskip("vapoursynth")
    import dlgsa_vs
    from vs_support import clip_from_arrays, planes, random_rgb

    clip = clip_from_arrays(random_rgb(2, 40, 24, seed=3), vs.RGBS)
    got = dlgsa_vs.upscale(clip, model_path=str(micro_model), backend="vulkan", precision="fp32")
    ref = dlgsa_vs.upscale(clip, model_path=str(micro_model), backend="cpu", precision="fp32")
    assert (got.width, got.height, got.num_frames) == (80, 48, 2)
    a = np.stack([np.stack(planes(got.get_frame(n))) for n in range(2)])
    b = np.stack([np.stack(planes(ref.get_frame(n))) for n in range(2)])
    assert _psnr(torch.from_numpy(a), torch.from_numpy(b)) >= 60
    if hasattr(vs.core, "dlgsa"):
        plugin = vs.core.dlgsa.Upscale(clip, model_path=str(micro_model), backend="vulkan", precision="fp32")
        assert np.array_equal(np.stack(planes(plugin.get_frame(0))), a[0])


@needs_pnnx
def test_fp16_overflow_is_redone_in_fp32_and_kept(micro_model):
    """Weights whose output exceeds fp16's range (65504): the frame is computed again in fp32, which
    is kept for the rest of the run, with one warning (the CUDA backend's guard)."""
    from dlgsa_vs.runtime.vulkan.runner import NcnnNetwork
    from dlgsa_vs.runtime.weights import load_model

    if not vulkan_devices()[0].fp16:
        pytest.skip(f"{vulkan_devices()[0].name} has no fp16 storage and arithmetic")
    model = load_model(str(micro_model))
    with torch.no_grad():
        model.upsample[0].bias[0] = 1e5
    network = NcnnNetwork(model, "fp16")
    x = torch.rand(1, 3, 16, 20)
    with pytest.warns(RuntimeWarning, match="fp16 output is not finite .* switching to fp32"):
        out = network(x)
    assert network.precision == "fp32" and torch.isfinite(out).all()
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-2)


@needs_pnnx
def test_packaged_weights_on_a_set5_crop_in_fp16():
    """The trained network (light x2) on a real image, in fp16: >= 45 dB against PyTorch fp32 (one
    conversion of the light network: the slowest test here, about a minute on llvmpipe)."""
    from conftest import SHARED_DATA
    from dlgsa_vs.image.imageio import read_image
    from dlgsa_vs.runtime.inference import image_to_tensor
    from dlgsa_vs.runtime.vulkan.runner import NcnnNetwork
    from dlgsa_vs.runtime.weights import load_model

    image = SHARED_DATA / "benchmarks" / "Set5" / "LR_bicubic" / "X2" / "butterflyx2.png"
    if not image.is_file():
        pytest.skip(f"benchmark data not found: {image} (the shared data folder ../shared/data is absent)")
    if not vulkan_devices()[0].fp16:
        pytest.skip(f"{vulkan_devices()[0].name} has no fp16 storage and arithmetic")
    model = load_model(None, variant="light", scale=2)
    x = image_to_tensor(read_image(image))[..., 20:44, 30:62]
    with torch.no_grad():
        ref = model(x)
    assert _psnr(NcnnNetwork(model, "fp16")(x), ref) >= 45
