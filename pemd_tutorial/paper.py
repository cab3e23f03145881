"""The paper's own experiment: patch-based registration with 25 classes and a concatenation network.

The authors' talk slides (MIDL 2020) describe the experiment behind the paper's numbers (no
registration 4 %, no adaptation 31.9 %, MCD-SWD 33.2 %, MCD with the projected EMD over 16 angles
plus SWD 44.1 % target label accuracy). This module rebuilds it as faithfully as the slides
allow; ``python -m pemd_tutorial paper`` runs it (see ``docs/paper.md``).

* **Data** (:mod:`data_utils.patches`): a fixed T1w patch and a moving patch displaced by one of
  the 25 labels ``{-2s, -s, 0, s, 2s}^2`` (balanced classes, so always predicting "no
  displacement" scores 1/25), from T1w (source) or a simulated target contrast: T2w (the default
  column), the milder intermediate-weighted spin echo or PD-weighted
  (:data:`~pemd_tutorial.config.PAPER_TARGET_CONTRASTS`). **Fresh training pairs are drawn for every
  step** (:class:`data_utils.patches.PatchSampler`); validation and test pairs are fixed sets of
  other slices.
* **Network** (:class:`pemd_tutorial.model.ConcatNet`): a shared four-block extractor, the two
  feature maps concatenated, two differently initialised three-block classifiers.
* **Training**: the engine of the main job (:func:`pemd_tutorial.training.train_source`,
  :func:`~pemd_tutorial.training.adapt`, :func:`~pemd_tutorial.training.train_oracle`), so this
  experiment has the same checkpoints, ``--resume``, progress bars and tested invariants. A
  patch pair is one control point of that engine.
* **Discrepancies** between the heads' 5x5 histograms
  (:func:`pemd_tutorial.discrepancies.scaled_discrepancy`): ``"l1"``, ``"swd"``, ``"pemd"``
  (projected EMD at 2 or 16 angles, in label steps) and ``"pemd+swd"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from data_utils.patches import PATCH_EVALUATION_SEEDS, PatchPairs, PatchSampler, make_patch_pairs
from pemd_tutorial.config import (
    PAPER_METHODS,
    PAPER_REFERENCE_NAMES,
    PAPER_STANDARD_LAMBDAS,
    PAPER_TARGET_CONTRASTS,
    PaperConfig,
)
from pemd_tutorial.evaluate import mean_std, pairs_accuracy
from pemd_tutorial.experiment import (
    Experiment,
    ExperimentData,
    Method,
    MethodResult,
    SeedRun,
    drive,
    mcd_row,
    run_identity,
    run_inverted,
    run_oracle,
    run_source,
)
from pemd_tutorial.mind import mind_patch_costs
from pemd_tutorial.model import ConcatNet

__all__ = [
    "PAPER_EXPERIMENT",
    "PAPER_METHODS",
    "PAPER_STANDARD_LAMBDAS",
    "PAPER_TARGET_CONTRASTS",
    "ConcatNet",
    "PaperConfig",
    "angles_between",
    "evaluation_set",
    "mind_patch_baseline",
    "patch_accuracy",
    "run_paper_experiment",
    "training_pairs",
]


def angles_between(n: int, low: float = 0.0, high: float = 90.0) -> tuple[float, ...]:
    """``n`` projection angles evenly spaced over ``[low, high]`` in degrees (both ends included)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"angles_between() 'n' must be an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"angles_between() 'n' must be >= 1, got {n!r}")
    if n == 1:
        return (float(low),)
    return tuple(float(low + (high - low) * k / (n - 1)) for k in range(n))


def evaluation_set(cfg: PaperConfig, split: str, contrast: str) -> PatchPairs:
    """The fixed validation or test patches of a contrast (the same for every seed and row; made
    once per size and kept, so that every seed and target column of a run shares them)."""
    n = cfg.n_val if split == "val" else cfg.n_test
    return _evaluation_set(split, contrast, n, cfg.patch, cfg.step, cfg.deform)


@lru_cache(maxsize=16)
def _evaluation_set(split: str, contrast: str, n: int, patch: int, step: int, deform: float) -> PatchPairs:
    key = (split, "t1" if contrast == "t1" else "target")
    return make_patch_pairs(split, contrast, n, seed=PATCH_EVALUATION_SEEDS[key], patch=patch, step=step,
                            deform=deform)


def training_pairs(cfg: PaperConfig, contrast: str, *, labelled: bool):
    """What a training phase draws from: a :class:`PatchSampler` of fresh pairs (``n_train=None``),
    or a fixed pool of ``cfg.n_train`` pairs of seed ``cfg.seed``, without labels unless ``labelled``."""
    kw = dict(patch=cfg.patch, step=cfg.step, deform=cfg.deform)
    if cfg.n_train is None:
        return PatchSampler("train", contrast, labelled=labelled, **kw)
    seed = 1000 * cfg.seed + (1 if contrast == "t1" else 2)
    pool = make_patch_pairs("train", contrast, cfg.n_train, seed=seed, **kw)
    return pool if labelled else pool.without_labels()


def patch_accuracy(net: ConcatNet, pairs: PatchPairs, batch_size: int = 250) -> float:
    """Share of pairs whose label is the arg-max of the mean of both heads:
    :func:`pemd_tutorial.evaluate.pairs_accuracy` with the patch experiment's batch size."""
    return pairs_accuracy(net, pairs, batch_size=batch_size)


def mind_patch_baseline(pairs: PatchPairs, margin: int | None = None) -> torch.Tensor:
    """The classical answer: MIND-SSC descriptors of both patches, the label with the least SSD.

    :func:`pemd_tutorial.mind.mind_patch_costs` of every pair (``margin`` default ``2 s``), arg-min
    over the 25 labels. Returns the predicted labels ``(N,)``.
    """
    return mind_patch_costs(pairs.fixed, pairs.moving, pairs.grid, margin).argmin(dim=1)


# ----------------------------------------------------------------------------------------------
# the experiment: a specification of pemd_tutorial.experiment.drive
# ----------------------------------------------------------------------------------------------


def _data(cfg: PaperConfig, seed: int, target: str, user_slices) -> ExperimentData:
    if user_slices is not None:
        raise ValueError("run_paper_experiment() runs on the embedded slices only")
    return ExperimentData(
        source_train=training_pairs(cfg, "t1", labelled=True),
        target_train=training_pairs(cfg, target, labelled=False),
        target_val=evaluation_set(cfg, "val", target),
        source_test=evaluation_set(cfg, "test", "t1"),
        target_test=evaluation_set(cfg, "test", target),
        description=f"embedded MNI152 patches: fixed T1w, moving {PAPER_TARGET_CONTRASTS[target]}",
        labelled_target_train=lambda: training_pairs(cfg, target, labelled=True),
        source_phase_val=evaluation_set(cfg, "val", "t1"),  # the source-only network logs T1w validation
    )


def _score(target_probs: torch.Tensor, source_probs: torch.Tensor | None, data: ExperimentData,
           cfg: PaperConfig) -> dict[str, float]:
    row = {"accuracy": pairs_accuracy(target_probs, data.target_test)}
    if source_probs is not None:
        row["source_accuracy"] = pairs_accuracy(source_probs, data.source_test)
    return row


def _run_mind(run: SeedRun) -> MethodResult:
    """The MIND patch baseline's labels as one-hot probabilities (deterministic: computed once)."""
    shared = run.cache["across_seeds"]
    if "mind" not in shared:
        labels = mind_patch_baseline(run.data.target_test)
        shared["mind"] = F.one_hot(labels, run.cfg.grid.n_labels).float()[:, :, None, None]
    return MethodResult(shared["mind"], None)


def _row(name: str, discrepancy: str | None, n_angles: int):
    if discrepancy is None:
        return run_oracle if name == "oracle" else run_source
    return mcd_row(discrepancy, angles=angles_between(n_angles) if n_angles else None,
                   lam=lambda run: run.cfg.lambda_for(name, run.target), phase=name)


def _check(cfg: PaperConfig, rows: tuple[str, ...]) -> None:
    for contrast in cfg.target_contrasts:  # a missing λ fails here, not after an hour of training
        for m in rows:
            if m in PAPER_METHODS and PAPER_METHODS[m][1] is not None:
                cfg.lambda_for(m, contrast)


#: The patch experiment as a specification of :func:`pemd_tutorial.experiment.drive`. Its rows are
#: :data:`~pemd_tutorial.config.PAPER_METHODS` (one entry there adds a row), plus the inverted
#: moving patches, which come with the source-only row.
PAPER_EXPERIMENT = Experiment(
    function="run_paper_experiment",
    config_class=PaperConfig,
    references={"identity": Method(PAPER_REFERENCE_NAMES["identity"], run_identity),
                "mind": Method(PAPER_REFERENCE_NAMES["mind"], _run_mind)},
    rows={"inverted": Method(PAPER_REFERENCE_NAMES["inverted"], run_inverted, implied_by="source"),
          **{m: Method(label, _row(m, d, n)) for m, (label, d, n) in PAPER_METHODS.items()}},
    targets=lambda cfg: tuple(cfg.target_contrasts),
    make_data=_data,
    new_network=ConcatNet,
    score=_score,
    target_only_fields=("target_contrasts", "lambdas", "adapt_steps", "oracle_steps", "device", "val_every",
                        "checkpoint_every"),
    check=_check,
    batch_size=250,
    per_target_checkpoints=True,
    row_lines=True,
)


def run_paper_experiment(
    cfg: PaperConfig,
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] | None = None,
    progress: bool | str = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Every row of the paper experiment for each target contrast and seed; returns a results dict.

    :func:`pemd_tutorial.experiment.drive` runs :data:`PAPER_EXPERIMENT` (the main job's driver);
    this function lays its scores out per target column.

    ``results["columns"][contrast]["per_seed"][method]`` lists target test accuracies (and the source
    test accuracy of each network under ``"source_accuracy"``); ``"summary"`` has means and
    sample standard deviations, ``"curves"`` the validation accuracy logged during training
    (source validation for the source-only network, target validation otherwise: for the log only,
    never used to choose anything here). ``"networks"`` holds the first seed's networks.

    Args:
        cfg: the configuration (its ``seed`` is replaced by each of ``seeds``).
        seeds: training seeds; the evaluation sets are the same for all.
        methods: rows of :data:`PAPER_METHODS` (default all); the source-only row brings the
            inverted-contrast row along.
        progress: progress bars and a line per row.
        checkpoint_dir: checkpoints of every phase under ``seed<S>/`` (and ``seed<S>/<contrast>/``).
        resume: continue every phase from its checkpoint.
    """
    done = drive(PAPER_EXPERIMENT, cfg, PAPER_EXPERIMENT.defaults() if methods is None else methods, seeds,
                 progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
    rows = done["methods"]
    trained = [m for m in rows if m in PAPER_METHODS]
    columns: dict[str, Any] = {}
    nets: dict[str, Any] = {}
    for contrast, col in done["targets"].items():
        scores = col["per_seed"]
        per_seed = {m: [r["accuracy"] for r in scores[m]] for m in rows}
        source_acc = {m: [r["source_accuracy"] for r in scores[m]] for m in trained}
        summary = {}
        for m, vals in per_seed.items():
            mean, std = mean_std(vals)
            summary[m] = {"accuracy": mean, "accuracy_std": std}
            if m in source_acc:
                summary[m]["source_accuracy"], summary[m]["source_accuracy_std"] = mean_std(source_acc[m])
                summary[m]["train_seconds"] = mean_std([r["train_time_s"] for r in scores[m]])[0]
        columns[contrast] = {
            "per_seed": per_seed,
            "source_accuracy": source_acc,
            "summary": summary,
            "curves": {m: {seed: [(r["step"], r["val_acc"]) for r in log if r.get("val_acc") is not None]
                           for seed, log in col["logs"].get(m, {}).items()} for m in trained},
        }
        nets.update({f"{contrast}/{m}": col["first"][m].model for m in trained})
    return {
        "title": "pemd-tutorial paper experiment (patch-based, 25 classes)",
        "config": cfg.to_dict(),
        "seeds": done["seeds"],
        "methods": rows,
        "method_names": PAPER_EXPERIMENT.names(),
        "weights": ConcatNet(cfg).weight_counts(),
        "chance": 1.0 / cfg.grid.n_labels,
        "columns": columns,
        "wall_time_s": done["wall_time_s"],
        "networks": nets,
    }
