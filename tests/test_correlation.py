import pytest
import torch

from data_utils.grid import LabelGrid
from pemd_tutorial.correlation import control_point_coordinates, cost_volume


def _shifted(fixed, dx, dy):
    # moving(x + d) = fixed(x): the fixed point x corresponds to the moving point x + d
    return torch.roll(fixed, shifts=(dy, dx), dims=(-2, -1))


@pytest.mark.parametrize("metric", ["dot", "ssd"])
def test_known_shift_is_the_best_label_inside(metric):
    g = torch.Generator().manual_seed(0)
    grid = LabelGrid(radius=2, step=2.0)
    fixed = torch.randn(2, 8, 32, 32, generator=g)
    fixed = fixed / fixed.norm(dim=1, keepdim=True)  # unit features: dot is maximal at the match
    moving = _shifted(fixed, dx=4, dy=-2)
    vol = cost_volume(fixed, moving, grid, control_spacing=4, metric=metric)
    assert vol.shape == (2, 25, 8, 8)
    best = vol.argmax(dim=1)[:, 2:-2, 2:-2]  # away from the borders
    assert torch.all(best == grid.index(2, -1))


def test_matches_explicit_loop_reference_with_stride():
    g = torch.Generator().manual_seed(1)
    grid = LabelGrid(radius=1, step=2.0)
    feat_f = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    feat_m = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    # image 16x16, features at stride 2, control points every 4 px (centres 2, 6, 10, 14)
    vol = cost_volume(feat_f, feat_m, grid, control_spacing=4, feature_stride=2)
    cp = control_point_coordinates(16, 16, 4, dtype=torch.float64)
    ref = torch.empty(1, 9, 4, 4, dtype=torch.float64)
    up_f = torch.nn.functional.interpolate(feat_f, scale_factor=2, mode="bilinear", align_corners=False)
    up_m = torch.nn.functional.interpolate(feat_m, scale_factor=2, mode="bilinear", align_corners=False)
    disp = grid.displacements(dtype=torch.float64)
    for a in range(4):
        for k in range(4):
            x, y = (int(v) for v in cp[a, k])
            for lab in range(9):
                dx, dy = (int(v) for v in disp[lab])
                xm, ym = min(max(x + dx, 0), 15), min(max(y + dy, 0), 15)
                ref[0, lab, a, k] = (up_f[0, :, y, x] * up_m[0, :, ym, xm]).mean()
    torch.testing.assert_close(vol, ref, rtol=0, atol=1e-12)


def test_differentiable_and_dtype_follows_input():
    grid = LabelGrid(radius=1, step=1.0)
    f = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    m = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cost_volume(a, b, grid, 4), (f, m))
    assert cost_volume(f, m, grid, 4).dtype == torch.float64


def test_bad_arguments():
    grid = LabelGrid(radius=1, step=1.0)
    f = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match="feat_moving"):
        cost_volume(f, torch.zeros(1, 2, 8, 4), grid, 4)
    with pytest.raises(ValueError, match="feat_fixed"):
        cost_volume(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), grid, 4)
    with pytest.raises(ValueError, match="metric"):
        cost_volume(f, f, grid, 4, metric="ncc")
    with pytest.raises(ValueError, match="control_spacing"):
        cost_volume(f, f, grid, 3)
    with pytest.raises(ValueError, match="feature_stride"):
        cost_volume(f, f, grid, 4, feature_stride=0)


@pytest.mark.parametrize("metric", ["dot", "ssd"])
@pytest.mark.parametrize("step, spacing, stride", [(2.0, 4, 2), (1.0, 4, 1), (2.0, 8, 4), (1.5, 3, 1)])
def test_lattice_path_equals_sampling_every_position(step, spacing, stride, metric):
    # spacing / step whole: the lattice path (banded matrix product); compare with sampling every
    # control point + label position directly, values and gradients
    from pemd_tutorial import correlation

    g = torch.Generator().manual_seed(2)
    grid = LabelGrid(radius=2, step=step)
    f = torch.randn(2, 3, 24 // stride, 24 // stride, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.randn(2, 3, 24 // stride, 24 // stride, generator=g, dtype=torch.float64, requires_grad=True)
    fast = cost_volume(f, m, grid, spacing, feature_stride=stride, metric=metric)
    hc = 24 // spacing
    size = torch.tensor([24.0, 24.0], dtype=torch.float64)
    cp = control_point_coordinates(24, 24, spacing, dtype=torch.float64)
    d = grid.displacements(dtype=torch.float64)
    pos = cp.reshape(1, hc * hc, 2) + d.reshape(-1, 1, 2)
    gm = correlation.pixel_to_normalised(pos, size)
    ref_m = torch.nn.functional.grid_sample(m, gm.expand(2, *gm.shape), mode="bilinear",
                                            padding_mode="border", align_corners=False)
    gf = correlation.pixel_to_normalised(cp, size)
    ref_f = torch.nn.functional.grid_sample(f, gf.expand(2, hc, hc, 2), mode="bilinear",
                                            padding_mode="border", align_corners=False)
    ref_f, ref_m = ref_f.unsqueeze(2), ref_m.reshape(2, 3, grid.n_labels, hc, hc)
    ref = (ref_f * ref_m).mean(dim=1) if metric == "dot" else -(ref_f - ref_m).square().mean(dim=1)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    # gradients agree too
    w = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    gf1, gm1 = torch.autograd.grad((fast * w).sum(), (f, m))
    gf2, gm2 = torch.autograd.grad((ref * w).sum(), (f, m))
    torch.testing.assert_close(gm1, gm2, rtol=0, atol=1e-12)
    torch.testing.assert_close(gf1, gf2, rtol=0, atol=1e-12)
