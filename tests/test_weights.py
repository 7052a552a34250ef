"""Checkpoint files: authors' BasicSR layout, safetensors, detection and precise errors."""
import collections

import pytest
import torch

from dlgsa_vs.arch import build_model
from dlgsa_vs.runtime.weights import (WeightsError, detect_config, load_model, read_state_dict,
                              save_safetensors, variant_name)


@pytest.fixture(scope="module")
def tiny4():
    torch.manual_seed(0)
    return build_model("tiny", 4).eval()


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("variant", ["tiny", "light", "full"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_variant_and_scale_are_deduced_from_shapes(variant, scale):
    config = detect_config(build_model(variant, scale).state_dict())
    assert variant_name(config) == variant and config["upscale"] == scale


def test_basicsr_file_with_params_ema_and_module_prefix_loads(tiny4, tmp_path):
    ema = collections.OrderedDict((f"module.{k}", v) for k, v in tiny4.state_dict().items())
    other = {k: torch.zeros_like(v) for k, v in ema.items()}
    path = tmp_path / "net_g_500000.pth"
    torch.save({"params": other, "params_ema": ema}, path)
    model = load_model(path)
    assert same_weights(model, tiny4)  # params_ema wins over params, prefix stripped
    assert model.upscale == 4 and not model.training


def test_params_only_and_plain_state_dicts_load(tiny4, tmp_path):
    torch.save({"params": tiny4.state_dict()}, tmp_path / "a.pth")
    torch.save(tiny4.state_dict(), tmp_path / "b.pth")
    assert same_weights(load_model(tmp_path / "a.pth"), tiny4)
    assert same_weights(load_model(tmp_path / "b.pth"), tiny4)


def test_safetensors_round_trip_keeps_metadata(tiny4, tmp_path):
    path = save_safetensors(tiny4, tmp_path / "m.safetensors", training_data="T91+BSD200")
    state, meta = read_state_dict(path)
    assert meta["variant"] == "tiny" and meta["scale"] == "4" and meta["training_data"] == "T91+BSD200"
    assert same_weights(load_model(path), tiny4)
    assert not list(tmp_path.glob("*.part"))


def test_the_same_function_is_computed_after_loading(tiny4, tmp_path):
    path = save_safetensors(tiny4, tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(load_model(path)(x), tiny4(x))


def test_missing_empty_and_truncated_files_are_named(tiny4, tmp_path):
    with pytest.raises(WeightsError, match="model file not found"):
        load_model(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_model(tmp_path / "empty.pth")
    torch.save(tiny4.state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.pth")
    path = save_safetensors(tiny4, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_model(path)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        load_model(path)
    assert "this must never run" not in capsys.readouterr().out


def test_other_networks_are_reported_with_their_keys(tmp_path):
    torch.save(torch.nn.Conv2d(3, 3, 3).state_dict(), tmp_path / "conv.pth")
    with pytest.raises(WeightsError, match="not a DLGSANet checkpoint.*weight"):
        load_model(tmp_path / "conv.pth")


def test_missing_and_reshaped_tensors_are_listed(tiny4, tmp_path):
    state = dict(tiny4.state_dict())
    del state["deep_feature_extraction.0.body.1.norm3.body.bias"]
    state["deep_feature_extraction.1.body.2.IDynamic_ffn.dwconv.weight"] = torch.zeros(5, 1, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as err:
        load_model(tmp_path / "bad.pth")
    msg = str(err.value)
    assert "1 missing keys (e.g. deep_feature_extraction.0.body.1.norm3.body.bias)" in msg
    assert "1 unexpected keys (e.g. extra.weight)" in msg
    assert "IDynamic_ffn.dwconv.weight: file (5, 1, 3, 3) vs model (192, 1, 3, 3)" in msg


def test_asking_for_another_variant_or_scale_than_the_file_holds(tiny4, tmp_path):
    path = save_safetensors(tiny4, tmp_path / "m.safetensors")
    with pytest.raises(WeightsError, match="x4 model but scale=2"):
        load_model(path, scale=2)
    with pytest.raises(WeightsError, match="DLGSANet-tiny but variant='light'"):
        load_model(path, variant="light")


def test_missing_packaged_weights_name_the_file(monkeypatch, tmp_path):
    import dlgsa_vs.runtime.weights as weights
    monkeypatch.setattr(weights, "MODELS_DIR", tmp_path)  # an empty install folder
    with pytest.raises(WeightsError, match=r"no packaged weights for light x3: .*dlgsanet_light_x3.safetensors is missing"):
        load_model(variant="light", scale=3)


@pytest.mark.parametrize("scale", [2, 4])
def test_packaged_video_weights_are_their_own_light_network(scale):
    """light-video: the light architecture with weights of its own, trained on compressed LR."""
    from dlgsa_vs.runtime.weights import default_model_path

    video, paper = load_model(variant="light-video", scale=scale), load_model(variant="light", scale=scale)
    assert video.upscale == scale and variant_name(detect_config(video.state_dict())) == "light"
    assert any(not torch.equal(a, b) for a, b in zip(video.state_dict().values(), paper.state_dict().values()))
    _, meta = read_state_dict(default_model_path("light-video", scale))
    assert "degrade" in meta["training_data"], meta
    # a model file is checked against the name's architecture
    assert load_model(default_model_path("light", scale), variant="light-video").upscale == scale
    with pytest.raises(WeightsError, match="unknown variant 'video': choose one of tiny, light, light-video, full"):
        load_model(variant="video", scale=scale)
