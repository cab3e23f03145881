"""What every figure module shares: the resolution, panel layout and array conversions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid

__all__ = ["DPI", "METHOD_COLOURS", "as_image", "histogram_extent", "histogram_image", "method_colour",
           "new_figure"]

#: One colour per method in every figure of the package (matplotlib's default cycle), so that a
#: method looks the same in the accuracy bars, the training curves and the notebooks.
METHOD_COLOURS: dict[str, str] = {
    "identity": "0.55", "mind": "C7", "source": "C0", "inverted": "C9", "mcd_l1": "C1", "mcd_swd": "C2",
    "mcd_pemd": "C3", "oracle": "C4", "mcd_pemd_shuffled": "C5",
    "mcd_pemd2": "C8", "mcd_pemd16": "C6", "mcd_pemd16_swd": "C3",
    "randomized": "olive", "synth": "teal", "synth_heldout": "darkslategray", "mind_loss": "sienna",
    "mcd_pemd_randomized": "darkred", "mcd_l1_randomized": "darkorange", "classical": "slateblue",
}


def method_colour(key: str, index: int = 0) -> str:
    """The colour of a method key (:data:`METHOD_COLOURS`), or the ``index``-th default colour."""
    return METHOD_COLOURS.get(key, f"C{index % 10}")

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
