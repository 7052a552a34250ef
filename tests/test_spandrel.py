"""dlgsa_vs.integrations.spandrel_arch: DLGSANet checkpoints through the real spandrel (PyPI) ModelLoader.

Both layouts users have: our packaged safetensors and the authors' BasicSR .pth
(``params`` / ``params_ema``, ``module.`` prefix, written here from real weights as BasicSR
writes them). The loaded model must be the same function as our own loader's.
"""
from __future__ import annotations

import collections

import pytest
import torch

spandrel = pytest.importorskip("spandrel", reason="spandrel is not installed: pip install 'dlgsa-vs[spandrel]'")

from dlgsa_vs.arch import DLGSANet, build_model  # noqa: E402
from dlgsa_vs.integrations.spandrel_arch import ARCH_ID, DLGSANetArch, detect, register  # noqa: E402
from dlgsa_vs.runtime.weights import default_model_path, load_model, read_state_dict  # noqa: E402

PACKAGED = [("light", 2), ("light", 3), ("light", 4), ("light-video", 2)]


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register()


def packaged(name: str, scale: int):
    path = default_model_path(name, scale)
    if not path.is_file():
        pytest.skip(f"packaged weights {path.name} are missing (deleted from dlgsa_vs/models?)")
    return path


def ours(path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(path)(x).clamp(0, 1)


@pytest.mark.parametrize("name,scale", PACKAGED)
def test_packaged_safetensors_load_and_give_our_output(name, scale):
    path = packaged(name, scale)
    desc = spandrel.ModelLoader().load_from_file(path)
    assert isinstance(desc, spandrel.ImageModelDescriptor)
    assert isinstance(desc.model, DLGSANet) and desc.architecture.id == ARCH_ID
    assert (desc.scale, desc.input_channels, desc.output_channels, desc.purpose) == (scale, 3, 3, "SR")
    assert desc.tags == ["light", "48nf", "4x3"]
    assert desc.supports_half and desc.supports_bfloat16 and desc.size_requirements.none
    x = torch.rand(1, 3, 11, 14)
    out = desc(x)
    assert out.shape == (1, 3, 11 * scale, 14 * scale)
    assert torch.equal(out, ours(path, x))


def test_authors_basicsr_pth_loads_params_ema(tmp_path):
    path = packaged("light", 4)
    state, _ = read_state_dict(path)
    # as BasicSR saves it: both copies, DataParallel's prefix; spandrel must pick params_ema
    ema = collections.OrderedDict((f"module.{k}", v) for k, v in state.items())
    pth = tmp_path / "net_g_500000.pth"
    torch.save({"params": {k: torch.zeros_like(v) for k, v in ema.items()}, "params_ema": ema}, pth)
    desc = spandrel.ModelLoader().load_from_file(pth)
    assert desc.architecture.id == ARCH_ID and desc.scale == 4
    x = torch.rand(1, 3, 9, 13)
    assert torch.equal(desc(x), ours(pth, x))
    assert torch.equal(desc(x), ours(path, x))  # the same weights as the safetensors


@pytest.mark.parametrize("variant,scale", [("tiny", 3), ("full", 4)])
def test_other_variants_are_read_from_the_shapes(tmp_path, variant, scale):
    torch.manual_seed(7)
    model = build_model(variant, scale).eval()
    pth = tmp_path / f"{variant}_x{scale}.pth"
    torch.save({"params": model.state_dict()}, pth)
    desc = spandrel.ModelLoader().load_from_file(pth)
    assert desc.scale == scale and desc.tags[0] == variant
    x = torch.rand(1, 3, 8, 10)
    with torch.no_grad():
        assert torch.equal(desc(x), model(x).clamp(0, 1))


@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 0.05), (torch.float16, 0.01)])
def test_half_precisions_that_the_descriptor_claims(dtype, tolerance):
    desc = spandrel.ModelLoader().load_from_file(packaged("light", 4))  # x4: the smallest TLC window
    x = torch.rand(1, 3, 12, 12)
    ref = desc(x)
    half = desc.to(dtype)
    out = half(x.to(dtype)).float()
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() < tolerance


def test_register_is_idempotent_and_takes_a_registry():
    before = len(spandrel.MAIN_REGISTRY)
    assert register() is spandrel.MAIN_REGISTRY and len(spandrel.MAIN_REGISTRY) == before
    assert ARCH_ID in spandrel.MAIN_REGISTRY
    own = spandrel.ArchRegistry()
    assert register(own) is own and register(own) is own
    assert [a.architecture.id for a in own] == [ARCH_ID]
    desc = spandrel.ModelLoader(registry=own).load_from_file(packaged("light", 2))
    assert isinstance(desc.model, DLGSANet)


def test_no_other_architecture_claims_dlgsanet():
    state, _ = read_state_dict(packaged("light", 2))
    claims = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures("detection")
              if a.architecture.id != ARCH_ID and a.detect(state)]
    assert claims == []


def test_detection_does_not_claim_other_architectures():
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SPAN import SPAN

    others = {
        "ESRGAN": ESRGAN(num_filters=16, num_blocks=2, scale=4).state_dict(),
        "Compact": Compact(num_feat=16, num_conv=4, upscale=2).state_dict(),
        "SPAN": SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2).state_dict(),
    }
    for arch_id, state in others.items():
        assert not detect(state), arch_id
        # and with DLGSANet registered, spandrel still loads them as what they are
        assert spandrel.ModelLoader().load_from_state_dict(state).architecture.id == arch_id


def test_incomplete_or_inconsistent_dlgsanet_dicts_are_not_detected():
    state = build_model("tiny", 2).state_dict()
    assert detect(state)
    assert not detect({k: v for k, v in state.items() if not k.startswith("upsample.")})
    truncated = {k: v for k, v in state.items() if ".restormer_attn.temperature" not in k}
    assert not detect(truncated)
    odd = dict(state, **{"upsample.0.weight": torch.zeros(13, 48, 3, 3)})  # no integer scale
    assert not detect(odd)
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_state_dict(truncated)
    # load() itself, given a dict that detect() would refuse, says what is wrong
    with pytest.raises(ValueError, match="not a DLGSANet checkpoint"):
        DLGSANetArch().load({"conv.weight": torch.zeros(1)})
