"""Tiny synthetic pair datasets with the structure of ``data_utils.make_pairs`` (for the model and
training tests; made here, nothing downloaded).

Fixed image = a smooth random image warped by a random smooth displacement ``u`` (backward
warping, :mod:`data_utils.grid`); moving = the unwarped image (source) or a non-linear intensity
remapping of it (target, a stand-in for another contrast). The true label at a control point is
``quantise(u(c))``. Target datasets return no labels except through ``evaluation_view()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_utils.grid import LabelGrid, at_control_points


def _smooth(x: torch.Tensor, passes: int) -> torch.Tensor:
    c = x.shape[1]
    k = torch.ones(c, 1, 5, 5, dtype=x.dtype) / 25.0
    for _ in range(passes):
        x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)
    return x


def _warp(image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``warped(x) = image(x + field(x))`` in pixels, align_corners=False."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype),
                            indexing="ij")
    x = xs + field[:, 0]
    y = ys + field[:, 1]
    g = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    return F.grid_sample(image, g, mode="bilinear", padding_mode="border", align_corners=False)


class SyntheticPairs:
    """A PairDataset look-alike: ``ds[i]``, ``len(ds)``, ``ds.batch(indices)``, ``evaluation_view()``."""

    def __init__(self, domain: str, n_pairs: int, grid: LabelGrid, control_spacing: int = 4, size: int = 32,
                 seed: int = 0, max_displacement: float | None = None):
        g = torch.Generator().manual_seed(seed)
        self.domain, self.grid, self.control_spacing = domain, grid, control_spacing
        img = _smooth(torch.rand(n_pairs, 1, size, size, generator=g), 2)
        img = (img - img.amin((-2, -1), keepdim=True)) / (img.amax((-2, -1), keepdim=True)
                                                         - img.amin((-2, -1), keepdim=True))
        md = grid.max_displacement if max_displacement is None else max_displacement
        u = _smooth(torch.randn(n_pairs, 2, size, size, generator=g), 4)
        u = u / u.abs().amax((-3, -2, -1), keepdim=True) * md
        fixed = _warp(img, u)
        moving = img if domain == "source" else torch.sin(3.0 * img) ** 2
        labels, inside = grid.quantise(at_control_points(u, control_spacing))
        mask = at_control_points(fixed[:, 0] > 0.1, control_spacing)
        self._data = {"fixed": fixed, "moving": moving, "mask": mask, "labels": labels, "inside": inside,
                      "displacement": at_control_points(u, control_spacing)}
        self._labelled = domain == "source"

    def __len__(self) -> int:
        return self._data["fixed"].shape[0]

    def _keys(self):
        return list(self._data) if self._labelled else ["fixed", "moving", "mask"]

    def __getitem__(self, i: int) -> dict:
        return {k: self._data[k][i] for k in self._keys()}

    def batch(self, indices=None) -> dict:
        idx = torch.arange(len(self)) if indices is None else torch.as_tensor(list(indices))
        return {k: self._data[k][idx] for k in self._keys()}

    def evaluation_view(self) -> SyntheticPairs:
        view = object.__new__(SyntheticPairs)
        view.__dict__.update(self.__dict__)
        view._labelled = True
        return view
