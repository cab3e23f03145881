"""What every figure module shares: the resolution, panel layout and array conversions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid

__all__ = ["DPI", "as_image", "histogram_extent", "histogram_image", "new_figure"]

#: Resolution of saved figures and of the figures in the notebooks.
DPI = 100


def histogram_image(p: torch.Tensor | np.ndarray, grid: LabelGrid, name: str = "p") -> np.ndarray:
    """A label histogram ``(L,)`` or ``(2R+1, 2R+1)`` as a float64 array ``(2R+1, 2R+1)``."""
    arr = p.detach().cpu().double().numpy() if isinstance(p, torch.Tensor) else np.asarray(p, float)
    if arr.shape == (grid.n_labels,):
        arr = arr.reshape(grid.shape)
    if arr.shape != grid.shape:
        raise ValueError(
            f"'{name}' must have shape ({grid.n_labels},) or {grid.shape} for this label grid, "
            f"got {tuple(arr.shape)}"
        )
    return arr


def histogram_extent(grid: LabelGrid) -> tuple[float, float, float, float]:
    """imshow extent in pixels with ``y`` pointing down: ``(left, right, bottom, top)``."""
    e = grid.max_displacement + grid.step / 2.0
    return (-e, e, e, -e)


def new_figure(ncols: int, nrows: int = 1, size: float = 2.6, **kw) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` square panels of ``size`` inches; axes always a 2D array."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, **kw)
    return fig, axes


def as_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 2D image (singleton axes dropped) as a numpy array; anything else is a ``ValueError``."""
    arr = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D image (singleton axes allowed), got shape {tuple(np.shape(x))}")
    return arr
