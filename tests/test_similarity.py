"""pemd_tutorial.similarity: NMI and MIND-SSD, the label-free similarities of register and selection."""

import math

import numpy as np
import pytest
import torch

from pemd_tutorial.similarity import mind_ssd, normalised_mutual_information


def test_nmi_is_two_for_a_one_to_one_intensity_map_and_falls_for_noise():
    rng = np.random.default_rng(0)
    a = rng.random((32, 32))
    mask = np.ones_like(a, dtype=bool)
    assert normalised_mutual_information(a, 1 - a, mask) == pytest.approx(2.0, abs=1e-9)
    assert normalised_mutual_information(a, rng.random((32, 32)), mask) < 1.2
    assert math.isnan(normalised_mutual_information(a, a, np.zeros_like(mask)))
    with pytest.raises(ValueError, match="one shape"):
        normalised_mutual_information(a, a[:8], mask)


def test_nmi_of_constant_images_is_one_not_a_division_by_zero():
    """A phantom's uniform slice made register crash with ZeroDivisionError: two constant images
    have no information, like a pair in which one image is constant (NMI 1)."""
    mask = np.ones((8, 8), dtype=bool)
    flat, other = np.full((8, 8), 0.3), np.full((8, 8), 0.7)
    assert normalised_mutual_information(flat, other, mask) == 1.0
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    assert normalised_mutual_information(flat, ramp, mask) == pytest.approx(1.0)


def test_mind_ssd_is_zero_for_the_same_structure_in_another_contrast_and_grows_with_a_shift():
    img = torch.zeros(1, 24, 24)
    img[:, 6:18, 8:16] = 1.0
    mask = torch.ones(1, 24, 24, dtype=torch.bool)
    assert mind_ssd(img, 0.5 + 2 * img, mask) == pytest.approx(0.0, abs=1e-6)  # MIND ignores contrast
    assert mind_ssd(img, torch.roll(img, 3, dims=2), mask) > 0.01
    assert math.isnan(mind_ssd(img, img, torch.zeros_like(mask)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        mind_ssd(img[0], img[0], mask[0])
