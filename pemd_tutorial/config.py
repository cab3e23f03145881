"""One configuration object for data sizes, the network, training and adaptation.

:class:`Config` carries every size and hyper-parameter of the main job, the notebooks and the
tests. It is JSON-serialisable (:meth:`Config.to_dict` / :meth:`Config.from_dict`) so results can
record it next to the numbers. Three profiles exist:

* :meth:`Config.standard`: the default everywhere (``python -m pemd_tutorial``, ``make main``,
  notebook 03, the shipped networks): all methods and 3 seeds in about 10 minutes on 2 CPU cores,
  long enough for the adaptation to show;
* :meth:`Config.quick`: a smoke test for continuous integration (about a minute on 2 CPU cores);
  too short for any method to separate;
* :meth:`Config.full`: a larger profile for a GPU, opt-in only; it has never been run end to end,
  so its run time and its results are unmeasured.

The dataclass defaults are the quick profile's values.

The weights ``lambdas`` of step B of maximum classifier discrepancy are **per discrepancy**, chosen
on the target *validation* split by ``benchmarks/tune_lambda.py`` (protocol in its docstring,
measured grids in ``benchmarks/results/lambda_*.json``; never the test split). The discrepancies
are normalised as described in :func:`pemd_tutorial.discrepancies.scaled_discrepancy` (L1 as a total
variation in [0, 1], SWD x L/2, projected EMD in label steps).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from data_utils.grid import LabelGrid, check_control_spacing

__all__ = ["DISCREPANCY_NAMES", "FULL_LAMBDAS", "QUICK_LAMBDAS", "STANDARD_LAMBDAS", "Config"]

#: Names accepted by ``adapt(..., discrepancy=...)`` and as keys of :attr:`Config.lambdas`.
DISCREPANCY_NAMES = ("l1", "swd", "pemd")

# Chosen for the standard profile on the target *validation* split by benchmarks/tune_lambda.py
# (seeds 0 and 1, 400 source steps, 200 adaptation steps; benchmarks/results/lambda_standard.json).
# Mean target validation accuracy (source-only 1.4 %):
#   L1   0.3: 5.0   1: 11.4   2: 17.5   3: 15.9   5: 8.7   10: 4.3 %
#   SWD  0.03 to 10: 1.4-1.5 % (flat: no lambda adapts it; 1 is the nominal best by 0.1 point)
#   pEMD 0.1: 14.4  0.2: 22.3  0.3: 29.5  0.5: 31.5  0.7: 29.5 (not eligible)  1: 22.3 % (not eligible)
# Not eligible: the source validation accuracy fell more than 10 points (pEMD 0.7: -10.8, 1: -24.1).
STANDARD_LAMBDAS = {"l1": 2.0, "swd": 1.0, "pemd": 0.5}
# The quick smoke profile and the untested full profile use the same values.
QUICK_LAMBDAS = dict(STANDARD_LAMBDAS)
FULL_LAMBDAS = dict(STANDARD_LAMBDAS)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass
class Config:
    """Every size and hyper-parameter of the pipeline.

    Data (see :func:`data_utils.make_pairs`):
        image_size: side of the square images in pixels (``H = W``).
        radius: label-grid radius ``R`` (``L = (2R + 1)^2`` labels).
        label_step: label spacing in pixels.
        control_spacing: control-point spacing in pixels (must divide ``image_size``);
            ``Hc = Wc = image_size // control_spacing``.
        n_train_pairs, n_val_pairs, n_test_pairs: pairs per split and domain.
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
    """

    image_size: int = 48
    radius: int = 4
    label_step: float = 2.0
    control_spacing: int = 4
    n_train_pairs: int = 96
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

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.lambdas = dict(self.lambdas)
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is wrong."""
        for name in ("image_size", "radius", "control_spacing", "head_channels", "batch_size", "num_k",
                     "n_projections"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"Config '{name}' must be an integer >= 1, got {v!r}")
        for name in ("n_train_pairs", "n_val_pairs", "n_test_pairs", "source_steps", "adapt_steps",
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
        """The step-B weight of ``discrepancy`` (``ValueError`` for an unknown name)."""
        if discrepancy not in DISCREPANCY_NAMES:
            raise ValueError(
                f"'discrepancy' must be one of {list(DISCREPANCY_NAMES)}, got {discrepancy!r}"
            )
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
        10 minutes on 2 CPU cores, with the adaptation effect visible."""
        base = dict(
            image_size=48, control_spacing=4, channels=(8, 16), head_channels=32,
            n_train_pairs=1024, n_val_pairs=64, n_test_pairs=64,
            batch_size=16, lr=1e-3, source_steps=400, adapt_steps=200, oracle_steps=600, num_k=3,
            val_every=50, device="cpu", checkpoint_every=100, lambdas=dict(STANDARD_LAMBDAS),
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

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["lambdas"] = dict(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"Config.from_dict() got unknown fields {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)
