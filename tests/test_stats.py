import numpy as np
import pytest

from pemd_tutorial.stats import paired_bootstrap, slice_counts_difference


def test_constant_difference_gives_a_point_interval():
    totals = [[100] * 8, [100] * 8, [100] * 8]
    a = [[60] * 8, [55] * 8, [70] * 8]
    b = [[50] * 8, [45] * 8, [60] * 8]  # every slice of every seed: exactly 10 points apart
    r = paired_bootstrap(a, b, totals, n_boot=500)
    assert r["difference"] == pytest.approx(0.10)
    assert r["low"] == pytest.approx(0.10) and r["high"] == pytest.approx(0.10)
    assert not r["within_noise"] and r["n_seeds"] == 3 and r["n_slices"] == 24


def test_interval_matches_the_normal_approximation_for_iid_slices():
    # one seed's worth of noise is removed by making all seeds alike; slices carry iid differences
    rng = np.random.default_rng(1)
    n_slices, total = 400, 1000
    d = rng.normal(0.05, 0.1, size=n_slices)  # per-slice accuracy differences
    b = np.full(n_slices, 500)
    a = np.round(b + d * total).astype(int)
    r = paired_bootstrap([a, a], [b, b], [np.full(n_slices, total)] * 2, n_boot=4000, seed=3)
    se = d.std(ddof=1) / np.sqrt(n_slices)
    # two identical seeds: the seed stage adds nothing, the slice stage averages two resamples
    half = 1.96 * se / np.sqrt(2)
    assert r["difference"] == pytest.approx(d.mean(), abs=1e-3)
    assert r["high"] - r["low"] == pytest.approx(2 * half, rel=0.15)


def test_seed_to_seed_variation_widens_the_interval():
    totals = [[100] * 8] * 4
    b = [[50] * 8] * 4
    alike = paired_bootstrap([[55] * 8] * 4, b, totals, n_boot=1000)
    apart = paired_bootstrap([[45] * 8, [65] * 8, [40] * 8, [70] * 8], b, totals, n_boot=1000)
    assert alike["difference"] == pytest.approx(apart["difference"]) == pytest.approx(0.05)
    assert alike["low"] == alike["high"]  # no variation at all
    assert apart["within_noise"] and apart["high"] - apart["low"] > 0.15


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(correct_a=[[1, 2]], correct_b=[[1, 2]], totals=[[5, 5]]), "at least 2 seeds"),
        (dict(correct_a=[[1], [2]], correct_b=[[1], [2]], totals=[[5]]), "one entry per seed"),
        (dict(correct_a=[[1], [2, 3]], correct_b=[[1], [2]], totals=[[5], [5]]), "different lengths"),
        (dict(correct_a=[[6], [2]], correct_b=[[1], [2]], totals=[[5], [5]]), "0 <= correct <= total"),
        (dict(correct_a=[[], []], correct_b=[[], []], totals=[[], []]), "no test slices"),
        (dict(correct_a="ab", correct_b=[[1], [2]], totals=[[5], [5]]), "sequence"),
    ],
)
def test_bad_inputs_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        paired_bootstrap(**kwargs, n_boot=100)


def test_rows_are_paired_by_seed_and_slice():
    def row(seed, correct):
        return {"seed": seed, "per_slice": {"slice_index": [1, 2], "correct": correct, "total": [10, 10]}}

    a, b = [row(0, [5, 6]), row(1, [7, 7])], [row(0, [4, 6]), row(1, [6, 6])]
    r = slice_counts_difference(a, b, n_boot=200)
    assert r["per_seed"] == pytest.approx([0.05, 0.10]) and r["difference"] == pytest.approx(0.075)
    with pytest.raises(ValueError, match="same seeds"):
        slice_counts_difference([row(0, [5, 6]), row(1, [7, 7])], [row(1, [6, 6]), row(0, [4, 6])])
    other = {"seed": 1, "per_slice": {"slice_index": [3, 4], "correct": [1, 1], "total": [10, 10]}}
    with pytest.raises(ValueError, match="other slices"):
        slice_counts_difference([row(0, [5, 6]), row(1, [7, 7])], [row(0, [4, 6]), other])
