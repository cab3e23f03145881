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

Moving contrasts (:data:`CONTRASTS`): ``"t1"`` the real T1w template (source domain); ``"t2"``
(spin echo TR/TE 4000/100 ms: CSF > GM > WM, the T1w order reversed), ``"pd"`` (4000/15 ms:
CSF > GM > WM with little contrast) and ``"inter"``, an intermediate-weighted spin echo
(1500/20 ms: GM and WM almost equal, CSF darker), the mildest of the three: a network trained on
T1w still finds about half of the displacements it finds on T1w (docs/paper.md).

Labels are indices of :class:`data_utils.grid.LabelGrid` ``(radius=2, step=s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from data_utils.deform import random_deformation, warp
from data_utils.embedded import load_embedded
from data_utils.grid import LabelGrid
from data_utils.intensity import augment_intensity

__all__ = ["CONTRASTS", "SEQUENCES", "PatchPairs", "make_patch_pairs", "patch_grid"]

CONTRASTS = ("t1", "t2", "pd", "inter")

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

    ``moving_regions`` ``(N, P + 4s, P + 4s)`` holds the moving image around each pair, from which
    :meth:`candidates` cuts the 25 patches a classifier chooses between.
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    labels: torch.Tensor
    grid: LabelGrid
    moving_regions: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

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
    """Patch pairs of one split (see the module docstring).

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
    fn = "make_patch_pairs()"
    if moving_contrast not in CONTRASTS:
        raise ValueError(f"{fn} 'moving_contrast' must be one of {list(CONTRASTS)}, got {moving_contrast!r}")
    for name, value in (("n_pairs", n_pairs), ("patch", patch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn} '{name}' must be an integer >= 1, got {value!r}")
    if patch % 2:
        raise ValueError(f"{fn} 'patch' must be even (a centred patch), got {patch}")
    if not 0.0 <= deform < step:
        raise ValueError(f"{fn} 'deform' must be in [0, step) so that labels stay distinct, got {deform}")
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
    g = torch.Generator().manual_seed(int(seed))
    grid = patch_grid(step)
    labels = torch.arange(n_pairs) % grid.n_labels
    labels = labels[torch.randperm(n_pairs, generator=g)]
    slice_idx = torch.randint(len(data), (n_pairs,), generator=g)
    # centres inside the brain, far enough from the border for every label
    mask = data.mask.clone()
    mask[:, :margin] = False
    mask[:, -margin:] = False
    mask[:, :, :margin] = False
    mask[:, :, -margin:] = False
    centres = torch.empty(n_pairs, 2, dtype=torch.long)
    for k in range(n_pairs):
        rows, cols = torch.nonzero(mask[slice_idx[k]], as_tuple=True)
        pick = int(torch.randint(rows.numel(), (1,), generator=g))
        centres[k] = torch.stack([rows[pick], cols[pick]])
    # work on a region around each centre that holds every displaced patch (cheap augmentation)
    half, reach = patch // 2, 2 * step
    region = patch + 2 * reach
    offs = torch.arange(region) - (half + reach)
    n = torch.arange(n_pairs)[:, None, None]
    rows = (centres[:, 0, None] + offs)[:, :, None]
    cols = (centres[:, 1, None] + offs)[:, None, :]
    t1 = data.images["t1"][slice_idx[:, None, None], rows, cols][:, None]  # (N, 1, R, R)
    moving_region = moving_image[slice_idx[:, None, None], rows, cols][:, None]
    if deform > 0:
        t1 = warp(t1, random_deformation(n_pairs, region, region, deform, smoothness=region / 2, generator=g))
    fixed_region = augment_intensity(t1, generator=g)
    moving_region = augment_intensity(moving_region, generator=g)
    d = grid.displacements()[labels].round().long()  # (N, 2) (dx, dy) in pixels
    inner = (torch.arange(patch) + reach)[None, :]
    r0, c0 = inner[:, :, None], inner[:, None, :]
    fixed = fixed_region[n, 0, r0, c0]
    moving = moving_region[n, 0, r0 - d[:, 1, None, None], c0 - d[:, 0, None, None]]
    return PatchPairs(fixed[:, None].contiguous(), moving[:, None].contiguous(), labels, grid,
                      moving_region[:, 0].contiguous())
