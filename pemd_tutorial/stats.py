"""Paired differences between two methods with a 95 % interval: a bootstrap over seeds and test slices.

Two methods scored on the same test pairs differ by chance in two ways: the training seed (another
initialisation and other batches give another network) and the test set (a few slices of one
brain). :func:`paired_bootstrap` resamples both, in two stages: the seeds with replacement, then,
within each drawn seed, its test slices with replacement; each draw's statistic is the difference of
the two methods' accuracies pooled over the drawn slices (correct control points over all scored
control points, the way the tables pool them), averaged over the drawn seeds. The interval is the
percentile interval of those draws. With the table's rows paired slice by slice, what two methods
share (the slice is easy or hard) cancels, and the interval is that of the difference itself.

A difference whose interval contains 0 is "within noise": the data cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["paired_bootstrap", "slice_counts_difference"]


def _as_table(name: str, values) -> list[np.ndarray]:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        rows = list(values.astype(float))
    elif isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        rows = [np.asarray(v, dtype=float).reshape(-1) for v in values]
    else:
        raise TypeError(f"paired_bootstrap() '{name}' must be a sequence (one entry per seed) of per-slice "
                        f"values, got {type(values).__name__}")
    return rows


def paired_bootstrap(
    correct_a,
    correct_b,
    totals,
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The paired difference ``accuracy(A) - accuracy(B)`` with a bootstrap interval over seeds and slices.

    Args:
        correct_a, correct_b: per seed, per test slice, the number of correctly labelled control
            points of method A and of method B: sequences of ``n_seeds`` arrays of ``n_slices_s``
            values (the slices of one seed may differ from another's, e.g. another test fold).
        totals: per seed, per slice, the number of scored control points (the same for A and B:
            they are scored on the same pairs).
        n_boot: bootstrap draws (``>= 100``).
        level: the interval's coverage, in ``(0, 1)``.
        seed: seed of the resampling (the same inputs and seed give the same interval).

    Returns:
        ``{"difference", "low", "high", "level", "n_seeds", "n_slices", "within_noise", "per_seed"}``:
        the pooled difference over all seeds and slices (mean over seeds of each seed's pooled
        difference), the interval, whether it contains 0, and each seed's difference.

    Raises:
        ValueError: fewer than 2 seeds (the seed-to-seed variation cannot be estimated), a seed
            without slices, shapes that differ, negative counts or a slice with no scored point.

    Example:
        >>> r = paired_bootstrap([[5, 6], [7, 5]], [[5, 6], [7, 5]], [[10, 10], [10, 10]], n_boot=200)
        >>> r["difference"], r["low"], r["high"], r["within_noise"]
        (0.0, 0.0, 0.0, True)
    """
    a, b = _as_table("correct_a", correct_a), _as_table("correct_b", correct_b)
    n = _as_table("totals", totals)
    if len(a) < 2:
        raise ValueError(f"paired_bootstrap() needs at least 2 seeds to estimate the seed-to-seed variation, "
                         f"got {len(a)}")
    if not (len(a) == len(b) == len(n)):
        raise ValueError(f"paired_bootstrap() 'correct_a', 'correct_b' and 'totals' must have one entry per "
                         f"seed each, got {len(a)}, {len(b)} and {len(n)}")
    for s, (x, y, t) in enumerate(zip(a, b, n, strict=True)):
        if len(t) == 0:
            raise ValueError(f"paired_bootstrap() seed entry {s} has no test slices")
        if not (x.shape == y.shape == t.shape):
            raise ValueError(f"paired_bootstrap() seed entry {s}: per-slice arrays of different lengths "
                             f"{x.shape}, {y.shape}, {t.shape}")
        if (t <= 0).any() or (x < 0).any() or (y < 0).any() or (x > t).any() or (y > t).any():
            raise ValueError(f"paired_bootstrap() seed entry {s}: counts must satisfy 0 <= correct <= total "
                             "and every slice must have a scored point")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"paired_bootstrap() 'n_boot' must be an integer >= 100, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"paired_bootstrap() 'level' must be in (0, 1), got {level!r}")

    per_seed = [float((x.sum() - y.sum()) / t.sum()) for x, y, t in zip(a, b, n, strict=True)]
    rng = np.random.default_rng(seed)
    n_seeds = len(a)
    draws = np.empty(n_boot)
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    for k in range(n_boot):
        total = 0.0
        for s in seed_draws[k]:
            idx = rng.integers(0, len(n[s]), size=len(n[s]))
            total += diffs[s][idx].sum() / n[s][idx].sum()
        draws[k] = total / n_seeds
    tail = (1.0 - level) / 2.0
    low, high = (float(v) for v in np.quantile(draws, [tail, 1.0 - tail]))
    return {
        "difference": float(np.mean(per_seed)),
        "low": low,
        "high": high,
        "level": level,
        "n_seeds": n_seeds,
        "n_slices": int(sum(len(t) for t in n)),
        "within_noise": bool(low <= 0.0 <= high),
        "per_seed": per_seed,
    }


def slice_counts_difference(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]],
                            **kwargs) -> dict[str, Any]:
    """:func:`paired_bootstrap` of two methods' result rows (one per seed, each with the
    ``"per_slice"`` counts that :func:`pemd_tutorial.evaluate.per_slice_counts` writes), paired by seed
    and slice; rows of seeds that only one method has are an error."""
    seeds_a = [r.get("seed") for r in rows_a]
    seeds_b = [r.get("seed") for r in rows_b]
    if seeds_a != seeds_b:
        raise ValueError(f"slice_counts_difference() the two methods' rows must have the same seeds in "
                         f"the same order, got {seeds_a} and {seeds_b}")
    ca, cb, tot = [], [], []
    for ra, rb in zip(rows_a, rows_b, strict=True):
        if "per_slice" not in ra or "per_slice" not in rb:
            raise ValueError("slice_counts_difference() needs rows with 'per_slice' counts")
        pa, pb = ra["per_slice"], rb["per_slice"]
        if pa["slice_index"] != pb["slice_index"] or pa["total"] != pb["total"]:
            raise ValueError(f"slice_counts_difference() seed {ra.get('seed')}: the two methods were "
                             "scored on other slices or points")
        ca.append(pa["correct"])
        cb.append(pb["correct"])
        tot.append(pa["total"])
    return paired_bootstrap(ca, cb, tot, **kwargs)
