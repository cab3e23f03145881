r"""Fused Triton kernels for :func:`pemd_tutorial.emd.projected_emd` (experimental; CUDA, float32).

Status (2026-11-25): checked against float64 under Triton's CPU interpreter (forward and
backward, 2D and 3D grids). On an H100 (triton 3.6) the forward matched the reference on small
batches, but the backward gave wrong gradients and an illegal memory access, and large batches
needed more shared memory than the card has (fixed since with ``num_stages=1``, not re-run). So
the kernels are opt-in only (``backend="triton"`` or ``PEMD_EMD_BACKEND=triton``); see
``benchmarks/NOTES_emd.md``.

Importing this module fails without ``triton``; :mod:`pemd_tutorial.emd` then keeps its PyTorch
path, which is also the reference these kernels are tested against.

Per row ``n`` (one pair of histograms ``p_n, q_n`` of ``L`` labels) and the fixed operator
``A`` ``(L, C)`` (0/1 entries, the cumulative projections) with weights ``w`` ``(C,)``:

* forward: ``D = (p - q) @ A`` ``(BLOCK_N, C)``, ``out_n = sum_c w_c |D_nc|``; reads ``p`` and ``q``
  once, writes one float per row.
* backward: recompute ``D``, then ``g = grad_out_n * (sign(D) * w) @ A.T``; writes
  ``grad_p = g`` and ``grad_q = -g``.

The matrix products run on the tensor cores in bfloat16 with fp32 accumulation. ``A`` holds only
0 and 1 (exact in bfloat16); the float32 operand is split into ``SPLITS`` bfloat16 pieces
(``x = hi + mid + lo``), so with ``SPLITS=3`` the products are exact to float32 rounding (about
24 mantissa bits), unlike Triton's default tf32 (10 bits, ~1e-3 relative). ``SPLITS=0`` uses
a plain float32 ``ieee`` dot instead (slow, a cross-check).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["projected_emd_rows"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: bfloat16 pieces of the float32 operand of every matrix product (0 = float32 "ieee" dot).
SPLITS = int(os.environ.get("PEMD_TRITON_SPLITS", "3"))
#: The same for the backward's second product ``(sign(D) * w) @ A.T`` (a knob to bisect GPU issues).
BWD_SPLITS = int(os.environ.get("PEMD_TRITON_BWD_SPLITS", str(SPLITS)))
#: Programs per streaming multiprocessor of the persistent kernels.
PROGRAMS_PER_SM = int(os.environ.get("PEMD_TRITON_PROGRAMS_PER_SM", "4"))
#: Software-pipelining stages; Triton's default (3) multiplies the p/q tiles in shared memory and
#: asked for 244 KiB (> 227 KiB on an H100) at 9x9 with BLOCK_N=128.
NUM_STAGES = int(os.environ.get("PEMD_TRITON_NUM_STAGES", "1"))


@triton.jit
def _dot_bf16(x, b, acc, EMULATE: tl.constexpr):
    """``acc + x @ b`` for bfloat16 ``x, b`` with fp32 accumulation (tensor cores).

    ``EMULATE`` (Triton's CPU interpreter, whose bfloat16 dot is wrong) multiplies the same
    bfloat16 values in float32 instead.
    """
    if EMULATE:
        acc = tl.dot(x.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(x, b, acc)
    return acc


@triton.jit
def _dot_split(x, b, acc, SPLITS: tl.constexpr, EMULATE: tl.constexpr):
    """``acc + x @ b`` for float32 ``x`` and ``b`` exact in bfloat16, ``x`` split in bf16 pieces."""
    if SPLITS == 0:
        acc = tl.dot(x, b.to(tl.float32), acc, input_precision="ieee")
    else:
        bb = b.to(tl.bfloat16)
        hi = x.to(tl.bfloat16)
        if SPLITS >= 2:
            r = x - hi.to(tl.float32)
            mid = r.to(tl.bfloat16)
            if SPLITS >= 3:
                lo = (r - mid.to(tl.float32)).to(tl.bfloat16)
                acc = _dot_bf16(lo, bb, acc, EMULATE)
            acc = _dot_bf16(mid, bb, acc, EMULATE)
        acc = _dot_bf16(hi, bb, acc, EMULATE)
    return acc


@triton.jit
def _cumulative(p_ptr, q_ptr, a_ptr, rows, row_mask, offs_k, offs_c, L: tl.constexpr, C_PAD: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLITS: tl.constexpr, EMULATE: tl.constexpr):
    """``(p - q) @ A`` for a tile of rows: ``(BLOCK_N, C_PAD)`` float32."""
    acc = tl.zeros((BLOCK_N, C_PAD), dtype=tl.float32)
    base = rows.to(tl.int64)[:, None] * L
    for k0 in tl.static_range(0, L, BLOCK_K):
        cols = k0 + offs_k
        m = row_mask[:, None] & (cols[None, :] < L)
        d = tl.load(p_ptr + base + cols[None, :], mask=m, other=0.0) - tl.load(
            q_ptr + base + cols[None, :], mask=m, other=0.0
        )
        a = tl.load(a_ptr + cols[:, None] * C_PAD + offs_c[None, :])
        acc = _dot_split(d, a, acc, SPLITS, EMULATE)
    return acc


@triton.jit
def _fwd_tile(tile, p_ptr, q_ptr, a_ptr, w, out_ptr, N, L: tl.constexpr, C_PAD: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLITS: tl.constexpr, EMULATE: tl.constexpr):
    rows = tile * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    offs_k = tl.arange(0, BLOCK_K)
    offs_c = tl.arange(0, C_PAD)
    acc = _cumulative(p_ptr, q_ptr, a_ptr, rows, row_mask, offs_k, offs_c, L, C_PAD, BLOCK_N, BLOCK_K, SPLITS,
                      EMULATE)
    val = tl.sum(tl.abs(acc) * w[None, :], axis=1)
    tl.store(out_ptr + rows, val, mask=row_mask)


@triton.jit
def _pemd_fwd_kernel(p_ptr, q_ptr, a_ptr, w_ptr, out_ptr, N, n_iter, L: tl.constexpr, C_PAD: tl.constexpr,
                     BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLITS: tl.constexpr,
                     PERSISTENT: tl.constexpr, EMULATE: tl.constexpr):
    pid = tl.program_id(0)
    w = tl.load(w_ptr + tl.arange(0, C_PAD))
    if PERSISTENT:  # this program's tiles are pid, pid + nprog, ...
        nprog = tl.num_programs(0)
        for it in range(0, n_iter):
            _fwd_tile(pid + it * nprog, p_ptr, q_ptr, a_ptr, w, out_ptr, N, L, C_PAD, BLOCK_N, BLOCK_K,
                      SPLITS, EMULATE)
    else:  # one tile per program (Triton's CPU interpreter)
        _fwd_tile(pid, p_ptr, q_ptr, a_ptr, w, out_ptr, N, L, C_PAD, BLOCK_N, BLOCK_K, SPLITS, EMULATE)


@triton.jit
def _bwd_tile(tile, p_ptr, q_ptr, a_ptr, at_ptr, w, go_ptr, gp_ptr, gq_ptr, N, L: tl.constexpr,
              L_MEM: tl.constexpr, C_PAD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
              SPLITS: tl.constexpr, BWD_SPLITS: tl.constexpr, WRITE_P: tl.constexpr, WRITE_Q: tl.constexpr,
              EMULATE: tl.constexpr):
    rows = tile * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    offs_k = tl.arange(0, BLOCK_K)
    offs_c = tl.arange(0, C_PAD)
    acc = _cumulative(p_ptr, q_ptr, a_ptr, rows, row_mask, offs_k, offs_c, L, C_PAD, BLOCK_N, BLOCK_K, SPLITS,
                      EMULATE)
    s = tl.where(acc > 0, w[None, :], tl.where(acc < 0, -w[None, :], 0.0))
    go = tl.load(go_ptr + rows, mask=row_mask, other=0.0)
    base = rows.to(tl.int64)[:, None] * L
    for k0 in tl.static_range(0, L, BLOCK_K):
        cols = k0 + offs_k
        at = tl.load(at_ptr + offs_c[:, None] * L_MEM + cols[None, :])
        g = _dot_split(s, at, tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32), BWD_SPLITS, EMULATE)
        g = g * go[:, None]
        m = row_mask[:, None] & (cols[None, :] < L)
        if WRITE_P:
            tl.store(gp_ptr + base + cols[None, :], g, mask=m)
        if WRITE_Q:
            tl.store(gq_ptr + base + cols[None, :], -g, mask=m)


@triton.jit
def _pemd_bwd_kernel(p_ptr, q_ptr, a_ptr, at_ptr, w_ptr, go_ptr, gp_ptr, gq_ptr, N, n_iter, L: tl.constexpr,
                     L_MEM: tl.constexpr, C_PAD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     SPLITS: tl.constexpr, BWD_SPLITS: tl.constexpr, WRITE_P: tl.constexpr,
                     WRITE_Q: tl.constexpr, PERSISTENT: tl.constexpr, EMULATE: tl.constexpr):
    pid = tl.program_id(0)
    w = tl.load(w_ptr + tl.arange(0, C_PAD))
    if PERSISTENT:
        nprog = tl.num_programs(0)
        for it in range(0, n_iter):
            _bwd_tile(pid + it * nprog, p_ptr, q_ptr, a_ptr, at_ptr, w, go_ptr, gp_ptr, gq_ptr, N, L, L_MEM,
                      C_PAD, BLOCK_N, BLOCK_K, SPLITS, BWD_SPLITS, WRITE_P, WRITE_Q, EMULATE)
    else:
        _bwd_tile(pid, p_ptr, q_ptr, a_ptr, at_ptr, w, go_ptr, gp_ptr, gq_ptr, N, L, L_MEM, C_PAD, BLOCK_N,
                  BLOCK_K, SPLITS, BWD_SPLITS, WRITE_P, WRITE_Q, EMULATE)


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


_PACK_CACHE: dict = {}


def _pack(a: torch.Tensor):
    """Zero-padded ``A`` ``(L_MEM, C_PAD)`` and ``A.T`` ``(C_PAD, L_MEM)`` (cached per operator)."""
    key = (a.data_ptr(), tuple(a.shape), str(a.device))
    hit = _PACK_CACHE.get(key)
    if hit is None:
        n_labels, n_cols = a.shape
        l_mem = -(-n_labels // 128) * 128
        c_pad = max(16, _next_pow2(n_cols))
        ap = torch.zeros(l_mem, c_pad, dtype=torch.float32, device=a.device)
        ap[:n_labels, :n_cols] = a
        hit = (ap, ap.T.contiguous(), l_mem, c_pad, a)  # holding ``a`` keeps its data_ptr unique
        if len(_PACK_CACHE) > 64:
            _PACK_CACHE.clear()
        _PACK_CACHE[key] = hit
    return hit


def _config(n_labels: int, c_pad: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_K, num_warps)``; environment override ``PEMD_TRITON_CONFIG=BN,BK,W``."""
    env = os.environ.get("PEMD_TRITON_CONFIG")
    if env:
        bn, bk, nw = (int(v) for v in env.split(","))
        return bn, bk, nw
    if _INTERPRET:
        return 16, 32, 4
    if c_pad <= 64:
        return 128, 32, 8
    return 64, 32, 4


def _grid(n_rows: int, block_n: int, device: torch.device) -> tuple[tuple[int], int]:
    """Persistent launch: ``(grid, n_iter)``, at most ``PROGRAMS_PER_SM`` programs per SM."""
    n_tiles = triton.cdiv(n_rows, block_n)
    if device.type == "cuda":
        n_sm = torch.cuda.get_device_properties(device).multi_processor_count
        n_prog = max(1, min(n_tiles, PROGRAMS_PER_SM * n_sm))
    else:  # the interpreter: one tile per program
        n_prog = n_tiles
    return (n_prog,), triton.cdiv(n_tiles, n_prog)


class _ProjectedEMDTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p, q, a, w):
        p = p.contiguous()
        q = q.contiguous()
        n_rows, n_labels = p.shape
        ap, at, l_mem, c_pad, _ = _pack(a)
        wp = torch.zeros(c_pad, dtype=torch.float32, device=p.device)
        wp[: w.numel()] = w
        out = torch.empty(n_rows, dtype=torch.float32, device=p.device)
        bn, bk, nw = _config(n_labels, c_pad)
        if n_rows:
            grid, n_iter = _grid(n_rows, bn, p.device)
            _pemd_fwd_kernel[grid](
                p, q, ap, wp, out, n_rows, n_iter,
                L=n_labels, C_PAD=c_pad, BLOCK_N=bn, BLOCK_K=bk, SPLITS=SPLITS,
                PERSISTENT=not _INTERPRET, EMULATE=_INTERPRET, num_warps=nw, num_stages=NUM_STAGES,
            )
        ctx.save_for_backward(p, q, ap, at, wp)
        ctx.l_mem = l_mem
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        p, q, ap, at, wp = ctx.saved_tensors
        n_rows, n_labels = p.shape
        need_p, need_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gp = torch.empty_like(p) if need_p else None
        gq = torch.empty_like(q) if need_q else None
        if n_rows and (need_p or need_q):
            bn, bk, nw = _config(n_labels, ap.shape[1])
            grid, n_iter = _grid(n_rows, bn, p.device)
            _pemd_bwd_kernel[grid](
                p, q, ap, at, wp, grad_out.contiguous(), gp if need_p else p, gq if need_q else q,
                n_rows, n_iter,
                L=n_labels, L_MEM=ctx.l_mem, C_PAD=ap.shape[1], BLOCK_N=bn, BLOCK_K=bk, SPLITS=SPLITS,
                BWD_SPLITS=BWD_SPLITS,
                WRITE_P=need_p, WRITE_Q=need_q, PERSISTENT=not _INTERPRET, EMULATE=_INTERPRET, num_warps=nw,
                num_stages=NUM_STAGES,
            )
        return gp, gq, None, None


def projected_emd_rows(p: torch.Tensor, q: torch.Tensor, a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-row ``sum_c w_c |((p - q) @ a)_c|`` for float32 ``p, q`` ``(N, L)``; differentiable.

    ``a`` ``(L, C)`` must hold only 0 and 1 (the cumulative operator of
    :func:`pemd_tutorial.emd.projected_emd`); ``w`` ``(C,)``.
    """
    if p.dtype != torch.float32 or q.dtype != torch.float32:
        raise ValueError(f"projected_emd_rows() 'p' and 'q' must be float32, got {p.dtype} and {q.dtype}")
    return _ProjectedEMDTriton.apply(p, q, a.to(torch.float32), w.to(torch.float32))
