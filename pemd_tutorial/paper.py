"""The paper's own experiment: patch-based registration with 25 classes and a concatenation network.

The authors' talk slides (MIDL 2020) describe the experiment behind the paper's numbers (no
registration 4 %, no adaptation 31.9 %, MCD-SWD 33.2 %, MCD with the projected EMD over 16 angles
plus SWD 44.1 % target label accuracy). This module rebuilds it as faithfully as the slides
allow; ``python -m pemd_tutorial paper`` runs it (see ``docs/paper.md``).

* **Data** (:mod:`data_utils.patches`): a fixed T1w patch and a moving patch displaced by one of
  the 25 labels ``{-2s, -s, 0, s, 2s}^2`` (balanced classes, so always predicting "no
  displacement" scores 1/25), from T1w (source) or a simulated target contrast: T2w (the default
  column), the milder intermediate-weighted spin echo or PD-weighted
  (:data:`~pemd_tutorial.config.TARGET_CONTRASTS`). **Fresh training pairs are drawn for every
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

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from data_utils.intensity import invert_foreground
from data_utils.patches import PATCH_EVALUATION_SEEDS, PatchPairs, PatchSampler, make_patch_pairs
from pemd_tutorial.config import (
    PAPER_METHODS,
    PAPER_REFERENCE_NAMES,
    PAPER_STANDARD_LAMBDAS,
    TARGET_CONTRASTS,
    PaperConfig,
)
from pemd_tutorial.evaluate import label_accuracy, mean_std, predict
from pemd_tutorial.mind import mind_patch_costs
from pemd_tutorial.model import ConcatNet
from pemd_tutorial.training import adapt, train_oracle, train_source

__all__ = [
    "PAPER_METHODS",
    "PAPER_STANDARD_LAMBDAS",
    "TARGET_CONTRASTS",
    "ConcatNet",
    "PaperConfig",
    "angles_between",
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
    """The fixed validation or test patches of a contrast (the same for every seed and row)."""
    key = (split, "t1" if contrast == "t1" else "target")
    n = cfg.n_val if split == "val" else cfg.n_test
    return make_patch_pairs(split, contrast, n, seed=PATCH_EVALUATION_SEEDS[key], patch=cfg.patch,
                            step=cfg.step, deform=cfg.deform)


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
    """Share of pairs whose label is the argmax of the mean of both heads (the package's prediction)."""
    p1, p2 = predict(net, pairs, batch_size=batch_size)
    b = pairs.batch()
    return label_accuracy(p1 + p2, b["labels"], b["mask"] & b["inside"])


def mind_patch_baseline(pairs: PatchPairs, margin: int | None = None) -> torch.Tensor:
    """The classical answer: MIND-SSC descriptors of both patches, the label with the least SSD.

    :func:`pemd_tutorial.mind.mind_patch_costs` of every pair (``margin`` default ``2 s``), arg-min
    over the 25 labels. Returns the predicted labels ``(N,)``.
    """
    return mind_patch_costs(pairs.fixed, pairs.moving, pairs.grid, margin).argmin(dim=1)


# ----------------------------------------------------------------------------------------------
# the experiment
# ----------------------------------------------------------------------------------------------


def run_paper_experiment(
    cfg: PaperConfig,
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] | None = None,
    progress: bool | str = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Every row of the paper experiment for each target contrast and seed; returns a results dict.

    ``results["columns"][contrast]["per_seed"][method]`` lists target test accuracies (and the source
    test accuracy of each network under ``"source_accuracy"``); ``"summary"`` has means and
    sample standard deviations, ``"curves"`` the validation accuracy logged during training
    (source validation for the source-only network, target validation otherwise: for the log only,
    never used to choose anything here). ``"networks"`` holds the first seed's networks.

    Args:
        cfg: the configuration (its ``seed`` is replaced by each of ``seeds``).
        seeds: training seeds; the evaluation sets are the same for all.
        methods: rows of :data:`PAPER_METHODS` (default all).
        progress: progress bars and a line per row.
        checkpoint_dir: checkpoints of every phase under ``seed<S>/`` (and ``seed<S>/<contrast>/``).
        resume: continue every phase from its checkpoint.
    """
    if not isinstance(cfg, PaperConfig):
        raise TypeError(f"run_paper_experiment() 'cfg' must be a PaperConfig, got {type(cfg).__name__}")
    methods = tuple(PAPER_METHODS) if methods is None else tuple(methods)
    if not methods:
        raise ValueError("run_paper_experiment() 'methods' must not be empty")
    for m in methods:
        if m not in PAPER_METHODS:
            raise ValueError(
                f"run_paper_experiment() 'methods' entries must be in {list(PAPER_METHODS)}, got {m!r}"
            )
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise ValueError(f"run_paper_experiment() 'seeds' must be distinct integers >= 0, got {seeds}")
    for contrast in cfg.target_contrasts:  # a missing λ fails here, not after an hour of training
        for m in methods:
            if PAPER_METHODS[m][1] is not None:
                cfg.lambda_for(m, contrast)
    if resume and checkpoint_dir is None:
        raise ValueError("run_paper_experiment() 'resume' needs a 'checkpoint_dir'")
    t_start = time.perf_counter()
    device = torch.device(cfg.device)
    columns: dict[str, Any] = {}
    nets: dict[str, Any] = {}
    source_val = evaluation_set(cfg, "val", "t1")
    source_test = evaluation_set(cfg, "test", "t1")

    samplers: dict[tuple, Any] = {}

    def pairs_for(scfg: PaperConfig, contrast: str, labelled: bool):
        # one sampler (or pool) per seed, contrast and labelling, shared by every row that trains on it
        key = (scfg.seed, contrast, labelled)
        if key not in samplers:
            samplers[key] = training_pairs(scfg, contrast, labelled=labelled)
        return samplers[key]

    def ckpt(seed: int, *parts: str):
        return None if checkpoint_dir is None else Path(checkpoint_dir, f"seed{seed}", *parts)

    # the source-only network of a seed depends on the source (T1w) pairs only: trained once and
    # shared by every target column and every adaptation row
    bases: dict[int, tuple[ConcatNet, list, float]] = {}

    def base_for(seed: int) -> tuple[ConcatNet, list, float]:
        if seed not in bases:
            scfg = cfg.replace(seed=seed)
            net = ConcatNet(scfg).to(device)
            t0 = time.perf_counter()
            log = train_source(net, pairs_for(scfg, "t1", True), scfg, val=source_val,
                               checkpoint_dir=ckpt(seed), resume=resume, progress=progress)
            bases[seed] = (net, log, time.perf_counter() - t0)
        return bases[seed]

    extra = ("inverted",) if "source" in methods else ()  # the inverted row needs the source network
    for contrast in cfg.target_contrasts:
        per_seed: dict[str, list[float]] = {m: [] for m in ("identity", "mind", *extra, *methods)}
        source_acc: dict[str, list[float]] = {m: [] for m in methods}
        curves: dict[str, dict[str, list]] = {}
        times: dict[str, list[float]] = {m: [] for m in methods}
        target_test = evaluation_set(cfg, "test", contrast)
        target_val = evaluation_set(cfg, "val", contrast)
        mind_acc = float((mind_patch_baseline(target_test) == target_test.labels).float().mean())
        identity = float((target_test.labels == cfg.grid.index(0, 0)).float().mean())
        for seed in seeds:
            scfg = cfg.replace(seed=seed)
            per_seed["identity"].append(identity)
            per_seed["mind"].append(mind_acc)
            if extra:  # the trivial trick: the source-only network on the inverted moving patches
                per_seed["inverted"].append(patch_accuracy(base_for(seed)[0],
                                                           target_test.with_moving(invert_foreground)))
            for m in methods:
                label, disc, n_angles = PAPER_METHODS[m]
                t0 = time.perf_counter()
                if m == "oracle":
                    net = ConcatNet(scfg).to(device)
                    log = train_oracle(net, pairs_for(scfg, contrast, True), scfg,
                                       val=target_val, checkpoint_dir=ckpt(seed, contrast), resume=resume,
                                       progress=progress)
                    seconds = time.perf_counter() - t0
                else:
                    base, log, seconds = base_for(seed)
                    net = copy.deepcopy(base)
                    if disc is not None:
                        t0 = time.perf_counter()
                        log = adapt(net, pairs_for(scfg, "t1", True), pairs_for(scfg, contrast, False), scfg,
                                    discrepancy=disc, lam=cfg.lambda_for(m, contrast),
                                    angles=angles_between(n_angles) if n_angles else None, phase=m,
                                    val=target_val, checkpoint_dir=ckpt(seed, contrast), resume=resume,
                                    progress=progress)
                        seconds = time.perf_counter() - t0
                acc = patch_accuracy(net, target_test)
                per_seed[m].append(acc)
                source_acc[m].append(patch_accuracy(net, source_test))
                times[m].append(seconds)
                curves.setdefault(m, {})[str(seed)] = [(r["step"], r["val_acc"]) for r in log
                                                       if r.get("val_acc") is not None]
                if seed == seeds[0]:
                    nets[f"{contrast}/{m}"] = net
                if progress:
                    print(
                        f"[paper {contrast} seed {seed}] {label:24s} target {100 * acc:5.1f} %  "
                        f"source {100 * source_acc[m][-1]:5.1f} %  ({seconds:.0f} s)",
                        flush=True,
                    )
        summary = {}
        for m, vals in per_seed.items():
            mean, std = mean_std(vals)
            row = {"accuracy": mean, "accuracy_std": std}
            if m in source_acc:
                row["source_accuracy"], row["source_accuracy_std"] = mean_std(source_acc[m])
                row["train_seconds"] = sum(times[m]) / len(times[m])
            summary[m] = row
        columns[contrast] = {
            "per_seed": per_seed,
            "source_accuracy": source_acc,
            "summary": summary,
            "curves": curves,
        }
    return {
        "title": "pemd-tutorial paper experiment (patch-based, 25 classes)",
        "config": cfg.to_dict(),
        "seeds": seeds,
        "methods": ["identity", "mind", *extra, *methods],
        "method_names": {**PAPER_REFERENCE_NAMES, **{m: PAPER_METHODS[m][0] for m in methods}},
        "weights": ConcatNet(cfg).weight_counts(),
        "chance": 1.0 / cfg.grid.n_labels,
        "columns": columns,
        "wall_time_s": time.perf_counter() - t_start,
        "networks": nets,
    }
