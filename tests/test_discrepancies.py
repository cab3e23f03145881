"""Tests of pemd_tutorial.discrepancies: the common interface, the scaling and the module twins."""

from __future__ import annotations

import pytest
import torch

from data_utils.grid import LabelGrid
from pemd_tutorial.discrepancies import (
    BASE_DISCREPANCIES,
    DISCREPANCIES,
    DISCREPANCY_NAMES,
    L1Discrepancy,
    ProjectedEMD,
    SlicedWassersteinDiscrepancy,
    scaled_discrepancy,
)
from pemd_tutorial.emd import l1_discrepancy, projected_emd, sliced_wasserstein_discrepancy


def rand_hist(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=dtype) ** 3
    return x / x.sum(dim=-1, keepdim=True)


def test_the_registry_knows_exactly_the_configurable_discrepancies():
    assert tuple(DISCREPANCIES) == BASE_DISCREPANCIES
    # the sum and the shuffled-grid control are built from the registry's entries in scaled_discrepancy
    assert DISCREPANCY_NAMES == (*BASE_DISCREPANCIES, "pemd+swd", "pemd_shuffled", "swd_rescaled")


def test_discrepancies_mapping_common_signature():
    assert set(DISCREPANCIES) == {"l1", "swd", "pemd"}
    p, q = rand_hist(40, 81, seed=31, dtype=torch.float32), rand_hist(40, 81, seed=32, dtype=torch.float32)
    expected = {
        "l1": l1_discrepancy(p, q),
        "swd": sliced_wasserstein_discrepancy(p, q, generator=torch.Generator().manual_seed(2)),
        "pemd": projected_emd(p, q, (9, 9), step=2.0),
    }
    for name, fn in DISCREPANCIES.items():
        pg, qg = p.clone().requires_grad_(), q.clone().requires_grad_()
        out = fn(pg, qg, grid_shape=(9, 9), step=2.0, generator=torch.Generator().manual_seed(2))
        assert out.shape == () and out.dtype == torch.float32
        torch.testing.assert_close(out, expected[name])
        out.backward()
        assert pg.grad is not None and qg.grad is not None
        gen = torch.Generator().manual_seed(2)
        fast = fn(p, q, grid_shape=(9, 9), step=2.0, generator=gen, validate=False)
        torch.testing.assert_close(fast, expected[name])
    with pytest.raises(TypeError):
        DISCREPANCIES["l2"] = l1_discrepancy  # read-only




def test_discrepancies_entries_forward_n_projections_and_ignore_unused_keywords():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(32, 9, generator=g, dtype=torch.float64), dim=1)
    q = torch.softmax(torch.randn(32, 9, generator=g, dtype=torch.float64), dim=1)
    via_map = DISCREPANCIES["swd"](p, q, grid_shape=(3, 3), n_projections=4,
                                   generator=torch.Generator().manual_seed(7))
    direct = sliced_wasserstein_discrepancy(p, q, n_projections=4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(via_map, direct)
    default = DISCREPANCIES["swd"](p, q, grid_shape=(3, 3), generator=torch.Generator().manual_seed(7))
    assert not torch.equal(via_map, default)  # 128 directions by default, not 4
    for name in ("l1", "pemd"):
        a = DISCREPANCIES[name](p, q, grid_shape=(3, 3), n_projections=4)
        b = DISCREPANCIES[name](p, q, grid_shape=(3, 3))
        assert torch.equal(a, b)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_modules_equal_their_functions(reduction):
    p, q = rand_hist(12, 81, seed=1), rand_hist(12, 81, seed=2)
    per_row = (p - q).abs().mean(dim=-1)
    want = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    torch.testing.assert_close(L1Discrepancy(reduction)(p, q), want)
    if reduction == "mean":
        torch.testing.assert_close(L1Discrepancy()(p, q), l1_discrepancy(p, q))
    pe = ProjectedEMD((9, 9), step=2.0, reduction=reduction)(p, q)
    torch.testing.assert_close(pe, projected_emd(p, q, (9, 9), step=2.0, reduction=reduction))
    swd = SlicedWassersteinDiscrepancy(16, reduction, generator=torch.Generator().manual_seed(3))(p, q)
    gen = torch.Generator().manual_seed(3)
    per_direction = sliced_wasserstein_discrepancy(p, q, 16, gen, reduction="none")
    assert per_direction.shape == (16,)
    want_swd = {"mean": per_direction.mean(), "sum": per_direction.sum(), "none": per_direction}[reduction]
    torch.testing.assert_close(swd, want_swd)


def test_modules_are_differentiable_and_report_their_settings():
    p = rand_hist(6, 25, seed=4).requires_grad_(True)
    q = rand_hist(6, 25, seed=5)
    for module in (L1Discrepancy(), ProjectedEMD((5, 5)), SlicedWassersteinDiscrepancy(8)):
        (grad,) = torch.autograd.grad(module(p, q), p)
        assert grad.shape == p.shape and torch.isfinite(grad).all()
    assert "grid_shape=(5, 5)" in repr(ProjectedEMD((5, 5)))
    assert "n_projections=8" in repr(SlicedWassersteinDiscrepancy(8))


def test_module_arguments_are_checked_at_construction():
    with pytest.raises(ValueError, match="'reduction'"):
        L1Discrepancy("max")
    with pytest.raises(ValueError, match="'reduction'"):
        ProjectedEMD((9, 9), reduction="max")
    with pytest.raises(ValueError, match="'grid_shape'"):
        ProjectedEMD((9,))
    with pytest.raises(ValueError, match="'step'"):
        ProjectedEMD((9, 9), step=0.0)
    with pytest.raises(TypeError, match="'n_projections'"):
        SlicedWassersteinDiscrepancy(2.5)
    with pytest.raises(ValueError, match="'n_projections'"):
        SlicedWassersteinDiscrepancy(0)


def test_scaled_discrepancy_scales_and_checks():
    grid = LabelGrid(2, 2.0)
    p, q = rand_hist(10, 25, seed=6, dtype=torch.float32), rand_hist(10, 25, seed=7, dtype=torch.float32)
    torch.testing.assert_close(scaled_discrepancy("l1", p, q, grid), l1_discrepancy(p, q) * 25 / 2)
    torch.testing.assert_close(scaled_discrepancy("pemd", p, q, grid), projected_emd(p, q, (5, 5), step=1.0))
    with pytest.raises(ValueError, match="scaled_discrepancy\\(\\) 'name'"):
        scaled_discrepancy("kl", p, q, grid)
    with pytest.raises(TypeError, match="'grid'"):
        scaled_discrepancy("l1", p, q, (5, 5))
    with pytest.raises(ValueError, match="shape \\(M, 25\\)"):
        scaled_discrepancy("l1", p[:, :9], q[:, :9], grid)
