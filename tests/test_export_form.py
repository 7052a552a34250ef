"""The <= 4-D, fixed-size form of the network (arch/export_form.py) against the network itself."""
import pytest
import torch

from conftest import randomize_, small_config
from dlgsa_vs.arch.dlgsanet import DLGSANet
from dlgsa_vs.arch.export_form import DYNAMIC_CONV_FORMS, FixedSizeForm, dynamic_dw_conv_shift, dynamic_dw_conv_taps
from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_functional


@pytest.mark.parametrize("form", [dynamic_dw_conv_shift, dynamic_dw_conv_taps])
def test_dynamic_conv_forms_equal_the_reference(form):
    x = torch.randn(2, 12, 9, 11)
    kernels = torch.randn(2, 3 * 49, 9, 11)  # 3 groups of 4 channels
    torch.testing.assert_close(form(x, kernels, 7), dynamic_dw_conv_functional(x, kernels, 7), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", list(DYNAMIC_CONV_FORMS))
@pytest.mark.parametrize("tlc", [True, False])
@pytest.mark.parametrize("hw", [(24, 40), (13, 17), (16, 16)])  # several overlapping windows; one padded; one exact
def test_fixed_size_form_equals_the_network(form, tlc, hw):
    model = randomize_(DLGSANet(**small_config(tlc_flag=tlc))).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        torch.testing.assert_close(FixedSizeForm(model, *hw, dynamic_conv=form)(x), model(x), rtol=1e-5, atol=2e-5)


def test_fixed_size_form_with_packaged_weights():
    from dlgsa_vs.runtime.weights import load_model

    model = load_model(None, variant="light", scale=2)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(FixedSizeForm(model, 20, 28)(x), model(x), rtol=1e-5, atol=1e-5)


def test_fixed_size_form_holds_no_tensor_over_4d():
    """What ncnn needs: every traced value at most 4-D, no unbind, window positions constant."""
    model = randomize_(DLGSANet(**small_config())).eval().requires_grad_(False)
    x = torch.rand(1, 3, 24, 40)
    traced = torch.jit.trace(FixedSizeForm(model, 24, 40), (x,), check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert not kinds & {"aten::unbind", "aten::index", "aten::index_put", "aten::index_add", "aten::narrow"}
    for node in traced.inlined_graph.nodes():
        for out in node.outputs():
            t = out.type()
            if isinstance(t, torch._C.TensorType) and t.dim() is not None:
                assert t.dim() <= 4, node


def test_fixed_size_form_rejects_another_size():
    model = DLGSANet(**small_config()).eval()
    with pytest.raises(ValueError, match="takes 16x16 inputs, got 16x20"):
        FixedSizeForm(model, 16, 16)(torch.rand(1, 3, 16, 20))
