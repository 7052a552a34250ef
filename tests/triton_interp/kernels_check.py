"""The Triton kernels against the plain-PyTorch forms (run by tests/test_triton_kernels.py).

Not collected by the main pytest run (the name does not match test_*.py): TRITON_INTERPRET
must be set before triton is imported, so the parent runs this file in a child process, with
TRITON_INTERPRET=1 on the CPU (tiny shapes: the interpreter is slow) or natively on a GPU:

    TRITON_INTERPRET=1 .venv/bin/python -m pytest -q tests/triton_interp/kernels_check.py
"""
import os

import pytest
import torch
import torch.nn.functional as F

from dlgsa_vs.arch import kernels

if not (os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()):
    pytest.skip("needs TRITON_INTERPRET=1 (set before triton is imported) or a CUDA GPU",
                allow_module_level=True)

from dlgsa_vs.arch.dlgsanet import DLGSANet, SparseGlobalAttention  # noqa: E402
from dlgsa_vs.arch.dynamic_conv import dynamic_dw_conv_functional, dynamic_dw_conv_fused_1x1  # noqa: E402
from dlgsa_vs.arch.tlc import from_windows, tlc_windows, to_windows  # noqa: E402
from dlgsa_vs.arch.kernels import dynamic_conv_triton as dc  # noqa: E402
from dlgsa_vs.arch.kernels import global_attention_triton as ga  # noqa: E402

DEVICE = torch.device("cpu" if kernels.interpreting() else "cuda")
# On a GPU the torch references must be full fp32 too (cuDNN convs default to TF32).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(autouse=True)
def _strict():
    # A failing kernel must fail the test, not fall back to the torch form unnoticed.
    kernels.set_strict(True)
    yield
    kernels.set_strict(False)


def _conv_case(n, c, groups, h, w, k=7, dtype=torch.float32):
    ch = max(c // 4, 1)
    x = torch.rand(n, c, h, w, device=DEVICE)
    hidden = torch.randn(n, ch, h, w, device=DEVICE)
    weight = torch.randn(groups * k * k, ch, 1, 1, device=DEVICE) * 0.2
    bias = torch.randn(groups * k * k, device=DEVICE) * 0.1
    return [t.to(dtype) for t in (x, hidden, weight, bias)]


def _max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


# --- dynamic depth-wise conv with the fused 1x1 ---

@pytest.mark.parametrize("n,c,groups,h,w", [(1, 48, 8, 9, 13), (2, 12, 2, 7, 9)])
def test_dyn_conv_fp32_equals_the_torch_fused_form(n, c, groups, h, w):
    x, hidden, weight, bias = _conv_case(n, c, groups, h, w)
    ref = dynamic_dw_conv_fused_1x1(x, hidden, weight, bias, 7)
    assert _max_err(dc.dyn_conv(x, hidden, weight, bias, 7), ref) <= 1e-4


def test_dyn_conv_fp16_is_close_to_fp32():
    x, hidden, weight, bias = _conv_case(1, 12, 2, 6, 11, dtype=torch.float16)
    ref = dynamic_dw_conv_fused_1x1(x.float(), hidden.float(), weight.float(), bias.float(), 7)
    out = dc.dyn_conv(x, hidden, weight, bias, 7)
    assert out.dtype == torch.float16
    assert _max_err(out, ref) <= 2e-3 * ref.abs().max().item() + 2e-3


def test_dyn_conv_gradients_equal_autograd_of_the_torch_form():
    case = [t.requires_grad_() for t in _conv_case(2, 12, 2, 6, 7)]
    grad_out = torch.randn(2, 12, 6, 7, device=DEVICE)
    got = torch.autograd.grad(dc.dyn_conv(*case, 7), case, grad_out)
    x, hidden, weight, bias = case
    ref = torch.autograd.grad(dynamic_dw_conv_functional(x, F.conv2d(hidden, weight, bias), 7), case, grad_out)
    for name, a, b in zip(("x", "hidden", "weight", "bias"), got, ref):
        assert _max_err(a, b) <= 1e-4 * max(1.0, b.abs().max().item()), name


def test_dyn_conv_opcheck():
    case = [t.requires_grad_() for t in _conv_case(1, 4, 2, 4, 5, k=3)]
    torch.library.opcheck(dc.dyn_conv, (*case, 3))


# --- sparse global attention ---

def _attention(dim=12, heads=6, tlc_kernel=8, activation="relu"):
    m = SparseGlobalAttention(dim, heads, True, tlc_kernel, activation).to(DEVICE).eval()
    with torch.no_grad():
        m.temperature.copy_(torch.rand_like(m.temperature) + 0.5)
    return m


def _torch_tlc(m, qkv, k):
    h, w = qkv.shape[-2:]
    windows = tlc_windows(h, w, k, qkv.device)
    from dlgsa_vs.arch.tlc import pad_to_window

    padded = pad_to_window(qkv, k)
    out = m._attend(to_windows(padded, *windows))
    return from_windows(out, *windows, padded.shape[-2], padded.shape[-1])[..., :h, :w]


@pytest.mark.parametrize("b,h,w,tlc_kernel", [(2, 11, 19, 8), (1, 5, 6, 8), (1, 8, 8, 8), (1, 9, 7, None)])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_attention_fp32_equals_the_torch_form(b, h, w, tlc_kernel, activation):
    m = _attention(tlc_kernel=tlc_kernel or 8, activation=activation)
    qkv = torch.randn(b, 36, h, w, device=DEVICE)
    with torch.no_grad():
        ref = _torch_tlc(m, qkv, tlc_kernel) if tlc_kernel else m._attend(qkv)
        out = ga.sparse_attention(qkv, m.temperature, 6, m.act, tlc_kernel)
    assert out.shape == ref.shape
    assert _max_err(out, ref) <= 1e-4


def test_attention_with_a_head_width_that_is_not_a_power_of_two():
    m = _attention(dim=18)  # d = 3, padded to 4 in the kernels (the full variant has d = 15)
    qkv = torch.randn(1, 54, 9, 10, device=DEVICE)
    with torch.no_grad():
        ref = _torch_tlc(m, qkv, 8)
        out = ga.sparse_attention(qkv, m.temperature, 6, m.act, 8)
    assert _max_err(out, ref) <= 1e-4


def test_attention_48_channels_in_module_forward_with_overlapping_windows():
    m = _attention(dim=48, tlc_kernel=8)
    x = torch.rand(1, 48, 13, 10, device=DEVICE)
    with torch.no_grad():
        ref = m(x)
        m.kernels = "triton"
        out = m(x)
    assert _max_err(out, ref) <= 1e-4


def test_attention_fp16_is_close_to_fp32():
    m = _attention()
    qkv = torch.randn(1, 36, 10, 12, device=DEVICE)
    with torch.no_grad():
        ref = _torch_tlc(m, qkv, 8)
        out = ga.sparse_attention(qkv.half(), m.temperature.half(), 6, m.act, 8)
    assert out.dtype == torch.float16
    assert _max_err(out, ref) <= 1e-2 * ref.abs().max().item() + 1e-3


@pytest.mark.parametrize("tlc_kernel", [None, 4])
def test_attention_gradients_equal_autograd_of_the_torch_form(tlc_kernel):
    m = _attention(tlc_kernel=tlc_kernel or 8)
    qkv = torch.randn(2, 36, 6, 7, device=DEVICE, requires_grad=True)
    grad_out = torch.randn(2, 12, 6, 7, device=DEVICE)
    got = torch.autograd.grad(ga.sparse_attention(qkv, m.temperature, 6, m.act, tlc_kernel),
                              (qkv, m.temperature), grad_out)
    ref_out = _torch_tlc(m, qkv, tlc_kernel) if tlc_kernel else m._attend(qkv)
    ref = torch.autograd.grad(ref_out, (qkv, m.temperature), grad_out)
    for name, a, b in zip(("qkv", "temperature"), got, ref):
        assert _max_err(a, b) <= 1e-4 * max(1.0, b.abs().max().item()), name


def _segments(h, w, tlc_kernel):
    rows, cols = ga.device_plan(h, w, tlc_kernel, DEVICE)
    return rows, cols


def test_segment_gram_opcheck():
    rows, cols = _segments(5, 6, 4)
    a = torch.randn(1, 4, 5, 6, device=DEVICE, requires_grad=True)
    b = torch.randn(1, 4, 5, 6, device=DEVICE, requires_grad=True)
    torch.library.opcheck(ga.segment_gram, (a, b, rows["bounds"], cols["bounds"], rows["index"],
                                            cols["index"], 2))


def test_segment_matmul_opcheck():
    rows, cols = _segments(5, 6, 4)
    m = torch.randn(1, 2, len(rows["bounds"]), len(cols["bounds"]), 2, 2, device=DEVICE, requires_grad=True)
    u = torch.randn(1, 4, 5, 6, device=DEVICE, requires_grad=True)
    torch.library.opcheck(ga.segment_matmul, (m, u, rows["index"], cols["index"], rows["bounds"],
                                              cols["bounds"]))


# --- a whole network ---

def _network(dim, tlc_kernel=8):
    net = DLGSANet(dim=dim, groups=1, blocks=1, upscale=2, tlc_kernel=tlc_kernel).to(DEVICE)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


@pytest.mark.parametrize("tlc,batch,h,w", [(True, 1, 11, 13), (True, 2, 9, 17), (False, 2, 7, 11)])
def test_light_width_network_triton_equals_torch(tlc, batch, h, w):
    net = _network(48).eval().set_tlc(tlc)
    x = torch.rand(batch, 3, h, w, device=DEVICE)
    with torch.no_grad():
        ref = net.set_kernels("torch")(x)
        out = net.set_kernels("triton")(x)
    assert net.kernels == "triton"
    assert _max_err(out, ref) <= 1e-4


def test_training_step_gradients_equal_torch():
    net = _network(12).train()
    x = torch.rand(2, 3, 7, 9, device=DEVICE)
    target = torch.rand(2, 3, 14, 18, device=DEVICE)
    grads = {}
    for kind in ("torch", "triton"):
        net.set_kernels(kind).zero_grad()
        F.l1_loss(net(x), target).backward()
        grads[kind] = {name: p.grad.clone() for name, p in net.named_parameters()}
    assert grads["torch"].keys() == grads["triton"].keys()
    for name, ref in grads["torch"].items():
        assert _max_err(grads["triton"][name], ref) <= 1e-5 + 1e-4 * ref.abs().max().item(), name


def test_torch_compile_sees_one_node_per_kernel_and_gives_the_same_gradients():
    net = _network(12).train()
    x = torch.rand(2, 3, 7, 9, device=DEVICE)
    target = torch.rand(2, 3, 14, 18, device=DEVICE)
    F.l1_loss(net.set_kernels("torch")(x), target).backward()
    ref = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    seen = []

    def backend(gm, example_inputs):  # record dynamo's graph, then run it through AOT autograd
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)

    compiled = torch.compile(net.set_kernels("triton"), backend=backend, fullgraph=True)
    F.l1_loss(compiled(x), target).backward()
    ops = [t for t in seen if "dlgsa" in t]
    assert sorted(set(ops)) == ["dlgsa.dyn_conv.default", "dlgsa.segment_gram.default",
                                "dlgsa.segment_matmul.default"], ops
    for name, p in net.named_parameters():
        assert _max_err(p.grad, ref[name]) <= 1e-5 + 1e-4 * ref[name].abs().max().item(), name
