import math

import pytest
import torch

from data_utils.grid import LabelGrid
from pemd_tutorial.evaluate import dense_field, identity_probs, label_metrics, masked_ncc


def _one_hot(labels, n_labels):
    return torch.nn.functional.one_hot(labels, n_labels).permute(0, 3, 1, 2).float()


def test_label_metrics_hand_made_answers():
    grid = LabelGrid(radius=1, step=2.0)  # 9 labels, offsets (i, j) in -1..1
    # 1 pair, 1x4 control points; true labels all the centre (0, 0) -> label 4
    labels = torch.full((1, 1, 4), grid.index(0, 0), dtype=torch.int64)
    disp = torch.zeros(1, 2, 1, 4)
    pred = torch.tensor([[[grid.index(0, 0), grid.index(1, 0), grid.index(1, 1), grid.index(-1, 1)]]])
    probs = _one_hot(pred, 9)
    valid = torch.ones(1, 1, 4, dtype=torch.bool)
    m = label_metrics(probs, labels, disp, valid, grid)
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["within_one"] == pytest.approx(1.0)  # all neighbours at Chebyshev distance <= 1
    # EPE of the expected displacement: 0, 2, 2*sqrt(2), 2*sqrt(2) px
    assert m["epe"] == pytest.approx((0 + 2 + 2 * math.sqrt(2) * 2) / 4, rel=1e-6)
    assert m["n_points"] == 4


def test_label_metrics_respects_valid_and_chebyshev_two():
    grid = LabelGrid(radius=2, step=1.0)
    labels = torch.tensor([[[grid.index(0, 0), grid.index(2, 2)]]])
    disp = torch.tensor([[[[0.0, 2.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2)
    pred = torch.tensor([[[grid.index(2, 0), grid.index(2, 2)]]])  # first: Chebyshev 2 away
    probs = _one_hot(pred, grid.n_labels)
    both = label_metrics(probs, labels, disp, torch.ones(1, 1, 2, dtype=torch.bool), grid)
    assert both["accuracy"] == pytest.approx(0.5) and both["within_one"] == pytest.approx(0.5)
    assert both["epe"] == pytest.approx(1.0)  # |(2,0)-(0,0)| = 2 and 0 -> mean 1
    first_only = label_metrics(probs, labels, disp, torch.tensor([[[True, False]]]), grid)
    assert first_only["accuracy"] == 0.0 and first_only["within_one"] == 0.0
    assert first_only["epe"] == pytest.approx(2.0) and first_only["n_points"] == 1
    none = label_metrics(probs, labels, disp, torch.zeros(1, 1, 2, dtype=torch.bool), grid)
    assert none["n_points"] == 0 and math.isnan(none["accuracy"])


def test_label_metrics_expected_displacement_of_a_spread_histogram():
    grid = LabelGrid(radius=1, step=3.0)
    probs = torch.zeros(1, 9, 1, 1)
    probs[0, grid.index(1, 0)] = 0.5  # +3 px in x
    probs[0, grid.index(-1, 0)] = 0.5  # -3 px in x -> expectation 0
    labels = torch.tensor([[[grid.index(0, 0)]]])
    m = label_metrics(probs, labels, torch.zeros(1, 2, 1, 1), torch.ones(1, 1, 1, dtype=torch.bool), grid)
    assert m["epe"] == pytest.approx(0.0, abs=1e-6)
    assert m["accuracy"] == 0.0  # the arg-max is one of the two modes, not the centre


def test_identity_probs_scores_the_zero_label():
    grid = LabelGrid(radius=2, step=2.0)
    p = identity_probs(3, grid, 2, 2)
    labels = torch.full((3, 2, 2), grid.index(0, 0))
    labels[0, 0, 0] = grid.index(1, 0)
    disp = grid.to_displacement(labels)
    m = label_metrics(p, labels, disp, torch.ones(3, 2, 2, dtype=torch.bool), grid)
    assert m["accuracy"] == pytest.approx(11 / 12) and m["epe"] == pytest.approx(2.0 / 12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probs": torch.zeros(1, 8, 2, 2)}, "L=9"),
        ({"probs": torch.zeros(9, 2, 2)}, "probs"),
        ({"labels": torch.zeros(1, 2, 3, dtype=torch.int64)}, "labels"),
        ({"labels": torch.zeros(1, 2, 2, dtype=torch.int32)}, "int64"),
        ({"labels": torch.full((1, 2, 2), 9, dtype=torch.int64)}, "labels"),
        ({"displacement": torch.zeros(1, 2, 2)}, "displacement"),
        ({"valid": torch.ones(1, 2, 2)}, "valid"),
        ({"valid": torch.ones(2, 2, 2, dtype=torch.bool)}, "valid"),
    ],
)
def test_label_metrics_bad_arguments(kwargs, match):
    grid = LabelGrid(radius=1, step=1.0)
    args = {
        "probs": torch.full((1, 9, 2, 2), 1 / 9),
        "labels": torch.zeros(1, 2, 2, dtype=torch.int64),
        "displacement": torch.zeros(1, 2, 2, 2),
        "valid": torch.ones(1, 2, 2, dtype=torch.bool),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        label_metrics(grid=grid, **args)


@pytest.mark.parametrize("spacing", [4, 5])
def test_dense_field_is_exact_at_control_points_and_affine_inside(spacing):
    h, w = 4 * spacing, 3 * spacing
    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 2, 4, 3, generator=g, dtype=torch.float64)
    d = dense_field(u, h, w, spacing)
    assert d.shape == (2, 2, h, w) and d.dtype == torch.float64
    o = spacing // 2
    torch.testing.assert_close(d[..., o::spacing, o::spacing], u, rtol=0, atol=1e-12)
    # a field linear in the pixel coordinates is reproduced exactly between control points
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    lin = torch.stack([0.3 * xs - 0.1 * ys, 0.2 * ys + 1.0])[None]
    d_lin = dense_field(lin[..., o::spacing, o::spacing], h, w, spacing)
    inner = (slice(None), slice(None), slice(o, o + 3 * spacing + 1), slice(o, o + 2 * spacing + 1))
    torch.testing.assert_close(d_lin[inner], lin[inner], rtol=0, atol=1e-10)


def test_dense_field_bad_shape():
    with pytest.raises(ValueError, match="control_displacement"):
        dense_field(torch.zeros(1, 2, 3, 3), 16, 16, 4)
    with pytest.raises(ValueError, match="control_spacing"):
        dense_field(torch.zeros(1, 2, 4, 4), 16, 15, 4)


def test_masked_ncc_oracles():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(3, 1, 8, 8, generator=g)
    mask = torch.rand(3, 8, 8, generator=g) > 0.3
    torch.testing.assert_close(masked_ncc(a, 2.5 * a + 1.0, mask), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(masked_ncc(a, -a, mask), -torch.ones(3), atol=1e-5, rtol=0)
    # what happens outside the mask does not matter
    b = torch.where(mask[:, None], a, torch.rand(3, 1, 8, 8, generator=g))
    torch.testing.assert_close(masked_ncc(a, b, mask), torch.ones(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="'b'"):
        masked_ncc(a, a[:, :, :4], mask)


def test_evaluate_probs_oracle_on_generated_target_pairs():
    from types import SimpleNamespace

    from data_utils import make_pairs
    from pemd_tutorial.evaluate import evaluate_probs

    grid = LabelGrid(radius=2, step=2.0)
    cfg = SimpleNamespace(grid=grid, control_spacing=4)
    pairs = make_pairs("target", "val", n_pairs=3, grid=grid, control_spacing=4, size=32, seed=5)
    pairs = pairs.evaluation_view()
    b = pairs.batch()
    truth = torch.nn.functional.one_hot(b["labels"], grid.n_labels).permute(0, 3, 1, 2).float()
    perfect = evaluate_probs(truth, pairs, cfg)
    ident = evaluate_probs(identity_probs(3, grid, 8, 8), pairs, cfg)
    assert perfect["accuracy"] == 1.0 and perfect["within_one"] == 1.0
    assert perfect["epe"] <= grid.step * math.sqrt(2) / 2 + 1e-6  # only the quantisation error is left
    assert perfect["ncc"] > ident["ncc"] + 0.2  # quantised labels: not 1, but far above no registration
    assert perfect["ncc_reference"] == "true dense field"
    with pytest.raises(ValueError, match="does not match"):
        evaluate_probs(truth[:2], pairs, cfg)


class _Pairs:
    def __init__(self, batch):
        self._b = batch

    def batch(self):
        return self._b


def test_true_label_histogram_counts_foreground_points_inside_the_grid():
    from pemd_tutorial.evaluate import true_label_histogram

    grid = LabelGrid(radius=2, step=1.0)  # 25 labels, rings 0..2
    labels = torch.tensor([[[grid.index(0, 0), grid.index(1, 0), grid.index(-2, 1), grid.index(2, 2)]]])
    mask = torch.tensor([[[True, True, True, False]]])  # the last point is background
    inside = torch.tensor([[[True, True, True, True]]])
    h = true_label_histogram(_Pairs({"labels": labels, "mask": mask, "inside": inside}), grid)
    assert h["n_points"] == 3 and h["outside"] == 0.0
    assert h["ring_shares"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert h["identity_within_one"] == pytest.approx(2 / 3)
    shares = torch.tensor(h["shares"])
    assert shares.shape == (5, 5) and float(shares.sum()) == pytest.approx(1.0)
    assert shares[2 + 1, 2 - 2] == pytest.approx(1 / 3)  # row = dy + R, column = dx + R
    # a foreground point outside the grid is counted apart
    h = true_label_histogram(_Pairs({"labels": labels, "mask": mask, "inside": ~mask}), grid)
    assert h["n_points"] == 0 and h["outside"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no labels"):
        true_label_histogram(_Pairs({"mask": mask}), grid)
