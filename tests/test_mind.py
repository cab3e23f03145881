import pytest
import torch
import torch.nn.functional as F

from data_utils.grid import LabelGrid
from pemd_tutorial.mind import mind_cost, mind_descriptors, mind_probs


def _smooth_image(seed, size=48, batch=1):
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, size // 4, size // 4, generator=g)
    return F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("neighbourhood", ["ssc", "nbh4"])
def test_descriptor_shape_range_and_dtype(neighbourhood):
    img = _smooth_image(0, batch=2).double()
    d = mind_descriptors(img, neighbourhood=neighbourhood)
    assert d.shape == (2, 4, 48, 48) and d.dtype == torch.float64
    assert float(d.min()) > 0.0
    torch.testing.assert_close(d.amax(dim=1), torch.ones(2, 48, 48, dtype=torch.float64), rtol=0, atol=1e-12)


def test_invariant_to_affine_and_robust_to_monotonic_intensity_maps():
    img = _smooth_image(1).double()
    d = mind_descriptors(img)
    torch.testing.assert_close(mind_descriptors(3.0 * img + 0.7), d, rtol=0, atol=1e-4)
    torch.testing.assert_close(mind_descriptors(1.0 - img), d, rtol=0, atol=1e-4)  # contrast inversion
    # a non-linear monotonic map changes local contrasts a little, the descriptor only slightly:
    err_other = (mind_descriptors(_smooth_image(2).double()) - d).abs().mean()
    for mapped in (img.sqrt(), torch.log1p(5.0 * img)):
        assert (mind_descriptors(mapped) - d).abs().mean() < 0.25 * err_other


@pytest.mark.parametrize("dx, dy", [(4, -2), (-2, 0), (0, 6)])
def test_baseline_recovers_a_pure_shift(dx, dy):
    grid = LabelGrid(radius=3, step=2.0)
    fixed = _smooth_image(3, size=64)
    moving = torch.roll(fixed, shifts=(dy, dx), dims=(-2, -1))  # fixed(x) = moving(x + d)
    moving = 1.0 - moving ** 2  # a different monotonic "contrast"
    probs = mind_probs(fixed, moving, grid, control_spacing=8)
    assert probs.shape == (1, 49, 8, 8)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, 8, 8), rtol=0, atol=1e-5)
    best = probs.argmax(dim=1)[0, 1:-1, 1:-1]  # away from the rolled border
    assert (best == grid.index(dx // 2, dy // 2)).float().mean() >= 0.9


def test_cost_smoothing_and_determinism():
    grid = LabelGrid(radius=1, step=1.0)
    fixed, moving = _smooth_image(4, size=16), _smooth_image(5, size=16)
    c0 = mind_cost(fixed, moving, grid, 4, smooth_iterations=0)
    c2 = mind_cost(fixed, moving, grid, 4, smooth_iterations=2)
    assert c0.shape == c2.shape == (1, 9, 4, 4) and float(c0.min()) >= 0.0
    assert float(c2.var(dim=(2, 3)).mean()) < float(c0.var(dim=(2, 3)).mean())  # smoother in space
    torch.testing.assert_close(mind_cost(fixed, moving, grid, 4), mind_cost(fixed, moving, grid, 4),
                               rtol=0, atol=0)


def test_bad_arguments():
    img = torch.zeros(1, 1, 16, 16)
    grid = LabelGrid(radius=1, step=1.0)
    with pytest.raises(ValueError, match="'img'"):
        mind_descriptors(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="'neighbourhood'"):
        mind_descriptors(img, neighbourhood="six")
    with pytest.raises(ValueError, match="'dilation'"):
        mind_descriptors(img, dilation=0)
    with pytest.raises(ValueError, match="'patch_radius'"):
        mind_descriptors(img, patch_radius=-1)
    with pytest.raises(ValueError, match="'moving'"):
        mind_cost(img, torch.zeros(1, 1, 16, 8), grid, 4)
    with pytest.raises(ValueError, match="control_spacing"):
        mind_cost(img, img, grid, 5)
    with pytest.raises(ValueError, match="'temperature'"):
        mind_probs(img, img, grid, 4, temperature=0.0)


def test_baseline_on_embedded_t1w_t2w_pairs_beats_chance_and_identity():
    from data_utils import at_control_points, load_embedded, random_deformation, warp
    from pemd_tutorial.evaluate import identity_probs, label_metrics

    sl = load_embedded("val", size=64)
    t1, t2 = sl.images["t1"][:, None], sl.images["t2"][:, None]
    g = torch.Generator().manual_seed(0)
    u = random_deformation(t1.shape[0], 64, 64, max_displacement=6.0, generator=g)
    fixed = warp(t1, u)  # fixed = T1w warped; moving = T2w unwarped: true label at c = quantise(u(c))
    grid, s = LabelGrid(radius=4, step=2.0), 4
    uc = at_control_points(u, s)
    labels, inside = grid.quantise(uc)
    valid = at_control_points(sl.mask, s) & inside
    mind = label_metrics(mind_probs(fixed, t2, grid, s), labels, uc, valid, grid)
    ident = label_metrics(identity_probs(t1.shape[0], grid, 16, 16), labels, uc, valid, grid)
    assert mind["accuracy"] > 10.0 / grid.n_labels
    assert mind["accuracy"] > ident["accuracy"] + 0.15
    assert mind["epe"] < 0.75 * ident["epe"]


@pytest.mark.parametrize("chunk", [0, -2, 1.5, True])
def test_mind_cost_rejects_bad_chunk(chunk):
    img = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="'chunk'"):
        mind_cost(img, img, LabelGrid(radius=1, step=1.0), 4, chunk=chunk)


def test_mind_cost_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(1)
    fixed, moving = torch.rand(3, 1, 16, 16, generator=g), torch.rand(3, 1, 16, 16, generator=g)
    grid = LabelGrid(radius=1, step=1.0)
    torch.testing.assert_close(mind_cost(fixed, moving, grid, 4, chunk=1),
                               mind_cost(fixed, moving, grid, 4, chunk=8), rtol=0, atol=1e-6)
