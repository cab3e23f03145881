"""Tests of data_utils.pairs: pair construction, labels, hiding of target labels, evaluation sets."""

import time

import pytest
import torch

from data_utils import (
    GROUND_TRUTH_KEYS,
    LabelGrid,
    PairDataset,
    at_control_points,
    evaluation_pairs,
    iterate_batches,
    jacobian_determinant,
    load_embedded,
    make_pairs,
    warp,
)

GRID = LabelGrid(4, 2.0)


@pytest.fixture(scope="module")
def source():
    return make_pairs("source", "train", n_pairs=24, grid=GRID, control_spacing=4, size=32, seed=0)


@pytest.fixture(scope="module")
def target():
    return make_pairs("target", "train", n_pairs=24, grid=GRID, control_spacing=4, size=32, seed=0)


def test_item_shapes_and_dtypes(source):
    item = source[3]
    assert item["fixed"].shape == (1, 32, 32) and item["fixed"].dtype == torch.float32
    assert item["moving"].shape == (1, 32, 32) and item["moving"].dtype == torch.float32
    assert item["mask"].shape == (8, 8) and item["mask"].dtype == torch.bool
    assert item["labels"].shape == (8, 8) and item["labels"].dtype == torch.int64
    assert item["displacement"].shape == (2, 8, 8) and item["displacement"].dtype == torch.float32
    assert item["inside"].shape == (8, 8) and item["inside"].dtype == torch.bool
    assert len(source) == 24 and source.domain == "source" and source.grid == GRID
    assert source.control_spacing == 4
    b = source.batch([0, 5, 7])
    assert set(b) == set(item) and b["labels"].shape == (3, 8, 8)
    torch.testing.assert_close(b["fixed"][1], source[5]["fixed"], rtol=0, atol=0)


def test_target_labels_hidden_from_training_path(target):
    for key in (*GROUND_TRUTH_KEYS, "field"):
        assert key not in target[0]
        assert key not in target.batch()
        assert key not in target.batch([1, 2])
        assert key not in target.keys
    for b in iterate_batches(target, 5, generator=torch.Generator().manual_seed(0)):
        assert not set(GROUND_TRUTH_KEYS) & set(b)
    loader = torch.utils.data.DataLoader(target, batch_size=6)
    assert not set(GROUND_TRUTH_KEYS) & set(next(iter(loader)))
    ev = target.evaluation_view()
    assert ev.is_evaluation_view and not target.is_evaluation_view
    for key in (*GROUND_TRUTH_KEYS, "field"):
        assert key in ev[0]
    torch.testing.assert_close(ev[0]["fixed"], target[0]["fixed"], rtol=0, atol=0)


def test_evaluation_view_is_monkeypatchable(target, monkeypatch):
    def forbidden(self):
        raise RuntimeError("evaluation_view called")

    monkeypatch.setattr(PairDataset, "evaluation_view", forbidden)
    with pytest.raises(RuntimeError):
        target.evaluation_view()
    target.batch()  # the training path still works


def test_labels_match_quantised_field(source):
    ev = source.evaluation_view()
    field = ev.batch()["field"]
    disp = at_control_points(field, 4)
    torch.testing.assert_close(ev.batch()["displacement"], disp, rtol=0, atol=0)
    labels, inside = GRID.quantise(disp)
    assert torch.equal(labels, ev.batch()["labels"])
    assert torch.equal(inside, ev.batch()["inside"])
    # the label's displacement is within half a step of the true one (default: all inside)
    err = (GRID.to_displacement(labels) - disp).abs()
    assert bool(inside.all()) and float(err.max()) <= GRID.step / 2 + 1e-6
    assert float(disp.abs().max()) <= GRID.max_displacement + GRID.step / 2


def test_fixed_point_x_matches_moving_point_x_plus_u():
    # without intensity changes, source fixed == moving warped by the true field
    pairs = make_pairs("source", "val", n_pairs=6, size=32, seed=1, augment=False)
    ev = pairs.evaluation_view().batch()
    rewarped = warp(ev["moving"], ev["field"])
    torch.testing.assert_close(rewarped, ev["fixed"], rtol=0, atol=1e-5)
    # the raw slice is the moving image itself
    sl = load_embedded("val", contrasts=("t1",), size=32)
    pos = sl.slice_index.tolist().index(int(ev["slice_index"][0]))
    torch.testing.assert_close(ev["moving"][0, 0], sl.images["t1"][pos], rtol=0, atol=0)


def test_target_moving_is_t2_contrast():
    t = make_pairs("target", "val", n_pairs=4, size=32, seed=2, augment=False).batch()
    s = make_pairs("source", "val", n_pairs=4, size=32, seed=2, augment=False).batch()
    assert torch.equal(t["fixed"], s["fixed"])  # same seed: same slices and fields, T1w fixed
    assert not torch.allclose(t["moving"], s["moving"])
    sl = load_embedded("val", contrasts=("t2",), size=32)
    pos = sl.slice_index.tolist().index(int(t["slice_index"][0]))
    torch.testing.assert_close(t["moving"][0, 0], sl.images["t2"][pos], rtol=0, atol=0)


def test_mask_is_warped_foreground(source):
    b = source.batch()
    frac = b["mask"].float().mean()
    assert 0.15 < float(frac) < 0.8
    # fixed intensity is higher inside the foreground than outside
    fixed_cp = at_control_points(b["fixed"][:, 0], 4)
    assert float(fixed_cp[b["mask"]].mean()) > 3 * float(fixed_cp[~b["mask"]].mean())


def test_seeded_and_deterministic():
    a = make_pairs("target", "val", n_pairs=5, size=32, seed=4).evaluation_view().batch()
    b = make_pairs("target", "val", n_pairs=5, size=32, seed=4).evaluation_view().batch()
    c = make_pairs("target", "val", n_pairs=5, size=32, seed=5).evaluation_view().batch()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert not torch.equal(a["fixed"], c["fixed"])


def test_splits_use_their_own_slices():
    val = set(make_pairs("source", "val", n_pairs=16, size=32).batch()["slice_index"].tolist())
    train = set(make_pairs("source", "train", n_pairs=64, size=32).batch()["slice_index"].tolist())
    test = set(make_pairs("source", "test", n_pairs=16, size=32).batch()["slice_index"].tolist())
    assert not (val & train) and not (val & test) and not (train & test)
    assert len(val) == 8 and len(test) == 8  # every slice used when n_pairs >= n_slices


def test_evaluation_pairs_fixed_and_split_guard():
    a = evaluation_pairs("target", "val", n_pairs=4, size=32)
    b = evaluation_pairs("target", "val", n_pairs=4, size=32)
    assert torch.equal(a.batch()["moving"], b.batch()["moving"])
    with pytest.raises(ValueError, match="split"):
        evaluation_pairs("target", "train", n_pairs=4, size=32)
    with pytest.raises(ValueError, match="seed"):
        evaluation_pairs("target", "val", n_pairs=4, size=32, seed=3)


def test_large_deformation_flags_outside_points():
    grid = LabelGrid(1, 1.0)  # +-1 px: a 3 px field leaves the grid
    p = make_pairs("source", "val", n_pairs=4, grid=grid, size=32, seed=0, max_displacement=3.0)
    b = p.batch()
    assert not bool(b["inside"].all())
    out = ~b["inside"]
    # clamped to the border label: |offset| == R on an axis beyond the grid
    d = grid.to_displacement(b["labels"])
    assert bool((d.abs().amax(dim=1)[out] == 1.0).all())
    assert bool((b["displacement"].abs().amax(dim=1)[out] > 1.5).all())


def test_to_device_and_batches_cover_all(source):
    moved = source.to("cpu")
    assert torch.equal(moved.batch()["labels"], source.batch()["labels"])
    seen = torch.cat([b["slice_index"] for b in iterate_batches(source, 5, shuffle=False)])
    assert torch.equal(seen, source.batch()["slice_index"])


def test_speed_few_hundred_pairs():
    make_pairs("source", "train", n_pairs=8, size=64)  # warm the file cache
    t0 = time.process_time()  # CPU time of this process: robust to other jobs sharing the machine
    make_pairs("source", "train", n_pairs=300, size=64, seed=1)
    assert time.process_time() - t0 < 5.0  # ~1 s of CPU measured on a 2-core CPU; generous for CI


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"domain": "tgt"}, "domain"),
        ({"n_pairs": 0}, "n_pairs"),
        ({"size": 30}, "control_spacing"),
        ({"size": 4}, "size"),
        ({"grid": (4, 2.0)}, "grid"),
        ({"max_displacement": -1.0}, "max_displacement"),
        ({"moving_contrast": "t3"}, "contrasts"),
        ({"augment": "yes"}, "augment"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_make_pairs_validates(kwargs, word):
    args = {"n_pairs": 2, "size": 32, **kwargs}
    error = TypeError if word in ("grid", "augment") else ValueError  # a wrong type, or a wrong value
    with pytest.raises(error, match=word):
        make_pairs(**args)


def test_pair_dataset_validates():
    with pytest.raises(ValueError, match="domain"):
        PairDataset("x", GRID, 4, {"fixed": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(ValueError, match="first dimension"):
        PairDataset("source", GRID, 4, {"fixed": torch.zeros(2, 1, 8, 8), "mask": torch.zeros(3, 2, 2)})


def test_default_deformations_reach_every_ring_of_the_label_grid():
    # the benchmark must exercise the whole label grid: the identity (no registration) is within
    # one label of the truth at <= 50 % of the foreground points and every ring (Chebyshev
    # distance 0..R from the zero label) holds >= 1 % of them; nothing falls outside the grid
    grid = LabelGrid(4, 2.0)
    ev = make_pairs("target", "test", n_pairs=128, grid=grid, size=48, seed=5).evaluation_view().batch()
    fg = ev["mask"]
    ring = grid.offsets()[ev["labels"]].abs().amax(dim=-1)[fg]
    share = torch.bincount(ring, minlength=grid.radius + 1).double() / ring.numel()
    assert bool(ev["inside"][fg].all())
    assert float(share[:2].sum()) <= 0.5  # identity within one label
    assert float(share.min()) >= 0.01, share.tolist()
    # and no folding
    assert float(jacobian_determinant(ev["field"]).min()) > 0


def test_sampler_draws_what_make_pairs_makes_and_hides_target_labels():
    from data_utils import PairSampler

    kw = dict(grid=GRID, control_spacing=4, size=32)
    made = make_pairs("target", "train", n_pairs=6, seed=11, **kw).evaluation_view().batch()
    sampler = PairSampler("target", "train", **kw)
    drawn = sampler.draw(6, torch.Generator().manual_seed(11)).evaluation_view().batch()
    assert set(made) == set(drawn) and all(torch.equal(made[k], drawn[k]) for k in made)
    g = torch.Generator().manual_seed(0)
    batch, other = sampler.draw_batch(4, g), sampler.draw_batch(4, g)
    assert set(batch) == {"fixed", "moving", "mask"} and batch["fixed"].shape == (4, 1, 32, 32)
    assert not torch.equal(batch["fixed"], other["fixed"])  # new pairs every call
    labelled = sampler.evaluation_view().draw_batch(4, torch.Generator().manual_seed(0))
    assert set(labelled) == {"fixed", "moving", "mask", "labels", "inside"}
    assert torch.equal(labelled["fixed"], batch["fixed"])  # the same draw, with its labels
    assert set(PairSampler("source", "train", **kw).draw_batch(2, g)) == set(labelled)
    with pytest.raises(TypeError, match="generator"):
        sampler.draw(2, 0)
