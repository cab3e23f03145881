"""Registration pairs with displacement labels, for the source and the target domain.

Construction (so that the label convention of :mod:`data_utils.grid` holds exactly and no field
inversion is needed): for a slice ``s`` and a random smooth field ``u``

* ``fixed  = augment(warp(T1w(s), u))``, i.e. ``fixed(x) = T1w(s)(x + u(x))`` up to intensities,
* ``moving = augment(M(s))`` with ``M`` the moving contrast (T1w for the source domain, T2w for
  the target domain), **not** warped, with its own independent intensity augmentation.

So the fixed-image point ``x`` corresponds to the moving-image point ``x + u(x)`` and the true
label of a control point is ``grid.quantise(u)`` sampled with
:func:`data_utils.grid.at_control_points`.

Masks and out-of-grid displacements (what the keys mean):

* ``mask`` ``(Hc, Wc)`` bool: **foreground only**, the brain mask warped like the fixed image
  (``warp(mask, u) >= 0.5``) at the control points. It describes the fixed image, so it is
  visible in both domains.
* ``inside`` ``(Hc, Wc)`` bool: the true displacement lies within the label grid (no component
  more than half a step beyond ``R * step``). Such points keep the *clamped* border label in
  ``labels``; metrics and losses should use ``mask & inside``. With the default
  ``max_displacement = grid.max_displacement + grid.step / 2`` (half a step beyond the outer
  ring of labels, the largest such bound) every point is inside, since the fields are bounded per
  component; ``inside`` only matters for user-chosen larger bounds.

Hiding the target labels: a target :class:`PairDataset` stores ``labels``, ``displacement``,
``inside`` and the dense ``field`` apart from the training data; ``__getitem__`` and
:meth:`PairDataset.batch` never return them. Only :meth:`PairDataset.evaluation_view` (a plain
method, easy to monkeypatch in a test that proves training never calls it) gives an object whose
items include them. The dense ``field`` is in the evaluation view for both domains.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch.utils.data import Dataset

from data_utils.contrast import TISSUES
from data_utils.deform import random_deformation, warp
from data_utils.embedded import EmbeddedSlices, load_embedded, resize_images
from data_utils.grid import LabelGrid, at_control_points, check_control_spacing
from data_utils.intensity import augment_intensity

__all__ = [
    "PairDataset",
    "PairSampler",
    "make_pairs",
    "evaluation_pairs",
    "iterate_batches",
    "DOMAINS",
    "EVALUATION_SEEDS",
    "GROUND_TRUTH_KEYS",
]

DOMAINS = ("source", "target")
#: Keys that carry the true deformation; hidden from the training view of target pairs.
GROUND_TRUTH_KEYS = ("labels", "displacement", "inside")
#: Fixed seeds of the evaluation sets: every method is evaluated on the identical pairs.
EVALUATION_SEEDS = {"val": 1_000_003, "test": 2_000_003}


class PairDataset(Dataset):
    """Registration pairs generated up front and kept as tensors.

    Items are dicts of tensors: ``"fixed"``, ``"moving"`` ``(1, H, W)`` float32, ``"mask"``
    ``(Hc, Wc)`` bool, ``"slice_index"`` () int64, and for the source domain also ``"labels"``
    ``(Hc, Wc)`` int64, ``"displacement"`` ``(2, Hc, Wc)`` float32 (true ``(dx, dy)`` in pixels at
    the control points) and ``"inside"`` ``(Hc, Wc)`` bool. See the module docstring.

    Attributes:
        domain: ``"source"`` or ``"target"``.
        grid: the :class:`~data_utils.grid.LabelGrid` of the labels.
        control_spacing: control-point spacing in pixels.
        is_evaluation_view: ``True`` for the object returned by :meth:`evaluation_view`.
    """

    def __init__(
        self,
        domain: str,
        grid: LabelGrid,
        control_spacing: int,
        data: dict[str, torch.Tensor],
        hidden: dict[str, torch.Tensor] | None = None,
        is_evaluation_view: bool = False,
    ) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"PairDataset 'domain' must be one of {DOMAINS}, got {domain!r}")
        lengths = {int(v.shape[0]) for v in [*data.values(), *(hidden or {}).values()]}
        if len(lengths) != 1:
            raise ValueError(f"PairDataset 'data' tensors must share their first dimension, got {lengths}")
        self.domain = domain
        self.grid = grid
        self.control_spacing = control_spacing
        self.is_evaluation_view = is_evaluation_view
        self._data = dict(data)
        self._hidden = dict(hidden or {})
        self._n = lengths.pop()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self._data.items()}

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of every item (the hidden ones are not listed)."""
        return tuple(self._data)

    def batch(self, indices: Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Stacked items: same keys as an item, with a leading dimension ``N`` (all pairs if ``None``)."""
        if indices is None:
            return dict(self._data)
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[idx.to(v.device)] for k, v in self._data.items()}

    def evaluation_view(self) -> PairDataset:
        """The same pairs with the ground truth included: for evaluation and the explicit oracle only.

        Training code must never call this on target pairs (a test may monkeypatch it to raise).
        """
        return PairDataset(self.domain, self.grid, self.control_spacing, {**self._data, **self._hidden},
                           is_evaluation_view=True)

    def with_moving(self, transform) -> PairDataset:
        """The same pairs with every moving image replaced by ``transform(moving)``.

        ``transform`` maps the ``(N, 1, H, W)`` stack of moving images to a stack of the same shape,
        e.g. :func:`data_utils.intensity.invert_foreground`; labels and masks are unchanged.
        """
        moving = transform(self._data["moving"])
        if not isinstance(moving, torch.Tensor) or moving.shape != self._data["moving"].shape:
            raise ValueError("PairDataset.with_moving() 'transform' must return a tensor of the moving "
                             f"images' shape {tuple(self._data['moving'].shape)}")
        return PairDataset(self.domain, self.grid, self.control_spacing, {**self._data, "moving": moving},
                           self._hidden, is_evaluation_view=self.is_evaluation_view)

    def to(self, device) -> PairDataset:
        """A copy with every tensor on ``device``."""
        return PairDataset(
            self.domain, self.grid, self.control_spacing,
            {k: v.to(device) for k, v in self._data.items()},
            {k: v.to(device) for k, v in self._hidden.items()},
            is_evaluation_view=self.is_evaluation_view,
        )

    def __repr__(self) -> str:
        h, w = self._data["fixed"].shape[-2:]
        view = ", evaluation view" if self.is_evaluation_view else ""
        return (f"PairDataset(domain={self.domain!r}, n={self._n}, size={h}x{w}, grid={self.grid}, "
                f"control_spacing={self.control_spacing}, keys={list(self._data)}{view})")


def _slice_order(n_slices: int, n_pairs: int, generator: torch.Generator) -> torch.Tensor:
    """Slice of every pair: concatenated random permutations, so all slices are used evenly."""
    reps = -(-n_pairs // n_slices)
    return torch.cat([torch.randperm(n_slices, generator=generator) for _ in range(reps)])[:n_pairs]


class PairSampler:
    """Draws registration pairs of one domain on demand (fresh pairs for every training step).

    The slices are loaded and resized once; :meth:`draw` makes a :class:`PairDataset` of any size
    from a generator (:func:`make_pairs` is ``PairSampler(...).draw(n, Generator(seed))``, bit for
    bit), :meth:`draw_batch` the batch dict the training engine (:mod:`pemd_tutorial.training`)
    reads: for the target domain only ``fixed``, ``moving`` and ``mask`` (the labels are never
    handed out), for the source domain also ``labels`` and ``inside``. Same generator state, same
    pairs: a training run that draws from it stays reproducible and resumable.

    Arguments: as :func:`make_pairs` (without ``n_pairs`` and ``seed``).
    """

    def __init__(
        self,
        domain: str = "source",
        split: str = "train",
        grid: LabelGrid | None = None,
        control_spacing: int = 4,
        size: int = 64,
        max_displacement: float | None = None,
        moving_contrast: str | None = None,
        fixed_contrast: str = "t1",
        smoothness: float | None = None,
        augment: bool | dict = True,
        data: EmbeddedSlices | None = None,
        moving_transform=None,
        fold: int = 0,
    ):
        grid = LabelGrid(4, 2.0) if grid is None else grid
        if domain not in DOMAINS:
            raise ValueError(f"make_pairs() 'domain' must be one of {DOMAINS}, got {domain!r}")
        if not isinstance(grid, LabelGrid):
            raise TypeError(f"make_pairs() 'grid' must be a LabelGrid, got {type(grid).__name__}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"make_pairs() 'size' must be an integer >= 8, got {size!r}")
        check_control_spacing(size, size, control_spacing)
        if max_displacement is None:
            max_displacement = grid.max_displacement + grid.step / 2.0
        if not (max_displacement >= 0):
            raise ValueError(f"make_pairs() 'max_displacement' must be >= 0 pixels, got {max_displacement!r}")
        moving_contrast = moving_contrast or ("t1" if domain == "source" else "t2")
        if isinstance(augment, dict):
            aug_kwargs = augment
        elif isinstance(augment, bool):
            aug_kwargs = {} if augment else None
        else:
            raise TypeError(f"make_pairs() 'augment' must be a bool or a dict, got {type(augment).__name__}")
        if moving_transform is not None and not callable(moving_transform):
            raise TypeError(f"make_pairs() 'moving_transform' must be callable, got "
                            f"{type(moving_transform).__name__}")
        needs_tissues = bool(getattr(moving_transform, "needs_tissues", False))
        if data is None:
            contrasts = tuple(dict.fromkeys((fixed_contrast, moving_contrast)))
            data = load_embedded(split, contrasts=contrasts, size=size, with_tissues=needs_tissues, fold=fold)
        if needs_tissues and data.tissues is None:
            raise ValueError("make_pairs() 'moving_transform' needs tissue maps, but 'data' has none")
        for c in (fixed_contrast, moving_contrast):
            if c not in data.images:
                raise ValueError(f"make_pairs() contrast {c!r} is not in 'data' (has {sorted(data.images)})")
        self.domain, self.grid, self.control_spacing, self.size = domain, grid, control_spacing, size
        self.max_displacement = float(max_displacement)
        self.smoothness = size / 2 if smoothness is None else smoothness
        self._augment = aug_kwargs
        self._fixed = resize_images(data.images[fixed_contrast], size)
        self._moving = resize_images(data.images[moving_contrast], size)
        self._mask = resize_images(data.mask.float(), size)
        self._slice_index = data.slice_index
        self._labelled = domain == "source"
        self._transform = moving_transform
        self._tissues = None
        if needs_tissues:
            self._tissues = torch.stack([resize_images(data.tissues[t], size) for t in TISSUES], dim=1)

    def __len__(self) -> int:
        """Number of slices the pairs are made from."""
        return int(self._fixed.shape[0])

    def keys(self) -> tuple[str, ...]:
        """The keys of :meth:`draw_batch`."""
        visible = ("fixed", "moving", "mask")
        return (*visible, "labels", "inside") if self._labelled else visible

    def evaluation_view(self) -> PairSampler:
        """The same sampler handing out the labels too: for the explicit oracle only (as
        :meth:`PairDataset.evaluation_view`; training code must never call it on target pairs)."""
        view = copy.copy(self)
        view._labelled = True
        return view

    def draw(self, n_pairs: int, generator: torch.Generator) -> PairDataset:
        """``n_pairs`` new pairs (slices in turn, in random order), as a :class:`PairDataset`."""
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
            raise ValueError(f"make_pairs() 'n_pairs' must be a positive integer, got {n_pairs!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"PairSampler.draw() 'generator' must be a torch.Generator, "
                            f"got {type(generator).__name__}")
        g, size, cs = generator, self.size, self.control_spacing
        idx = _slice_order(len(self), n_pairs, g)
        field = random_deformation(n_pairs, size, size, self.max_displacement, self.smoothness, generator=g)
        fixed = warp(self._fixed[idx, None], field)
        mask = warp(self._mask[idx, None], field)[:, 0] >= 0.5
        moving = self._moving[idx, None].clone()
        if self._transform is not None:
            tissues = None if self._tissues is None else self._tissues[idx]
            moving = self._transform(moving, tissues, g)
        if self._augment is not None:
            fixed = augment_intensity(fixed, generator=g, **self._augment)
            moving = augment_intensity(moving, generator=g, **self._augment)
        disp = at_control_points(field, cs).contiguous()  # (N, 2, Hc, Wc)
        labels, inside = self.grid.quantise(disp)
        visible = {
            "fixed": fixed.float().contiguous(),
            "moving": moving.float().contiguous(),
            "mask": at_control_points(mask, cs).contiguous(),
            "slice_index": self._slice_index[idx].clone(),
        }
        truth = {"labels": labels, "displacement": disp.float(), "inside": inside}
        if self.domain == "source":
            return PairDataset(self.domain, self.grid, cs, {**visible, **truth}, {"field": field})
        return PairDataset(self.domain, self.grid, cs, visible, {**truth, "field": field})

    def draw_batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A training batch of new pairs: the tensors of :meth:`keys`, leading dimension ``batch_size``."""
        pairs = self.draw(batch_size, generator)
        b = (pairs.evaluation_view() if self._labelled else pairs).batch()
        return {k: b[k] for k in self.keys()}


def make_pairs(
    domain: str = "source",
    split: str = "train",
    n_pairs: int = 64,
    grid: LabelGrid | None = None,
    control_spacing: int = 4,
    size: int = 64,
    seed: int = 0,
    max_displacement: float | None = None,
    moving_contrast: str | None = None,
    fixed_contrast: str = "t1",
    smoothness: float | None = None,
    augment: bool | dict = True,
    data: EmbeddedSlices | None = None,
    moving_transform=None,
    fold: int = 0,
) -> PairDataset:
    """Generate ``n_pairs`` registration pairs deterministically from ``seed`` (see the module doc).

    Args:
        domain: ``"source"`` (labels visible) or ``"target"`` (labels only in the evaluation view).
        split: split of the embedded data (``"train"``, ``"val"``, ``"test"``); ignored if
            ``data`` is given.
        n_pairs: number of pairs (``>= 1``); slices are used in turn, in random order.
        grid: label grid; default ``LabelGrid(4, 2.0)``.
        control_spacing: control-point spacing in pixels; must divide ``size``.
        size: image side length in pixels.
        seed: seed of the ``torch.Generator`` used for slices, fields and intensities.
        max_displacement: bound on ``|dx|, |dy|`` in pixels; default
            ``grid.max_displacement + grid.step / 2``, the largest bound for which every true
            displacement still lies inside the grid.
        moving_contrast: default ``"t1"`` for the source domain, ``"t2"`` for the target domain.
        fixed_contrast: contrast of the fixed image (``"t1"``).
        smoothness: node spacing of the random fields in pixels; default ``size / 2`` (fields
            that would fold are scaled down, see :func:`data_utils.deform.random_deformation`).
        augment: ``True`` (default intensity changes), ``False`` (none) or a dict of keyword
            arguments for :func:`data_utils.intensity.augment_intensity`.
        data: slices to use instead of the embedded data (e.g. from
            :func:`data_utils.nifti.load_nifti_pair`); must contain both contrasts.
        moving_transform: ``None`` or a callable ``(moving (B, 1, H, W), tissues (B, 3, H, W) or
            None, generator) -> moving`` applied to the moving images before the augmentation, e.g.
            :class:`data_utils.contrast.RandomIntensityMap` (a ``needs_tissues`` attribute that is
            true loads the tissue maps).
        fold: which 8-slice block of the embedded data is the test split
            (:func:`data_utils.embedded.fold_splits`; 0: the shipped split); ignored if ``data`` is
            given.

    Returns:
        A :class:`PairDataset` on the CPU.

    Example:
        >>> pairs = make_pairs("target", "val", n_pairs=4, size=32)
        >>> sorted(pairs[0]), "labels" in pairs.evaluation_view()[0]
        (['fixed', 'mask', 'moving', 'slice_index'], True)
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"make_pairs() 'n_pairs' must be a positive integer, got {n_pairs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"make_pairs() 'seed' must be an integer, got {seed!r}")
    sampler = PairSampler(domain, split, grid, control_spacing, size, max_displacement, moving_contrast,
                          fixed_contrast, smoothness, augment, data, moving_transform, fold)
    return sampler.draw(n_pairs, torch.Generator().manual_seed(seed))


def evaluation_pairs(
    domain: str,
    split: str = "val",
    n_pairs: int = 128,
    **kwargs,
) -> PairDataset:
    """The fixed evaluation set of a domain and split (seed :data:`EVALUATION_SEEDS` ``[split]``).

    Every method is evaluated on these identical pairs. Use ``"val"`` for choosing
    hyper-parameters (e.g. lambda) and ``"test"`` only for the final table. Other keyword
    arguments go to :func:`make_pairs` (``seed`` and ``split`` are fixed here).
    """
    if split not in EVALUATION_SEEDS:
        raise ValueError(
            f"evaluation_pairs() 'split' must be one of {tuple(EVALUATION_SEEDS)}, got {split!r}"
        )
    if "seed" in kwargs:
        raise ValueError("evaluation_pairs() takes no 'seed': the evaluation seeds are fixed")
    return make_pairs(domain=domain, split=split, n_pairs=n_pairs, seed=EVALUATION_SEEDS[split], **kwargs)


def iterate_batches(
    pairs: PairDataset, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True
) -> Iterable[dict[str, torch.Tensor]]:
    """Yield :meth:`PairDataset.batch` dicts of ``batch_size`` pairs (last one may be smaller)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"iterate_batches() 'batch_size' must be a positive integer, got {batch_size!r}")
    order = torch.randperm(len(pairs), generator=generator) if shuffle else torch.arange(len(pairs))
    for start in range(0, len(pairs), batch_size):
        yield pairs.batch(order[start : start + batch_size])
