"""Patch pairs for the paper's own experiment: 25 displacement classes on a 5x5 grid.

The authors' talk slides (MIDL 2020) describe the experiment behind the paper's numbers as
"discrete patch-based registration (25 displacement classes)": a fixed patch and a moving patch
that is displaced by one of the 25 labels ``{-2s, -s, 0, s, 2s}^2``; a network classifies which.
:func:`make_patch_pairs` builds such pairs from the embedded slices:

* the **fixed patch** is cut from a T1w slice that was mildly deformed (a smooth random field of
  at most ``deform`` pixels) and given random intensity changes, around a random centre ``c``
  inside the brain;
* the **label** ``(i, j)`` is drawn so that every one of the 25 classes occurs equally often (the
  pairs are then shuffled), so "no registration" (always the zero label) scores exactly 1/25;
* the **moving patch** is cut from the undeformed moving slice (T1w in the source domain, the
  simulated T2w, intermediate-weighted or PD-weighted image in the target domain, with its own
  intensity changes) around ``c - d`` with ``d = s (i, j)``, so that the fixed patch at ``x``
  shows what the moving patch shows at ``x + d`` (the backward-warping convention of
  :mod:`data_utils.grid`), up to the mild deformation.

Moving contrasts (:data:`PATCH_CONTRASTS`): ``"t1"`` the real T1w template (source domain); ``"t2"``
(spin echo TR/TE 4000/100 ms: CSF > GM > WM, the T1w order reversed), ``"pd"`` (4000/15 ms:
CSF > GM > WM with little contrast) and ``"inter"``, an intermediate-weighted spin echo
(1500/20 ms: GM and WM almost equal, CSF darker), the mildest of the three: a network trained on
T1w still finds about half of the displacements it finds on T1w (docs/paper.md).

Labels are indices of :class:`data_utils.grid.LabelGrid` ``(radius=2, step=s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from data_utils.deform import random_deformation, warp
from data_utils.embedded import load_embedded
from data_utils.grid import LabelGrid
from data_utils.intensity import augment_intensity

__all__ = ["PATCH_CONTRASTS", "PATCH_EVALUATION_SEEDS", "SEQUENCES", "PatchPairs", "PatchSampler",
           "make_patch_pairs", "patch_grid"]

PATCH_CONTRASTS = ("t1", "t2", "pd", "inter")

#: Seeds of the paper experiment's fixed evaluation sets: ``(split, contrast) -> seed`` (``"target"`` =
#: any target contrast). The dense pairs have :data:`data_utils.pairs.EVALUATION_SEEDS`.
PATCH_EVALUATION_SEEDS = {("test", "target"): 3, ("test", "t1"): 4, ("val", "target"): 5, ("val", "t1"): 6}

#: Spin-echo ``(TR, TE)`` in ms of the simulated moving contrasts, and which simulation of
#: :func:`data_utils.embedded.load_embedded` carries it.
SEQUENCES: dict[str, tuple[str, tuple[float, float]]] = {
    "t2": ("t2", (4000.0, 100.0)),
    "pd": ("pd", (4000.0, 15.0)),
    "inter": ("pd", (1500.0, 20.0)),
}


def patch_grid(step: int) -> LabelGrid:
    """The 5x5 label grid ``{-2s, -s, 0, s, 2s}^2`` of the paper's experiment."""
    return LabelGrid(radius=2, step=float(step))


@dataclass
class PatchPairs:
    """``fixed``, ``moving`` ``(N, 1, P, P)`` float32; ``labels`` ``(N,)`` int64; ``grid``.

    ``moving_regions`` ``(N, P + 4s, P + 4s)`` holds the moving image around each pair (before its
    intensity changes), from which :meth:`candidates` cuts the 25 patches a classifier chooses
    between. ``labels`` is ``None`` for unlabelled pairs (:meth:`without_labels`).
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    labels: torch.Tensor | None
    grid: LabelGrid
    moving_regions: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.fixed.shape[0])

    def keys(self) -> tuple[str, ...]:
        """The keys of :meth:`batch` and of an item."""
        base = ("fixed", "moving", "mask")
        return base if self.labels is None else (*base, "labels", "inside")

    def batch(self, indices=None) -> dict[str, torch.Tensor]:
        """The pairs at ``indices`` (default all) in the layout of the training engine.

        A patch pair is a registration problem with **one control point**: ``labels``, ``mask``
        and ``inside`` have shape ``(B, 1, 1)`` (``mask`` and ``inside`` all ``True``), so the
        dense network's losses, metrics and loops (:mod:`pemd_tutorial.training`) apply unchanged.
        """
        idx = slice(None) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        fixed = self.fixed[idx]
        mask = torch.ones(fixed.shape[0], 1, 1, dtype=torch.bool)
        out = {"fixed": fixed, "moving": self.moving[idx], "mask": mask}
        if self.labels is not None:
            out["labels"] = self.labels[idx].view(-1, 1, 1)
            out["inside"] = mask.clone()
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([index]).items()}

    def without_labels(self) -> PatchPairs:
        """The same pairs without their labels (what adaptation may read of the target domain)."""
        return PatchPairs(self.fixed, self.moving, None, self.grid, self.moving_regions)

    def evaluation_view(self) -> PatchPairs:
        """The labelled pairs themselves (for evaluation and the oracle)."""
        if self.labels is None:
            raise ValueError("PatchPairs.evaluation_view(): these pairs carry no labels")
        return self

    def with_moving(self, transform) -> PatchPairs:
        """The same pairs with the moving patches (and the moving regions) replaced by ``transform(x)``,
        e.g. :func:`data_utils.intensity.invert_foreground`; labels are unchanged."""
        moving = transform(self.moving)
        if not isinstance(moving, torch.Tensor) or moving.shape != self.moving.shape:
            raise ValueError("PatchPairs.with_moving() 'transform' must return a tensor of the moving "
                             f"patches' shape {tuple(self.moving.shape)}")
        regions = None if self.moving_regions is None else transform(self.moving_regions[:, None])[:, 0]
        return PatchPairs(self.fixed, moving, self.labels, self.grid, regions)

    def candidates(self, k: int) -> torch.Tensor:
        """The 25 moving patches of pair ``k``, one per label (in label order): ``(25, P, P)``."""
        if self.moving_regions is None:
            raise ValueError("PatchPairs.candidates() needs the moving regions (made by make_patch_pairs)")
        reach = int(round(2 * self.grid.step))
        p = self.fixed.shape[-1]
        region = self.moving_regions[k]
        out = []
        for dx, dy in self.grid.displacements().round().long().tolist():
            out.append(region[reach - dy : reach - dy + p, reach - dx : reach - dx + p])
        return torch.stack(out)


class PatchSampler:
    """Draws patch pairs of one split and moving contrast on demand, with no per-pair Python loop.

    The slices, the brain mask and the table of admissible patch centres are prepared once, so
    that a training loop can draw **fresh pairs for every step** (new centre, slice, label, mild
    deformation and intensity changes) from a seeded generator: :meth:`draw` for a
    :class:`PatchPairs` of any size, :meth:`draw_batch` for the batch dict the training engine
    (:mod:`pemd_tutorial.training`) reads. The same generator state gives the same pairs, so a run
    stays bit-reproducible and resumes exactly from a checkpoint of the generator.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` of the embedded slices.
        moving_contrast: ``"t1"`` (source domain), ``"t2"``, ``"pd"`` or ``"inter"`` (target
            domains, :data:`SEQUENCES`).
        patch: patch side in pixels (of the 128x128 slices, 1.44 mm each).
        step: label spacing ``s`` in pixels.
        deform: bound of the mild deformation of the fixed slice in pixels (0: none).
        labelled: whether :meth:`draw_batch` returns the labels. A sampler of unlabelled target
            pairs (``labelled=False``) is what adaptation reads; it cannot leak a label.

    Raises:
        ValueError: an unknown split or contrast, a patch or step that does not fit the slices.
    """

    def __init__(
        self,
        split: str,
        moving_contrast: str,
        *,
        patch: int = 36,
        step: int = 4,
        deform: float = 1.5,
        labelled: bool = True,
    ):
        fn = "PatchSampler()"
        if moving_contrast not in PATCH_CONTRASTS:
            raise ValueError(
                f"{fn} 'moving_contrast' must be one of {list(PATCH_CONTRASTS)}, got {moving_contrast!r}"
            )
        for name, value in (("patch", patch), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn} '{name}' must be an integer >= 1, got {value!r}")
        if patch % 2:
            raise ValueError(f"{fn} 'patch' must be even (a centred patch), got {patch}")
        if not 0.0 <= deform < step:
            raise ValueError(f"{fn} 'deform' must be in [0, step) so that labels stay distinct, got {deform}")
        if not isinstance(labelled, bool):
            raise TypeError(f"{fn} 'labelled' must be a bool, got {type(labelled).__name__}")
        if moving_contrast == "t1":
            data = load_embedded(split, contrasts=("t1",))  # raises for an unknown split
            moving_image = data.images["t1"]
        else:
            sim, tr_te = SEQUENCES[moving_contrast]
            data = load_embedded(split, contrasts=("t1", sim), **{f"{sim}_tr_te": tr_te})
            moving_image = data.images[sim]
        size = data.images["t1"].shape[-1]
        margin = patch // 2 + 2 * step + 1
        if 2 * margin >= size:
            raise ValueError(f"{fn} patch {patch} with step {step} does not fit {size}x{size} slices")
        self.split, self.moving_contrast, self.labelled = split, moving_contrast, labelled
        self.patch, self.step, self.deform = patch, step, float(deform)
        self.grid = patch_grid(step)
        self.fixed_image = data.images["t1"]
        self.moving_image = moving_image
        # centres inside the brain, far enough from the border for every label: the flat pixel
        # indices of every slice, concatenated, with each slice's offset and count
        mask = data.mask.clone()
        mask[:, :margin] = False
        mask[:, -margin:] = False
        mask[:, :, :margin] = False
        mask[:, :, -margin:] = False
        flat = mask.flatten(1)
        self._counts = flat.sum(dim=1)
        if int(self._counts.min()) < 1:
            raise ValueError(f"{fn} a {split!r} slice has no admissible patch centre for patch {patch}")
        self._offsets = torch.cumsum(self._counts, 0) - self._counts
        self._centres = torch.nonzero(flat, as_tuple=True)[1]  # flat pixel index, slice by slice
        self._size = size

    def __len__(self) -> int:
        """Number of slices the pairs are cut from."""
        return int(self._counts.numel())

    def __repr__(self) -> str:
        return (f"PatchSampler(split={self.split!r}, moving_contrast={self.moving_contrast!r}, "
                f"patch={self.patch}, step={self.step}, deform={self.deform}, labelled={self.labelled})")

    def keys(self) -> tuple[str, ...]:
        """The keys of :meth:`draw_batch`."""
        base = ("fixed", "moving", "mask")
        return (*base, "labels", "inside") if self.labelled else base

    def draw(self, n_pairs: int, generator: torch.Generator, *, with_regions: bool = True) -> PatchPairs:
        """``n_pairs`` new pairs; classes balanced (``n_pairs`` a multiple of 25: exactly).

        Everything random comes from ``generator``, which advances. ``with_regions``: also keep
        the moving image around each pair (before intensity changes), for
        :meth:`PatchPairs.candidates`.
        """
        fn = "PatchSampler.draw()"
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
            raise ValueError(f"{fn} 'n_pairs' must be an integer >= 1, got {n_pairs!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{fn} 'generator' must be a torch.Generator, got {type(generator).__name__}")
        g, grid, patch, step = generator, self.grid, self.patch, self.step
        labels = torch.arange(n_pairs) % grid.n_labels
        labels = labels[torch.randperm(n_pairs, generator=g)]
        slice_idx = torch.randint(len(self), (n_pairs,), generator=g)
        count = self._counts[slice_idx]
        pick = (torch.rand(n_pairs, generator=g, dtype=torch.float64) * count).long().clamp_max(count - 1)
        flat = self._centres[self._offsets[slice_idx] + pick]
        centres = torch.stack([flat // self._size, flat % self._size], dim=1)
        # the fixed patch is cut with the reach of the mild deformation around it; both patches get
        # their intensity changes on the patch alone, with the bias field's smoothness of the
        # region that holds every displaced patch (so the crop changes the cost, not the data)
        half, reach = patch // 2, 2 * step
        region = patch + 2 * reach
        pad = math.ceil(self.deform) + 1 if self.deform > 0 else 0
        rows_f, cols_f = self._window(centres, half + pad, patch + 2 * pad)
        fixed = self.fixed_image[slice_idx[:, None, None], rows_f, cols_f][:, None]
        if self.deform > 0:
            side = patch + 2 * pad
            field = random_deformation(n_pairs, side, side, self.deform, smoothness=region / 2, generator=g,
                                       compute_dtype=torch.float32)
            fixed = warp(fixed, field)[:, :, pad : pad + patch, pad : pad + patch]
        d = grid.displacements()[labels].round().long()  # (N, 2) (dx, dy) in pixels
        rows_m, cols_m = self._window(centres - d.flip(1), half, patch)  # centred at c - d, (row, col)
        moving = self.moving_image[slice_idx[:, None, None], rows_m, cols_m][:, None]
        aug = dict(generator=g, bias_smoothness=region / 2, compute_dtype=torch.float32)
        fixed = augment_intensity(fixed, **aug)
        moving = augment_intensity(moving, **aug)
        regions = None
        if with_regions:
            rows_r, cols_r = self._window(centres, half + reach, region)
            regions = self.moving_image[slice_idx[:, None, None], rows_r, cols_r].contiguous()
        return PatchPairs(fixed.contiguous(), moving.contiguous(), labels, grid, regions)

    @staticmethod
    def _window(centres: torch.Tensor, before: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column indices ``(N, side, 1)``, ``(N, 1, side)`` of a square window per centre."""
        offs = torch.arange(side) - before
        return (centres[:, 0, None] + offs)[:, :, None], (centres[:, 1, None] + offs)[:, None, :]

    def draw_batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A training batch of new pairs as the engine reads it (:meth:`PatchPairs.batch`).

        Without ``labelled`` the dict has no ``labels`` and no ``inside``.
        """
        b = self.draw(batch_size, generator, with_regions=False).batch()
        return {k: b[k] for k in self.keys()}


def make_patch_pairs(
    split: str,
    moving_contrast: str,
    n_pairs: int,
    *,
    patch: int = 36,
    step: int = 4,
    deform: float = 1.5,
    seed: int = 0,
) -> PatchPairs:
    """A fixed set of patch pairs of one split (see the module docstring), e.g. a test set.

    ``PatchSampler(split, moving_contrast, ...).draw(n_pairs, torch.Generator().manual_seed(seed))``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` of the embedded slices.
        moving_contrast: ``"t1"`` (source domain), ``"t2"``, ``"pd"`` or ``"inter"`` (target
            domains, :data:`SEQUENCES`).
        n_pairs: number of pairs (a multiple of 25 gives exactly balanced classes).
        patch: patch side in pixels (of the 128x128 slices, 1.44 mm each).
        step: label spacing ``s`` in pixels.
        deform: bound of the mild deformation of the fixed slice in pixels (0: none).
        seed: everything random derives from it.

    Raises:
        ValueError: an unknown split or contrast, a patch or step that does not fit the slices.
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"make_patch_pairs() 'n_pairs' must be an integer >= 1, got {n_pairs!r}")
    sampler = PatchSampler(split, moving_contrast, patch=patch, step=step, deform=deform)
    return sampler.draw(n_pairs, torch.Generator().manual_seed(int(seed)))
