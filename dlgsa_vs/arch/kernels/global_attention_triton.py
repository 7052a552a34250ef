"""SparseGSA's channel attention over TLC windows without window copies (Triton).

The torch form copies q, k, v into overlapping k x k windows, attends per window and head

    attn_w = act(temperature * (q_i . k_j)_w / (max(|q_i|_w, eps) * max(|k_j|_w, eps)))

(``F.normalize`` over the window's pixels, eps 1e-12), multiplies attn_w @ v_w and scatters
the windows back, averaging where they overlap. Two facts remove the copies:

- the windows' edges cut the map into a grid of *segments* (rectangles that no window edge
  crosses). Every window is a union of whole segments, so its Gram matrix q.k^T and norms
  are sums of per-segment ones: one pass over q and k reads every pixel once
  (``dlgsa::segment_gram``), and the per-window numbers are tiny torch sums;
- every pixel of a segment is covered by the same windows, so the average of the windows'
  outputs at p is (mean over those windows of attn_w) @ v(p): one d x d matrix per segment and
  head, applied per pixel (``dlgsa::segment_matmul``). Nothing is scattered back.

The global form (TLC off, and training) is the case of one window = one segment = the map.
The activation, the temperature and the means run in torch on the (B, heads, windows, d, d)
tensors, so any activation works and autograd gives the temperature's gradient. The two ops
are each other's backward: d(segment_gram) is two segment_matmuls, d(segment_matmul) a
segment_gram and a segment_matmul with the transposed matrices.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
import triton
import triton.language as tl

from ._common import interpreting, tlc_window_starts
from ._launch import Launch, check_plane

EPS = 1e-12  # F.normalize's default, as in SparseGlobalAttention._attend


@triton.jit
def _segment_gram_kernel(a_ptr, b_ptr, bounds_h_ptr, bounds_w_ptr, g_ptr, sa_ptr, sb_ptr,
                         a_sb, a_sc, b_sb, b_sc, W, HEADS, SW, SPLIT,
                         D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr,
                         BLOCK_W: tl.constexpr):
    # One program: one (batch, head), one segment, every SPLIT-th block of its rows.
    bh = tl.program_id(0)
    seg = tl.program_id(1)
    split = tl.program_id(2)
    n = (bh // HEADS).to(tl.int64)
    head = bh % HEADS
    y0 = tl.load(bounds_h_ptr + 2 * (seg // SW))
    y1 = tl.load(bounds_h_ptr + 2 * (seg // SW) + 1)
    x0 = tl.load(bounds_w_ptr + 2 * (seg % SW))
    x1 = tl.load(bounds_w_ptr + 2 * (seg % SW) + 1)
    ch = tl.arange(0, BLOCK_D)
    cmask = ch < D
    offs = tl.arange(0, BLOCK_R * BLOCK_W)
    ry = offs // BLOCK_W
    rx = offs % BLOCK_W
    chan = (head * D + ch).to(tl.int64)  # plane offsets in int64, in-plane offsets int32
    a_rows = a_ptr + n * a_sb + chan * a_sc
    b_rows = b_ptr + n * b_sb + chan * b_sc
    gram = tl.zeros((BLOCK_D, BLOCK_D, BLOCK_R * BLOCK_W), dtype=tl.float32)
    sq_a = tl.zeros((BLOCK_D, BLOCK_R * BLOCK_W), dtype=tl.float32)
    sq_b = tl.zeros((BLOCK_D, BLOCK_R * BLOCK_W), dtype=tl.float32)
    for r in range(y0 + split * BLOCK_R, y1, SPLIT * BLOCK_R):
        for c in range(x0, x1, BLOCK_W):
            y = r + ry
            x = c + rx
            m = cmask[:, None] & ((y < y1) & (x < x1))[None, :]
            pix = (y * W + x)[None, :]
            av = tl.load(a_rows[:, None] + pix, mask=m, other=0.0).to(tl.float32)
            bv = tl.load(b_rows[:, None] + pix, mask=m, other=0.0).to(tl.float32)
            gram += av[:, None, :] * bv[None, :, :]  # broadcast products: d is too small for tl.dot
            sq_a += av * av
            sq_b += bv * bv
    slot = (bh * tl.num_programs(1) + seg) * SPLIT + split
    tl.store(g_ptr + slot * BLOCK_D * BLOCK_D + ch[:, None] * BLOCK_D + ch[None, :], tl.sum(gram, axis=2))
    tl.store(sa_ptr + slot * BLOCK_D + ch, tl.sum(sq_a, axis=1))
    tl.store(sb_ptr + slot * BLOCK_D + ch, tl.sum(sq_b, axis=1))


@triton.jit
def _segment_matmul_kernel(m_ptr, u_ptr, out_ptr, seg_row_ptr, seg_col_ptr, u_sb, u_sc, H, W,
                           HEADS, SH, SW, D: tl.constexpr, BLOCK_D: tl.constexpr,
                           BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    # out[head*D + i, p] = sum_j M[segment(p), i, j] * u[head*D + j, p]
    bh = tl.program_id(0)
    n = (bh // HEADS).to(tl.int64)
    head = bh % HEADS
    offs = tl.arange(0, BLOCK_R * BLOCK_W)
    y = tl.program_id(1) * BLOCK_R + offs // BLOCK_W
    x = tl.program_id(2) * BLOCK_W + offs % BLOCK_W
    inside = (y < H) & (x < W)
    seg = tl.load(seg_row_ptr + y, mask=y < H, other=0) * SW + tl.load(seg_col_ptr + x, mask=x < W, other=0)
    m_pix = m_ptr + (bh * SH * SW + seg).to(tl.int64) * (D * D)
    ch = tl.arange(0, BLOCK_D)
    cmask = ch < D
    both = cmask[:, None] & inside[None, :]
    pix = y * W + x
    u_sc64 = u_sc.to(tl.int64)  # plane offsets in int64, in-plane offsets int32
    u_rows = u_ptr + n * u_sb + head * D * u_sc64
    acc = tl.zeros((BLOCK_D, BLOCK_R * BLOCK_W), dtype=tl.float32)
    for j in tl.static_range(D):
        uj = tl.load(u_rows + j * u_sc64 + pix, mask=inside, other=0.0).to(tl.float32)
        mj = tl.load(m_pix[None, :] + ch[:, None] * D + j, mask=both, other=0.0)
        acc += mj * uj[None, :]
    hw = (H * W).to(tl.int64)
    tl.store(out_ptr + n * (HEADS * D) * hw + ((head * D + ch) * hw)[:, None] + pix[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=both)


def dense_planes(t: torch.Tensor) -> torch.Tensor:
    """The kernels index (batch, channel) planes by strides but need each H x W plane dense."""
    h, w = t.shape[-2:]
    if t.stride(-1) == 1 and t.stride(-2) == w:
        return t
    return t.contiguous()


def _blocks(h: int, w: int, block_d: int) -> tuple[int, int]:
    """Pixel tile (rows, columns). On a GPU 32 columns (coalesced) and as many rows (<= 4) as
    keep the Gram kernel's block_d x block_d x pixels accumulator at 8192 values (64 registers
    a thread at 4 warps): 4 rows for d = 8 (light), 1 for d = 15 (full, padded to 16).
    Under the interpreter one tile as large as the tiny test maps allow (fewer programs)."""
    if interpreting():
        return min(triton.next_power_of_2(h), 16), min(triton.next_power_of_2(w), 64)
    return max(1, min(4, 8192 // (block_d * block_d * 32))), 32


def _check(a: torch.Tensor, heads: int, seg_row: torch.Tensor, seg_col: torch.Tensor) -> int:
    if a.dim() != 4 or a.shape[1] % heads:
        raise ValueError(f"expected (B, heads*d, H, W) with {heads} heads, got {tuple(a.shape)}")
    if seg_row.shape != (a.shape[2],) or seg_col.shape != (a.shape[3],):
        raise ValueError(f"segment maps {tuple(seg_row.shape)}, {tuple(seg_col.shape)} do not fit "
                         f"a map of {tuple(a.shape[2:])}")
    return a.shape[1] // heads


def gram_launch(a: torch.Tensor, b: torch.Tensor, bounds_h: torch.Tensor, bounds_w: torch.Tensor,
                heads: int) -> Launch:
    """segment_gram's launch, with its fp32 partial-sum buffers (``args[4:7]``: Gram, sum a^2,
    sum b^2, one slot per (batch, head, segment, row split)). a, b: dense planes."""
    n, c, h, w = a.shape
    check_plane(h, w, "segment_gram")
    d = c // heads
    sh, sw = bounds_h.shape[0], bounds_w.shape[0]
    bd = triton.next_power_of_2(d)
    br, bw = _blocks(h, w, bd)
    # Enough programs to fill a GPU even for one segment (the global form): split the rows.
    programs = n * heads * sh * sw
    rows = triton.cdiv(h, max(sh, 1))  # a typical segment's height
    split = 1 if interpreting() else max(1, min(triton.cdiv(rows, br), triton.cdiv(512, max(programs, 1))))
    slots = n * heads * sh * sw * split
    g = torch.empty(slots, bd, bd, device=a.device, dtype=torch.float32)
    sa = torch.empty(slots, bd, device=a.device, dtype=torch.float32)
    sb = torch.empty_like(sa)
    return Launch(_segment_gram_kernel, (n * heads, sh * sw, split),
                  (a, b, bounds_h.contiguous(), bounds_w.contiguous(), g, sa, sb, a.stride(0), a.stride(1),
                   b.stride(0), b.stride(1), w, heads, sw, split),
                  dict(D=d, BLOCK_D=bd, BLOCK_R=br, BLOCK_W=bw))


def matmul_launch(m: torch.Tensor, u: torch.Tensor, out: torch.Tensor, seg_row: torch.Tensor,
                  seg_col: torch.Tensor) -> Launch:
    """segment_matmul's launch: m fp32 contiguous (B, heads, Sh, Sw, d, d), u dense planes,
    out contiguous like u."""
    n, c, h, w = u.shape
    check_plane(h, w, "segment_matmul")
    heads, d = m.shape[1], m.shape[-1]
    bd = triton.next_power_of_2(d)
    br, bw = _blocks(h, w, bd)
    return Launch(_segment_matmul_kernel, (n * heads, triton.cdiv(h, br), triton.cdiv(w, bw)),
                  (m, u, out, seg_row, seg_col, u.stride(0), u.stride(1), h, w, heads, m.shape[2], m.shape[3]),
                  dict(D=d, BLOCK_D=bd, BLOCK_R=br, BLOCK_W=bw))


@torch.library.custom_op("dlgsa::segment_gram", mutates_args=())
def segment_gram(a: torch.Tensor, b: torch.Tensor, bounds_h: torch.Tensor, bounds_w: torch.Tensor,
                 seg_row: torch.Tensor, seg_col: torch.Tensor, heads: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per head and segment: Gram sum_p a_i(p) b_j(p), and sum_p a_i(p)^2, sum_p b_j(p)^2.

    a, b: (B, heads*d, H, W). bounds_h (Sh, 2), bounds_w (Sw, 2): int32 [start, end) of the
    segments, which must tile the map; seg_row (H,), seg_col (W,): each row's/column's segment
    (used by the backward). Returns fp32 (B, heads, Sh, Sw, d, d), (B, heads, Sh, Sw, d) x 2.
    """
    d = _check(a, heads, seg_row, seg_col)
    a, b = dense_planes(a), dense_planes(b)
    n, _, h, w = a.shape
    sh, sw = bounds_h.shape[0], bounds_w.shape[0]
    bd = triton.next_power_of_2(d)
    launch = gram_launch(a, b, bounds_h, bounds_w, heads)
    split = launch.grid[2]
    g, sa, sb = launch.args[4:7]
    launch()
    shape = (n, heads, sh, sw, split)
    return (g.reshape(*shape, bd, bd).sum(4)[..., :d, :d].contiguous(),
            sa.reshape(*shape, bd).sum(4)[..., :d].contiguous(),
            sb.reshape(*shape, bd).sum(4)[..., :d].contiguous())


@segment_gram.register_fake
def _(a, b, bounds_h, bounds_w, seg_row, seg_col, heads):
    d = _check(a, heads, seg_row, seg_col)
    shape = (a.shape[0], heads, bounds_h.shape[0], bounds_w.shape[0], d)
    return (a.new_empty(*shape, d, dtype=torch.float32), a.new_empty(shape, dtype=torch.float32),
            a.new_empty(shape, dtype=torch.float32))


@torch.library.custom_op("dlgsa::segment_matmul", mutates_args=())
def segment_matmul(m: torch.Tensor, u: torch.Tensor, seg_row: torch.Tensor, seg_col: torch.Tensor,
                   bounds_h: torch.Tensor, bounds_w: torch.Tensor) -> torch.Tensor:
    """out(p) = m[segment(p)] @ u(p) per head: m (B, heads, Sh, Sw, d, d) fp32, u (B, heads*d,
    H, W) -> (B, heads*d, H, W) in u's dtype. bounds_h/bounds_w: as for segment_gram (backward)."""
    heads, d = m.shape[1], m.shape[-1]
    _check(u, heads, seg_row, seg_col)
    u = dense_planes(u)
    n, c, h, w = u.shape
    out = torch.empty(n, c, h, w, device=u.device, dtype=u.dtype)
    matmul_launch(m.float().contiguous(), u, out, seg_row.contiguous(), seg_col.contiguous())()
    return out


@segment_matmul.register_fake
def _(m, u, seg_row, seg_col, bounds_h, bounds_w):
    _check(u, m.shape[1], seg_row, seg_col)
    return torch.empty(u.shape, device=u.device, dtype=u.dtype)


def _gram_setup(ctx, inputs, output):
    a, b, bounds_h, bounds_w, seg_row, seg_col, heads = inputs
    ctx.save_for_backward(a, b, bounds_h, bounds_w, seg_row, seg_col)


def _gram_backward(ctx, grad_g, grad_sa, grad_sb):
    # The segments do not overlap: d/da_i(p) = sum_j dG[seg(p)]_ij b_j(p) + 2 dsa[seg(p)]_i a_i(p).
    a, b, bounds_h, bounds_w, seg_row, seg_col = ctx.saved_tensors
    segs = (seg_row, seg_col, bounds_h, bounds_w)
    need_a, need_b = ctx.needs_input_grad[:2]

    def grads(matmul, gram):
        grad_a = grad_b = None
        if need_a:
            grad_a = matmul(grad_g, b) + matmul(torch.diag_embed(2 * grad_sa), a)
        if need_b:
            grad_b = matmul(grad_g.transpose(-1, -2), a) + matmul(torch.diag_embed(2 * grad_sb), b)
        return grad_a, grad_b

    grad_a, grad_b = _checked_backward("segment_gram_backward", a, segs, grads)
    return grad_a, grad_b, None, None, None, None, None


def _checked_backward(name: str, u: torch.Tensor, segs: tuple, formula: Callable):
    """``formula(matmul, gram)``, a backward, run with the Triton segment ops, checked on its
    first call per key (``kernels.fallback``) against the same formula with the torch ones
    (``kernels.reference``), which run instead where the kernels fail or differ."""
    from . import reference
    from .fallback import GUARD, shape_class

    seg_row, seg_col, bounds_h, bounds_w = segs

    def triton_form():
        return formula(lambda m, v: segment_matmul(m, v, *segs),
                       lambda a, b, heads: segment_gram(a, b, bounds_h, bounds_w, seg_row, seg_col, heads))

    def torch_form():
        bh, bw = [tuple(r) for r in bounds_h.tolist()], [tuple(r) for r in bounds_w.tolist()]
        return formula(lambda m, v: reference.segment_matmul(m, v, bh, bw),
                       lambda a, b, heads: reference.segment_gram(a, b, bh, bw, heads))

    def key():
        n, c, h, w = u.shape
        return (u.dtype, u.device.type, c, bounds_h.shape[0], bounds_w.shape[0], *shape_class(h, w, n * c * h * w))

    return GUARD.run(name, key, triton_form, torch_form, u.dtype, (u,), fallback=torch_form)


def _matmul_setup(ctx, inputs, output):
    m, u, seg_row, seg_col, bounds_h, bounds_w = inputs
    ctx.save_for_backward(m, u, seg_row, seg_col, bounds_h, bounds_w)


def _matmul_backward(ctx, grad_out):
    # dM[s]_ij = sum_{p in s} grad_out_i(p) u_j(p) (a segment Gram); du(p) = M[s(p)]^T grad_out(p).
    m, u, seg_row, seg_col, bounds_h, bounds_w = ctx.saved_tensors
    heads = m.shape[1]
    need_m, need_u = ctx.needs_input_grad[:2]

    def grads(matmul, gram):
        grad_m = gram(grad_out, u, heads)[0].to(m.dtype) if need_m else None
        grad_u = matmul(m.transpose(-1, -2), grad_out) if need_u else None
        return grad_m, grad_u

    grad_m, grad_u = _checked_backward("segment_matmul_backward", u, (seg_row, seg_col, bounds_h, bounds_w), grads)
    return grad_m, grad_u, None, None, None, None


segment_gram.register_autograd(_gram_backward, setup_context=_gram_setup)
segment_matmul.register_autograd(_matmul_backward, setup_context=_matmul_setup)


class SegmentPlan:
    """The windows of one map size along one axis, cut into segments (plain Python, cached).

    ``windows``: [start, end) per window, clipped to the map (rows past it are the torch
    form's zero padding, which adds nothing); ``bounds``: the segments; ``cover[s][w]``:
    whether window w covers segment s; ``index``: each row's segment.
    """

    def __init__(self, windows: list[tuple[int, int]], length: int):
        edges = sorted({0, length, *(e for lo, hi in windows for e in (lo, hi))})
        self.windows = windows
        self.bounds = list(zip(edges[:-1], edges[1:]))
        self.cover = [[float(lo <= s < hi) for lo, hi in windows] for s, _ in self.bounds]
        self.index = [i for i, (s, e) in enumerate(self.bounds) for _ in range(s, e)]


@functools.lru_cache(maxsize=64)
def axis_plan(length: int, tlc_kernel: int | None) -> SegmentPlan:
    if tlc_kernel is None:
        return SegmentPlan([(0, length)], length)
    # The torch form pads the map up to the window and places windows on the padded length.
    starts = tlc_window_starts(max(length, tlc_kernel), tlc_kernel)
    return SegmentPlan([(s, min(s + tlc_kernel, length)) for s in starts], length)


@functools.lru_cache(maxsize=64)
def device_plan(h: int, w: int, tlc_kernel: int | None, device: torch.device):
    """Tensors for one map size on one device, built once (no host syncs per layer)."""
    out = []
    for plan in (axis_plan(h, tlc_kernel), axis_plan(w, tlc_kernel)):
        cover = torch.tensor(plan.cover, dtype=torch.float32)
        out.append(dict(
            bounds=torch.tensor(plan.bounds, dtype=torch.int32, device=device),
            index=torch.tensor(plan.index, dtype=torch.int32, device=device),
            cover=cover.to(device),
            mean=(cover / cover.sum(1, keepdim=True)).to(device),  # average over covering windows
        ))
    return out


def sparse_attention(qkv: torch.Tensor, temperature: torch.Tensor, num_heads: int,
                     act: Callable[[torch.Tensor], torch.Tensor], tlc_kernel: int | None) -> torch.Tensor:
    """SparseGSA's attention: qkv (B, 3C, H, W) -> (B, C, H, W), the torch form's numbers
    (``_attend`` over TLC windows of side ``tlc_kernel`` averaged, or over the map for None)."""
    b, c3, h, w = qkv.shape
    c = c3 // 3
    rows, cols = device_plan(h, w, tlc_kernel, qkv.device)
    segs = (rows["index"], cols["index"], rows["bounds"], cols["bounds"])
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]
    gram, sq, sk = segment_gram(q, k, rows["bounds"], cols["bounds"], rows["index"], cols["index"], num_heads)
    # Segment sums -> window sums (s, t: segments; a, e: windows along H, W).
    gram = torch.einsum("sa,te,nhstij->nhaeij", rows["cover"], cols["cover"], gram)
    nq = torch.einsum("sa,te,nhsti->nhaei", rows["cover"], cols["cover"], sq).clamp_min(EPS * EPS).sqrt()
    nk = torch.einsum("sa,te,nhsti->nhaei", rows["cover"], cols["cover"], sk).clamp_min(EPS * EPS).sqrt()
    temp = temperature.reshape(1, num_heads, 1, 1, 1, 1).float()
    attn = act(gram / (nq[..., :, None] * nk[..., None, :]) * temp)
    mean = torch.einsum("sa,te,nhaeij->nhstij", rows["mean"], cols["mean"], attn)
    return segment_matmul(mean, v, *segs)
