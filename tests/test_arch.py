"""The network's layout against the specification (shared/docs/dlgsanet.md)."""
import pytest
import torch

from dlgsa_vs.arch import DLGSANet, build_model, variant_config
from conftest import randomize_, small_config

PARAMS = {
    "tiny": (565_710, 572_205, 581_298, 245),
    "light": (745_188, 751_683, 760_776, 325),
    "full": (4_733_724, 4_745_889, 4_762_920, 641),
}


@pytest.mark.parametrize("variant", PARAMS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_and_key_counts_match_the_paper(variant, scale):
    model = build_model(variant, scale)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[variant][scale - 2]
    assert len(model.state_dict()) == PARAMS[variant][3]


def test_key_names_and_shapes_follow_the_authors_layout():
    sd = build_model("light", 4).state_dict()
    c = 48
    expect = {
        "overlap_embed.0.proj.weight": (c, 3, 3, 3),
        "deep_feature_extraction.0.body.0.norm1.body.weight": (c,),
        "deep_feature_extraction.0.body.0.norm1.body.bias": (c,),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv0.weight": (c, c, 1, 1),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv1.weight": (c, c, 1, 1),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv1.0.weight": (c // 4, c, 1, 1),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv1.0.bias": (c // 4,),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv1.1.weight": (c // 4, 1, 7, 7),
        "deep_feature_extraction.0.body.0.IDynamicDWConv.conv.conv2.0.weight": (49 * c // 6, c // 4, 1, 1),
        "deep_feature_extraction.0.body.0.IDynamic_ffn.project_in.weight": (4 * c, c, 1, 1),
        "deep_feature_extraction.0.body.0.IDynamic_ffn.dwconv.weight": (4 * c, 1, 3, 3),
        "deep_feature_extraction.0.body.0.IDynamic_ffn.project_out.weight": (c, 2 * c, 1, 1),
        "deep_feature_extraction.0.body.1.norm3.body.weight": (c,),
        "deep_feature_extraction.0.body.1.restormer_attn.temperature": (6, 1, 1),
        "deep_feature_extraction.0.body.1.restormer_attn.qkv.weight": (3 * c, c, 1, 1),
        "deep_feature_extraction.0.body.1.restormer_attn.qkv_dwconv.weight": (3 * c, 1, 3, 3),
        "deep_feature_extraction.0.body.1.restormer_attn.project_out.weight": (c, c, 1, 1),
        "deep_feature_extraction.0.body.1.norm4.body.bias": (c,),
        "deep_feature_extraction.3.body.5.restormer_ffn.project_out.weight": (c, 2 * c, 1, 1),
        "deep_feature_extraction.3.body.6.weight": (c, c, 3, 3),
        "deep_feature_extraction.3.body.6.bias": (c,),
        "deep_feature_extraction.4.weight": (c, c, 3, 3),
        "deep_feature_extraction.4.bias": (c,),
        "upsample.0.weight": (48, c, 3, 3),
        "upsample.0.bias": (48,),
    }
    for key, shape in expect.items():
        assert tuple(sd[key].shape) == shape, key


def test_authors_yaml_network_g_block_maps_one_to_one():
    # network_g of the authors' light x4 config, with BasicSR's 'type' and the flop-counting key
    yaml_block = dict(type="DLGSANet", upscale=4, in_chans=3, dim=48, groups=4, blocks=3,
                      buildblock_type="sparseedge", window_size=7, idynamic_num_heads=6,
                      idynamic_ffn_type="GDFN", idynamic_ffn_expansion_factor=2.0, idynamic=True,
                      restormer_num_heads=6, restormer_ffn_type="GDFN",
                      restormer_ffn_expansion_factor=2.0, tlc_flag=True, tlc_kernel=48,
                      activation="relu", body_norm=False, img_range=1.0,
                      upsampler="pixelshuffledirect")
    a = DLGSANet(**yaml_block)
    b = DLGSANet(**variant_config("light", 4))
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_unimplemented_ablations_are_refused_by_name():
    with pytest.raises(ValueError, match="buildblock_type='edge'"):
        DLGSANet(buildblock_type="edge")
    with pytest.raises(ValueError, match="upsampler='pixelshuffle'"):
        DLGSANet(upsampler="pixelshuffle")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_for_odd_sizes_and_batches(scale):
    model = DLGSANet(**small_config(upscale=scale)).eval()
    with torch.no_grad():
        y = model(torch.rand(3, 3, 19, 26))
    assert y.shape == (3, 3, 19 * scale, 26 * scale)


def test_layer_shapes_inside_a_block():
    model = randomize_(DLGSANet(**small_config())).eval()
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
             for name, m in model.named_modules() if name]
    with torch.no_grad():
        model(torch.rand(2, 3, 10, 14))
    for h in hooks:
        h.remove()
    p = "deep_feature_extraction.0.body."
    assert seen["overlap_embed"] == (2, 12, 10, 14)
    assert seen[p + "0.IDynamicDWConv.conv.conv1"] == (2, 3, 10, 14)  # hypernetwork hidden: C / 4
    assert seen[p + "0.IDynamicDWConv.conv"] == (2, 12, 10, 14)
    assert seen[p + "1.restormer_attn.qkv_dwconv"] == (2, 36, 10, 14)
    assert seen[p + "1.restormer_ffn.project_in"] == (2, 48, 10, 14)
    assert seen["upsample"] == (2, 3, 20, 28)


def _blob_image(top: int, left: int, size: int = 72) -> torch.Tensor:
    """The mean colour everywhere (zero after the network's mean shift) but for a textured patch."""
    g = torch.Generator().manual_seed(1)
    patch = torch.rand(1, 3, 12, 12, generator=g)
    x = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).repeat(1, 1, size, size)
    x[..., top:top + 12, left:left + 12] = patch
    return x


def test_shifting_the_input_shifts_the_output_with_tlc_off():
    # Content far from the borders: a shift changes no feature's neighbourhood and keeps the
    # global attention's sums, so the output moves by scale x the shift, exactly.
    model = randomize_(DLGSANet(**small_config(tlc_flag=False))).eval()
    dy, dx, s = 3, 5, 2
    with torch.no_grad():
        a = model(_blob_image(28, 26))
        b = model(_blob_image(28 + dy, 26 + dx))
    inner = slice(40, 104)
    assert torch.allclose(b[..., inner, inner], a[..., inner.start - s * dy:inner.stop - s * dy,
                                                  inner.start - s * dx:inner.stop - s * dx], atol=1e-5)
    # and it is not trivially constant
    assert a[..., inner, inner].std() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_run_on_cpu_and_stay_close_to_fp32(dtype):
    model = randomize_(DLGSANet(**small_config())).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        ref = model(x)
        out = model.to(dtype)(x.to(dtype)).float()
    assert torch.isfinite(out).all()
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    assert rel < (0.05 if dtype == torch.bfloat16 else 0.01), rel


def test_training_mode_uses_global_attention_and_backpropagates():
    model = randomize_(DLGSANet(**small_config(tlc_kernel=8)))
    x = torch.rand(2, 3, 20, 20)
    model.train()
    y_train = model(x)
    y_train.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        y_tlc = model(x)
        y_global = model.set_tlc(False)(x)
    assert torch.allclose(y_global, y_train.detach(), atol=1e-5)
    assert (y_tlc - y_global).abs().max() > 1e-4  # 8-px windows on a 20-px map do differ
