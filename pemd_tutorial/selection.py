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

:func:`select_lambda` runs the whole protocol for a user's own target: it adapts a copy of a
source-only network with every λ of a grid, scores each at one or more numbers of MCD iterations,
warns about every λ that collapses the source accuracy, and returns the chosen λ, the chosen number
of iterations and that network.
"""

from __future__ import annotations

import copy
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from data_utils import warp
from data_utils.patches import PatchPairs
from pemd_tutorial.evaluate import dense_field, dense_mask, pairs_accuracy, predict
from pemd_tutorial.mind import mind_patch_costs
from pemd_tutorial.similarity import mind_ssd, normalised_mutual_information
from pemd_tutorial.training import adapt, control_point_rows

__all__ = ["HIGHER_IS_BETTER", "SCORES", "LambdaChoice", "choose_lambda", "collapsed", "label_free_scores",
           "output_scores", "registration_scores", "select_lambda", "source_accuracy"]

#: The label-free scores and whether a higher value is better.
HIGHER_IS_BETTER: dict[str, bool] = {"mind_ssd": False, "nmi": True, "im": True, "snd": True}
#: What :func:`choose_lambda` accepts as ``score``.
SCORES = (*HIGHER_IS_BETTER, "rank_sum")
_SND_POINTS = 2000
_SND_TEMPERATURE = 0.05


def output_scores(probs: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The generic validators ``"im"`` and ``"snd"`` of label probabilities (module docstring).

    Args:
        probs: ``(N, L, Hc, Wc)`` probabilities (e.g. the mean of both heads).
        mask: ``(N, Hc, Wc)`` bool, the control points that count.
    """
    if probs.dim() != 4 or mask.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"output_scores() 'probs' must be (N, L, Hc, Wc) and 'mask' (N, Hc, Wc), got "
                         f"{tuple(probs.shape)} and {tuple(mask.shape)}")
    rows = control_point_rows(probs, mask.bool()).double()
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
    if probs.dim() != 4 or probs.shape[0] != fixed.shape[0] or probs.shape[1] != grid.n_labels:
        raise ValueError(f"registration_scores() 'probs' must be (N, {grid.n_labels}, Hc, Wc) for "
                         f"{fixed.shape[0]} pairs, got {tuple(probs.shape)}")
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
    fg = dense_mask(batch, s)
    a, b = fixed[:, 0], warped[:, 0]
    return {"mind_ssd": mind_ssd(a, b, fg),
            "nmi": normalised_mutual_information(a.clamp(0, 1), b.clamp(0, 1), fg)}


def label_free_scores(model: torch.nn.Module, pairs, control_spacing: int | None = None) -> dict[str, float]:
    """Every score of :data:`HIGHER_IS_BETTER` of a network on unlabelled pairs (mean of both heads)."""
    probs = predict(model, pairs, combine="mean")
    mask = pairs.batch()["mask"]
    return {**registration_scores(probs, pairs, control_spacing), **output_scores(probs, mask)}


def collapsed(reference: float, accuracy: float, max_drop: float = 0.10) -> bool:
    """The collapse rule: does ``accuracy`` lie more than ``max_drop`` below ``reference``?

    Accuracies are fractions of a finite test set, so a drop of exactly ``max_drop`` happens; it is
    compared with a tolerance of 1e-9, so that 0.93 - 0.83 (0.10000000000000009 in floating point)
    is a drop of 10 points, not more.

    >>> collapsed(0.93, 0.83), collapsed(0.93, 0.828)
    (False, True)
    """
    return reference - accuracy > max_drop + 1e-9


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
                if not collapsed(source_reference, float(v["source_val_acc"]), max_source_drop)}
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


def source_accuracy(model: torch.nn.Module, source_val) -> float:
    """Label accuracy (mean of both heads) on labelled *source* validation pairs: the collapse check."""
    return pairs_accuracy(model, source_val)


@dataclass
class LambdaChoice:
    """What :func:`select_lambda` chose.

    Attributes:
        lam: the chosen weight.
        steps: the chosen number of MCD iterations (one of ``checkpoints``).
        score: the score that chose them.
        model: the adapted network at ``(lam, steps)``.
        table: ``λ -> {steps -> {"source_val_acc", "mind_ssd", "nmi", "im", "snd", "eligible"}}``.
        source_reference: the source-only network's source validation accuracy.
        log: the training log of the chosen adaptation (its first ``steps`` iterations).
    """

    lam: float
    steps: int
    score: str
    model: torch.nn.Module
    table: dict[float, dict[int, dict[str, Any]]] = field(default_factory=dict)
    source_reference: float = float("nan")
    log: list[dict] = field(default_factory=list)


def select_lambda(
    model: torch.nn.Module,
    source,
    target,
    target_val,
    source_val,
    cfg,
    *,
    discrepancy: str = "pemd",
    lambdas: Sequence[float] = (0.3, 0.5, 0.7, 1.0),
    checkpoints: Sequence[int] | None = None,
    score: str = "mind_ssd",
    max_source_drop: float = 0.10,
    progress: bool | str = False,
) -> LambdaChoice:
    """Choose λ and the number of MCD iterations for a new target without a target label.

    Every λ adapts its own copy of ``model`` (:func:`pemd_tutorial.training.adapt`) up to the
    largest of ``checkpoints``, in chunks resumed from a checkpoint (identical to one uninterrupted
    run), and is scored after each chunk on the *unlabelled* ``target_val`` pairs
    (:func:`label_free_scores`) and on the labelled ``source_val`` pairs (source accuracy). Among
    all eligible ``(λ, iterations)`` (the collapse rule of :func:`choose_lambda` applied to each)
    the one with the best score wins; ties go to the smaller λ, then to fewer iterations.

    Args:
        model: the source-only network (left unchanged).
        source: labelled source pairs (or a sampler); target: unlabelled target pairs (or a sampler).
        target_val: unlabelled target validation pairs (labels, if any, are not read).
        source_val: labelled source validation pairs (an evaluation view).
        cfg: the configuration (``adapt_steps`` is the default checkpoint).
        discrepancy: the discrepancy to adapt with.
        lambdas: the grid of weights.
        checkpoints: numbers of MCD iterations at which to score (default ``(cfg.adapt_steps,)``).
        score: a score of :data:`SCORES` (default MIND-SSD, see docs/selection.md).
        max_source_drop: the collapse rule (a fraction).
        progress: progress bars of the adaptations.

    Warns:
        UserWarning: for every (λ, iterations) whose source accuracy collapses.

    Raises:
        ValueError: every λ collapses (see :func:`choose_lambda`), or an empty grid.
    """

    lambdas = sorted({float(v) for v in lambdas})
    if not lambdas or any(not v >= 0 for v in lambdas):
        raise ValueError(f"select_lambda() 'lambdas' must be a non-empty grid of numbers >= 0, got {lambdas}")
    checkpoints = sorted({int(k) for k in (checkpoints or (cfg.adapt_steps,))})
    if checkpoints[0] < 1:
        raise ValueError(f"select_lambda() 'checkpoints' must be iteration counts >= 1, got {checkpoints}")
    reference = source_accuracy(model, source_val)
    table: dict[float, dict[int, dict[str, Any]]] = {}
    states: dict[tuple[float, int], dict] = {}
    logs: dict[float, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="select_lambda_") as work:
        for lam in lambdas:
            net = copy.deepcopy(model)
            table[lam] = {}
            for steps in checkpoints:
                logs[lam] = adapt(net, source, target, cfg, discrepancy=discrepancy, lam=lam, steps=steps,
                                  phase=f"select_{lam:g}", checkpoint_dir=work, resume=True,
                                  progress=progress)
                row: dict[str, Any] = {"source_val_acc": source_accuracy(net, source_val),
                                       **label_free_scores(net, target_val)}
                row["eligible"] = not collapsed(reference, row["source_val_acc"], max_source_drop)
                if not row["eligible"]:
                    warnings.warn(
                        f"select_lambda(): {discrepancy} with λ {lam:g} after {steps} iterations lowers the "
                        f"source validation accuracy from {reference:.3f} to {row['source_val_acc']:.3f}: "
                        f"collapsed, not eligible", UserWarning, stacklevel=2)
                table[lam][steps] = row
                states[(lam, steps)] = copy.deepcopy(net.state_dict())
    last = checkpoints[-1]
    candidates = [(v, k) for v in lambdas for k in checkpoints if table[v][k]["eligible"]]
    if score == "rank_sum" or not candidates:  # the λ rule on the last checkpoint (raises if all collapse)
        lam = choose_lambda({v: table[v][last] for v in lambdas}, score, reference,
                            max_source_drop=max_source_drop, name=discrepancy)
        steps = last
    else:
        sign = -1.0 if HIGHER_IS_BETTER[score] else 1.0
        lam, steps = min(candidates, key=lambda c: (sign * float(table[c[0]][c[1]][score]), c))
    chosen = copy.deepcopy(model)
    chosen.load_state_dict(states[(lam, steps)])
    chosen.eval()
    return LambdaChoice(lam, steps, score, chosen, table, reference, logs[lam][:steps])
