"""Invariants and oracles of pemd_tutorial.emd (POT is the external oracle)."""

from __future__ import annotations

import math
import sys

import numpy as np
import ot
import pytest
import torch

from pemd_tutorial.emd import (
    DEFAULT_DIRECTIONS_3D,
    emd_1d,
    exact_emd,
    l1_discrepancy,
    project_histogram,
    projected_emd,
    sliced_wasserstein_discrepancy,
    sum_tolerance,
)

F64 = torch.float64


def rand_hist(*shape, seed=0, dtype=F64, peaked=False):
    """Random histograms summing to one over the last dimension."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=F64)
    if peaked:
        x = torch.softmax(8.0 * torch.randn(*shape, generator=g, dtype=F64), dim=-1)
    else:
        x = x / x.sum(-1, keepdim=True)
    return x.to(dtype)


def lattice_points(grid_shape, step):
    """Support points (x, y[, z]) in pixels of the flattened row-major grid, numpy (L, ndim)."""
    axes = [(np.arange(s) - (s - 1) / 2.0) for s in grid_shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in reversed(mesh)], axis=1) * step


def peak(grid_shape, y, x, dtype=F64):
    h = torch.zeros(grid_shape, dtype=dtype)
    h[y, x] = 1.0
    return h


# ------------------------------------------------------------------------------------- emd_1d


def test_emd_1d_matches_pot_wasserstein_1d():
    n = 17
    p, q = rand_hist(6, n, seed=1), rand_hist(6, n, seed=2)
    spacing = 0.7
    pos = np.arange(n) * spacing
    got = emd_1d(p, q, spacing=spacing)
    for i in range(6):
        ref_w = ot.wasserstein_1d(pos, pos, p[i].numpy(), q[i].numpy(), p=1)
        ref_e = ot.emd2_1d(pos, pos, p[i].numpy(), q[i].numpy(), metric="euclidean")
        assert abs(got[i].item() - ref_w) < 1e-10
        assert abs(got[i].item() - ref_e) < 1e-10


def test_emd_1d_dim_and_batch_shapes():
    p, q = rand_hist(2, 3, 11, seed=3), rand_hist(2, 3, 11, seed=4)
    out = emd_1d(p, q)
    assert out.shape == (2, 3)
    moved = emd_1d(p.movedim(-1, 0), q.movedim(-1, 0), dim=0)
    torch.testing.assert_close(moved, out, rtol=0, atol=1e-14)
    assert emd_1d(p.float(), q.float()).dtype == torch.float32


def test_emd_1d_shift():
    a = torch.zeros(10, dtype=F64)
    b = torch.zeros(10, dtype=F64)
    a[2], b[7] = 1.0, 1.0
    assert emd_1d(a, b, spacing=1.5).item() == pytest.approx(5 * 1.5, abs=1e-12)


# ------------------------------------------------------------------------------ projected_emd


def test_axis_angles_equal_mean_of_marginal_emds():
    h, w, step = 7, 9, 1.3
    p, q = rand_hist(5, h * w, seed=5).reshape(5, h, w), rand_hist(5, h * w, seed=6).reshape(5, h, w)
    got = projected_emd(p, q, (h, w), angles=[0.0, 90.0], step=step, reduction="none")
    ex = emd_1d(p.sum(-2), q.sum(-2), spacing=step)  # marginal along x
    ey = emd_1d(p.sum(-1), q.sum(-1), spacing=step)  # marginal along y
    torch.testing.assert_close(got, (ex + ey) / 2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("grid_shape", [(9, 9), (5, 8)])
def test_arbitrary_angles_equal_pot_sliced_wasserstein(grid_shape):
    angles = np.array([0.0, 13.0, 45.0, 77.5, 90.0, 135.0, 161.0, 250.0])
    step = 2.0
    n = math.prod(grid_shape)
    p, q = rand_hist(4, n, seed=7), rand_hist(4, n, seed=8)
    got = projected_emd(p, q, grid_shape, angles=angles, step=step, reduction="none")
    pts = lattice_points(grid_shape, step)
    proj = np.stack([np.cos(np.deg2rad(angles)), np.sin(np.deg2rad(angles))])  # (2, K)
    for i in range(4):
        ref = ot.sliced_wasserstein_distance(pts, pts, p[i].numpy(), q[i].numpy(), p=1, projections=proj)
        assert abs(got[i].item() - ref) < 1e-10


def test_3d_grid_equals_pot_sliced_wasserstein_and_axes_marginals():
    gs, step = (3, 4, 5), 1.5
    n = math.prod(gs)
    p, q = rand_hist(3, n, seed=9), rand_hist(3, n, seed=10)
    dirs = np.array(DEFAULT_DIRECTIONS_3D, dtype=float)
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    got = projected_emd(p, q, gs, step=step, reduction="none")
    pts = lattice_points(gs, step)
    for i in range(3):
        ref = ot.sliced_wasserstein_distance(pts, pts, p[i].numpy(), q[i].numpy(), p=1, projections=dirs.T)
        assert abs(got[i].item() - ref) < 1e-10
    axes = projected_emd(p, q, gs, angles=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], step=step, reduction="none")
    pv, qv = p.reshape(3, *gs), q.reshape(3, *gs)
    ex = emd_1d(pv.sum((1, 2)), qv.sum((1, 2)), spacing=step)
    ey = emd_1d(pv.sum((1, 3)), qv.sum((1, 3)), spacing=step)
    ez = emd_1d(pv.sum((2, 3)), qv.sum((2, 3)), spacing=step)
    torch.testing.assert_close(axes, (ex + ey + ez) / 3, rtol=0, atol=1e-12)


@pytest.mark.parametrize("grid_shape", [(9, 9), (15, 15)])
def test_never_above_exact_emd(grid_shape):
    n = math.prod(grid_shape)
    p, q = rand_hist(12, n, seed=11, peaked=True), rand_hist(12, n, seed=12, peaked=True)
    for angles in (None, [0.0, 90.0], np.linspace(0, 180, 16, endpoint=False)):
        sliced = projected_emd(p, q, grid_shape, angles=angles, step=2.0, reduction="none")
        exact = exact_emd(p, q, grid_shape, step=2.0)
        assert (sliced <= exact + 1e-9).all()
        assert (sliced > 0.3 * exact).all()  # and not trivially small (2/pi on average)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_peak_moved_by_k_labels(k):
    gs, step = (9, 9), 2.0
    p = peak(gs, 4, 1)
    q_x = peak(gs, 4, 1 + k)
    q_y = peak(gs, 4 - min(k, 4), 1)
    assert projected_emd(p, q_x, gs, angles=[0.0], step=step).item() == pytest.approx(k * step, abs=1e-12)
    assert projected_emd(p, q_x, gs, angles=[90.0], step=step).item() == pytest.approx(0.0, abs=1e-12)
    assert projected_emd(p, q_y, gs, angles=[90.0], step=step).item() == pytest.approx(
        min(k, 4) * step, abs=1e-12
    )
    # Exact EMD of two Diracs is their distance; the projected one is the mean |cos| of the angles.
    assert exact_emd(p, q_x, gs, step=step).item() == pytest.approx(k * step, abs=1e-9)
    mean_cos = (1 + 2 * math.cos(math.pi / 4) + 0) / 4
    assert projected_emd(p, q_x, gs, step=step).item() == pytest.approx(k * step * mean_cos, abs=1e-12)


def test_distance_grows_with_displacement_while_l1_saturates():
    gs = (9, 9)
    p = peak(gs, 4, 0).reshape(1, -1)
    emds = [projected_emd(p, peak(gs, 4, k).reshape(1, -1), gs).item() for k in range(1, 9)]
    l1s = [l1_discrepancy(p, peak(gs, 4, k).reshape(1, -1)).item() for k in range(1, 9)]
    assert all(b > a for a, b in zip(emds, emds[1:], strict=False))
    assert max(l1s) - min(l1s) < 1e-12


def test_project_histogram_geometry_is_the_one_of_projected_emd():
    gs, step = (5, 7), 1.5
    p, q = rand_hist(3, 35, seed=13), rand_hist(3, 35, seed=14)
    angles = [0.0, 30.0, 45.0, 100.0]
    per_line = []
    for a in angles:
        pos, mp = project_histogram(p, gs, a, step=step)
        pos_q, mq = project_histogram(q, gs, a, step=step)
        assert torch.equal(pos, pos_q)
        assert (pos[1:] > pos[:-1]).all()
        torch.testing.assert_close(mp.sum(-1), torch.ones(3, dtype=F64), rtol=0, atol=1e-12)
        per_line.append(
            [ot.wasserstein_1d(pos.numpy(), pos.numpy(), mp[i].numpy(), mq[i].numpy(), p=1) for i in range(3)]
        )
    ref = torch.tensor(per_line, dtype=F64).mean(0)
    got = projected_emd(p, q, gs, angles=angles, step=step, reduction="none")
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_project_histogram_axis_and_diagonal_bins():
    gs = (3, 4)
    p = rand_hist(12, seed=15).reshape(3, 4)
    pos, m = project_histogram(p, gs, 0.0, step=2.0)
    torch.testing.assert_close(pos, torch.tensor([-3.0, -1.0, 1.0, 3.0], dtype=F64))
    torch.testing.assert_close(m, p.sum(0))
    pos, m = project_histogram(torch.ones(1, 9, dtype=F64) / 9, (3, 3), 45.0)
    assert pos.numel() == 5  # the 5 anti-diagonals x + y = const
    torch.testing.assert_close(m[0], torch.tensor([1, 2, 3, 2, 1], dtype=F64) / 9)


def test_project_histogram_3d_axis_is_the_x_marginal():
    gs = (3, 4, 5)
    p = rand_hist(2, 60, seed=40)
    pos, m = project_histogram(p, gs, (1.0, 0.0, 0.0), step=0.5)
    torch.testing.assert_close(pos, (torch.arange(5, dtype=F64) - 2.0) * 0.5)
    torch.testing.assert_close(m, p.reshape(2, *gs).sum((1, 2)))


def test_reductions_and_batch_shapes():
    gs = (9, 9)
    p, q = rand_hist(2, 3, 81, seed=16), rand_hist(2, 3, 81, seed=17)
    none_flat = projected_emd(p, q, gs, reduction="none")
    none_grid = projected_emd(p.reshape(2, 3, 9, 9), q.reshape(2, 3, 9, 9), gs, reduction="none")
    assert none_flat.shape == (2, 3)
    torch.testing.assert_close(none_flat, none_grid, rtol=0, atol=0)
    torch.testing.assert_close(projected_emd(p, q, gs), none_flat.mean())
    torch.testing.assert_close(projected_emd(p, q, gs, reduction="sum"), none_flat.sum())
    single = projected_emd(p[0, 0], q[0, 0], gs, reduction="none")
    assert single.shape == ()
    # Batched equals one-by-one.
    torch.testing.assert_close(single, none_flat[0, 0], rtol=0, atol=1e-14)


def test_step_scales_linearly_and_dtype_follows():
    gs = (9, 9)
    p, q = rand_hist(4, 81, seed=18, dtype=torch.float32), rand_hist(4, 81, seed=19, dtype=torch.float32)
    a = projected_emd(p, q, gs, step=1.0)
    b = projected_emd(p, q, gs, step=3.0)
    assert a.dtype == torch.float32 and b.dtype == torch.float32
    torch.testing.assert_close(b, 3 * a, rtol=1e-6, atol=0)
    ref = projected_emd(p.double(), q.double(), gs)
    assert abs(a.double() - ref).item() < 1e-6


# ---------------------------------------------------------------- invariants of all discrepancies


def _all_discrepancies():
    gs = (9, 9)
    return {
        "emd_1d": lambda p, q: emd_1d(p, q, spacing=2.0).mean(),
        "pemd": lambda p, q: projected_emd(p, q, gs, step=2.0),
        "pemd_angles": lambda p, q: projected_emd(p, q, gs, angles=[10.0, 100.0, 170.0]),
        "l1": l1_discrepancy,
        "swd": lambda p, q: sliced_wasserstein_discrepancy(p, q, generator=torch.Generator().manual_seed(3)),
        "exact": lambda p, q: exact_emd(p, q, gs).mean(),
    }


@pytest.mark.parametrize("name", list(_all_discrepancies()))
def test_identity_and_symmetry(name):
    d = _all_discrepancies()[name]
    p, q = rand_hist(6, 81, seed=20, peaked=True), rand_hist(6, 81, seed=21, peaked=True)
    assert d(p, p).item() == pytest.approx(0.0, abs=1e-12)
    assert d(p, q).item() > 1e-6
    assert d(p, q).item() == pytest.approx(d(q, p).item(), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name", ["emd_1d", "pemd", "pemd_angles", "l1", "swd"])
def test_gradcheck_float64(name):
    gs = (4, 5)
    fns = {
        "emd_1d": lambda p, q: emd_1d(p, q, spacing=1.5, validate=False),
        "pemd": lambda p, q: projected_emd(p, q, gs, step=1.5, reduction="none", validate=False),
        "pemd_angles": lambda p, q: projected_emd(
            p, q, gs, angles=[20.0, 75.0], reduction="sum", validate=False
        ),
        "l1": lambda p, q: l1_discrepancy(p, q, validate=False),
        "swd": lambda p, q: sliced_wasserstein_discrepancy(
            p, q, n_projections=8, generator=torch.Generator().manual_seed(0), validate=False
        ),
    }
    p = rand_hist(3, 20, seed=22).requires_grad_()
    q = rand_hist(3, 20, seed=23).requires_grad_()
    assert torch.autograd.gradcheck(fns[name], (p, q), eps=1e-7, atol=1e-6)


def test_pemd_gradient_one_input_matches_plain_autograd():
    """The closed-form backward equals autograd through the per-line 1D EMDs (project_histogram)."""
    gs, angles = (9, 9), [0.0, 45.0, 90.0, 135.0]
    p = rand_hist(3, 81, seed=24).requires_grad_()
    q = rand_hist(3, 81, seed=25)
    projected_emd(p, q, gs, step=2.0).backward()
    p2 = p.detach().clone().requires_grad_()
    total = 0.0
    for a in angles:
        pos, mp = project_histogram(p2, gs, a, step=2.0)
        _, mq = project_histogram(q, gs, a, step=2.0)
        cum = torch.cumsum(mp - mq, -1)[:, :-1]
        total = total + (cum.abs() * (pos[1:] - pos[:-1])).sum(-1)
    (total / len(angles)).mean().backward()
    torch.testing.assert_close(p.grad, p2.grad, rtol=0, atol=1e-12)


def test_swd_seeded_and_random():
    p, q = rand_hist(16, 81, seed=26), rand_hist(16, 81, seed=27)
    a = sliced_wasserstein_discrepancy(p, q, generator=torch.Generator().manual_seed(5))
    b = sliced_wasserstein_discrepancy(p, q, generator=torch.Generator().manual_seed(5))
    c = sliced_wasserstein_discrepancy(p, q, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_swd_matches_direct_formula():
    p, q = rand_hist(10, 9, seed=28), rand_hist(10, 9, seed=29)
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(9, 4, generator=g, dtype=F64)
    theta = theta / theta.norm(dim=0)
    ref = np.mean((np.sort((p @ theta).numpy(), 0) - np.sort((q @ theta).numpy(), 0)) ** 2)
    got = sliced_wasserstein_discrepancy(p, q, n_projections=4, generator=torch.Generator().manual_seed(1))
    assert abs(got.item() - ref) < 1e-14


def test_l1_value():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    assert l1_discrepancy(p, q).item() == pytest.approx(3.0 / 6.0)  # (2 + 1) / 6


def test_exact_emd_pythagoras_and_3d():
    gs = (9, 9)
    p, q = peak(gs, 1, 1), peak(gs, 1 + 4, 1 + 3)  # moved (dx, dy) = (3, 4) labels
    assert exact_emd(p, q, gs, step=0.5).item() == pytest.approx(2.5, abs=1e-9)
    p3 = torch.zeros(3, 3, 3, dtype=F64)
    q3 = torch.zeros(3, 3, 3, dtype=F64)
    p3[0, 0, 0], q3[2, 2, 2] = 1.0, 1.0
    assert exact_emd(p3, q3, (3, 3, 3)).item() == pytest.approx(2 * math.sqrt(3), abs=1e-9)


def test_exact_emd_without_pot(monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)
    p = rand_hist(81, seed=30)
    with pytest.raises(ImportError, match=r"pemd-tutorial\[test\]"):
        exact_emd(p, p, (9, 9))


# ------------------------------------------------------------------------------ ValueError paths


def _good(n=81, dtype=F64):
    return rand_hist(2, n, seed=33, dtype=dtype), rand_hist(2, n, seed=34, dtype=dtype)


@pytest.mark.parametrize(
    "call",
    [
        lambda p, q: emd_1d(p, q),
        lambda p, q: projected_emd(p, q, (9, 9)),
        lambda p, q: l1_discrepancy(p, q),
        lambda p, q: sliced_wasserstein_discrepancy(p, q),
        lambda p, q: exact_emd(p, q, (9, 9)),
    ],
    ids=["emd_1d", "projected_emd", "l1", "swd", "exact_emd"],
)
def test_histogram_errors_name_the_argument(call):
    p, q = _good()
    with pytest.raises(ValueError, match="'p' and 'q' must have the same shape"):
        call(p, q[:1])
    with pytest.raises(ValueError, match="same dtype"):
        call(p, q.float())
    bad = p.clone()
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="'p' contains NaN or infinite"):
        call(bad, q)
    bad = q.clone()
    bad[1, 0] = float("inf")
    with pytest.raises(ValueError, match="'q' contains NaN or infinite"):
        call(p, bad)
    bad = p.clone()
    bad[0, 0] -= 0.5
    bad[0, 1] += 0.5 + bad[0, 0].abs()  # keep sum 1 where possible; the negative entry must be caught
    bad[0] = bad[0] / bad[0].sum()
    with pytest.raises(ValueError, match="'p' has negative entries"):
        call(bad, q)
    with pytest.raises(ValueError, match="'q' histograms must sum to 1"):
        call(p, q * 1.01)
    with pytest.raises(ValueError, match="'p' must be a floating-point tensor"):
        call(p.long(), q.long())
    with pytest.raises(TypeError, match="'p' must be a torch.Tensor"):
        call(p.numpy(), q)


def test_sum_tolerance_documented_values():
    assert sum_tolerance(torch.float32, 81) == pytest.approx(16 * 81 * torch.finfo(torch.float32).eps)
    assert sum_tolerance(torch.float64, 81) == 1e-6
    p, q = _good(dtype=torch.float32)
    projected_emd(p * (1 + 0.5 * sum_tolerance(torch.float32, 81)), q, (9, 9))  # inside: accepted
    with pytest.raises(ValueError, match="'p' histograms must sum to 1"):
        projected_emd(p * (1 + 2 * sum_tolerance(torch.float32, 81)), q, (9, 9))
    projected_emd(p * 1.5, q, (9, 9), validate=False)  # opt-out


def test_projected_emd_argument_errors():
    p, q = _good()
    with pytest.raises(ValueError, match="'grid_shape'=.* does not match 'p'"):
        projected_emd(p, q, (8, 8))
    with pytest.raises(ValueError, match="'grid_shape' must be"):
        projected_emd(p, q, (81,))
    with pytest.raises(ValueError, match="'grid_shape' must be"):
        projected_emd(p, q, (9, 9.0))
    with pytest.raises(ValueError, match="'grid_shape' must be a tuple"):
        projected_emd(p, q, 81)
    with pytest.raises(ValueError, match="'angles' must be a non-empty"):
        projected_emd(p, q, (9, 9), angles=[])
    with pytest.raises(ValueError, match="'angles' must be finite"):
        projected_emd(p, q, (9, 9), angles=[0.0, float("nan")])
    with pytest.raises(ValueError, match="'angles' must be numbers"):
        projected_emd(p, q, (9, 9), angles=["north"])
    with pytest.raises(ValueError, match="'angles' must be directions of shape"):
        projected_emd(rand_hist(2, 27), rand_hist(2, 27, seed=1), (3, 3, 3), angles=[0.0, 45.0])
    with pytest.raises(ValueError, match="'angles' directions must be non-zero"):
        projected_emd(rand_hist(2, 27), rand_hist(2, 27, seed=1), (3, 3, 3), angles=[[0, 0, 0]])
    for step in (0.0, -1.0, float("inf"), "2", True):
        with pytest.raises(ValueError, match="'step' must be a positive"):
            projected_emd(p, q, (9, 9), step=step)
    with pytest.raises(ValueError, match="'reduction' must be one of"):
        projected_emd(p, q, (9, 9), reduction="max")


def test_other_argument_errors():
    p, q = _good()
    with pytest.raises(ValueError, match="'spacing' must be a positive"):
        emd_1d(p, q, spacing=0.0)
    with pytest.raises(ValueError, match="'dim' must be an int"):
        emd_1d(p, q, dim=2)
    with pytest.raises(ValueError, match="'dim' must be an int"):
        emd_1d(p, q, dim=1.0)
    with pytest.raises(ValueError, match="'p' must have shape \\(M, L\\)"):
        sliced_wasserstein_discrepancy(p[0], q[0])
    with pytest.raises(ValueError, match="'n_projections' must be an int >= 1"):
        sliced_wasserstein_discrepancy(p, q, n_projections=0)
    with pytest.raises(TypeError, match="'generator' must be a torch.Generator"):
        sliced_wasserstein_discrepancy(p, q, generator=0)
    with pytest.raises(ValueError, match="'angle' must be a single angle"):
        project_histogram(p, (9, 9), [0.0, 90.0])
    with pytest.raises(ValueError, match="'grid_shape'=.* does not match 'p'"):
        project_histogram(p, (9, 8), 0.0)
    with pytest.raises(ValueError, match="'step' must be a positive"):
        exact_emd(p, q, (9, 9), step=-2.0)
    with pytest.raises(ValueError, match="'p' must not be empty"):
        l1_discrepancy(p[:0], q[:0])


# ------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    gs = (9, 9)
    p, q = rand_hist(64, 81, seed=35, dtype=torch.float32), rand_hist(64, 81, seed=36, dtype=torch.float32)
    pc, qc = p.cuda().requires_grad_(), q.cuda().requires_grad_()
    out = projected_emd(pc, qc, gs, step=2.0)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    pr, qr = p.clone().requires_grad_(), q.clone().requires_grad_()
    ref = projected_emd(pr, qr, gs, step=2.0)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)
    out.backward()
    ref.backward()
    torch.testing.assert_close(pc.grad.cpu(), pr.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(qc.grad.cpu(), qr.grad, rtol=1e-5, atol=1e-7)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert sliced_wasserstein_discrepancy(p.cuda(), q.cuda(), generator=g).device.type == "cuda"
    torch.testing.assert_close(l1_discrepancy(p.cuda(), q.cuda()).cpu(), l1_discrepancy(p, q))
    torch.testing.assert_close(emd_1d(p.cuda(), q.cuda()).cpu(), emd_1d(p, q), rtol=1e-5, atol=1e-6)
    ex = exact_emd(p[:4].cuda(), q[:4].cuda(), gs)
    assert ex.device.type == "cuda"
