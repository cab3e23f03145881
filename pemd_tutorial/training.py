"""The three training phases: supervised source training, maximum classifier discrepancy, the oracle.

They train both networks of the package through the same seams (G, F1, F2): the dense
:class:`pemd_tutorial.model.RegistrationNet` of the main job and the paper experiment's patch
network :class:`pemd_tutorial.model.ConcatNet` (one control point per pair):

* :func:`train_source`: both heads minimise the cross-entropy of the source labels.
* :func:`adapt`: maximum classifier discrepancy (Saito et al., CVPR 2018; docs/method.md §4). Per
  iteration, with a source batch ``(xs, ys)`` and an unlabelled target batch ``xt``:

  - **A** (:func:`mcd_step_a`): G, F1, F2 minimise ``CE(F1(G(xs)), ys) + CE(F2(G(xs)), ys)``;
  - **B** (:func:`mcd_step_b`): G frozen (its features carry no gradient, its optimiser does not
    step), F1, F2 minimise ``CE_source - lam * D(p1(xt), p2(xt))``;
  - **C** (:func:`mcd_step_c`): F1, F2 frozen, G minimises ``D(p1(xt), p2(xt))``, ``num_k`` times.

  ``D`` is one of the three discrepancies (:func:`pemd_tutorial.discrepancies.scaled_discrepancy`)
  on the target softmax probabilities of all foreground control points of the batch, rows
  ``(M, L)``. The target foreground mask is a property of the fixed image, not a label; the target
  labels are never read.
* :func:`train_oracle`: like :func:`train_source`, on *labelled target* pairs (a reference that
  reads the target labels; not a bound: other methods can match or exceed it).

Cross-entropies are means over the control points where ``mask & inside`` (foreground and
true displacement inside the label grid). G and the two heads have separate Adam optimisers
(learning rate ``cfg.lr``) in every phase; :func:`adapt` starts fresh optimisers.

Training pairs are either a fixed dataset (batches of random indices) or a sampler that draws
**fresh pairs for every step** (:func:`pemd_tutorial.loop.batch_source`); either way from
``torch.Generator``\\ s seeded from ``cfg.seed`` and the phase name, saved in checkpoints. SWD
directions come from another seeded generator. The loop, its logs,
checkpoints and resumption are :func:`pemd_tutorial.loop.run_phase`.

Every phase returns its log: one dict per step with ``"step"``, ``"phase"``, the losses, the
batch accuracy and ``"val_acc"`` (accuracy of the mean of F1 and F2 on ``val``, every
``cfg.val_every`` steps and at the last step; ``None`` otherwise).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from data_utils import warp
from pemd_tutorial.config import Config
from pemd_tutorial.discrepancies import DISCREPANCY_NAMES, SCALED_DISCREPANCIES, scaled_discrepancy
from pemd_tutorial.evaluate import dense_field, dense_mask, heads_mean, label_accuracy
from pemd_tutorial.loop import (
    AnyConfig,
    Network,
    batch_source,
    make_optimizers,
    model_device,
    pair_keys,
    phase_seed,
    run_phase,
)
from pemd_tutorial.mind import mind_descriptors
from pemd_tutorial.model import TwoHeadedNet

__all__ = ["adapt", "control_point_rows", "masked_ce", "mcd_step_a", "mcd_step_b", "mcd_step_c",
           "mind_ssd_loss", "train_oracle", "train_similarity", "train_source"]

SOURCE_KEYS = ("fixed", "moving", "labels", "mask", "inside")
TARGET_KEYS = ("fixed", "moving", "mask")

#: ``D(p, q)`` on ``(M, L)`` probability rows -> a 0-dim tensor.
DiscrepancyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Optimizers = dict[str, torch.optim.Optimizer]


def control_point_rows(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, L, Hc, Wc)`` probabilities at the ``True`` points of ``mask (B, Hc, Wc)`` -> ``(M, L)``."""
    return probs.permute(0, 2, 3, 1)[mask]


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the valid control points; logits ``(B, L, Hc, Wc)``."""
    ce = F.cross_entropy(logits, labels, reduction="none")  # (B, Hc, Wc)
    return (ce * valid).sum() / valid.sum().clamp_min(1)


def _check_phase(fn: str, model, cfg, steps, datasets: dict[str, Any]) -> None:
    if not isinstance(model, TwoHeadedNet):
        raise TypeError(
            f"{fn}() 'model' must be a two-headed network (e.g. a RegistrationNet or a ConcatNet), got "
            f"{type(model).__name__}"
        )
    wanted = model.config_class
    if not isinstance(cfg, wanted):
        raise TypeError(f"{fn}() 'cfg' must be a {wanted.__name__} for a {type(model).__name__}, "
                        f"got {type(cfg).__name__}")
    if model.grid != cfg.grid or model.control_spacing != cfg.control_spacing:
        raise ValueError(f"{fn}() 'model' was built for another label grid or control spacing than 'cfg'")
    for name, pairs in datasets.items():
        if pairs is None:
            raise ValueError(f"{fn}() '{name}' must be a pair dataset or sampler, got None")
        if not hasattr(pairs, "draw_batch") and len(pairs) < 1:
            raise ValueError(f"{fn}() '{name}' must be a non-empty pair dataset")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
        raise TypeError(f"{fn}() 'steps' must be an int or None, got {type(steps).__name__}")
    if steps is not None and steps < 0:
        raise ValueError(f"{fn}() 'steps' must be >= 0, got {steps}")


def _supervised(
    fn: str, phase: str, model, pairs, cfg, *, val, steps, checkpoint_dir, resume, progress, ce_key
):
    missing = [k for k in SOURCE_KEYS if k not in pair_keys(pairs)]
    if missing:
        raise ValueError(
            f"{fn}() needs labelled pairs; the dataset lacks {missing} (for the oracle pass "
            "target_pairs.evaluation_view() or a labelled sampler)"
        )
    device = model_device(model)
    optimizers = make_optimizers(model, cfg.lr)
    gen = torch.Generator().manual_seed(phase_seed(cfg.seed, phase))
    draw = batch_source(pairs, cfg.batch_size, gen, SOURCE_KEYS, device)

    def step_fn() -> dict[str, float]:
        ce, acc = mcd_step_a(model, optimizers, draw())
        return {ce_key: ce, "train_acc": acc}

    meta = {"phase": phase, "seed": cfg.seed}
    return run_phase(
        phase=phase,
        model=model,
        cfg=cfg,
        steps=steps,
        step_fn=step_fn,
        optimizers=optimizers,
        generators={"data": gen},
        meta=meta,
        val=val,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )


# --------------------------------------------------------------------------------------------
# The three MCD steps (module-level so tests and notebooks can run them one by one)
# --------------------------------------------------------------------------------------------


def _source_ce(logits1: torch.Tensor, logits2: torch.Tensor, source_batch: dict) -> torch.Tensor:
    valid = source_batch["mask"] & source_batch["inside"]
    labels = source_batch["labels"]
    return masked_ce(logits1, labels, valid) + masked_ce(logits2, labels, valid)


def _target_discrepancy(
    model: Network,
    target_cost: torch.Tensor,
    target_mask: torch.Tensor,
    discrepancy_fn: DiscrepancyFn,
) -> torch.Tensor:
    logits1, logits2 = model.classify(target_cost)
    return discrepancy_fn(control_point_rows(logits1.softmax(1), target_mask),
                          control_point_rows(logits2.softmax(1), target_mask))


def _norm(grads) -> float:
    """L2 norm of a sequence of gradients (``None`` entries count as zero)."""
    total = sum(float(g.detach().double().square().sum()) for g in grads if g is not None)
    return math.sqrt(total)


def mcd_step_a(model: Network, optimizers: Optimizers, source_batch: dict) -> tuple[float, float]:
    """Step A: G, F1, F2 minimise the source cross-entropy of both heads.

    Args:
        model: the network.
        optimizers: ``{"generator": Adam over G, "heads": Adam over F1 and F2}``
            (:func:`pemd_tutorial.loop.make_optimizers`).
        source_batch: ``fixed``, ``moving`` ``(B, 1, H, W)``; ``labels``, ``mask``, ``inside``
            ``(B, Hc, Wc)``, on the model's device.

    Returns:
        ``(mean CE per head, accuracy of p1 + p2 on the batch)``.
    """
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    logits1, logits2 = model(source_batch["fixed"], source_batch["moving"])
    ce = _source_ce(logits1, logits2, source_batch)
    ce.backward()
    for opt in optimizers.values():
        opt.step()
    with torch.no_grad():
        valid = source_batch["mask"] & source_batch["inside"]
        acc = label_accuracy(heads_mean(logits1.softmax(1), logits2.softmax(1)),
                             source_batch["labels"], valid)
    return float(ce.detach()) / 2.0, acc


def mcd_step_b(
    model: Network,
    optimizers: Optimizers,
    source_batch: dict,
    target_batch: dict,
    discrepancy_fn: DiscrepancyFn,
    lam: float,
    *,
    target_cost: torch.Tensor | None = None,
    gradient_norms: dict | None = None,
) -> tuple[float, float]:
    """Step B: G frozen; F1, F2 minimise ``CE_source - lam * D(target)``.

    G's features are computed under ``torch.no_grad()`` (or ``target_cost`` is used detached) and
    only the heads' optimiser steps, so G's parameters stay bit-identical.

    Args:
        target_batch: ``fixed``, ``moving``, ``mask``; labels are never read.
        discrepancy_fn: ``D(p, q)`` on ``(M, L)`` probability rows (foreground control points).
        lam: the weight of the discrepancy.
        target_cost: optional cost volume of ``target_batch`` by the current G (see :func:`mcd_step_c`).
        gradient_norms: if a dict, ``"heads_disc"`` is set to the L2 norm of the gradient that
            ``lam * D`` alone sends into F1 and F2 (one extra backward pass; for diagnostics).

    Returns:
        ``(mean CE per head, D on the target batch)``.
    """
    optimizers["heads"].zero_grad(set_to_none=True)
    with torch.no_grad():
        source_cost = model.cost(source_batch["fixed"], source_batch["moving"])
        if target_cost is None:
            target_cost = model.cost(target_batch["fixed"], target_batch["moving"])
        target_cost = target_cost.detach()
    ce = _source_ce(*model.classify(source_cost), source_batch)
    d = _target_discrepancy(model, target_cost, target_batch["mask"], discrepancy_fn)
    if gradient_norms is not None:
        heads = [p for p in model.head_parameters() if p.requires_grad]
        grads = torch.autograd.grad(lam * d, heads, retain_graph=True, allow_unused=True)
        gradient_norms["heads_disc"] = _norm(grads)
    (ce - lam * d).backward()
    optimizers["heads"].step()
    return float(ce.detach()) / 2.0, float(d.detach())


def mcd_step_c(
    model: Network,
    optimizers: Optimizers,
    target_batch: dict,
    discrepancy_fn: DiscrepancyFn,
    num_k: int,
    *,
    target_cost: torch.Tensor | None = None,
    gradient_norms: dict | None = None,
) -> float:
    """Step C: F1, F2 frozen (``requires_grad`` off, no optimiser step); G minimises D on the
    target batch, ``num_k`` times. Returns D before the last update.

    ``target_cost``: the cost volume of ``target_batch`` computed *with* gradients by the current G
    (step B does not change G, so :func:`adapt` computes it once for steps B and C); it replaces the
    first of the ``num_k`` forward passes of G, with the same result.

    ``gradient_norms``: if a dict, ``"generator_disc"`` is set to the L2 norm of the gradient of D
    with respect to G's parameters in the first of the ``num_k`` updates (for diagnostics).
    """
    heads = model.head_parameters()
    for p in heads:
        p.requires_grad_(False)
    try:
        for k in range(num_k):
            optimizers["generator"].zero_grad(set_to_none=True)
            reuse = k == 0 and target_cost is not None
            cost = target_cost if reuse else model.cost(target_batch["fixed"], target_batch["moving"])
            d = _target_discrepancy(model, cost, target_batch["mask"], discrepancy_fn)
            d.backward()
            if gradient_norms is not None and k == 0:
                gradient_norms["generator_disc"] = _norm(p.grad for p in model.generator_parameters())
            optimizers["generator"].step()
    finally:
        for p in heads:
            p.requires_grad_(True)
    return float(d.detach())


# --------------------------------------------------------------------------------------------
# The phases
# --------------------------------------------------------------------------------------------


def train_source(
    model: Network,
    source,
    cfg: AnyConfig,
    *,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | str = True,
    phase: str = "source",
) -> list[dict]:
    """Supervised training of G, F1 and F2 with the source cross-entropy (both heads).

    Args:
        model: the network, trained in place on its own device.
        source: labelled source pairs (``fixed``, ``moving``, ``labels``, ``mask``, ``inside``).
        cfg: sizes and hyper-parameters (``lr``, ``batch_size``, ``seed``, ``source_steps``, ...).
        val: an optional labelled evaluation view for the ``val_acc`` log column.
        steps: number of steps (default ``cfg.source_steps``).
        checkpoint_dir: folder for ``source.pt`` checkpoints (``None``: none written).
        resume: continue from ``checkpoint_dir/source.pt`` if it exists.
        progress: show a tqdm progress bar (``"text"``: one plain line per phase instead).
        phase: the phase's name: its checkpoint file, log label and the seed of its batches
            (another name for another source training of one seed, e.g. ``"source_randomized"``
            with a random-contrast sampler).

    Returns:
        The log: per step ``{"step", "phase", "source_ce", "train_acc", "val_acc"}``.
    """
    _check_phase("train_source", model, cfg, steps, {"source": source})
    if not isinstance(phase, str) or not phase or "/" in phase:
        raise ValueError(f"train_source() 'phase' must be a non-empty name without '/', got {phase!r}")
    steps = cfg.source_steps if steps is None else steps
    return _supervised(
        "train_source",
        phase,
        model,
        source,
        cfg,
        val=val,
        steps=steps,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        ce_key="source_ce",
    )


def train_oracle(
    model: Network,
    target_labelled,
    cfg: AnyConfig,
    *,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | str = True,
) -> list[dict]:
    """The oracle upper bound: supervised training on *labelled target* pairs.

    ``target_labelled`` is explicitly an evaluation view (``target_pairs.evaluation_view()``):
    the only training function that reads target labels. Otherwise as :func:`train_source`
    (checkpoint ``oracle.pt``, ``cfg.oracle_steps``); the log has ``"target_ce"``.
    """
    _check_phase("train_oracle", model, cfg, steps, {"target_labelled": target_labelled})
    steps = cfg.oracle_steps if steps is None else steps
    return _supervised(
        "train_oracle",
        "oracle",
        model,
        target_labelled,
        cfg,
        val=val,
        steps=steps,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        ce_key="target_ce",
    )


def adapt(
    model: Network,
    source,
    target,
    cfg: AnyConfig,
    *,
    discrepancy: str = "pemd",
    lam: float | None = None,
    angles: Sequence[float] | None = None,
    phase: str | None = None,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | str = True,
    log_gradients: bool = False,
) -> list[dict]:
    """Maximum classifier discrepancy (steps A, B, C; see the module docstring).

    Args:
        model: the network (usually a copy of a source-trained one), adapted in place.
        source: labelled source pairs.
        target: *unlabelled* target pairs; only ``fixed``, ``moving`` and ``mask`` are read.
        cfg: sizes and hyper-parameters (``num_k``, ``adapt_steps``, ``lambdas``, ...).
        discrepancy: ``"pemd"``, ``"swd"``, ``"l1"``, ``"pemd+swd"`` or the control ``"pemd_shuffled"`` (as in
            :func:`pemd_tutorial.discrepancies.scaled_discrepancy`).
        lam: weight of the discrepancy in step B (default ``cfg.lam(discrepancy)``).
        angles: the projected EMD's lines in degrees (default its 4 angles).
        phase: the phase's name: its checkpoint file and log label (default ``adapt_<discrepancy>``;
            give two runs of one discrepancy with other angles different names).
        val: optional labelled target *validation* view, for the ``val_acc`` log column only.
        steps: MCD iterations (default ``cfg.adapt_steps``).
        checkpoint_dir: folder for ``adapt_<discrepancy>.pt`` checkpoints.
        resume: continue from that checkpoint if it exists.
        progress: show a tqdm progress bar (``"text"``: one plain line per phase instead).
        log_gradients: also log, per iteration, ``"grad_heads_disc"`` (the L2 norm of the gradient
            that ``lam * D`` sends into F1 and F2 in step B) and ``"grad_generator_disc"`` (that of
            D into G in step C); costs one extra backward pass of the heads.

    Returns:
        The log: per iteration ``{"step", "phase": "adapt_<d>", "source_ce", "train_acc",
        "disc_b", "discrepancy", "lam", "val_acc"}`` where ``source_ce``/``train_acc`` are from
        step A, ``disc_b`` is D on the target batch in step B and ``discrepancy`` D in the last
        step C update (before it).
    """
    if discrepancy not in DISCREPANCY_NAMES:
        raise ValueError(
            f"adapt() 'discrepancy' must be one of {list(DISCREPANCY_NAMES)}, got {discrepancy!r}"
        )
    _check_phase("adapt", model, cfg, steps, {"source": source, "target": target})
    steps = cfg.adapt_steps if steps is None else steps
    lam = cfg.lam(discrepancy) if lam is None else lam
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(f"adapt() 'lam' must be a number, got {type(lam).__name__}")
    if not lam >= 0:
        raise ValueError(f"adapt() 'lam' must be >= 0, got {lam!r}")
    lam = float(lam)
    phase = f"adapt_{discrepancy}" if phase is None else phase
    if not isinstance(phase, str) or not phase or "/" in phase:
        raise ValueError(f"adapt() 'phase' must be a non-empty name without '/', got {phase!r}")
    angles = None if angles is None else tuple(float(a) for a in angles)
    if angles is not None and not SCALED_DISCREPANCIES[discrepancy].takes_angles:
        raise ValueError(f"adapt() 'angles' applies to the projected EMD only, not to {discrepancy!r}")
    if angles is not None and not (angles and all(0.0 <= a < 180.0 for a in angles)):
        raise ValueError(
            f"adapt() 'angles' must be a non-empty sequence of degrees in [0, 180), got {angles}"
        )
    device = model_device(model)
    grid = cfg.grid
    optimizers = make_optimizers(model, cfg.lr)
    g_src = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/source"))
    g_tgt = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/target"))
    g_swd = torch.Generator(device=device).manual_seed(phase_seed(cfg.seed, phase + "/swd"))
    draw_source = batch_source(source, cfg.batch_size, g_src, SOURCE_KEYS, device)
    draw_target = batch_source(target, cfg.batch_size, g_tgt, TARGET_KEYS, device)

    def discrepancy_fn(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return scaled_discrepancy(discrepancy, p, q, grid, n_projections=cfg.n_projections, generator=g_swd,
                                  angles=angles)

    def step_fn() -> dict[str, float]:
        source_batch, target_batch = draw_source(), draw_target()
        ce, acc = mcd_step_a(model, optimizers, source_batch)
        target_cost = model.cost(target_batch["fixed"], target_batch["moving"])  # one pass of G for B and C
        norms: dict | None = {} if log_gradients else None
        _, d_b = mcd_step_b(model, optimizers, source_batch, target_batch, discrepancy_fn, lam,
                            target_cost=target_cost, gradient_norms=norms)
        d_c = mcd_step_c(model, optimizers, target_batch, discrepancy_fn, cfg.num_k, target_cost=target_cost,
                         gradient_norms=norms)
        row = {"source_ce": ce, "train_acc": acc, "disc_b": d_b, "discrepancy": d_c, "lam": lam}
        if norms is not None:
            row.update(grad_heads_disc=norms["heads_disc"], grad_generator_disc=norms["generator_disc"])
        return row

    meta = {"phase": phase, "seed": cfg.seed, "lam": lam, "num_k": cfg.num_k, "discrepancy": discrepancy,
            "angles": list(angles) if angles is not None else None}
    return run_phase(
        phase=phase,
        model=model,
        cfg=cfg,
        steps=steps,
        step_fn=step_fn,
        optimizers=optimizers,
        generators={"source": g_src, "target": g_tgt, "swd": g_swd},
        meta=meta,
        val=val,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )


def mind_ssd_loss(model: Network, batch: dict, control_spacing: int) -> torch.Tensor:
    """MIND-SSD between the fixed image and the moving image warped by the network's prediction,
    differentiable in the network's parameters: the label-free loss of unsupervised registration.

    The prediction is the expected displacement of the mean of both heads' softmax at the control
    points, interpolated to every pixel (:func:`pemd_tutorial.evaluate.dense_field`); the loss is
    the mean squared difference of the MIND-SSC descriptors (:func:`pemd_tutorial.mind.mind_descriptors`)
    over the fixed image's foreground, the quantity that
    :func:`pemd_tutorial.similarity.mind_ssd` reports.

    Args:
        model: a dense network (:class:`pemd_tutorial.model.RegistrationNet`).
        batch: ``fixed``, ``moving`` ``(B, 1, H, W)`` and ``mask`` ``(B, Hc, Wc)``; no labels.
        control_spacing: pixels between control points.
    """
    fixed, moving = batch["fixed"], batch["moving"]
    logits1, logits2 = model(fixed, moving)
    probs = heads_mean(logits1.softmax(1), logits2.softmax(1))
    h, w = fixed.shape[-2:]
    field = dense_field(model.grid.expected_displacement(probs), h, w, control_spacing)
    warped = warp(moving, field)
    with torch.no_grad():
        target = mind_descriptors(fixed)
    d = (mind_descriptors(warped) - target).square().mean(dim=1)
    fg = dense_mask(batch, control_spacing)
    return d[fg].mean() if fg.any() else d.sum() * 0.0


def train_similarity(
    model: Network,
    source,
    target,
    cfg: Config,
    *,
    weight: float = 1.0,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | str = True,
) -> list[dict]:
    """Fine-tune on *unlabelled* target pairs with a similarity loss, the way unsupervised
    registration networks are trained (the label-free alternative to MCD).

    Per step, one source batch and one target batch: G, F1 and F2 minimise
    ``CE_source + weight * MIND-SSD(target)`` (:func:`mind_ssd_loss`). The source cross-entropy is
    the one MCD keeps in its step A, so both use the same data: labelled source pairs and
    unlabelled target pairs. The target labels are never read.

    Args:
        model: a source-trained dense network, fine-tuned in place.
        source: labelled source pairs; target: unlabelled target pairs (``fixed``, ``moving``, ``mask``).
        cfg: ``lr``, ``batch_size``, ``seed``; ``steps`` defaults to ``cfg.adapt_steps`` (the MCD
            iterations, so both get the same number of updates of G).
        weight: the similarity's weight against the source cross-entropy (``> 0``).
        val, checkpoint_dir, resume, progress: as :func:`adapt` (checkpoint ``mind_loss.pt``).

    Returns:
        The log: per step ``{"step", "phase": "mind_loss", "source_ce", "train_acc", "mind_ssd", "val_acc"}``.
    """
    _check_phase("train_similarity", model, cfg, steps, {"source": source, "target": target})
    if not model.dense:
        raise TypeError(f"train_similarity() needs a dense network such as a RegistrationNet (it warps whole "
                        f"images), got a {type(model).__name__}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise ValueError(f"train_similarity() 'weight' must be a number > 0, got {weight!r}")
    steps = cfg.adapt_steps if steps is None else steps
    phase = "mind_loss"
    device = model_device(model)
    optimizers = make_optimizers(model, cfg.lr)
    g_src = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/source"))
    g_tgt = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/target"))
    draw_source = batch_source(source, cfg.batch_size, g_src, SOURCE_KEYS, device)
    draw_target = batch_source(target, cfg.batch_size, g_tgt, TARGET_KEYS, device)

    def step_fn() -> dict[str, float]:
        source_batch, target_batch = draw_source(), draw_target()
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        logits1, logits2 = model(source_batch["fixed"], source_batch["moving"])
        ce = _source_ce(logits1, logits2, source_batch)
        sim = mind_ssd_loss(model, target_batch, cfg.control_spacing)
        (ce + weight * sim).backward()
        for opt in optimizers.values():
            opt.step()
        with torch.no_grad():
            valid = source_batch["mask"] & source_batch["inside"]
            acc = label_accuracy(heads_mean(logits1.softmax(1), logits2.softmax(1)),
                                 source_batch["labels"], valid)
        return {"source_ce": float(ce.detach()) / 2.0, "train_acc": acc, "mind_ssd": float(sim.detach())}

    meta = {"phase": phase, "seed": cfg.seed, "weight": float(weight)}
    return run_phase(phase=phase, model=model, cfg=cfg, steps=steps, step_fn=step_fn, optimizers=optimizers,
                     generators={"source": g_src, "target": g_tgt}, meta=meta, val=val,
                     checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
