"""Tests of data_utils.deform (random fields, warping) and data_utils.intensity."""

import pytest
import torch

from data_utils import augment_intensity, random_deformation, warp
from data_utils.deform import jacobian_determinant, smooth_noise
from data_utils.intensity import bias_field, gamma_jitter, rician_noise


def _image(b=2, c=1, h=24, w=20, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dx, dy", [(3, 0), (0, -2), (2, 5), (-4, -1)])
def test_integer_shift_equals_roll_away_from_borders(dx, dy):
    img = _image()
    field = torch.zeros(2, 2, 24, 20)
    field[:, 0], field[:, 1] = dx, dy
    out = warp(img, field)
    # warped(x, y) = img(x + dx, y + dy)  ->  roll by -dx along W and -dy along H
    ref = torch.roll(img, shifts=(-dy, -dx), dims=(-2, -1))
    m = 6
    torch.testing.assert_close(out[..., m:-m, m:-m], ref[..., m:-m, m:-m], rtol=0, atol=1e-5)


ATOL_F32 = 1e-5  # float32 round trip pixel -> normalised -> pixel coordinates


def test_identity_field_returns_image():
    img = _image(c=3)
    torch.testing.assert_close(warp(img, torch.zeros(2, 2, 24, 20)), img, rtol=0, atol=ATOL_F32)


def test_border_padding_repeats_edge():
    img = _image(b=1)
    field = torch.zeros(1, 2, 24, 20)
    field[:, 0] = 100.0  # far to the right: every sample is the last column
    out = warp(img, field)
    torch.testing.assert_close(out, img[..., -1:].expand_as(img), rtol=0, atol=1e-6)


def test_warp_is_differentiable_gradcheck():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 1, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    field = (0.3 + 0.4 * torch.rand(1, 2, 6, 7, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(warp, (img, field), eps=1e-6, atol=1e-5)


def test_warp_broadcasts_batch_of_one():
    img = _image(b=1)
    fields = random_deformation(3, 24, 20, 3.0, generator=torch.Generator().manual_seed(0))
    out = warp(img, fields)
    assert out.shape == (3, 1, 24, 20)
    torch.testing.assert_close(out[1:2], warp(img, fields[1:2]))


def test_random_deformation_bounds_shape_and_smoothness():
    g = torch.Generator().manual_seed(3)
    u = random_deformation(8, 64, 48, max_displacement=5.0, smoothness=16.0, generator=g)
    assert u.shape == (8, 2, 64, 48) and u.dtype == torch.float32
    peak = u.abs().amax(dim=(1, 2, 3))
    assert bool((peak <= 5.0).all()) and bool((peak >= 0.3 * 5.0).all())
    # no folding: the Jacobian determinant stays above the default bound 0.2
    assert float(jacobian_determinant(u.double()).min()) >= 0.2 - 1e-4
    rough = random_deformation(8, 64, 48, 5.0, smoothness=2.0, generator=torch.Generator().manual_seed(3))
    def roughness(f):
        return (f[..., 1:, :] - f[..., :-1, :]).abs().mean()

    assert roughness(rough) > roughness(u)


def test_fold_check_only_shrinks_folding_fields():
    kw = {"max_displacement": 6.0, "smoothness": 21.0}
    raw = random_deformation(16, 64, 64, generator=torch.Generator().manual_seed(2), min_jacobian=None, **kw)
    safe = random_deformation(16, 64, 64, generator=torch.Generator().manual_seed(2), **kw)
    folded = jacobian_determinant(raw.double()).amin(dim=(1, 2)) < 0.2
    assert bool(folded.any()) and not bool(folded.all())  # the fixture exercises both cases
    torch.testing.assert_close(safe[~folded], raw[~folded], rtol=0, atol=0)
    ratio = safe[folded].abs().amax(dim=(1, 2, 3)) / raw[folded].abs().amax(dim=(1, 2, 3))
    assert bool((ratio < 1).all())
    # scaled, not reshaped: safe = s * raw for one s per field
    s = (safe[folded] * raw[folded]).sum(dim=(1, 2, 3)) / raw[folded].square().sum(dim=(1, 2, 3))
    torch.testing.assert_close(safe[folded], s.view(-1, 1, 1, 1) * raw[folded], rtol=0, atol=1e-5)


def test_jacobian_of_affine_field():
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")
    u = torch.stack([0.5 * xx + 0.1 * yy, -0.2 * xx + 0.3 * yy])[None].double()
    expected = (1 + 0.5) * (1 + 0.3) - 0.1 * (-0.2)
    want = torch.full((1, 8, 9), expected, dtype=torch.float64)
    torch.testing.assert_close(jacobian_determinant(u), want, rtol=0, atol=1e-6)


def test_random_deformation_seeded():
    a = random_deformation(2, 16, 16, generator=torch.Generator().manual_seed(7))
    b = random_deformation(2, 16, 16, generator=torch.Generator().manual_seed(7))
    c = random_deformation(2, 16, 16, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_random_deformation_dtype_device_follow_arguments():
    u = random_deformation(1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert u.dtype == torch.float64 and u.device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_deformation_cuda_matches_cpu():
    a = random_deformation(2, 16, 16, generator=torch.Generator().manual_seed(7), device="cuda")
    b = random_deformation(2, 16, 16, generator=torch.Generator().manual_seed(7))
    assert a.device.type == "cuda"
    torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-6)
    img = _image(b=2, h=16, w=16)
    torch.testing.assert_close(warp(img.cuda(), a).cpu(), warp(img, b), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"batch": 0}, "batch"),
        ({"height": 2.5}, "height"),
        ({"max_displacement": -1.0}, "max_displacement"),
        ({"smoothness": 0.5}, "smoothness"),
        ({"min_fraction": 1.5}, "min_fraction"),
        ({"min_jacobian": 1.0}, "min_jacobian"),
        ({"generator": 3}, "generator"),
    ],
)
def test_random_deformation_validates(kwargs, word):
    args = {"batch": 1, "height": 8, "width": 8, **kwargs}
    with pytest.raises(TypeError if word == "generator" else ValueError, match=word):
        random_deformation(**args)


def test_warp_validates():
    img = _image()
    with pytest.raises(ValueError, match="'image'"):
        warp(img[0], torch.zeros(2, 2, 24, 20))
    with pytest.raises(ValueError, match="'field'"):
        warp(img, torch.zeros(2, 3, 24, 20))
    with pytest.raises(ValueError, match="spatial size"):
        warp(img, torch.zeros(2, 2, 20, 24))
    with pytest.raises(ValueError, match="batch"):
        warp(img, torch.zeros(3, 2, 24, 20))
    with pytest.raises(ValueError, match="floating"):
        warp(img.long(), torch.zeros(2, 2, 24, 20))


def test_smooth_noise_unit_peak():
    s = smooth_noise(3, 2, 20, 30, 8.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.abs().amax(dim=(1, 2, 3)), torch.ones(3), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- intensity


def test_augment_intensity_range_seed_and_change():
    img = _image(b=4, h=32, w=32)
    a = augment_intensity(img, generator=torch.Generator().manual_seed(0))
    b = augment_intensity(img, generator=torch.Generator().manual_seed(0))
    c = augment_intensity(img, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert a.shape == img.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert float((a - img).abs().mean()) > 1e-3


def test_augment_intensity_off_is_identity():
    img = _image(h=16, w=16)
    out = augment_intensity(img, torch.Generator().manual_seed(0), gamma_range=(1, 1), contrast_range=(1, 1),
                            bias_strength=0.0, noise_std=0.0)
    torch.testing.assert_close(out, img, rtol=0, atol=1e-6)


def test_bias_field_bounded_and_smooth():
    img = torch.ones(3, 1, 32, 32)
    out = bias_field(img, strength=0.2, generator=torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0.8 - 1e-6 and float(out.max()) <= 1.2 + 1e-6
    assert float((out[..., 1:] - out[..., :-1]).abs().max()) < 0.05


def test_rician_noise_statistics():
    img = torch.zeros(1, 1, 200, 200)
    out = rician_noise(img, std=0.1, generator=torch.Generator().manual_seed(0))
    # zero signal -> Rayleigh with mean s * sqrt(pi / 2)
    assert abs(float(out.mean()) - 0.1 * (torch.pi / 2) ** 0.5) < 0.005
    bright = torch.full((1, 1, 200, 200), 0.8)
    high = rician_noise(bright, std=0.02, generator=torch.Generator().manual_seed(0))
    assert abs(float(high.mean()) - 0.8) < 0.002


def test_gamma_jitter_monotone_per_image():
    x = torch.linspace(0, 1, 50).view(1, 1, 1, 50).repeat(3, 1, 1, 1)
    y = gamma_jitter(x, generator=torch.Generator().manual_seed(0))
    assert bool((y[..., 1:] >= y[..., :-1]).all())


def test_intensity_validates():
    img = _image()
    with pytest.raises(ValueError, match="'image'"):
        augment_intensity(img[0])
    with pytest.raises(ValueError, match="gamma_range"):
        gamma_jitter(img, gamma_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="contrast_range"):
        gamma_jitter(img, contrast_range=(1.2, 1.1))
    with pytest.raises(ValueError, match="strength"):
        bias_field(img, strength=1.5)
    with pytest.raises(ValueError, match="std"):
        rician_noise(img, std=-0.1)
