"""The two configuration classes and their profiles: :class:`Config` (the main job) and
:class:`PaperConfig` (the patch experiment), with the target contrasts and rows they accept.

:class:`Config` carries every size and hyper-parameter of the main job, the notebooks and the
tests. It is JSON-serialisable (:meth:`Config.to_dict` / :meth:`Config.from_dict`) so results can
record it next to the numbers. Three profiles exist:

* :meth:`Config.standard`: the default everywhere (``python -m pemd_tutorial``, ``make main``,
  notebook 03, the shipped networks): all methods and 3 seeds in about 7 minutes on 2 CPU cores
  (437 s measured), long enough for the adaptation to show;
* :meth:`Config.quick`: a smoke test for continuous integration (about a minute on 2 CPU cores);
  too short for any method to separate;
* :meth:`Config.full`: a larger profile for a GPU, opt-in only; it has never been run end to end,
  so its run time and its results are unmeasured.

The dataclass defaults are the quick profile's values.

The weights ``lambdas`` of step B of maximum classifier discrepancy are **per discrepancy and target
contrast**, chosen **without a target label** by ``benchmarks/tune_lambda.py``: the λ whose adapted
network makes the fixed image and the warped moving image most alike (MIND-SSD) on the unlabelled
target *validation* pairs, among those that keep the source accuracy (protocol in
``docs/selection.md``, measured grids in ``benchmarks/results/lambda_*.json``; never the test split).
The discrepancies are normalised as described in :func:`pemd_tutorial.discrepancies.scaled_discrepancy`
(L1 as a total variation in [0, 1], SWD x L/2, projected EMD in label steps).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from data_utils.embedded import CONTRAST_NAMES, EMBEDDED_CONTRASTS, N_FOLDS
from data_utils.grid import LabelGrid, check_control_spacing
from data_utils.patches import PATCH_CONTRASTS
from pemd_tutorial.config.lambdas import (
    FULL_LAMBDAS,
    PAPER_STANDARD_LAMBDAS,
    QUICK_LAMBDAS,
    STANDARD_LAMBDAS,
    STANDARD_LAMBDAS_BY_TARGET,
)
from pemd_tutorial.discrepancies import DISCREPANCY_NAMES, SWD_RESCALE

__all__ = ["DENSE_TARGET_CONTRASTS", "PAPER_METHODS", "PAPER_REFERENCE_NAMES", "PAPER_TARGET_CONTRASTS",
           "Config", "PaperConfig"]


#: Target contrasts of the main job (moving images of the target domain, simulated from the
#: embedded tissue maps by :func:`data_utils.load_embedded`) and their display names.
DENSE_TARGET_CONTRASTS: dict[str, str] = {c: CONTRAST_NAMES[c] for c in EMBEDDED_CONTRASTS if c != "t1"}


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class _Settings:
    """What both configuration classes share: validated copies and a JSON round trip."""

    #: fields held as tuples, written to JSON as lists
    _SEQUENCE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (tuples become lists)."""
        d = dataclasses.asdict(self)
        for k in self._SEQUENCE_FIELDS:
            d[k] = list(d[k])
        d["lambdas"] = dict(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict() got unknown fields {sorted(unknown)}")
        d = dict(d)
        for k in cls._SEQUENCE_FIELDS:
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass(frozen=True)
class Config(_Settings):
    """Every size and hyper-parameter of the pipeline.

    Data (see :func:`data_utils.make_pairs`):
        image_size: side of the square images in pixels (``H = W``).
        radius: label-grid radius ``R`` (``L = (2R + 1)^2`` labels).
        label_step: label spacing in pixels.
        control_spacing: control-point spacing in pixels (must divide ``image_size``);
            ``Hc = Wc = image_size // control_spacing``.
        n_train_pairs: training pairs per domain and seed, made once (a fixed pool); ``None``:
            **fresh pairs for every step** (:class:`data_utils.PairSampler`).
        n_val_pairs, n_test_pairs: the fixed evaluation pairs per domain.
        max_displacement: largest synthetic displacement in pixels (``None``: the data default,
            ``(R + 1/2) * label_step``, the largest that stays inside the label grid).
        smoothness: node spacing in pixels of the random deformations (``None``: the data
            default, ``image_size / 2``); see :func:`data_utils.make_pairs`.

    Network (see :class:`pemd_tutorial.model.RegistrationNet`):
        channels: feature channels of the generator G per resolution level; level ``k`` works at
            ``1 / 2**k`` of the image size, so the feature stride is ``2 ** (len(channels) - 1)``.
        head_channels: hidden channels of the classifier heads F1, F2.
        metric: correlation metric of the cost volume, ``"dot"`` or ``"ssd"``.
        cost_smoothing: 3x3 box-filter passes over neighbouring control points applied to the cost
            volume before the heads (:func:`pemd_tutorial.correlation.smooth_cost`; 0: none).
        head_residual: each head is ``tau * V + MLP(V)`` (``True``, the default: both heads start
            near the arg-max of the correlation, nearly identical) or ``MLP(V)`` alone (``False``:
            heads that differ from the start; ``benchmarks/head_design.py`` compares the two).

    Training (see :mod:`pemd_tutorial.training`):
        batch_size: pairs per step (each domain in adaptation).
        lr: Adam learning rate of G and of F1+F2 in every phase.
        source_steps, adapt_steps, oracle_steps: optimisation steps of each phase (an adaptation
            step is one MCD iteration A, B, C).
        num_k: generator updates per MCD iteration (step C).
        lambdas: weight of the discrepancy in step B, per discrepancy name.
        n_projections: random directions of the SWD discrepancy (redrawn every evaluation).
        val_every: log the validation accuracy every so many steps (0: never).
        seed: seeds the network initialisation, the batch sampling and the SWD directions.
        device: torch device string used by the main job.
        checkpoint_every: write a checkpoint every so many steps (when a directory is given).

    Target domain:
        target_contrast: the moving contrast of the target domain, a key of
            :data:`DENSE_TARGET_CONTRASTS` (``"t2"``, the default; ``"flair"``, ``"flair_lesion"``,
            ``"pd"``).
        test_fold: which 8-slice block of the embedded data is the test split
            (:func:`data_utils.embedded.fold_splits`; 0, the default: the shipped split). Training
            pairs of both domains come from the other blocks.
    """

    _SEQUENCE_FIELDS: ClassVar[tuple[str, ...]] = ("channels",)

    image_size: int = 48
    radius: int = 4
    label_step: float = 2.0
    control_spacing: int = 4
    n_train_pairs: int | None = 96
    n_val_pairs: int = 32
    n_test_pairs: int = 32
    max_displacement: float | None = None
    smoothness: float | None = None
    channels: tuple[int, ...] = (8, 16)
    head_channels: int = 32
    metric: str = "dot"
    cost_smoothing: int = 2
    batch_size: int = 8
    lr: float = 1e-3
    source_steps: int = 60
    adapt_steps: int = 25
    oracle_steps: int = 60
    num_k: int = 3
    lambdas: dict[str, float] = field(default_factory=lambda: dict(QUICK_LAMBDAS))
    n_projections: int = 128
    val_every: int = 10
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 20
    target_contrast: str = "t2"
    test_fold: int = 0
    head_residual: bool = True

    def __post_init__(self) -> None:
        # frozen: the normalised values are set once, here (``replace()`` makes changed copies)
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "lambdas", dict(self.lambdas))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is wrong."""
        for name in ("image_size", "radius", "control_spacing", "head_channels", "batch_size", "num_k",
                     "n_projections"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"Config '{name}' must be an integer >= 1, got {v!r}")
        if self.n_train_pairs is not None and (not _is_int(self.n_train_pairs) or self.n_train_pairs < 1):
            raise ValueError(f"Config 'n_train_pairs' must be None (fresh pairs every step) or an integer "
                             f">= 1, got {self.n_train_pairs!r}")
        for name in ("n_val_pairs", "n_test_pairs", "source_steps", "adapt_steps",
                     "oracle_steps", "val_every", "checkpoint_every", "seed", "cost_smoothing"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ValueError(f"Config '{name}' must be an integer >= 0, got {v!r}")
        if not isinstance(self.label_step, (int, float)) or not self.label_step > 0:
            raise ValueError(
                f"Config 'label_step' must be a positive number of pixels, got {self.label_step!r}"
            )
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"Config 'lr' must be a positive number, got {self.lr!r}")
        if self.max_displacement is not None and not (
            isinstance(self.max_displacement, (int, float)) and self.max_displacement > 0
        ):
            raise ValueError(f"Config 'max_displacement' must be None or > 0, got {self.max_displacement!r}")
        if self.smoothness is not None and not (
            isinstance(self.smoothness, (int, float)) and self.smoothness >= 1
        ):
            raise ValueError(f"Config 'smoothness' must be None or >= 1 pixel, got {self.smoothness!r}")
        if not self.channels or not all(_is_int(c) and c >= 1 for c in self.channels):
            raise ValueError(
                f"Config 'channels' must be a non-empty tuple of integers >= 1, got {self.channels!r}"
            )
        if not isinstance(self.head_residual, bool):
            raise ValueError(f"Config 'head_residual' must be True or False, got {self.head_residual!r}")
        if isinstance(self.test_fold, bool) or not isinstance(self.test_fold, int) \
                or not 0 <= self.test_fold < N_FOLDS:
            raise ValueError(f"Config 'test_fold' must be an integer in [0, {N_FOLDS}), got "
                             f"{self.test_fold!r}")
        if self.target_contrast not in DENSE_TARGET_CONTRASTS:
            raise ValueError(f"Config 'target_contrast' must be one of {list(DENSE_TARGET_CONTRASTS)}, "
                             f"got {self.target_contrast!r}")
        if self.metric not in ("dot", "ssd"):
            raise ValueError(f"Config 'metric' must be 'dot' or 'ssd', got {self.metric!r}")
        # the grid: control points must tile the image, features must tile it too
        check_control_spacing(self.image_size, self.image_size, self.control_spacing)
        if self.image_size % self.feature_stride:
            raise ValueError(
                f"Config 'image_size'={self.image_size} must be divisible by the feature stride "
                f"{self.feature_stride} (= 2 ** (len(channels) - 1))"
            )
        if self.radius * float(self.label_step) >= self.image_size / 2:
            raise ValueError(
                f"Config 'radius'={self.radius} with 'label_step'={self.label_step} reaches "
                f"{self.radius * self.label_step} px, which must be less than half the image size "
                f"({self.image_size / 2} px)"
            )
        unknown = set(self.lambdas) - set(DISCREPANCY_NAMES)
        if unknown:
            raise ValueError(
                f"Config 'lambdas' has unknown discrepancies {sorted(unknown)}; "
                f"known: {list(DISCREPANCY_NAMES)}"
            )
        for k, v in self.lambdas.items():
            if not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"Config 'lambdas[{k!r}]' must be a number >= 0, got {v!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"Config 'device' is not a torch device: {self.device!r}") from err

    # ------------------------------------------------------------------ derived
    @property
    def grid(self) -> LabelGrid:
        """The displacement label grid ``LabelGrid(radius, label_step)``."""
        return LabelGrid(self.radius, float(self.label_step))

    @property
    def n_labels(self) -> int:
        """``L = (2R + 1) ** 2``."""
        return self.grid.n_labels

    @property
    def feature_stride(self) -> int:
        """Image pixels per feature pixel of G's output, ``2 ** (len(channels) - 1)``."""
        return 2 ** (len(self.channels) - 1)

    @property
    def control_shape(self) -> tuple[int, int]:
        """``(Hc, Wc)``: the control-point grid."""
        return check_control_spacing(self.image_size, self.image_size, self.control_spacing)

    def lam(self, discrepancy: str) -> float:
        """The step-B weight of ``discrepancy`` (``ValueError`` for an unknown name); unless they
        have their own, the control ``"pemd_shuffled"`` takes ``"pemd"``'s and the control
        ``"swd_rescaled"`` takes ``"swd"``'s divided by ``SWD_RESCALE`` (its step B is MCD-SWD's)."""
        if discrepancy not in DISCREPANCY_NAMES:
            raise ValueError(
                f"'discrepancy' must be one of {list(DISCREPANCY_NAMES)}, got {discrepancy!r}"
            )
        if discrepancy == "pemd_shuffled" and discrepancy not in self.lambdas:
            return self.lam("pemd")  # the control runs with the weight of the method it controls
        if discrepancy == "swd_rescaled" and discrepancy not in self.lambdas:
            return self.lam("swd") / SWD_RESCALE
        if discrepancy not in self.lambdas:
            raise ValueError(f"Config 'lambdas' has no value for {discrepancy!r}")
        return float(self.lambdas[discrepancy])

    # ------------------------------------------------------------------ profiles
    @classmethod
    def quick(cls, **overrides: Any) -> Config:
        """Smoke test for continuous integration: the whole main job (all methods, 3 seeds) in about a
        minute on 2 CPU cores. Too short for any method to separate; use :meth:`standard` for results."""
        base = dict(
            image_size=48, control_spacing=4, channels=(8, 16), head_channels=32,
            n_train_pairs=96, n_val_pairs=32, n_test_pairs=32,
            batch_size=8, lr=1e-3, source_steps=60, adapt_steps=25, oracle_steps=60, num_k=3,
            val_every=10, device="cpu", checkpoint_every=20, lambdas=dict(QUICK_LAMBDAS),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def standard(cls, **overrides: Any) -> Config:
        """The default profile (CPU and GPU): the whole main job, all methods and 3 seeds, in about
        7 minutes on 2 CPU cores (437 s measured), with the adaptation effect visible."""
        target = overrides.get("target_contrast", "t2")
        base = dict(
            image_size=48, control_spacing=4, channels=(16, 32), head_channels=32,
            n_train_pairs=None, n_val_pairs=64, n_test_pairs=64,
            batch_size=16, lr=1e-3, source_steps=400, adapt_steps=150, oracle_steps=1800, num_k=3,
            val_every=50, device="cpu", checkpoint_every=100,
            lambdas=dict(STANDARD_LAMBDAS_BY_TARGET.get(target, STANDARD_LAMBDAS)),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def full(cls, **overrides: Any) -> Config:
        """A larger profile for a GPU (128 px, a wider network, more steps). Opt-in only: it has never
        been run end to end, so its run time and results are unmeasured, and its ``lambdas`` were
        not tuned for it."""
        base = dict(
            image_size=128, control_spacing=8, channels=(24, 48, 48), head_channels=96,
            n_train_pairs=512, n_val_pairs=64, n_test_pairs=128,
            batch_size=16, lr=1e-3, source_steps=1200, adapt_steps=400, oracle_steps=1200, num_k=3,
            val_every=100, device="cuda" if torch.cuda.is_available() else "cpu", checkpoint_every=250,
            lambdas=dict(FULL_LAMBDAS),
        )
        base.update(overrides)
        return cls(**base)



# ==============================================================================================
# The paper's own experiment (patch pairs, 25 classes, the slides' concatenation network)
# ==============================================================================================

#: Target contrasts of the paper experiment (simulated spin echoes,
#: :data:`data_utils.patches.SEQUENCES`) and their display names.
PAPER_TARGET_CONTRASTS: dict[str, str] = {c: CONTRAST_NAMES[c] for c in PATCH_CONTRASTS if c != "t1"}

#: The rows of the paper experiment: name -> (display name, discrepancy, number of angles).
PAPER_METHODS: dict[str, tuple[str, str | None, int]] = {
    "source": ("no adaptation", None, 0),
    "mcd_swd": ("MCD-SWD", "swd", 0),
    "mcd_l1": ("MCD-L1", "l1", 0),
    "mcd_pemd2": ("MCD-pEMD (2)", "pemd", 2),
    "mcd_pemd16": ("MCD-pEMD (16)", "pemd", 16),
    "mcd_pemd16_swd": ("MCD-pEMD (16) + SWD", "pemd+swd", 16),
    "oracle": ("oracle (target labels)", None, 0),
}

#: Display names of the paper experiment's reference rows (besides :data:`PAPER_METHODS`).
PAPER_REFERENCE_NAMES: dict[str, str] = {
    "identity": "no registration",
    "mind": "MIND patch baseline",
    "inverted": "no adaptation, moving inverted",
}

def _check_count(fn: str, name: str, v, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{fn} '{name}' must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{fn} '{name}' must be >= {minimum}, got {v!r}")


@dataclass(frozen=True)
class PaperConfig(_Settings):
    """Sizes and hyper-parameters of the paper experiment (``standard`` and ``quick`` profiles).

    Data: ``patch``-pixel patches, labels ``{-2s, -s, 0, s, 2s}^2`` with ``s = step``, the fixed
    slice deformed by at most ``deform`` pixels. ``n_train=None`` (the default): **fresh training
    pairs for every step** (:class:`data_utils.patches.PatchSampler`); an integer: a fixed pool of
    that many pairs per domain and seed (kept for the comparison in docs/paper.md). ``n_val`` and
    ``n_test`` pairs are fixed sets of other slices.

    Network (:class:`pemd_tutorial.model.ConcatNet`): ``extractor_channels`` of the four shared
    blocks, ``classifier_channels`` of each head, logits multiplied by ``logit_scale``.

    Training (the engine of :mod:`pemd_tutorial.training`, shared with the main job): ``lr``,
    ``batch_size``, ``source_steps``, ``adapt_steps`` (MCD iterations), ``oracle_steps``,
    ``num_k``, ``n_projections`` (SWD), ``lambdas`` (see :meth:`lambda_for`), ``seed``,
    ``val_every``, ``checkpoint_every``, ``device``.
    """

    _SEQUENCE_FIELDS: ClassVar[tuple[str, ...]] = ("extractor_channels", "classifier_channels",
                                                   "target_contrasts")

    patch: int = 36
    step: int = 4
    deform: float = 1.5
    n_train: int | None = None
    n_val: int = 500
    n_test: int = 500
    extractor_channels: tuple[int, ...] = (16, 16, 32, 16)
    classifier_channels: tuple[int, int] = (32, 64)
    logit_scale: float = 1.0
    batch_size: int = 32
    lr: float = 1e-3
    source_steps: int = 1500
    adapt_steps: int = 200
    oracle_steps: int = 1750
    num_k: int = 2
    n_projections: int = 128
    lambdas: dict[str, float] = field(default_factory=lambda: dict(PAPER_STANDARD_LAMBDAS))
    target_contrasts: tuple[str, ...] = ("t2",)
    device: str = "cpu"
    seed: int = 0
    val_every: int = 250
    checkpoint_every: int = 250

    def __post_init__(self):
        fn = "PaperConfig()"
        for name in ("patch", "step", "n_val", "n_test", "batch_size", "num_k", "n_projections"):
            _check_count(fn, name, getattr(self, name), 1)
        if self.n_train is not None:
            _check_count(fn, "n_train", self.n_train, self.batch_size)
        for name in ("source_steps", "adapt_steps", "oracle_steps", "seed", "val_every", "checkpoint_every"):
            _check_count(fn, name, getattr(self, name), 0)
        if self.patch % 4:
            raise ValueError(
                f"{fn} 'patch' must be a multiple of 4 (the network halves it twice after its stride-2 "
                f"extractor block), got {self.patch}"
            )
        for name in ("deform", "logit_scale", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{fn} '{name}' must be a number, got {type(v).__name__}")
        if not 0.0 <= self.deform < self.step:
            raise ValueError(
                f"{fn} 'deform' must be in [0, step) so that labels stay distinct, got {self.deform}"
            )
        if not self.logit_scale > 0 or not self.lr > 0:
            raise ValueError(f"{fn} 'logit_scale' and 'lr' must be > 0, got {self.logit_scale}, {self.lr}")
        if len(self.extractor_channels) != 4 or len(self.classifier_channels) != 2:
            raise ValueError(
                f"{fn} 'extractor_channels' must have 4 entries and 'classifier_channels' 2, got "
                f"{self.extractor_channels} and {self.classifier_channels}"
            )
        if not isinstance(self.lambdas, dict):
            raise TypeError(f"{fn} 'lambdas' must be a dict, got {type(self.lambdas).__name__}")
        rows = [m for m, (_, d, _) in PAPER_METHODS.items() if d is not None]
        for key, value in self.lambdas.items():
            contrast, sep, name = str(key).rpartition("/")
            if (sep and contrast not in PAPER_TARGET_CONTRASTS) or name not in (*DISCREPANCY_NAMES, *rows):
                raise ValueError(
                    f"{fn} 'lambdas' keys must be a discrepancy {list(DISCREPANCY_NAMES)} or a row "
                    f"{rows}, optionally prefixed by a target contrast and '/' (e.g. 'inter/mcd_swd'), "
                    f"got {key!r}"
                )
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not 0 <= value < float("inf"):
                raise ValueError(f"{fn} 'lambdas[{key!r}]' must be a finite number >= 0, got {value!r}")
        if not self.target_contrasts:
            raise ValueError(f"{fn} 'target_contrasts' must not be empty")
        for c in self.target_contrasts:
            if c not in PAPER_TARGET_CONTRASTS:
                raise ValueError(
                    f"{fn} 'target_contrasts' entries must be in {list(PAPER_TARGET_CONTRASTS)}, got {c!r}"
                )
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"{fn} 'device' is not a torch device: {self.device!r}") from err

    @property
    def grid(self) -> LabelGrid:
        """The 5x5 label grid ``{-2s, -s, 0, s, 2s}^2``."""
        return LabelGrid(radius=2, step=float(self.step))

    @property
    def control_spacing(self) -> int:
        """A patch pair is one control point: its spacing is the patch side."""
        return self.patch

    @classmethod
    def standard(cls, **overrides) -> PaperConfig:
        """The profile of ``python -m pemd_tutorial paper``, sized for a 2-core CPU (docs/paper.md)."""
        return cls(**overrides)

    @classmethod
    def quick(cls, **overrides) -> PaperConfig:
        """A smoke test for CI (under a minute); its numbers show nothing."""
        base = dict(n_val=100, n_test=250, source_steps=150, adapt_steps=40, oracle_steps=150,
                    val_every=50, checkpoint_every=50)
        return cls(**{**base, **overrides})

    def lam(self, discrepancy: str) -> float:
        """The plain weight of ``discrepancy`` (the key without a row or contrast)."""
        if discrepancy not in DISCREPANCY_NAMES:
            raise ValueError(
                f"PaperConfig.lam() 'discrepancy' must be one of {list(DISCREPANCY_NAMES)}, "
                f"got {discrepancy!r}"
            )
        if discrepancy not in self.lambdas:
            raise ValueError(f"PaperConfig 'lambdas' has no value for {discrepancy!r}")
        return float(self.lambdas[discrepancy])

    def lambda_for(self, method: str, contrast: str) -> float:
        """The step-B weight of row ``method`` on target ``contrast``.

        The most specific key of :attr:`lambdas` wins: ``"contrast/row"``, ``"row"``,
        ``"contrast/discrepancy"``, ``"discrepancy"``.

        Raises:
            ValueError: ``method`` is not an adaptation row, ``contrast`` not a target contrast, or
                no key gives it a value.
        """
        if contrast not in PAPER_TARGET_CONTRASTS:
            raise ValueError(
                f"PaperConfig.lambda_for() 'contrast' must be one of {list(PAPER_TARGET_CONTRASTS)}, "
                f"got {contrast!r}"
            )
        if method not in PAPER_METHODS or PAPER_METHODS[method][1] is None:
            rows = [m for m, (_, d, _) in PAPER_METHODS.items() if d is not None]
            raise ValueError(f"PaperConfig.lambda_for() 'method' must be one of {rows}, got {method!r}")
        disc = PAPER_METHODS[method][1]
        for key in (f"{contrast}/{method}", method, f"{contrast}/{disc}", disc):
            if key in self.lambdas:
                return float(self.lambdas[key])
        raise ValueError(f"PaperConfig 'lambdas' has no value for {method!r} on {contrast!r}")
