"""Label-free model selection: choose the step-B weight λ without a single target label.

A user who adapts the network to a new contrast has no displacement labels of that contrast, but
has what every registration method without labels has: how alike the fixed image and the moving
image look once the moving image is moved by the prediction. This module scores an adapted
network on **unlabelled** target validation pairs and picks λ from a grid with that score.

Scores (:func:`label_free_scores`; none reads a target label):

* ``"mind_ssd"`` (lower is better): MIND-SSD (:func:`pemd_tutorial.similarity.mind_ssd`) between
  the fixed image and the moving image warped by the prediction's expected displacement, over the
  fixed image's foreground (dense pairs); for patch pairs, the MIND-SSD between the fixed patch
  and the moving patch shifted by the predicted label (:func:`pemd_tutorial.mind.mind_patch_costs`).
* ``"nmi"`` (higher is better): normalised mutual information of the same two images, all
  foreground pixels of all pairs in one joint histogram.
* ``"im"`` (higher is better): information maximisation, ``H(mean p) - mean H(p)`` over the
  foreground control points: confident and diverse predictions. A generic validator of the
  domain-adaptation literature, computed on the heads' outputs alone.
* ``"snd"`` (higher is better): soft neighbourhood density (Saito et al., ICCV 2021): the mean
  entropy of the softmax (temperature 0.05) of each prediction's cosine similarities to the
  others (at most 2,000 foreground control points, drawn with a fixed seed). Generic too.

:func:`choose_lambda` applies the protocol: a λ is **eligible** when adapting with it lowers the
*source* validation accuracy (source labels are allowed) by at most ``max_source_drop`` below the
source-only network's (the collapse rule); among the eligible λ the best score wins; ``"rank_sum"``
adds the ranks of MIND-SSD and NMI. A grid where every λ collapses raises an error that names the
discrepancy: there is nothing sensible to pick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from data_utils import warp
from data_utils.patches import PatchPairs
from pemd_tutorial.evaluate import dense_field, predict
from pemd_tutorial.mind import mind_patch_costs
from pemd_tutorial.similarity import mind_ssd, normalised_mutual_information

__all__ = ["HIGHER_IS_BETTER", "SCORES", "choose_lambda", "label_free_scores", "output_scores",
           "registration_scores"]

#: The label-free scores and whether a higher value is better.
HIGHER_IS_BETTER: dict[str, bool] = {"mind_ssd": False, "nmi": True, "im": True, "snd": True}
#: What :func:`choose_lambda` accepts as ``score``.
SCORES = (*HIGHER_IS_BETTER, "rank_sum")
_SND_POINTS = 2000
_SND_TEMPERATURE = 0.05


def _rows(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N, L, Hc, Wc)`` probabilities -> ``(M, L)`` rows of the foreground control points."""
    return probs.permute(0, 2, 3, 1)[mask.bool()]


def output_scores(probs: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The generic validators ``"im"`` and ``"snd"`` of label probabilities (module docstring).

    Args:
        probs: ``(N, L, Hc, Wc)`` probabilities (e.g. the mean of both heads).
        mask: ``(N, Hc, Wc)`` bool, the control points that count.
    """
    rows = _rows(probs, mask).double()
    if rows.shape[0] < 2:
        raise ValueError("output_scores() needs at least 2 foreground control points")
    eps = 1e-12
    mean = rows.mean(dim=0)
    im = float(-(mean * (mean + eps).log()).sum() + (rows * (rows + eps).log()).sum(dim=1).mean())
    gen = torch.Generator().manual_seed(0)
    if rows.shape[0] > _SND_POINTS:
        rows = rows[torch.randperm(rows.shape[0], generator=gen)[:_SND_POINTS]]
    x = torch.nn.functional.normalize(rows, dim=1)
    sim = x @ x.T
    sim.fill_diagonal_(-math.inf)
    q = torch.softmax(sim / _SND_TEMPERATURE, dim=1)
    snd = float(-(q * (q + eps).log()).sum(dim=1).mean())
    return {"im": im, "snd": snd}


def registration_scores(probs: torch.Tensor, pairs, control_spacing: int | None = None) -> dict[str, float]:
    """``"mind_ssd"`` and ``"nmi"`` of the pairs aligned by the prediction (module docstring).

    Args:
        probs: ``(N, L, Hc, Wc)`` label probabilities for ``pairs`` in order.
        pairs: dense pairs (``batch()`` with ``"fixed"``, ``"moving"``, ``"mask"``; labels are not
            read) or :class:`data_utils.patches.PatchPairs`.
        control_spacing: the dense pairs' control spacing (default ``pairs.control_spacing``);
            ignored for patch pairs.
    """
    batch = pairs.batch()
    fixed, moving = batch["fixed"].float(), batch["moving"].float()
    grid = pairs.grid
    if probs.shape[0] != fixed.shape[0]:
        raise ValueError(f"registration_scores() 'probs' has {probs.shape[0]} rows for "
                         f"{fixed.shape[0]} pairs")
    if isinstance(pairs, PatchPairs):
        label = probs.reshape(probs.shape[0], -1).argmax(dim=1)
        costs = mind_patch_costs(fixed, moving, grid)
        m = int(round(grid.max_displacement))
        p = fixed.shape[-1]
        a = fixed[:, 0, m : p - m, m : p - m]
        shifts = grid.displacements().round().long()[label].tolist()
        b = torch.stack([moving[i, 0, m + dy : p - m + dy, m + dx : p - m + dx]
                         for i, (dx, dy) in enumerate(shifts)])
        return {"mind_ssd": float(costs.gather(1, label[:, None]).mean()),
                "nmi": normalised_mutual_information(a, b, torch.ones_like(a, dtype=torch.bool))}
    s = int(control_spacing if control_spacing is not None else pairs.control_spacing)
    h, w = fixed.shape[-2:]
    field = dense_field(grid.expected_displacement(probs.float()), h, w, s)
    warped = warp(moving, field)
    fg = batch["mask"].bool().repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
    a, b = fixed[:, 0], warped[:, 0]
    return {"mind_ssd": mind_ssd(a, b, fg),
            "nmi": normalised_mutual_information(a.clamp(0, 1), b.clamp(0, 1), fg)}


def label_free_scores(model: torch.nn.Module, pairs, control_spacing: int | None = None) -> dict[str, float]:
    """Every score of :data:`HIGHER_IS_BETTER` of a network on unlabelled pairs (mean of both heads)."""
    p1, p2 = predict(model, pairs)
    probs = 0.5 * (p1 + p2)
    mask = pairs.batch()["mask"]
    return {**registration_scores(probs, pairs, control_spacing), **output_scores(probs, mask)}


def choose_lambda(
    table: Mapping[float, Mapping[str, Any]],
    score: str,
    source_reference: float,
    *,
    max_source_drop: float = 0.10,
    name: str = "",
) -> float:
    """The eligible λ with the best label-free ``score`` (module docstring).

    Args:
        table: ``λ -> {"source_val_acc": ..., "mind_ssd": ..., "nmi": ..., ...}`` (means over seeds).
        score: one of :data:`SCORES`.
        source_reference: the source-only network's source validation accuracy (same seeds).
        max_source_drop: the collapse rule, a fraction (0.10 = 10 points).
        name: the discrepancy, for the error message.

    Raises:
        ValueError: unknown ``score``, an empty table, or no eligible λ (every λ collapses).

    Example:
        >>> t = {0.1: {"source_val_acc": 0.60, "mind_ssd": 0.15},
        ...      1.0: {"source_val_acc": 0.40, "mind_ssd": 0.10}}
        >>> choose_lambda(t, "mind_ssd", 0.61)  # 1.0 is better but collapses the source accuracy
        0.1
    """
    if score not in SCORES:
        raise ValueError(f"choose_lambda() 'score' must be one of {list(SCORES)}, got {score!r}")
    if not table:
        raise ValueError(f"choose_lambda() 'table' of {name or 'the discrepancy'} is empty")
    eligible = {float(k): v for k, v in table.items()
                if source_reference - float(v["source_val_acc"]) <= max_source_drop}
    if not eligible:
        raise ValueError(
            f"choose_lambda(): every λ of {name or 'the discrepancy'} ({sorted(float(k) for k in table)}) "
            f"lowers the source validation accuracy by more than {max_source_drop:.0%} "
            f"(source-only {source_reference:.3f}): the grid collapses; try smaller values"
        )
    if score == "rank_sum":
        ranks = {lam: 0.0 for lam in eligible}
        for key in ("mind_ssd", "nmi"):
            order = sorted(eligible, key=lambda lam, key=key: (-eligible[lam][key] if HIGHER_IS_BETTER[key]
                                                               else eligible[lam][key], lam))
            for r, lam in enumerate(order):
                ranks[lam] += r
        return min(sorted(ranks), key=lambda lam: ranks[lam])  # ties: the smaller λ
    sign = -1.0 if HIGHER_IS_BETTER[score] else 1.0
    return min(sorted(eligible), key=lambda lam: sign * float(eligible[lam][score]))
