import itertools

import pytest
import torch

from data_utils import PairSampler, RandomIntensityMap, TissueSynthesis, load_embedded, tissue_order
from data_utils.contrast import TISSUES, piecewise_linear


def _tissues(n=6, size=24):
    sl = load_embedded("val", contrasts=("t1",), size=size, with_tissues=True)
    return sl.images["t1"][:n, None], torch.stack([sl.tissues[t][:n] for t in TISSUES], dim=1)


def test_piecewise_linear_interpolates_between_knots():
    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    v = torch.tensor([[0.0, 1.0, 0.0]])  # up to 0.5, down after
    assert piecewise_linear(x, v)[0].tolist() == pytest.approx([0.0, 0.2, 1.0, 0.2, 0.0])


def test_random_intensity_map_is_seeded_keeps_background_and_leaves_a_share_unchanged():
    t1, _ = _tissues(n=8)
    m = RandomIntensityMap(keep=0.5)
    a = m(t1, None, torch.Generator().manual_seed(0))
    b = m(t1, None, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    background = t1 <= 0.1 * t1.amax(dim=(1, 2, 3), keepdim=True)
    unchanged = [bool(torch.equal(a[i], t1[i])) for i in range(8)]
    assert 0 < sum(unchanged) < 8
    for i in range(8):
        if not unchanged[i]:  # a remapped image: background 0, foreground no longer the T1w
            assert (a[i][background[i]] == 0).all() and (a[i] - t1[i]).abs().max() > 0.01
    with pytest.raises(ValueError, match="n_knots"):
        RandomIntensityMap(n_knots=1)
    with pytest.raises(ValueError, match="keep"):
        RandomIntensityMap(keep=1.0)


def test_held_out_arm_never_orders_the_tissues_like_the_target():
    _, tissues = _tissues(n=2)
    rejected = tissue_order("t2")
    synth = TissueSynthesis(reject_orders=(rejected,))
    g = torch.Generator().manual_seed(0)
    c = synth._intensities(5000, g)
    orders = {tuple(TISSUES[i] for i in row) for row in torch.argsort(c, dim=1, descending=True).tolist()}
    assert rejected not in orders and len(orders) == 5
    free = TissueSynthesis()._intensities(5000, torch.Generator().manual_seed(0))
    assert len({tuple(r) for r in torch.argsort(free, dim=1).tolist()}) == 6
    out = synth(torch.zeros(2, 1, 24, 24), tissues, g)
    assert out.shape == (2, 1, 24, 24) and float(out.amax()) == pytest.approx(1.0)


def test_held_out_arm_that_rejects_every_draw_is_refused():
    with pytest.raises(ValueError, match="reject every draw"):
        TissueSynthesis(reject_orders=tuple(itertools.permutations(TISSUES)))
    with pytest.raises(ValueError, match="order the tissues"):
        TissueSynthesis(reject_orders=(("gm", "wm"),))
    with pytest.raises(ValueError, match="tissue maps"):
        TissueSynthesis()(torch.zeros(2, 1, 8, 8), None, torch.Generator())


def test_sampler_applies_the_transform_to_the_moving_image_only():
    kw = dict(size=24, control_spacing=4)
    plain = PairSampler("source", "val", **kw).draw_batch(4, torch.Generator().manual_seed(0))
    synth = PairSampler("source", "val", moving_transform=TissueSynthesis(), **kw)
    drawn = synth.draw_batch(4, torch.Generator().manual_seed(0))
    assert torch.equal(plain["labels"], drawn["labels"])  # the same deformations and slices
    assert not torch.allclose(plain["moving"], drawn["moving"])
    with pytest.raises(TypeError, match="moving_transform"):
        PairSampler("source", "val", moving_transform=3, **kw)
