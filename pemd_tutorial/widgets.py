"""Widget callbacks of the tutorials: ``interact(Explorer(...).show, slider=...)``.

Each ``*Explorer`` holds the data of one widget; its ``show`` method is what
``ipywidgets.interact`` calls with a slider's value: it draws with a function of
:mod:`pemd_tutorial.figures`, calls ``plt.show()`` and keeps what it drew in ``last_figure`` (and
the numbers behind it) for the notebook's checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid, peak_histogram
from pemd_tutorial.figures import (
    histogram_image,
    plot_distributions,
    plot_modalities,
    plot_projection,
    plot_shift_curves,
    projected_histogram,
)
from pemd_tutorial.shifts import default_shift_start

__all__ = ["ControlPointExplorer", "ProjectionExplorer", "ShiftExplorer", "SliceExplorer"]


class ProjectionExplorer:
    """Widget callback: ``interact(ProjectionExplorer(p, grid).show, angle=IntSlider(...))``.

    Each call draws :func:`plot_projection` at the new angle and shows it; ``last_figure`` and
    ``last_projection`` (``(positions, masses)``) hold what was drawn.
    """

    def __init__(self, p: torch.Tensor, grid: LabelGrid):
        histogram_image(p, grid)  # validates the shape
        self.p = p
        self.grid = grid
        self.last_figure: Figure | None = None
        self.last_projection: tuple[np.ndarray, np.ndarray] | None = None

    def show(self, angle: float = 0.0) -> None:
        self.last_projection = projected_histogram(self.p, self.grid, float(angle))
        self.last_figure = plot_projection(self.p, self.grid, float(angle))
        plt.show()


class ShiftExplorer:
    """Widget callback: moves the peak ``q`` by ``shift`` pixels and shows p, q and the curves.

    ``curves`` comes from :func:`pemd_tutorial.shifts.shift_curves` with the same ``grid``, ``start``
    and ``width``; the slider value snaps to the nearest computed shift, whose values are kept in
    ``last_values``.
    """

    def __init__(
        self,
        grid: LabelGrid,
        curves: Mapping[str, np.ndarray],
        start: Sequence[float] | None = None,
        width: float | None = None,
    ):
        self.grid = grid
        self.curves = curves
        self.start = tuple(start) if start is not None else default_shift_start(grid)
        self.width = width
        self.last_figure: Figure | None = None
        self.last_values: dict[str, float] | None = None

    def show(self, shift: float = 0.0) -> None:
        x = self.curves["shift"]
        i = int(np.argmin(np.abs(x - shift)))
        self.last_values = {k: float(v[i]) for k, v in self.curves.items()}
        p = peak_histogram(self.grid, self.start, self.width)
        q = peak_histogram(self.grid, (self.start[0] + x[i], self.start[1]), self.width)
        self.last_figure = plot_shift_curves(self.curves, current=float(x[i]), pair=(p, q), grid=self.grid)
        plt.show()


class SliceExplorer:
    """Widget callback: ``interact(SliceExplorer({"T1w": t1, ...}).show, index=IntSlider(...))``.

    Args:
        volumes: name -> a stack of slices ``(S, H, W)`` (or ``(S, 1, H, W)``); all with equal ``S``.
    """

    def __init__(self, volumes: Mapping[str, torch.Tensor | np.ndarray]):
        sizes = {name: len(v) for name, v in volumes.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"SliceExplorer 'volumes' must have the same number of slices, got {sizes}")
        self.volumes = volumes
        self.n_slices = next(iter(sizes.values()))
        self.last_figure: Figure | None = None

    def show(self, index: int = 0) -> None:
        if not 0 <= index < self.n_slices:
            raise ValueError(f"SliceExplorer 'index' must lie in [0, {self.n_slices}), got {index}")
        self.last_figure = plot_modalities(
            {k: v[index] for k, v in self.volumes.items()}, title=f"slice {index}"
        )
        plt.show()


class ControlPointExplorer:
    """Widget callback: pick a control point ``(row, col)`` and see every prediction's histogram there.

    Args:
        distributions: name -> ``(L, Hc, Wc)`` probabilities (e.g. F1/F2 before/after adaptation).
        grid: the label grid.
        truth: optional ``(2, Hc, Wc)`` true displacement at the control points (pixels).
    """

    def __init__(
        self, distributions: Mapping[str, torch.Tensor], grid: LabelGrid, truth: torch.Tensor | None = None
    ):
        self.distributions = distributions
        self.grid = grid
        self.truth = truth
        self.last_figure: Figure | None = None

    def show(self, row: int = 0, col: int = 0) -> None:
        self.last_figure = plot_distributions(self.distributions, self.grid, [(row, col)], self.truth)
        plt.show()
