"""The main job: every method on the same data, several seeds, one results dict (and files).

:func:`run_experiment` is what ``python -m pemd_tutorial`` and notebook 3 call. Per seed ``s``:

1. **Data.** Training pairs are drawn with seeds derived from ``s`` (source: labelled T1w->T1w;
   target: *unlabelled* T1w->T2w; see :func:`data_utils.make_pairs`). The validation and test pairs
   are the fixed evaluation sets of :func:`data_utils.evaluation_pairs` (their seeds do not depend
   on ``s``): **every method and every seed is scored on the identical target test pairs**. The
   target validation view is passed to the training loops for their ``val_acc`` log column only.
2. **source** (source only): a :class:`~pemd_tutorial.model.RegistrationNet` initialised with
   seed ``s`` is trained on the source pairs (:func:`~pemd_tutorial.training.train_source`).
3. **mcd_l1, mcd_swd, mcd_pemd**: each starts from a deep copy of that same source-trained network
   (the same start for all three discrepancies) and runs maximum classifier discrepancy
   (:func:`~pemd_tutorial.training.adapt`) with the step-B weight ``cfg.lambdas[d]``.
4. **oracle**: a network with the same initialisation (seed ``s``), trained from scratch on the
   *labelled* target training pairs for ``cfg.oracle_steps`` steps: the upper bound.
5. **mind**: the training-free MIND baseline (:mod:`pemd_tutorial.mind`); deterministic, so its
   per-seed values are identical (std 0).
6. **identity**: no registration (all mass on the zero displacement); always reported as a
   reference row.

Every method is scored on the target test pairs by :func:`pemd_tutorial.evaluate.evaluate_probs`
(networks: mean of F1's and F2's softmax). ``source_accuracy`` is the label accuracy on the source
test pairs: a collapse check for adaptation (it drops first when the step-B weight is too large).

Users' own images (``fixed=``/``moving=`` NIfTI paths): see :func:`run_experiment`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data_utils import (
    EVALUATION_SEEDS,
    PairSampler,
    RandomIntensityMap,
    TissueSynthesis,
    evaluation_pairs,
    invert_foreground,
    load_nifti_pair,
    make_pairs,
    split_slices,
    tissue_order,
)
from pemd_tutorial.config import DENSE_TARGET_CONTRASTS, Config
from pemd_tutorial.evaluate import (
    evaluate_probs,
    heads_mean,
    identity_probs,
    label_metrics,
    mean_std,
    per_slice_counts,
    predict,
    true_label_histogram,
)
from pemd_tutorial.mind import mind_baseline
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.pretrained import save_model
from pemd_tutorial.report import paired_differences, write_report
from pemd_tutorial.selection import select_lambda
from pemd_tutorial.training import adapt, train_oracle, train_similarity, train_source

__all__ = ["DEFAULT_METHODS", "MAIN_JOB", "METHODS", "METHOD_NAMES", "METHOD_TABLE", "OPT_IN_METHODS",
           "Experiment", "ExperimentData", "Method", "MethodResult", "SeedRun", "drive", "load_user_slices",
           "make_data", "mcd_row", "network_result", "run_experiment", "run_identity", "run_inverted",
           "run_oracle", "run_source", "source_network", "summarise"]

#: Metrics summarised over seeds (higher is better except ``epe``).
METRICS = ("accuracy", "within_one", "epe", "ncc", "source_accuracy")
# offsets that make the per-seed training seeds of the two domains differ
_SOURCE_SEED, _TARGET_SEED = 101, 202


@dataclass
class ExperimentData:
    """The pairs of one seed. ``*_val``/``*_test`` are evaluation views (labels included).

    Attributes:
        source_train: labelled source training pairs.
        target_train: target training pairs (labels hidden; see :class:`data_utils.PairDataset`).
        target_val: evaluation view of the target validation pairs (training logs only).
        target_val_images: the same pairs without labels (label-free choice of λ).
        source_test: evaluation view of the source test pairs (collapse check).
        target_test: evaluation view of the target test pairs (the table).
        description: what the target domain is (embedded data or the user's files).
        target_val_images: the target validation pairs without labels (label-free choice of λ).
        labelled_target_train: ``() -> pairs``: the target training pairs *with* their labels (the
            oracle's, and only the oracle's).
        source_phase_val: the validation view that training on source pairs alone logs
            (``None``: ``target_val``).
    """

    source_train: Any
    target_train: Any
    target_val: Any
    source_test: Any
    target_test: Any
    description: str
    target_val_images: Any = None
    labelled_target_train: Callable[[], Any] | None = None
    source_phase_val: Any = None

    def __post_init__(self):
        if self.source_phase_val is None:
            self.source_phase_val = self.target_val


def _pair_kwargs(cfg: Config) -> dict[str, Any]:
    return {"grid": cfg.grid, "control_spacing": cfg.control_spacing, "size": cfg.image_size,
            "max_displacement": cfg.max_displacement, "smoothness": cfg.smoothness, "fold": cfg.test_fold}


def training_pairs(cfg: Config, seed: int, domain: str, data=None, moving_contrast: str | None = None,
                   moving_transform=None):
    """The training pairs of one domain and seed: a sampler of fresh pairs for every step when
    ``cfg.n_train_pairs`` is ``None``, else a fixed pool (seed ``seed * 1000 + 101`` for the
    source, ``+ 202`` for the target). ``moving_transform``: see :class:`data_utils.PairSampler`."""
    kw = _pair_kwargs(cfg)
    if cfg.n_train_pairs is None:  # fresh pairs for every step, drawn by the training phase
        return PairSampler(domain, "train", data=data, moving_contrast=moving_contrast,
                           moving_transform=moving_transform, **kw)
    seed_k = seed * 1000 + (_SOURCE_SEED if domain == "source" else _TARGET_SEED)
    return make_pairs(domain, "train", cfg.n_train_pairs, seed=seed_k, data=data,
                      moving_contrast=moving_contrast, moving_transform=moving_transform, **kw)


def make_data(cfg: Config, seed: int, user_slices=None) -> ExperimentData:
    """Build the pairs of one seed.

    Args:
        cfg: sizes (``image_size``, grid, ``control_spacing``, ``n_*_pairs``, ``max_displacement``).
        seed: the run's seed; training pairs use ``seed * 1000 + 101`` (source) and
            ``seed * 1000 + 202`` (target); evaluation pairs use the fixed seeds of
            :data:`data_utils.EVALUATION_SEEDS`.
        user_slices: optional ``(train, val, test)`` :class:`data_utils.EmbeddedSlices` of the user's
            images (contrasts ``"t1"`` = fixed, ``"t2"`` = moving) that replace the embedded
            slices of the *target* domain.

    Returns:
        An :class:`ExperimentData`.
    """

    kw = _pair_kwargs(cfg)

    source_train = training_pairs(cfg, seed, "source")
    source_test = evaluation_pairs("source", "test", cfg.n_test_pairs, **kw).evaluation_view()
    if user_slices is None:
        tkw = {**kw, "moving_contrast": cfg.target_contrast}
        target_train = training_pairs(cfg, seed, "target", moving_contrast=cfg.target_contrast)
        target_val_images = evaluation_pairs("target", "val", cfg.n_val_pairs, **tkw)
        target_val = target_val_images.evaluation_view()
        target_test = evaluation_pairs("target", "test", cfg.n_test_pairs, **tkw).evaluation_view()
        desc = ("embedded MNI152 slices: fixed T1w (deformed), moving simulated "
                f"{DENSE_TARGET_CONTRASTS[cfg.target_contrast]}")
    else:
        train, val, test = user_slices
        target_train = training_pairs(cfg, seed, "target", data=train)

        target_val_images = make_pairs("target", n_pairs=cfg.n_val_pairs, seed=EVALUATION_SEEDS["val"],
                                       data=val, **kw)
        target_val = target_val_images.evaluation_view()
        target_test = make_pairs("target", n_pairs=cfg.n_test_pairs, seed=EVALUATION_SEEDS["test"],
                                 data=test, **kw).evaluation_view()
        desc = "the user's NIfTI pair: fixed (deformed) vs moving"
    return ExperimentData(source_train, target_train, target_val, source_test, target_test, desc,
                          target_val_images, labelled_target_train=target_train.evaluation_view)


def summarise(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (``n - 1``) over seeds of every metric and method.

    Returns:
        ``{method: {metric: mean, metric + "_std": std, "n_seeds": n}}`` (the format of
        :func:`pemd_tutorial.figures.plot_accuracy`).
    """
    out: dict[str, dict[str, float]] = {}
    for method, rows in per_seed.items():
        s: dict[str, float] = {"n_seeds": len(rows)}
        for key in (*METRICS, "train_time_s"):
            if any(key in r for r in rows):
                s[key], s[key + "_std"] = mean_std([r.get(key) for r in rows])
        out[method] = s
    return out


def _machine(device: str) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _score(target_probs: torch.Tensor, source_probs: torch.Tensor, data: ExperimentData, cfg: Config):
    """All metrics on the target test pairs, plus the accuracy on the source test pairs (collapse check)."""

    row = evaluate_probs(target_probs, data.target_test, cfg)
    if "labels" in data.target_test.batch():
        row["per_slice"] = per_slice_counts(target_probs, data.target_test)
    if source_probs is not None:
        b = data.source_test.batch()
        valid = b["mask"] & b["inside"]
        source = label_metrics(source_probs, b["labels"], b["displacement"], valid, cfg.grid)
        row["source_accuracy"] = source["accuracy"]
    return row


def _check_seeds(seeds: Sequence[int], fn: str = "run_experiment") -> tuple[int, ...]:
    if isinstance(seeds, int):
        seeds = (seeds,)
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError(f"{fn}() 'seeds' must not be empty")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"{fn}() 'seeds' must be integers >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{fn}() 'seeds' must be distinct, got {list(seeds)}")
    return seeds


def load_user_slices(fixed, moving, cfg: Config):
    """Load the user's aligned NIfTI pair; split its slices into target ``(train, val, test)``.

    Slices come from :func:`data_utils.load_nifti_pair` (axial, the moving volume resampled onto
    the fixed grid when they differ, each slice resampled in mm to ``cfg.image_size`` exactly as
    ``register`` does; contrasts ``"t1"`` = fixed and ``"t2"`` = moving) and are split by position with
    :func:`data_utils.split_slices` (70/15/15 %, 2 slices left out between blocks; without a gap if
    the volume is too thin for one).

    Raises:
        FileNotFoundError: a file does not exist (the message names it).
        ValueError: a path is missing, the files do not load, or too few slices for three splits.
    """
    for name, path in (("fixed", fixed), ("moving", moving)):
        if path is None:
            raise ValueError(f"run_experiment() needs both 'fixed' and 'moving' NIfTI paths; no '{name}'")
    for name, path in (("fixed", fixed), ("moving", moving)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"run_experiment() '{name}' NIfTI file not found: {str(path)!r}")

    slices = load_nifti_pair(fixed, moving, size=cfg.image_size, resample=True)
    try:
        parts = split_slices(slices, gap=2)
    except ValueError:
        parts = split_slices(slices, gap=0)
    return parts["train"], parts["val"], parts["test"]



# ----------------------------------------------------------------------------------------------
# the driver: one loop over targets, seeds and rows for both experiments
# ----------------------------------------------------------------------------------------------


@dataclass
class SeedRun:
    """What every row of one seed and target shares (the argument of a row's function).

    Attributes:
        cfg: the configuration with ``seed`` set to this seed.
        seed: the seed.
        data: the pairs of this seed and target (the experiment's ``make_data``).
        device: where networks train.
        train_kw: keyword arguments for the training phases of the target's rows (validation view,
            checkpoints, resume, progress).
        cache: state shared between rows: under ``"networks"`` the networks trained on source
            data only (see :func:`run_experiment`'s ``network_cache``), under ``"across_seeds"``
            what the seeds of a target share (the deterministic MIND baseline).
        user_target: the target domain is the user's images (no embedded target contrast).
        target: the target column (a contrast name, or ``"user"``).
        experiment: the :class:`Experiment` being run (its network factory).
        source_checkpoint_dir: checkpoints of the networks trained on source data only (shared by
            every target column).
    """

    cfg: Any
    seed: int
    data: ExperimentData
    device: torch.device
    train_kw: dict[str, Any]
    cache: dict[str, Any]
    user_target: bool = False
    target: str = ""
    experiment: Experiment | None = None
    source_checkpoint_dir: Path | None = None


@dataclass
class MethodResult:
    """What a row returns: probabilities on the target and source test pairs.

    Attributes:
        target_probs, source_probs: ``(N, L, Hc, Wc)`` on CPU (networks: the mean of both heads,
            :func:`~pemd_tutorial.evaluate.heads_mean`); ``source_probs`` is ``None`` for a
            reference row that is not scored on the source pairs.
        model: the trained network (``None`` for training-free rows); saved with ``--save-models``.
        log: the training log (``None`` when nothing was trained).
        heads: F1's and F2's probabilities of the first test pair (figures), or ``None``.
        extra_time_s: training time spent before the call that belongs to this row (the shared
            source-only training of the MCD rows and of the inverted-contrast row).
        inference_time_s: seconds a training-free row took (``None`` for networks).
        chosen: what a label-free choice picked (``{"lam", "steps"}``), recorded in the row.
    """

    target_probs: torch.Tensor
    source_probs: torch.Tensor | None
    model: torch.nn.Module | None = None
    log: list[dict] | None = None
    heads: tuple[torch.Tensor, torch.Tensor] | None = None
    extra_time_s: float = 0.0
    inference_time_s: float | None = None
    chosen: dict[str, Any] | None = None


@dataclass(frozen=True)
class Method:
    """One row of an experiment: a registry entry.

    Attributes:
        label: the display name.
        run: the function ``SeedRun -> MethodResult``.
        opt_in: left out of the default run (asked for by name).
        implied_by: the row that brings this one along (it cannot be asked for alone), e.g. the
            patch experiment's inverted-contrast row comes with its source-only row.
    """

    label: str
    run: Callable[[SeedRun], MethodResult]
    opt_in: bool = False
    implied_by: str | None = None


@dataclass(frozen=True)
class Experiment:
    """What :func:`drive` needs to know of one experiment (the main job, the patch experiment).

    Attributes:
        function: the public function's name (in error messages).
        config_class: the configuration class it runs on.
        references: rows run first for every seed, whatever is asked (no training): their scores
            are the table's reference lines.
        rows: the rows a caller can ask for (or that a row asked for brings along), in table and
            execution order.
        targets: the target columns of a configuration.
        make_data: ``(cfg, seed, target, user_slices) -> ExperimentData``.
        new_network: ``cfg -> network`` (a :class:`~pemd_tutorial.model.TwoHeadedNet`).
        score: ``(target_probs, source_probs, data, cfg) -> {metric: value}``: the one place an
            experiment's metrics are computed.
        target_only_fields: configuration fields a network trained on source data alone does not
            depend on (the key of the source-network cache leaves them out).
        check: ``(cfg, rows) -> None``: raises before any training when a row cannot run.
        batch_size: pairs per forward pass of the predictions.
        per_target_checkpoints: checkpoints of the target's rows under ``seed<S>/<target>/``.
        row_lines: with ``progress``, print one line per row and seed.
    """

    function: str
    config_class: type
    references: Mapping[str, Method]
    rows: Mapping[str, Method]
    targets: Callable[[Any], tuple[str, ...]]
    make_data: Callable[..., ExperimentData]
    new_network: Callable[[Any], torch.nn.Module]
    score: Callable[..., dict[str, Any]]
    target_only_fields: tuple[str, ...]
    check: Callable[[Any, tuple[str, ...]], None] | None = None
    batch_size: int = 64
    per_target_checkpoints: bool = False
    row_lines: bool = False

    def select(self, methods: Sequence[str]) -> tuple[str, ...]:
        """The rows to run for ``methods``: checked, with the rows they imply, in table order."""
        fn = self.function
        if isinstance(methods, str):
            raise TypeError(f"{fn}() 'methods' must be a sequence of names, got {methods!r}")
        methods = tuple(methods)
        if not methods:
            raise ValueError(f"{fn}() 'methods' must not be empty")
        allowed = [k for k, m in self.rows.items() if m.implied_by is None]
        for m in methods:
            if m not in allowed:
                raise ValueError(f"{fn}() 'methods' entries must be in {allowed}, got {m!r}")
        return tuple(k for k, m in self.rows.items()
                     if k in methods or (m.implied_by is not None and m.implied_by in methods))

    def defaults(self) -> tuple[str, ...]:
        """The rows a run without ``methods`` asks for."""
        return tuple(k for k, m in self.rows.items() if not m.opt_in and m.implied_by is None)

    def names(self) -> dict[str, str]:
        """Display names of every row, references first."""
        return {k: m.label for k, m in (*self.references.items(), *self.rows.items())}


def drive(
    experiment: Experiment,
    cfg: Any,
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    progress: bool | str = True,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    user_slices=None,
    network_cache: dict | None = None,
    lambda_grid: Sequence[float] | None = None,
    save_models: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run the rows of ``experiment`` for every target column and seed; score every row the same way.

    Per target and seed: build the pairs (``experiment.make_data``), run the reference rows, then
    each row in table order, and score its probabilities with ``experiment.score``. Training times:
    a row's own wall time plus the source-only training it reused (``MethodResult.extra_time_s``);
    training-free rows record ``inference_time_s`` instead.

    Returns:
        ``{"targets": {target: {"per_seed", "logs", "first", "first_data"}}, "methods", "seeds",
        "device", "started", "wall_time_s"}``: ``per_seed[row]`` lists one dict of scores per
        seed (with ``"seed"``), ``logs[row][str(seed)]`` the training logs, ``first[row]`` the
        first seed's :class:`MethodResult` and ``first_data`` its pairs.
    """
    fn = experiment.function
    if not isinstance(cfg, experiment.config_class):
        raise TypeError(f"{fn}() 'cfg' must be a {experiment.config_class.__name__}, got "
                        f"{type(cfg).__name__}")
    rows = experiment.select(methods)
    seeds = _check_seeds(seeds, fn)
    try:
        device = torch.device(cfg.device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{fn}() cfg.device is not a torch device: {cfg.device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{fn}() cfg.device={cfg.device!r} but CUDA is not available")
    if resume and checkpoint_dir is None:
        raise ValueError(f"{fn}() 'resume' needs a 'checkpoint_dir'")
    networks: dict = {} if network_cache is None else network_cache
    if not isinstance(networks, dict):
        raise TypeError(f"{fn}() 'network_cache' must be a dict or None, got {type(networks).__name__}")
    if experiment.check is not None:
        experiment.check(cfg, rows)  # e.g. a missing λ fails here, not after an hour of training

    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    targets: dict[str, Any] = {}
    for target in experiment.targets(cfg):
        per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in (*experiment.references, *rows)}
        logs: dict[str, dict[str, list[dict]]] = {}
        first: dict[str, MethodResult] = {}
        first_data = None
        across_seeds: dict[str, Any] = {}
        for seed in seeds:
            cfg_s = cfg.replace(seed=seed)
            data = experiment.make_data(cfg_s, seed, target, user_slices)
            base = None if checkpoint_dir is None else Path(checkpoint_dir) / f"seed{seed}"
            ck = base / target if base is not None and experiment.per_target_checkpoints else base
            train_kw = {"val": data.target_val, "checkpoint_dir": ck, "resume": resume, "progress": progress}
            run = SeedRun(cfg_s, seed, data, device, train_kw,
                          {"across_seeds": across_seeds, "networks": networks,
                           **({} if lambda_grid is None else {"lambda_grid": tuple(lambda_grid)})},
                          user_target=user_slices is not None, target=target, experiment=experiment,
                          source_checkpoint_dir=base)
            if first_data is None:
                first_data = data
            for name in (*experiment.references, *rows):
                reference = name in experiment.references
                method = experiment.references[name] if reference else experiment.rows[name]
                t0 = time.perf_counter()
                result = method.run(run)
                seconds = time.perf_counter() - t0 + result.extra_time_s
                row = experiment.score(result.target_probs, result.source_probs, data, cfg_s)
                if not reference:  # the reference lines of the table carry no times
                    if result.model is None:  # training-free, or reusing another row's network
                        row.update(train_time_s=result.extra_time_s, inference_time_s=result.inference_time_s)
                    else:
                        row["train_time_s"] = seconds
                row.update(result.chosen or {})
                per_seed[name].append({"seed": seed, **row})
                if result.log is not None:
                    logs.setdefault(name, {})[str(seed)] = result.log
                if save_models is not None and result.model is not None:
                    save_model(result.model, Path(save_models) / f"seed{seed}" / f"{name}.pt",
                               metadata={"method": name, "seed": seed, "test_metrics": row})
                if seed == seeds[0]:
                    first[name] = result
                if experiment.row_lines and progress and not reference:
                    source = row.get("source_accuracy")
                    print(f"[{target} seed {seed}] {method.label:32s} target {100 * row['accuracy']:5.1f} %"
                          + ("" if source is None else f"  source {100 * source:5.1f} %")
                          + f"  ({row.get('train_time_s') or 0.0:.0f} s)", flush=True)
        targets[target] = {"per_seed": per_seed, "logs": logs, "first": first, "first_data": first_data}
    return {"targets": targets, "methods": [*experiment.references, *rows], "seeds": list(seeds),
            "device": device, "started": started, "wall_time_s": time.perf_counter() - t_start}


# ----------------------------------------------------------------------------------------------
# rows both experiments use
# ----------------------------------------------------------------------------------------------


def network_result(model, run: SeedRun, log, extra_time_s: float = 0.0, *, target_pairs=None) -> MethodResult:
    """A network's row: the mean of both heads on the target test pairs (or ``target_pairs``) and the
    source test pairs, F1's and F2's probabilities of the first test pair for the figures."""
    batch_size = run.experiment.batch_size if run.experiment is not None else 64
    p1, p2 = predict(model, run.data.target_test if target_pairs is None else target_pairs,
                     batch_size=batch_size)
    source = predict(model, run.data.source_test, batch_size=batch_size, combine="mean")
    return MethodResult(heads_mean(p1, p2), source, model, log, (p1[:1], p2[:1]), extra_time_s)


def run_identity(run: SeedRun) -> MethodResult:
    """No registration: all mass on the zero displacement (a reference row)."""
    hc, wc = run.data.target_test.batch()["labels"].shape[-2:]
    target = identity_probs(len(run.data.target_test), run.cfg.grid, hc, wc)
    source = identity_probs(len(run.data.source_test), run.cfg.grid, hc, wc)
    return MethodResult(target, source)


def source_network(run: SeedRun, name: str = "source", variant=None, pairs: Callable[[], Any] | None = None):
    """A network trained on the seed's labelled source pairs only (made by ``pairs()``, default
    ``run.data.source_train``; ``variant`` says how they differ, e.g. the contrast transform that
    draws their moving images), trained on first use and kept in ``run.cache["networks"]`` (shared
    across targets, and across calls that pass the same ``network_cache``: such a network does not
    depend on the target). Returns ``(model, log, seconds, source pairs)``."""
    exp = run.experiment
    fields = {k: v for k, v in run.cfg.to_dict().items() if k not in exp.target_only_fields}
    key = (exp.function, name, repr(variant), repr(sorted(fields.items())), run.user_target)
    networks = run.cache["networks"]
    if key not in networks:
        t0 = time.perf_counter()
        sampler = run.data.source_train if pairs is None else pairs()
        model = exp.new_network(run.cfg).to(run.device)
        log = train_source(model, sampler, run.cfg, phase=name,
                           **{**run.train_kw, "val": run.data.source_phase_val,
                              "checkpoint_dir": run.source_checkpoint_dir})
        networks[key] = (model, log, time.perf_counter() - t0, sampler)
    return networks[key]


def _trained_before(run: SeedRun, name: str = "source") -> bool:
    return any(k[:2] == (run.experiment.function, name) for k in run.cache["networks"])


def run_source(run: SeedRun) -> MethodResult:
    """The seed's source-only network (no adaptation)."""
    model, log, _, _ = source_network(run)  # trained in this call: its time is measured by the caller
    return network_result(model, run, log)


def run_inverted(run: SeedRun) -> MethodResult:
    """The trivial trick: the seed's source-only network on the moving images inverted on their
    foreground (:func:`data_utils.invert_foreground`); no training beyond the source network's."""
    source, _, seconds, _ = source_network(run)
    t0 = time.perf_counter()
    result = network_result(source, run, None, extra_time_s=seconds,
                            target_pairs=run.data.target_test.with_moving(invert_foreground))
    # its network is the source row's: that training time is this row's too
    result.model, result.inference_time_s = None, time.perf_counter() - t0
    return result


def mcd_row(discrepancy: str, *, angles=None, lam=None, phase: str | None = None
            ) -> Callable[[SeedRun], MethodResult]:
    """MCD with ``discrepancy`` from the seed's source-only network (the same start for every row).

    Args:
        discrepancy: a name of :data:`pemd_tutorial.discrepancies.DISCREPANCY_NAMES`.
        angles: the projection angles (projected EMD), ``None``: the default.
        lam: ``SeedRun -> λ`` (``None``: the configuration's own, or the label-free choice when
            the run has a ``lambda_grid``).
        phase: the training phase's name (its random streams and checkpoint), ``None``: the default.
    """
    def run_mcd(run: SeedRun) -> MethodResult:
        trained_before = _trained_before(run)
        source, _, seconds, _ = source_network(run)
        grid = run.cache.get("lambda_grid")
        if grid is None:
            model = copy.deepcopy(source)  # every discrepancy starts from the same network
            kw = {} if lam is None else {"lam": lam(run)}
            if angles is not None:
                kw["angles"] = angles
            if phase is not None:
                kw["phase"] = phase
            log = adapt(model, run.data.source_train, run.data.target_train, run.cfg, discrepancy=discrepancy,
                        **kw, **run.train_kw)
            chosen = None
        else:  # λ and the number of iterations chosen without target labels (pemd_tutorial.selection)
            steps = run.cfg.adapt_steps
            choice = select_lambda(source, run.data.source_train, run.data.target_train,
                                   run.data.target_val_images, _source_val(run), run.cfg,
                                   discrepancy=discrepancy, lambdas=grid,
                                   checkpoints=sorted({max(1, steps // 2), steps}),
                                   progress=run.train_kw.get("progress", False))
            model, log, chosen = choice.model, choice.log, {"lam": choice.lam, "steps": choice.steps}
        # the adaptation's time includes the shared source training (already measured if it ran before)
        result = network_result(model, run, log, extra_time_s=seconds if trained_before else 0.0)
        result.chosen = chosen
        return result

    run_mcd.__name__ = f"run_mcd_{discrepancy}"
    run_mcd.__doc__ = f"MCD with the {discrepancy!r} discrepancy from the seed's source-only network."
    return run_mcd


def run_oracle(run: SeedRun) -> MethodResult:
    """A network with the seed's initialisation trained on the *labelled* target training pairs."""
    model = run.experiment.new_network(run.cfg).to(run.device)
    # the one place that trains on target labels: the explicitly named oracle
    log = train_oracle(model, run.data.labelled_target_train(), run.cfg, **run.train_kw)
    return network_result(model, run, log)


def _source_val(run: SeedRun):
    """The labelled *source* validation pairs (the collapse check of a label-free λ choice)."""
    shared = run.cache["across_seeds"]
    if "source_val" not in shared:
        shared["source_val"] = evaluation_pairs("source", "val", run.cfg.n_val_pairs,
                                                **_pair_kwargs(run.cfg)).evaluation_view()
    return shared["source_val"]


# ----------------------------------------------------------------------------------------------
# the main job's own rows
# ----------------------------------------------------------------------------------------------


def _run_mind(run: SeedRun) -> MethodResult:
    shared = run.cache["across_seeds"]
    if "mind" not in shared:  # deterministic and seed-free: computed once
        t0 = time.perf_counter()
        target = mind_baseline(run.data.target_test, run.cfg)
        shared["mind"] = (target, mind_baseline(run.data.source_test, run.cfg), time.perf_counter() - t0)
    target, source, seconds = shared["mind"]
    return MethodResult(target, source, inference_time_s=seconds)


def _transformed_source(run: SeedRun, name: str):
    transform = SOURCE_TRANSFORMS[name](run)
    return source_network(run, name, transform,
                          lambda: training_pairs(run.cfg, run.seed, "source", moving_transform=transform))


def _contrast_row(name: str) -> Callable[[SeedRun], MethodResult]:
    def run_row(run: SeedRun) -> MethodResult:
        model, log, _, _ = _transformed_source(run, name)
        return network_result(model, run, log)

    run_row.__name__ = f"run_{name}"
    return run_row


def _heldout_synthesis(run: SeedRun) -> TissueSynthesis:
    if run.user_target:
        raise ValueError("the 'synth_heldout' row needs an embedded target contrast (it rejects the draws "
                         "that order the tissues like the target); it cannot run on your own images")
    return TissueSynthesis(reject_orders=(tissue_order(run.cfg.target_contrast),))


#: The contrast-randomised and synthesised source trainings, by row name: what draws the moving images.
SOURCE_TRANSFORMS: dict[str, Callable[[SeedRun], Any]] = {
    "source_randomized": lambda run: RandomIntensityMap(),
    "source_synth": lambda run: TissueSynthesis(),
    "source_synth_heldout": _heldout_synthesis,
}


#: The weight of MIND-SSD against the source cross-entropy in the ``mind_loss`` row
#: (:func:`pemd_tutorial.training.train_similarity`), chosen without target labels by
#: ``benchmarks/mind_loss_weight.py`` (NMI on unlabelled validation pairs, the collapse rule on the
#: source accuracy; grid 1, 10, 100; seed 0): 100 on T2w and on FLAIR-like
#: (``benchmarks/results/mind_loss_weight.json``). It is the grid's largest value; with it the
#: source validation accuracy drops 9.2 points on T2w, close to the 10-point collapse rule.
MIND_LOSS_WEIGHT = 100.0


def _run_mind_loss(run: SeedRun) -> MethodResult:
    trained_before = _trained_before(run)
    source, _, seconds, _ = source_network(run)
    model = copy.deepcopy(source)
    log = train_similarity(model, run.data.source_train, run.data.target_train, run.cfg,
                           weight=MIND_LOSS_WEIGHT, **run.train_kw)
    return network_result(model, run, log, extra_time_s=seconds if trained_before else 0.0)


def _mcd_from(start: str, discrepancy: str) -> Callable[[SeedRun], MethodResult]:
    """MCD from a contrast-randomised source network, its step A on the same randomised source pairs."""
    def run_mcd(run: SeedRun) -> MethodResult:
        trained_before = _trained_before(run, start)
        source, _, seconds, pairs = _transformed_source(run, start)
        model = copy.deepcopy(source)
        log = adapt(model, pairs, run.data.target_train, run.cfg,
                    discrepancy=discrepancy, phase=f"adapt_{discrepancy}_{start}", **run.train_kw)
        return network_result(model, run, log, extra_time_s=seconds if trained_before else 0.0)

    run_mcd.__name__ = f"run_mcd_{discrepancy}_{start}"
    return run_mcd


#: The main job's rows (besides the identity reference), in table and execution order. Adding a
#: row is one entry here (a function ``SeedRun -> MethodResult``: most rows reuse
#: :func:`mcd_row`, :func:`source_network` and :func:`network_result`).
METHOD_TABLE: dict[str, Method] = {
    "mind": Method("MIND baseline (no training)", _run_mind),
    "source": Method("source only", run_source),
    "inverted": Method("source only, moving inverted", run_inverted),
    "mcd_l1": Method("MCD-L1", mcd_row("l1")),
    "mcd_swd": Method("MCD-SWD", mcd_row("swd")),
    "mcd_pemd": Method("MCD-pEMD", mcd_row("pemd")),
    "oracle": Method("oracle (target labels)", run_oracle),
    # opt-in: the geometry control of docs/method.md and the label-free alternatives of
    # docs/results.md ("When does adaptation pay?"), which would take the default job past its 10
    # minutes; benchmarks/adaptation_pays.py runs them
    "mcd_pemd_shuffled": Method("MCD-pEMD, shuffled label grid (control)", mcd_row("pemd_shuffled"),
                                opt_in=True),
    "mcd_swd_rescaled": Method("MCD-SWD, step C x400 (control)", mcd_row("swd_rescaled"), opt_in=True),
    "randomized": Method("contrast randomisation (no target image)", _contrast_row("source_randomized"),
                         opt_in=True),
    "synth": Method("tissue synthesis (no target image)", _contrast_row("source_synth"), opt_in=True),
    "synth_heldout": Method("tissue synthesis, target's order held out",
                            _contrast_row("source_synth_heldout"), opt_in=True),
    "mind_loss": Method("MIND-loss fine-tuning (unlabelled target)", _run_mind_loss, opt_in=True),
    "mcd_pemd_randomized": Method("MCD-pEMD from contrast randomisation",
                                  _mcd_from("source_randomized", "pemd"), opt_in=True),
    "mcd_l1_randomized": Method("MCD-L1 from contrast randomisation", _mcd_from("source_randomized", "l1"),
                                opt_in=True),
}
_REFERENCES = {"identity": Method("identity (no registration)", run_identity)}


def _main_data(cfg: Config, seed: int, target: str, user_slices) -> ExperimentData:
    return make_data(cfg, seed, user_slices)


#: The main job as a specification of :func:`drive`.
MAIN_JOB = Experiment(
    function="run_experiment",
    config_class=Config,
    references=_REFERENCES,
    rows=METHOD_TABLE,
    targets=lambda cfg: (cfg.target_contrast,),
    make_data=_main_data,
    new_network=RegistrationNet,
    score=_score,
    target_only_fields=("target_contrast", "lambdas", "adapt_steps", "oracle_steps", "device", "val_every",
                        "checkpoint_every"),
)
#: Display names of the methods, in table order.
METHOD_NAMES = MAIN_JOB.names()
#: Methods ``run_experiment`` accepts (``identity`` is always added as a reference row).
METHODS = tuple(METHOD_TABLE)
#: Opt-in rows (``--methods``): ``Method.opt_in`` of :data:`METHOD_TABLE`.
OPT_IN_METHODS = tuple(k for k, m in METHOD_TABLE.items() if m.opt_in)
#: What the main job runs by default.
DEFAULT_METHODS = MAIN_JOB.defaults()


def run_experiment(
    cfg: Config,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | os.PathLike | None = "results",
    progress: bool | str = True,
    fixed: str | os.PathLike | None = None,
    moving: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    command: str | None = None,
    save_models: str | os.PathLike | None = None,
    lambda_grid: Sequence[float] | None = None,
    network_cache: dict | None = None,
) -> dict[str, Any]:
    """Train and evaluate every method over several seeds; write ``results.json``, ``results.md`` and figures.

    Per seed: build the pairs (:func:`make_data`), score the identity, then run each method of
    :data:`METHOD_TABLE` in table order and score its probabilities on the target test pairs
    (:func:`~pemd_tutorial.evaluate.evaluate_probs`) and the source test pairs (accuracy only).

    Args:
        cfg: the configuration (``cfg.seed`` is replaced by each entry of ``seeds``; ``cfg.device``
            is where the networks train).
        methods: any of :data:`METHODS`; ``identity`` is always added as a reference row.
        seeds: distinct integers ``>= 0``.
        out_dir: folder for the files (created); ``None`` writes nothing.
        progress: tqdm progress bars (``"text"``: one plain line per phase instead).
        fixed, moving: optional paths of the user's *aligned* NIfTI volumes of one subject (fixed
            e.g. T1w, moving e.g. T2w; a moving volume on another grid is resampled onto the fixed
            one). Their slices (:func:`data_utils.load_nifti_pair`, resampled in mm to
            ``cfg.image_size`` exactly as ``register`` does) replace the embedded slices of the
            **target** domain: they are split by position into train/val/test blocks
            (:func:`load_user_slices`); the train block makes the unlabelled target training pairs.
            The source domain stays the
            embedded T1w->T1w data. Because the volumes are aligned, the test pairs are made with
            known synthetic deformations exactly like the embedded ones, so the same metrics are
            reported; they measure recovery of synthetic deformations of *your* images (to register
            a pair that is not aligned, use :func:`pemd_tutorial.registration.register`).
        checkpoint_dir: folder for training checkpoints (``<dir>/seed<s>/<phase>.pt``); ``None``:
            none written.
        resume: continue each training phase from its checkpoint (finished phases only reload).
        command: the command line to record (default: ``sys.argv``).
        save_models: folder for every trained network (``<dir>/seed<s>/<method>.pt``, written by
            :func:`pemd_tutorial.save_model` with the method and seed as metadata); ``None``: none.
        lambda_grid: choose λ (and the number of MCD iterations, half or all of
            ``cfg.adapt_steps``) of every MCD row per seed **without target labels**, from this
            grid, with :func:`pemd_tutorial.selection.select_lambda` on the unlabelled target
            validation pairs (for your own target contrast); ``None``: ``cfg.lambdas``. The choice
            is recorded in each row as ``"lam"`` and ``"steps"``.
        network_cache: a dict in which the networks trained on source data only (source only,
            contrast-randomised, synthesised) are kept, keyed by their name, seed, test fold and
            every configuration field they depend on; pass the same dict to several calls (e.g.
            one per target contrast) to train each of them once. ``None``: a new dict.

    Returns:
        ``{"config", "seeds", "methods", "per_seed", "summary", "chance", "logs", "machine",
        "date", "wall_time_s", "data", "command", "notes"}``; ``per_seed[method]`` is a list of
        metric dicts (one per seed, with ``"seed"``), ``summary[method]`` has means and ``*_std``.
        Figures' data (example predictions, label distributions) is in ``"figures_data"`` and is
        not written to JSON.
    """

    user_slices = None if fixed is None and moving is None else load_user_slices(fixed, moving, cfg)
    done = drive(MAIN_JOB, cfg, methods, seeds, progress=progress, checkpoint_dir=checkpoint_dir,
                 resume=resume, user_slices=user_slices, network_cache=network_cache, lambda_grid=lambda_grid,
                 save_models=save_models)
    (column,) = done["targets"].values()
    per_seed, data, first = column["per_seed"], column["first_data"], column["first"]
    n_fig = 4  # example pairs kept for the figures
    figures_data: dict[str, Any] = {
        "test_batch": {k: v[:n_fig] for k, v in data.target_test.batch().items()},
        "probs": {name: r.target_probs[:n_fig] for name, r in first.items()
                  if name not in MAIN_JOB.references},
        "heads": {name: r.heads for name, r in first.items() if r.heads is not None},
    }
    label_histogram = (true_label_histogram(data.target_test, cfg.grid)
                       if "labels" in figures_data["test_batch"] else None)
    methods = done["methods"][len(MAIN_JOB.references):]
    names = MAIN_JOB.names()  # at run time: a row added to METHOD_TABLE is named too
    results: dict[str, Any] = {
        "title": "pemd-tutorial main job",
        "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": done["started"].isoformat(timespec="seconds"),
        "wall_time_s": done["wall_time_s"],
        "machine": _machine(str(done["device"])),
        "config": cfg.to_dict(),
        "seeds": done["seeds"],
        "methods": done["methods"],
        "method_names": {m: names[m] for m in done["methods"]},
        "data": {
            "target": data.description,
            "user_files": None if user_slices is None else {"fixed": str(fixed), "moving": str(moving)},
            "n_train_pairs": cfg.n_train_pairs, "n_val_pairs": cfg.n_val_pairs,
            "n_test_pairs": cfg.n_test_pairs,
        },
        "chance": 1.0 / cfg.grid.n_labels,
        "label_histogram": label_histogram,
        "per_seed": per_seed,
        "summary": summarise(per_seed),
        "paired_differences": {k: {**v, "per_seed": {str(s): d for s, d in v["per_seed"].items()}}
                               for k, v in paired_differences({"per_seed": per_seed}).items()},
        "logs": column["logs"],
        "notes": _notes(methods, user_slices is not None),
        "figures_data": figures_data,
    }
    if out_dir is not None:
        write_report(results, out_dir)
    return results


def _notes(methods: Sequence[str], user: bool) -> list[str]:
    notes = [
        "Scores on the target test pairs (fixed T1w vs moving T2w), identical for every method and seed.",
        "accuracy: arg-max label == quantised true label over foreground control points inside the grid; "
        "within_one: Chebyshev distance <= 1 on the label grid; epe: mean end-point error (px) of the "
        "expected displacement; ncc: NCC over the foreground between the moving image warped by the "
        "prediction and by the true field; source_accuracy: accuracy on the source test pairs "
        "(collapse check).",
        "Networks: mean of F1 and F2 probabilities. MCD variants start from the same source-only network of "
        "each seed; the oracle is trained from the same initialisation on labelled target pairs.",
        "std: sample standard deviation over seeds. MIND and identity are deterministic (std 0).",
    ]
    if user:
        notes.append(
            "Target domain = the user's aligned NIfTI pair: test pairs are synthetic deformations of the "
            "user's held-out slices, so the metrics measure recovery of known synthetic deformations."
        )
    return notes
