r"""The discrepancies between two classifiers as the adaptation loop uses them, and as ``nn.Module``\ s.

:mod:`pemd_tutorial.emd` holds the maths (pure functions on tensors). This module adds what training
needs on top:

* :data:`DISCREPANCIES`: one calling convention for the three, ``D(p, q, *, grid_shape, ...)``;
* :func:`scaled_discrepancy`: each one normalised to a comparable scale, so one log grid of
  ``lambda`` fits all three (docs/method.md §5);
* ``torch.nn.Module`` twins, :class:`L1Discrepancy`, :class:`SlicedWassersteinDiscrepancy` and
  :class:`ProjectedEMD`, with a ``reduction`` argument like torch's losses, for use in other code;

(The comparison of notebook 02, :func:`kl_divergence` and :func:`shift_curves`, is in
:mod:`pemd_tutorial.shifts`.)

The modules drop into any maximum-classifier-discrepancy loop. A minimal one, not this package's,
on random features with a 5x5 label grid:

>>> import torch
>>> from torch import nn
>>> from pemd_tutorial.discrepancies import ProjectedEMD
>>> _ = torch.manual_seed(0)
>>> G, F1, F2 = nn.Linear(8, 16), nn.Linear(16, 25), nn.Linear(16, 25)
>>> opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
>>> opt_f = torch.optim.Adam([*F1.parameters(), *F2.parameters()], lr=1e-3)
>>> discrepancy = ProjectedEMD(grid_shape=(5, 5))            # 4 angles, in label steps
>>> xs, ys, xt = torch.randn(32, 8), torch.randint(25, (32,)), torch.randn(32, 8)
>>> ce = nn.CrossEntropyLoss()
>>> for _ in range(3):
...     for o in (opt_g, opt_f): o.zero_grad()              # A: both heads learn the source labels
...     f = G(xs); (ce(F1(f), ys) + ce(F2(f), ys)).backward(); opt_g.step(); opt_f.step()
...     opt_f.zero_grad()                                   # B: heads disagree on the target
...     fs, ft = G(xs).detach(), G(xt).detach()
...     d = discrepancy(F1(ft).softmax(1), F2(ft).softmax(1))
...     (ce(F1(fs), ys) + ce(F2(fs), ys) - d).backward(); opt_f.step()
...     opt_g.zero_grad()                                   # C: G makes them agree (F1, F2 not stepped)
...     ft = G(xt); discrepancy(F1(ft).softmax(1), F2(ft).softmax(1)).backward(); opt_g.step()
>>> bool(torch.isfinite(d)) and d.item() >= 0
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn

from data_utils.grid import LabelGrid
from pemd_tutorial.emd import (
    check_reduction,
    l1_discrepancy,
    projected_emd,
    sliced_wasserstein_discrepancy,
)

__all__ = [
    "BASE_DISCREPANCIES",
    "DISCREPANCIES",
    "DISCREPANCY_NAMES",
    "SCALED_DISCREPANCIES",
    "SWD_RESCALE",
    "ScaledDiscrepancy",
    "L1Discrepancy",
    "ProjectedEMD",
    "SlicedWassersteinDiscrepancy",
    "scaled_discrepancy",
    "shuffled_labels",
]


# --------------------------------------------------------------------------------------------
# One calling convention for the adaptation loop
# --------------------------------------------------------------------------------------------


def _l1_entry(p, q, *, grid_shape, step=1.0, generator=None, validate=True, n_projections=128, angles=None):
    return l1_discrepancy(p, q, validate=validate)


def _swd_entry(p, q, *, grid_shape, step=1.0, generator=None, validate=True, n_projections=128, angles=None):
    return sliced_wasserstein_discrepancy(
        p, q, n_projections=n_projections, generator=generator, validate=validate
    )


def _pemd_entry(p, q, *, grid_shape, step=1.0, generator=None, validate=True, n_projections=128, angles=None):
    kw = {} if angles is None else {"angles": angles}
    return projected_emd(p, q, grid_shape, step=step, reduction="mean", validate=validate, **kw)


#: ``DISCREPANCIES[name](p, q, *, grid_shape, step=1.0, generator=None, validate=True,
#: n_projections=128, angles=None)`` -> 0-dim tensor, for ``p, q`` of shape ``(M, L)`` (all control
#: points of a batch, rows sum to one). ``"l1"``: :func:`l1_discrepancy`; ``"swd"``:
#: :func:`sliced_wasserstein_discrepancy` (``n_projections`` directions from ``generator``);
#: ``"pemd"``: :func:`projected_emd` (``angles``, default its 4 angles; mean). Keywords an entry
#: does not need are ignored, so the adaptation loop calls all three alike.
DISCREPANCIES: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType(
    {"l1": _l1_entry, "swd": _swd_entry, "pemd": _pemd_entry}
)


@functools.lru_cache(maxsize=8)
def shuffled_labels(n_labels: int, seed: int = 0) -> torch.Tensor:
    """The fixed permutation of the ``"pemd_shuffled"`` control: label ``perm[k]`` is put at grid
    position ``k`` (a seeded ``torch.randperm``; the same in every run, made once per size: the
    training loop asks for it at every step). Do not modify the returned tensor."""
    return torch.randperm(n_labels, generator=torch.Generator().manual_seed(seed))


def _scaled_entry(name: str) -> Callable[..., torch.Tensor]:
    """:data:`DISCREPANCIES` ``[name]`` on the label grid, scaled as :func:`scaled_discrepancy` says."""

    def fn(p, q, grid: LabelGrid, *, n_projections=128, generator=None, angles=None) -> torch.Tensor:
        # step=1.0: projected EMD in label steps; L1 and SWD scaled by L / 2 (scaled_discrepancy)
        value = DISCREPANCIES[name](p, q, grid_shape=grid.shape, step=1.0, generator=generator,
                                    validate=False, n_projections=n_projections, angles=angles)
        return value if name == "pemd" else value * (grid.n_labels / 2.0)

    return fn


_scaled_l1, _scaled_swd, _scaled_pemd = (_scaled_entry(name) for name in ("l1", "swd", "pemd"))


def _scaled_pemd_swd(p, q, grid: LabelGrid, **kw) -> torch.Tensor:
    return _scaled_pemd(p, q, grid, **kw) + _scaled_swd(p, q, grid, **kw)


def _scaled_pemd_shuffled(p, q, grid: LabelGrid, *, angles=None, **kw) -> torch.Tensor:
    perm = shuffled_labels(grid.n_labels).to(p.device)
    return _scaled_pemd(p[:, perm], q[:, perm], grid, angles=angles)


#: The factor of the ``"swd_rescaled"`` control: about the ratio of the projected EMD's gradient
#: into G in step C to SWD's, measured over the last 20 iterations of the main job's seed-0 runs
#: (393x, ``benchmarks/discrepancy_gradients.py``).
SWD_RESCALE = 400.0


def _scaled_swd_rescaled(p, q, grid: LabelGrid, **kw) -> torch.Tensor:
    return SWD_RESCALE * _scaled_swd(p, q, grid, **kw)


@dataclass(frozen=True)
class ScaledDiscrepancy:
    """One entry of :data:`SCALED_DISCREPANCIES`: the function and whether it takes ``angles``."""

    fn: Callable[..., torch.Tensor]
    takes_angles: bool
    description: str


#: Every discrepancy the adaptation loop knows, by name (the one table: ``Config.lambdas`` keys,
#: ``adapt(discrepancy=...)`` and :func:`scaled_discrepancy` read it). Adding a discrepancy is one
#: function ``(p, q, grid, *, n_projections, generator, angles) -> 0-dim tensor`` and one entry here.
SCALED_DISCREPANCIES: Mapping[str, ScaledDiscrepancy] = MappingProxyType({
    "l1": ScaledDiscrepancy(_scaled_l1, False, "total variation (Saito's L1 x L / 2)"),
    "swd": ScaledDiscrepancy(_scaled_swd, False, "Lee et al.'s sliced Wasserstein discrepancy x L / 2"),
    "pemd": ScaledDiscrepancy(_scaled_pemd, True, "projected EMD in label steps"),
    "pemd+swd": ScaledDiscrepancy(_scaled_pemd_swd, True, "projected EMD + SWD (the paper's best row)"),
    "pemd_shuffled": ScaledDiscrepancy(_scaled_pemd_shuffled, True,
                                       "projected EMD on a shuffled label grid (a control)"),
    "swd_rescaled": ScaledDiscrepancy(_scaled_swd_rescaled, False,
                                      "SWD x SWD_RESCALE, with SWD's λ / SWD_RESCALE (a control)"),
})
#: The names of :data:`SCALED_DISCREPANCIES`.
DISCREPANCY_NAMES = tuple(SCALED_DISCREPANCIES)
#: The three discrepancies of the main job (the functions of :data:`DISCREPANCIES`).
BASE_DISCREPANCIES = ("l1", "swd", "pemd")


def scaled_discrepancy(
    name: str,
    p: torch.Tensor,
    q: torch.Tensor,
    grid: LabelGrid,
    *,
    n_projections: int = 128,
    generator: torch.Generator | None = None,
    angles: Sequence[float] | None = None,
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
      grows linearly with the distance (L1 and SWD saturate); ``angles`` chooses other lines;
    * ``"pemd+swd"``: the sum of the two above, each weighted 1 (the paper's best row);
    * ``"pemd_shuffled"``: a control, the projected EMD of both rows with their labels put at
      **shuffled grid positions** (:func:`shuffled_labels`, one fixed permutation): the same
      histograms, the geometry scrambled. If the projected EMD helps because distant peaks cost
      more, this control should fall back towards L1;
    * ``"swd_rescaled"``: a control, ``"swd"`` times :data:`SWD_RESCALE` (400). Its step-B weight is
      SWD's λ divided by the same factor (:meth:`pemd_tutorial.config.Config.lam`), so step B is
      MCD-SWD's and only step C, where G minimises D itself, gets a gradient 400 times larger. If
      SWD fails to adapt because its gradient into G is tiny, this control should adapt.

    The scaling only makes one λ grid fit all three (docs/method.md §5); it changes no minimiser.
    Inputs are not validated beyond their shapes (this is the training loop's hot path).

    Args:
        name: ``"l1"``, ``"swd"``, ``"pemd"``, ``"pemd+swd"``, ``"pemd_shuffled"`` or ``"swd_rescaled"``.
        p, q: ``(M, L)`` probabilities of the two heads.
        grid: the label grid (its shape and ``L``).
        n_projections: directions of SWD.
        generator: random source of SWD's directions.
        angles: the projected EMD's lines in degrees, in ``[0, 180)`` (default: its 4 angles).

    Returns:
        A 0-dim tensor on ``p``'s device, differentiable.
    """
    if name not in SCALED_DISCREPANCIES:
        raise ValueError(
            f"scaled_discrepancy() 'name' must be one of {list(SCALED_DISCREPANCIES)}, got {name!r}"
        )
    if not isinstance(grid, LabelGrid):
        raise TypeError(f"scaled_discrepancy() 'grid' must be a LabelGrid, got {type(grid).__name__}")
    if p.dim() != 2 or p.shape[1] != grid.n_labels or q.shape != p.shape:
        raise ValueError(
            f"scaled_discrepancy() 'p' and 'q' must both have shape (M, {grid.n_labels}), got "
            f"{tuple(p.shape)} and {tuple(q.shape)}"
        )
    return SCALED_DISCREPANCIES[name].fn(p, q, grid, n_projections=n_projections, generator=generator,
                                         angles=angles)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class L1Discrepancy(nn.Module):
    """Saito et al.'s discrepancy as a module: ``|p - q|`` averaged over the labels of each row.

    ``forward(p, q)`` with ``p, q`` of shape ``(..., L)`` (probabilities along the last axis)
    returns the per-row means reduced by ``reduction``: ``"mean"`` (the default, equal to
    :func:`pemd_tutorial.emd.l1_discrepancy`), ``"sum"`` or ``"none"`` (shape ``p.shape[:-1]``).

    Example:
        >>> p, q = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> float(L1Discrepancy()(p, q))
        1.0
    """

    def __init__(self, reduction: str = "mean", *, validate: bool = True):
        super().__init__()
        check_reduction(reduction, "L1Discrepancy")
        self.reduction = reduction
        self.validate = validate

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return l1_discrepancy(p, q, validate=self.validate, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class SlicedWassersteinDiscrepancy(nn.Module):
    """Lee et al.'s sliced Wasserstein discrepancy as a module.

    The module form of :func:`pemd_tutorial.emd.sliced_wasserstein_discrepancy`.

    ``forward(p, q)`` with ``p, q`` of shape ``(M, L)``: ``n_projections`` random directions drawn
    from ``generator`` at every call. ``reduction``: ``"mean"`` (over directions and sorted rows,
    the function's value), ``"sum"`` (over directions of the per-direction means) or ``"none"``
    (one value per direction, shape ``(n_projections,)``).
    """

    def __init__(
        self,
        n_projections: int = 128,
        reduction: str = "mean",
        *,
        generator: torch.Generator | None = None,
        validate: bool = True,
    ):
        super().__init__()
        if isinstance(n_projections, bool) or not isinstance(n_projections, int):
            raise TypeError(
                "SlicedWassersteinDiscrepancy() 'n_projections' must be an int, "
                f"got {type(n_projections).__name__}"
            )
        if n_projections < 1:
            raise ValueError(
                f"SlicedWassersteinDiscrepancy() 'n_projections' must be >= 1, got {n_projections}"
            )
        self.n_projections = n_projections
        check_reduction(reduction, "SlicedWassersteinDiscrepancy")
        self.reduction = reduction
        self.generator = generator
        self.validate = validate

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return sliced_wasserstein_discrepancy(
            p, q, self.n_projections, self.generator, validate=self.validate, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"n_projections={self.n_projections}, reduction={self.reduction!r}"


class ProjectedEMD(nn.Module):
    """The projected Earth Mover's distance as a module (:func:`~pemd_tutorial.emd.projected_emd`).

    Args:
        grid_shape: ``(H, W)`` of the label grid (or ``(D, H, W)``).
        angles: projection angles in degrees (default 0, 45, 90, 135), or 3D directions.
        step: label spacing; the result is in these units (1: label steps; pixels: pixels).
        reduction: ``"mean"`` over histograms, ``"sum"``, or ``"none"`` (one value each).
        validate: check the inputs at every call (``False`` in hot loops).

    Example:
        >>> p = torch.zeros(1, 9, 9); p[0, 4, 4] = 1
        >>> q = torch.zeros(1, 9, 9); q[0, 4, 7] = 1  # three labels along +x
        >>> float(ProjectedEMD((9, 9), angles=[0.0], step=2.0)(p, q))
        6.0
    """

    def __init__(
        self,
        grid_shape: Sequence[int],
        angles=None,
        step: float = 1.0,
        reduction: str = "mean",
        *,
        validate: bool = True,
    ):
        super().__init__()
        self.grid_shape = tuple(grid_shape)
        self.angles = angles
        self.step = step
        check_reduction(reduction, "ProjectedEMD")
        self.reduction = reduction
        self.validate = validate
        # checks the arguments once, at construction
        projected_emd(
            torch.full((1, math.prod(self.grid_shape)), 1.0 / math.prod(self.grid_shape)),
            torch.full((1, math.prod(self.grid_shape)), 1.0 / math.prod(self.grid_shape)),
            self.grid_shape,
            angles,
            step,
        )

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return projected_emd(
            p, q, self.grid_shape, self.angles, self.step, self.reduction, validate=self.validate
        )

    def extra_repr(self) -> str:
        return (
            f"grid_shape={self.grid_shape}, angles={self.angles}, step={self.step}, "
            f"reduction={self.reduction!r}"
        )
