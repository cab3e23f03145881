"""Training loops: supervised source training, maximum classifier discrepancy, the oracle.

Three phases train a :class:`pemd_tutorial.model.RegistrationNet` (G, F1, F2):

* :func:`train_source`: both heads minimise the cross-entropy of the source labels.
* :func:`adapt`: maximum classifier discrepancy (Saito et al., CVPR 2018; METHOD.md §3). Per
  iteration, with a source batch ``(xs, ys)`` and an unlabelled target batch ``xt``:

  - **A**: G, F1, F2 minimise ``CE(F1(G(xs)), ys) + CE(F2(G(xs)), ys)``;
  - **B**: G frozen (its features are computed without gradients, its optimiser does not step),
    F1, F2 minimise ``CE_source - lam * D(p1(xt), p2(xt))``;
  - **C**: F1, F2 frozen, G minimises ``D(p1(xt), p2(xt))``, ``num_k`` times.

  ``D`` is one of three discrepancies (:func:`discrepancy`) on the target softmax probabilities
  of all foreground control points of the batch, rows ``(M, L)``. The target foreground mask is
  a property of the fixed image, not a label; the target labels are never read.
* :func:`train_oracle`: like :func:`train_source`, on *labelled target* pairs (an upper bound).

Cross-entropies are means over the control points where ``mask & inside`` (foreground and
true displacement inside the label grid). G and the two heads have separate Adam optimisers
(learning rate ``cfg.lr``) in every phase; :func:`adapt` starts fresh optimisers.

Determinism and resumption: batches are drawn with ``torch.randint`` from ``torch.Generator``\\ s
seeded from ``cfg.seed`` and the phase name; SWD directions come from another seeded generator.
Their states, the model, both optimisers, the global RNG states, the step and the log are saved
atomically every ``cfg.checkpoint_every`` steps to ``checkpoint_dir/<phase>.pt``; ``resume=True``
continues from it and, on CPU, ends bit-identical to an uninterrupted run.

Every loop returns its log: one dict per step with ``"step"``, ``"phase"``, the losses, the
batch accuracy and ``"val_acc"`` (accuracy of the mean of F1 and F2 on ``val``, every
``cfg.val_every`` steps and at the last step; ``None`` otherwise).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from data_utils.grid import LabelGrid
from pemd_tutorial.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from pemd_tutorial.config import DISCREPANCY_NAMES, Config
from pemd_tutorial.emd import DISCREPANCIES
from pemd_tutorial.model import RegistrationNet

__all__ = [
    "adapt",
    "discrepancy",
    "label_accuracy",
    "make_optimizers",
    "mcd_step_a",
    "mcd_step_b",
    "mcd_step_c",
    "predict",
    "train_oracle",
    "train_source",
]

_SOURCE_KEYS = ("fixed", "moving", "labels", "mask", "inside")
_TARGET_KEYS = ("fixed", "moving", "mask")


# --------------------------------------------------------------------------------------------
# Small functions
# --------------------------------------------------------------------------------------------


def discrepancy(
    name: str,
    p: torch.Tensor,
    q: torch.Tensor,
    grid: LabelGrid,
    *,
    n_projections: int = 128,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""A discrepancy between two heads' probabilities, normalised to a comparable scale.

    For rows ``p, q`` of shape ``(M, L)`` (one label histogram per control point):

    * ``"l1"``: the total variation :math:`\frac{1}{M}\sum_m \frac12 \sum_l |p_{ml} - q_{ml}|`
      (= Saito's mean absolute difference times ``L / 2``), in ``[0, 1]``;
    * ``"swd"``: Lee et al.'s sliced Wasserstein discrepancy times ``L / 2`` (for one-hot rows
      at different labels the squared projected difference has expectation ``2 / L``, so this is
      about the share of disagreeing rows, like the total variation);
    * ``"pemd"``: the projected EMD (4 angles) in **label steps** (pixels / ``grid.step``): two
      peaks one label apart along an axis give ``(1 + 0 + 2 cos 45°) / 4 ≈ 0.60``, and the value
      grows linearly with the distance (L1 and SWD saturate).

    The scaling only makes one λ grid fit all three (METHOD.md §7); it changes no minimiser.

    Returns:
        A 0-dim tensor on ``p``'s device, differentiable.
    """
    if name not in DISCREPANCY_NAMES:
        raise ValueError(f"'discrepancy' must be one of {list(DISCREPANCY_NAMES)}, got {name!r}")
    if p.dim() != 2 or p.shape[1] != grid.n_labels or q.shape != p.shape:
        raise ValueError(
            f"discrepancy() 'p' and 'q' must both have shape (M, {grid.n_labels}), got "
            f"{tuple(p.shape)} and {tuple(q.shape)}"
        )
    # step=1.0: projected EMD in label steps; L1 and SWD scaled by L / 2 (see above)
    value = DISCREPANCIES[name](
        p, q, grid_shape=grid.shape, step=1.0, generator=generator, validate=False,
        n_projections=n_projections,
    )
    return value if name == "pemd" else value * (grid.n_labels / 2.0)


def _rows(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, L, Hc, Wc)`` probabilities at the ``True`` points of ``mask (B, Hc, Wc)`` -> ``(M, L)``."""
    return probs.permute(0, 2, 3, 1)[mask]


def _masked_ce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the valid control points; logits ``(B, L, Hc, Wc)``."""
    ce = F.cross_entropy(logits, labels, reduction="none")  # (B, Hc, Wc)
    return (ce * valid).sum() / valid.sum().clamp_min(1)


def label_accuracy(probs: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> float:
    """Share of valid control points whose argmax label is the true label.

    Args:
        probs: ``(B, L, Hc, Wc)`` probabilities or logits.
        labels: ``(B, Hc, Wc)`` int64.
        valid: ``(B, Hc, Wc)`` bool (e.g. ``mask & inside``).
    """
    hit = (probs.argmax(dim=1) == labels) & valid
    return float(hit.sum()) / max(int(valid.sum()), 1)


def _fetch(pairs, indices: Sequence[int], keys: Sequence[str], device) -> dict[str, torch.Tensor]:
    """Stacked tensors of ``keys`` for ``indices``, via ``pairs.batch`` or ``pairs[i]``."""
    indices = [int(i) for i in indices]
    if hasattr(pairs, "batch"):
        b = pairs.batch(indices=indices)
        out = {k: b[k] for k in keys}
    else:
        items = [pairs[i] for i in indices]
        out = {k: torch.stack([it[k] for it in items]) for k in keys}
    return {k: v.to(device) for k, v in out.items()}


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _phase_seed(seed: int, phase: str) -> int:
    """A stable per-phase seed (crc32 of the phase name), so phases draw independent batches."""
    return (int(seed) * 1_000_003 + zlib.crc32(phase.encode())) % (2**63)


def _check_common(model, cfg, steps, pairs_named: dict[str, Any], progress) -> int:
    if not isinstance(model, RegistrationNet):
        raise ValueError(f"'model' must be a RegistrationNet, got {type(model).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"'cfg' must be a Config, got {type(cfg).__name__}")
    if model.grid != cfg.grid or model.control_spacing != cfg.control_spacing:
        raise ValueError("'model' was built for another label grid or control spacing than 'cfg'")
    for name, pairs in pairs_named.items():
        if pairs is None or len(pairs) < 1:
            raise ValueError(f"'{name}' must be a non-empty pair dataset")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ValueError(f"'steps' must be an integer >= 0 or None, got {steps!r}")
    return steps


@torch.no_grad()
def predict(model: RegistrationNet, pairs, *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities of F1 and F2 for every pair, each ``(N, L, Hc, Wc)``, on the CPU.

    Args:
        model: the network (its device is used; its train/eval mode is restored afterwards).
        pairs: any pair dataset or evaluation view; only ``"fixed"`` and ``"moving"`` are read.
        batch_size: pairs per forward pass.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"predict() 'batch_size' must be an integer >= 1, got {batch_size!r}")
    n = len(pairs)
    if n < 1:
        raise ValueError("predict() 'pairs' is empty")
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        p1, p2 = [], []
        for start in range(0, n, batch_size):
            b = _fetch(pairs, range(start, min(n, start + batch_size)), ("fixed", "moving"), device)
            l1, l2 = model(b["fixed"], b["moving"])
            p1.append(torch.softmax(l1, dim=1).cpu())
            p2.append(torch.softmax(l2, dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(p1), torch.cat(p2)


class _Validator:
    """Accuracy of the mean of F1 and F2 on a labelled (evaluation-view) val split."""

    def __init__(self, val, batch_size: int):
        b = _fetch(val, range(len(val)), ("labels", "mask", "inside"), "cpu")
        self.val, self.batch_size = val, batch_size
        self.labels, self.valid = b["labels"], b["mask"] & b["inside"]

    def __call__(self, model: RegistrationNet) -> float:
        p1, p2 = predict(model, self.val, batch_size=self.batch_size)
        return label_accuracy(p1 + p2, self.labels, self.valid)


# --------------------------------------------------------------------------------------------
# The generic loop: steps, logs, validation, checkpoints, resumption
# --------------------------------------------------------------------------------------------


def _run_loop(
    *,
    phase: str,
    model: RegistrationNet,
    cfg: Config,
    steps: int,
    step_fn: Callable[[], dict[str, float]],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    meta: dict[str, Any],
    val,
    checkpoint_dir,
    resume: bool,
    progress: bool,
) -> list[dict]:
    path = Path(checkpoint_dir) / f"{phase}.pt" if checkpoint_dir is not None else None
    # what must match for a resume: everything but where/how long/how often (and the other lambdas)
    free = ("device", "checkpoint_every", "val_every", "source_steps", "adapt_steps", "oracle_steps",
            "lambdas")
    meta = {**meta, "config": {k: v for k, v in cfg.to_dict().items() if k not in free}}
    log: list[dict] = []
    start = 0
    if resume and path is not None and path.is_file():
        state = load_checkpoint(path)
        if state.get("meta") != meta:
            raise ValueError(
                f"resume=True: the checkpoint {str(path)!r} was written by another run "
                f"({state.get('meta')}) than this one ({meta})"
            )
        if state["step"] > steps:
            raise ValueError(f"resume=True: the checkpoint is at step {state['step']} > 'steps'={steps}")
        model.load_state_dict(state["model"])
        for k, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, gen in generators.items():
            gen.set_state(state["generators"][k])
        restore_rng_state(state["rng"])
        start, log = int(state["step"]), list(state["log"])

    def save(step: int) -> None:
        save_checkpoint(path, {
            "meta": meta, "step": step, "log": log, "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "generators": {k: g.get_state() for k, g in generators.items()},
            "rng": capture_rng_state(), "config": cfg.to_dict(),
        })

    validator = _Validator(val, cfg.batch_size * 4) if val is not None and cfg.val_every > 0 else None
    model.train()
    bar = tqdm(total=steps, initial=start, desc=phase, disable=not progress, leave=False)
    # tiny softmax probabilities and their gradients are denormal floats, which a CPU handles on a
    # slow path: flushing them to zero made an MCD iteration about 10 % faster on 2 cores
    flushed = torch.set_flush_denormal(True)
    try:
        for step in range(start, steps):
            row: dict[str, Any] = {"step": step + 1, "phase": phase}
            row.update(step_fn())
            last = step + 1 == steps
            due = validator is not None and ((step + 1) % cfg.val_every == 0 or last)
            row["val_acc"] = validator(model) if due else None
            log.append(row)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if isinstance(v, float)}, refresh=False)
            if path is not None and cfg.checkpoint_every > 0 and (
                (step + 1) % cfg.checkpoint_every == 0 or last
            ):
                save(step + 1)
    finally:
        bar.close()
        if flushed:
            torch.set_flush_denormal(False)
    return log


def make_optimizers(model: RegistrationNet, lr: float) -> dict[str, torch.optim.Optimizer]:
    """Separate Adam optimisers ``{"generator": G, "heads": F1 + F2}`` with learning rate ``lr``."""
    return {
        "generator": torch.optim.Adam(model.generator_parameters(), lr=lr),
        "heads": torch.optim.Adam(model.head_parameters(), lr=lr),
    }


def _sampler(pairs, cfg: Config, gen: torch.Generator):
    n = len(pairs)
    return lambda: torch.randint(n, (cfg.batch_size,), generator=gen).tolist()


def _supervised(phase: str, model, pairs, cfg, *, val, steps, checkpoint_dir, resume, progress, ce_key):
    missing = [k for k in _SOURCE_KEYS if k not in pairs[0]]
    if missing:
        raise ValueError(
            f"{'train_source' if phase == 'source' else 'train_oracle'}() needs labelled pairs; the dataset "
            f"lacks {missing} (for the oracle pass target_pairs.evaluation_view())"
        )
    device = _model_device(model)
    opts = make_optimizers(model, cfg.lr)
    gen = torch.Generator().manual_seed(_phase_seed(cfg.seed, phase))
    draw = _sampler(pairs, cfg, gen)

    def step_fn() -> dict[str, float]:
        ce, acc = mcd_step_a(model, opts, _fetch(pairs, draw(), _SOURCE_KEYS, device))
        return {ce_key: ce, "train_acc": acc}

    meta = {"phase": phase, "seed": cfg.seed}
    return _run_loop(phase=phase, model=model, cfg=cfg, steps=steps, step_fn=step_fn, optimizers=opts,
                     generators={"data": gen}, meta=meta, val=val, checkpoint_dir=checkpoint_dir,
                     resume=resume, progress=progress)


# --------------------------------------------------------------------------------------------
# The three MCD steps (module-level so tests and notebooks can run them one by one)
# --------------------------------------------------------------------------------------------


def _source_ce(l1, l2, bs) -> torch.Tensor:
    valid = bs["mask"] & bs["inside"]
    return _masked_ce(l1, bs["labels"], valid) + _masked_ce(l2, bs["labels"], valid)


def _target_d(model: RegistrationNet, cost_t: torch.Tensor, mask_t: torch.Tensor, d_fn) -> torch.Tensor:
    l1, l2 = model.classify(cost_t)
    return d_fn(_rows(l1.softmax(1), mask_t), _rows(l2.softmax(1), mask_t))


def mcd_step_a(
    model: RegistrationNet, opts: dict[str, torch.optim.Optimizer], bs: dict
) -> tuple[float, float]:
    """Step A: G, F1, F2 minimise the source cross-entropy of both heads.

    Args:
        model: the network.
        opts: ``{"generator": Adam over G, "heads": Adam over F1 and F2}``.
        bs: a source batch (``fixed``, ``moving`` ``(B, 1, H, W)``; ``labels``, ``mask``,
            ``inside`` ``(B, Hc, Wc)``) on the model's device.

    Returns:
        ``(mean CE per head, accuracy of p1 + p2 on the batch)``.
    """
    for o in opts.values():
        o.zero_grad(set_to_none=True)
    l1, l2 = model(bs["fixed"], bs["moving"])
    ce = _source_ce(l1, l2, bs)
    ce.backward()
    for o in opts.values():
        o.step()
    with torch.no_grad():
        acc = label_accuracy(l1.softmax(1) + l2.softmax(1), bs["labels"], bs["mask"] & bs["inside"])
    return float(ce.detach()) / 2.0, acc


def mcd_step_b(model: RegistrationNet, opts: dict[str, torch.optim.Optimizer], bs: dict, bt: dict,
               d_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], lam: float, *,
               target_cost: torch.Tensor | None = None) -> tuple[float, float]:
    """Step B: G frozen; F1, F2 minimise ``CE_source - lam * D(target)``.

    G's features are computed under ``torch.no_grad()`` (or ``target_cost`` is used detached) and
    only the heads' optimiser steps, so G's parameters stay bit-identical.

    Args:
        bt: a target batch (``fixed``, ``moving``, ``mask``); labels are never read.
        d_fn: ``D(p, q)`` on ``(M, L)`` probability rows (foreground control points).
        target_cost: optional cost volume of ``bt`` by the current G (see :func:`mcd_step_c`).

    Returns:
        ``(mean CE per head, D on the target batch)``.
    """
    opts["heads"].zero_grad(set_to_none=True)
    with torch.no_grad():
        cost_s = model.cost(bs["fixed"], bs["moving"])
        cost_t = model.cost(bt["fixed"], bt["moving"]) if target_cost is None else target_cost.detach()
    ce = _source_ce(*model.classify(cost_s), bs)
    d = _target_d(model, cost_t, bt["mask"], d_fn)
    (ce - lam * d).backward()
    opts["heads"].step()
    return float(ce.detach()) / 2.0, float(d.detach())


def mcd_step_c(model: RegistrationNet, opts: dict[str, torch.optim.Optimizer], bt: dict,
               d_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], num_k: int, *,
               target_cost: torch.Tensor | None = None) -> float:
    """Step C: F1, F2 frozen (``requires_grad`` off, no optimiser step); G minimises D on the
    target batch, ``num_k`` times. Returns D before the last update.

    ``target_cost``: the cost volume of ``bt`` computed *with* gradients by the current G (step B
    does not change G, so the adaptation loop computes it once for steps B and C); it replaces the
    first of the ``num_k`` forward passes of G, with the same result.
    """
    heads = model.head_parameters()
    for p in heads:
        p.requires_grad_(False)
    try:
        for k in range(num_k):
            opts["generator"].zero_grad(set_to_none=True)
            reuse = k == 0 and target_cost is not None
            cost = target_cost if reuse else model.cost(bt["fixed"], bt["moving"])
            d = _target_d(model, cost, bt["mask"], d_fn)
            d.backward()
            opts["generator"].step()
    finally:
        for p in heads:
            p.requires_grad_(True)
    return float(d.detach())


# --------------------------------------------------------------------------------------------
# Public loops
# --------------------------------------------------------------------------------------------


def train_source(
    model: RegistrationNet,
    source,
    cfg: Config,
    *,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
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
        progress: show a tqdm progress bar.

    Returns:
        The log: per step ``{"step", "phase": "source", "source_ce", "train_acc", "val_acc"}``.
    """
    steps = _check_common(model, cfg, steps, {"source": source}, progress)
    steps = cfg.source_steps if steps is None else steps
    return _supervised("source", model, source, cfg, val=val, steps=steps, checkpoint_dir=checkpoint_dir,
                       resume=resume, progress=progress, ce_key="source_ce")


def train_oracle(
    model: RegistrationNet,
    target_labelled,
    cfg: Config,
    *,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[dict]:
    """The oracle upper bound: supervised training on *labelled target* pairs.

    ``target_labelled`` is explicitly an evaluation view (``target_pairs.evaluation_view()``):
    the only training function that reads target labels. Otherwise as :func:`train_source`
    (checkpoint ``oracle.pt``, ``cfg.oracle_steps``); the log has ``"target_ce"``.
    """
    steps = _check_common(model, cfg, steps, {"target_labelled": target_labelled}, progress)
    steps = cfg.oracle_steps if steps is None else steps
    return _supervised("oracle", model, target_labelled, cfg, val=val, steps=steps,
                       checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, ce_key="target_ce")


def adapt(
    model: RegistrationNet,
    source,
    target,
    cfg: Config,
    *,
    discrepancy: str = "pemd",
    lam: float | None = None,
    val=None,
    steps: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Maximum classifier discrepancy (steps A, B, C; see the module docstring).

    Args:
        model: the network (usually a copy of a source-trained one), adapted in place.
        source: labelled source pairs.
        target: *unlabelled* target pairs; only ``fixed``, ``moving`` and ``mask`` are read.
        cfg: sizes and hyper-parameters (``num_k``, ``adapt_steps``, ``lambdas``, ...).
        discrepancy: ``"pemd"``, ``"swd"`` or ``"l1"`` (normalised as in :func:`discrepancy`).
        lam: weight of the discrepancy in step B (default ``cfg.lambdas[discrepancy]``).
        val: optional labelled target *validation* view, for the ``val_acc`` log column only.
        steps: MCD iterations (default ``cfg.adapt_steps``).
        checkpoint_dir: folder for ``adapt_<discrepancy>.pt`` checkpoints.
        resume: continue from that checkpoint if it exists.
        progress: show a tqdm progress bar.

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
    steps = _check_common(model, cfg, steps, {"source": source, "target": target}, progress)
    steps = cfg.adapt_steps if steps is None else steps
    lam = cfg.lam(discrepancy) if lam is None else lam
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
        raise ValueError(f"adapt() 'lam' must be a number >= 0, got {lam!r}")
    lam = float(lam)
    phase = f"adapt_{discrepancy}"
    device = _model_device(model)
    grid = cfg.grid
    opts = make_optimizers(model, cfg.lr)
    g_src = torch.Generator().manual_seed(_phase_seed(cfg.seed, phase + "/source"))
    g_tgt = torch.Generator().manual_seed(_phase_seed(cfg.seed, phase + "/target"))
    g_swd = torch.Generator(device=device).manual_seed(_phase_seed(cfg.seed, phase + "/swd"))
    draw_s, draw_t = _sampler(source, cfg, g_src), _sampler(target, cfg, g_tgt)

    def d_fn(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return discrepancy_fn(discrepancy, p, q, grid, n_projections=cfg.n_projections, generator=g_swd)

    def step_fn() -> dict[str, float]:
        bs = _fetch(source, draw_s(), _SOURCE_KEYS, device)
        bt = _fetch(target, draw_t(), _TARGET_KEYS, device)
        ce, acc = mcd_step_a(model, opts, bs)
        cost_t = model.cost(bt["fixed"], bt["moving"])  # one forward pass of G for steps B and C
        _, d_b = mcd_step_b(model, opts, bs, bt, d_fn, lam, target_cost=cost_t)
        d_c = mcd_step_c(model, opts, bt, d_fn, cfg.num_k, target_cost=cost_t)
        return {"source_ce": ce, "train_acc": acc, "disc_b": d_b, "discrepancy": d_c, "lam": lam}

    meta = {"phase": phase, "seed": cfg.seed, "lam": lam, "num_k": cfg.num_k}
    return _run_loop(phase=phase, model=model, cfg=cfg, steps=steps, step_fn=step_fn, optimizers=opts,
                     generators={"source": g_src, "target": g_tgt, "swd": g_swd}, meta=meta, val=val,
                     checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)


discrepancy_fn = discrepancy  # the name ``discrepancy`` is shadowed by adapt()'s argument
