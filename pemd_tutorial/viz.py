"""Plots and widget callbacks for the tutorial notebooks.

Everything here is plain matplotlib on tensors (or arrays): a ``plot_*`` function draws and returns
its :class:`~matplotlib.figure.Figure` (the caller shows or saves it), and the ``*Explorer`` classes
hold the data of a widget, and their ``show`` method is what ``ipywidgets.interact`` calls with a
slider value: it draws, calls ``plt.show()`` and keeps what it drew in ``last_figure`` (and the
numbers behind it) for the notebook's checks.

Conventions are those of :mod:`data_utils.grid`: a label histogram has shape ``(L,)`` or
``(2R + 1, 2R + 1)`` with the last axis along ``x`` and the second-last along ``y``; displacements are
``(dx, dy)`` in pixels. Histograms are drawn like image patches: ``x`` to the right, ``y`` **down**,
so a projection angle ``theta`` (0 along ``x``, 90 degrees along ``y``) turns clockwise on screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid
from pemd_tutorial.emd import exact_emd, project_histogram, projected_emd

__all__ = [
    "ControlPointExplorer",
    "ProjectionExplorer",
    "ShiftExplorer",
    "SliceExplorer",
    "kl_divergence",
    "peak_histogram",
    "plot_control_point_distributions",
    "plot_correlation",
    "plot_cumsums",
    "plot_displacement_field",
    "plot_histogram",
    "plot_modalities",
    "plot_projection",
    "plot_projection_angles",
    "plot_projection_pair",
    "plot_results",
    "plot_shift_curves",
    "project",
    "shift_curves",
    "spearman",
]


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _as_grid_image(p: torch.Tensor | np.ndarray, grid: LabelGrid, name: str = "p") -> np.ndarray:
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


def _extent(grid: LabelGrid) -> tuple[float, float, float, float]:
    """imshow extent in pixels with ``y`` pointing down: ``(left, right, bottom, top)``."""
    e = grid.max_displacement + grid.step / 2.0
    return (-e, e, e, -e)


def _new_figure(ncols: int, nrows: int = 1, size: float = 2.6, **kw) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, **kw)
    return fig, axes


def peak_histogram(
    grid: LabelGrid,
    center: Sequence[float] = (0.0, 0.0),
    width: float | None = None,
    kind: str = "tent",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A single peaked distribution over the labels, like a confident network output.

    .. math::

        p_k \\propto \\kappa(d_k - c), \\qquad
        \\kappa_{\\text{tent}}(u) = \\prod_{a \\in \\{x, y\\}} \\max(0, 1 - |u_a| / w), \\qquad
        \\kappa_{\\text{gauss}}(u) = e^{-\\|u\\|^2 / (2 w^2)}

    The tent has compact support (radius ``w``), so two tents whose centres are ``2 w`` apart do
    not overlap at all; that is what makes L1 and KL saturate in notebook 02.

    Args:
        grid: the label grid.
        center: ``(dx, dy)`` in pixels; may fall between labels.
        width: ``w`` in pixels (default ``1.5 * step``), ``> 0``.
        kind: ``"tent"`` or ``"gaussian"``.
        dtype: floating dtype of the result.

    Returns:
        ``(L,)`` probabilities summing to one.
    """
    if width is None:
        width = 1.5 * grid.step
    if not width > 0:
        raise ValueError(f"peak_histogram() 'width' must be > 0 pixels, got {width!r}")
    if kind not in ("tent", "gaussian"):
        raise ValueError(f"peak_histogram() 'kind' must be 'tent' or 'gaussian', got {kind!r}")
    if len(center) != 2:
        raise ValueError(f"peak_histogram() 'center' must be (dx, dy), got {center!r}")
    u = grid.displacements(dtype=dtype) - torch.tensor([float(c) for c in center], dtype=dtype)
    if kind == "tent":
        w = (1.0 - u.abs() / width).clamp_min(0.0).prod(dim=1)
    else:
        w = torch.exp(-(u**2).sum(dim=1) / (2.0 * width**2))
    if float(w.sum()) <= 0.0:
        raise ValueError(f"peak_histogram() 'center' {tuple(center)} lies too far outside the grid")
    return w / w.sum()


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``KL(p || q)`` over the last axis with ``q`` mixed with a uniform floor ``eps``.

    .. math:: \\mathrm{KL}(p \\| q) = \\sum_k p_k \\log \\frac{p_k}{(1 - \\epsilon) q_k + \\epsilon / L}

    The floor stands in for a softmax that is never exactly zero; it is why KL between two
    non-overlapping peaks is finite (and then constant) instead of infinite.
    """
    if p.shape != q.shape:
        raise ValueError(f"kl_divergence() 'p' and 'q' must have the same shape, got {p.shape}, {q.shape}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"kl_divergence() 'eps' must lie in (0, 1), got {eps!r}")
    qq = (1.0 - eps) * q + eps / q.shape[-1]
    terms = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-300)) - torch.log(qq)), torch.zeros_like(p))
    return terms.sum(dim=-1)


def project(p: torch.Tensor, grid: LabelGrid, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """1D projection of a label histogram onto the line at ``angle_deg``: ``(positions, masses)``.

    A thin wrapper of :func:`pemd_tutorial.emd.project_histogram` (the geometry that
    :func:`~pemd_tutorial.emd.projected_emd` uses) returning float64 numpy arrays of shape ``(n,)``:
    the sorted distinct positions in pixels along ``(cos theta, sin theta)`` and the mass at each.
    """
    hist = torch.as_tensor(_as_grid_image(p, grid)).reshape(-1)
    pos, mass = project_histogram(hist, grid.shape, float(angle_deg), grid.step)
    return pos.double().numpy(), mass.double().numpy()


# ----------------------------------------------------------------------------------------------
# histograms and projections (notebook 01)
# ----------------------------------------------------------------------------------------------
def plot_histogram(
    ax: Axes,
    p: torch.Tensor | np.ndarray,
    grid: LabelGrid,
    title: str | None = None,
    cmap: str = "magma",
    vmax: float | None = None,
    mark: Sequence[float] | None = None,
):
    """Draw a label histogram on ``ax`` as a ``(2R+1) x (2R+1)`` image in pixel units.

    Args:
        ax: target axes.
        p: ``(L,)`` or ``(2R+1, 2R+1)`` probabilities.
        grid: the label grid (for the extent in pixels).
        title: optional axes title.
        cmap: colour map.
        vmax: upper colour limit (default: the maximum of ``p``).
        mark: optional ``(dx, dy)`` to mark with a cross (e.g. the true displacement).

    Returns:
        The :class:`~matplotlib.image.AxesImage`.
    """
    img = _as_grid_image(p, grid)
    im = ax.imshow(img, cmap=cmap, extent=_extent(grid), vmin=0.0, vmax=vmax or float(img.max()) or 1.0,
                   interpolation="nearest")
    ax.set_xlabel("dx (px)")
    ax.set_ylabel("dy (px)")
    if mark is not None:
        ax.plot([mark[0]], [mark[1]], marker="x", color="cyan", markersize=8, mew=2)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _draw_direction(ax: Axes, grid: LabelGrid, angle_deg: float, color: str = "white") -> None:
    r = grid.max_displacement
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    ax.plot([-r * c, r * c], [-r * s, r * s], color=color, lw=1.2, ls="--")
    ax.annotate("", xy=(r * c, r * s), xytext=(0.55 * r * c, 0.55 * r * s),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5})


def _stem(ax: Axes, pos: np.ndarray, mass: np.ndarray, color: str, label: str | None = None,
          offset: float = 0.0) -> None:
    ax.vlines(pos + offset, 0.0, mass, color=color, lw=2.0, label=label)
    ax.plot(pos + offset, mass, "o", color=color, markersize=3)


def plot_projection(p: torch.Tensor, grid: LabelGrid, angle_deg: float) -> Figure:
    """The histogram with the projection line, and its 1D projection at ``angle_deg``.

    Left: ``p`` on the label grid with the direction ``(cos theta, sin theta)``. Right: the mass
    that lands at each projected position ``<d_k, (cos theta, sin theta)>`` (equal positions merged).
    """
    pos, mass = project(p, grid, angle_deg)
    fig, axes = _new_figure(2, size=3.0)
    plot_histogram(axes[0, 0], p, grid, title=f"2D label histogram, θ = {angle_deg:g}°")
    _draw_direction(axes[0, 0], grid, angle_deg)
    _stem(axes[0, 1], pos, mass, "C0")
    lim = grid.max_displacement * math.sqrt(2.0) + grid.step
    axes[0, 1].set_xlim(-lim, lim)
    axes[0, 1].set_ylim(0.0, max(float(mass.max()) * 1.15, 1e-3))
    axes[0, 1].set_xlabel("position on the line (px)")
    axes[0, 1].set_ylabel("mass")
    axes[0, 1].set_title(f"1D projection ({pos.size} positions)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_projection_angles(p: torch.Tensor, grid: LabelGrid, angles: Sequence[float]) -> Figure:
    """One histogram projected at several angles: the histogram, then one 1D plot per angle."""
    if len(angles) == 0:
        raise ValueError("plot_projection_angles() 'angles' must not be empty")
    fig, axes = _new_figure(len(angles) + 1, size=2.4)
    plot_histogram(axes[0, 0], p, grid, title="p")
    for i, a in enumerate(angles):
        _draw_direction(axes[0, 0], grid, a, color=f"C{i}")
        pos, mass = project(p, grid, a)
        ax = axes[0, i + 1]
        _stem(ax, pos, mass, f"C{i}")
        ax.set_title(f"θ = {a:g}°", fontsize=9)
        ax.set_xlabel("px")
    fig.tight_layout()
    return fig


def plot_projection_pair(p: torch.Tensor, q: torch.Tensor, grid: LabelGrid, angle_deg: float) -> Figure:
    """Two histograms side by side and their projections at ``angle_deg`` on common axes."""
    pp, mp = project(p, grid, angle_deg)
    pq, mq = project(q, grid, angle_deg)
    vmax = float(max(_as_grid_image(p, grid).max(), _as_grid_image(q, grid).max()))
    fig, axes = _new_figure(3, size=2.8)
    plot_histogram(axes[0, 0], p, grid, title="p", vmax=vmax)
    plot_histogram(axes[0, 1], q, grid, title="q", vmax=vmax)
    for ax in axes[0, :2]:
        _draw_direction(ax, grid, angle_deg)
    dx = 0.08 * grid.step
    _stem(axes[0, 2], pp, mp, "C0", "p", -dx)
    _stem(axes[0, 2], pq, mq, "C1", "q", dx)
    axes[0, 2].legend(fontsize=8)
    axes[0, 2].set_title(f"projections at θ = {angle_deg:g}°", fontsize=9)
    axes[0, 2].set_xlabel("position on the line (px)")
    fig.tight_layout()
    return fig


class ProjectionExplorer:
    """Widget callback: ``interact(ProjectionExplorer(p, grid).show, angle=IntSlider(...))``.

    Each call draws :func:`plot_projection` at the new angle and shows it; ``last_figure`` and
    ``last_projection`` (``(positions, masses)``) hold what was drawn.
    """

    def __init__(self, p: torch.Tensor, grid: LabelGrid):
        _as_grid_image(p, grid)  # validates the shape
        self.p = p
        self.grid = grid
        self.last_figure: Figure | None = None
        self.last_projection: tuple[np.ndarray, np.ndarray] | None = None

    def show(self, angle: float = 0.0) -> None:
        self.last_projection = project(self.p, self.grid, float(angle))
        self.last_figure = plot_projection(self.p, self.grid, float(angle))
        plt.show()


# ----------------------------------------------------------------------------------------------
# cumulative sums, saturation, correlation (notebook 02)
# ----------------------------------------------------------------------------------------------
def plot_cumsums(positions: np.ndarray, a: np.ndarray, b: np.ndarray, labels: tuple[str, str] = ("a", "b"),
                 ) -> Figure:
    """Two 1D distributions on the same sorted support, their cumulative sums and the area between.

    The shaded area is ``sum_j |C_a(j) - C_b(j)| (x_{j+1} - x_j)``, the 1D EMD.

    Args:
        positions: ``(n,)`` sorted support points.
        a, b: ``(n,)`` masses (each summing to one).
        labels: legend names.
    """
    x = np.asarray(positions, float)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if x.ndim != 1 or a.shape != x.shape or b.shape != x.shape:
        raise ValueError(
            f"plot_cumsums() 'positions', 'a', 'b' must be 1D of equal length, got "
            f"{x.shape}, {a.shape}, {b.shape}"
        )
    if np.any(np.diff(x) < 0):
        raise ValueError("plot_cumsums() 'positions' must be sorted")
    ca, cb = np.cumsum(a), np.cumsum(b)
    fig, axes = _new_figure(2, size=3.2)
    w = 0.35 * (np.min(np.diff(x)) if x.size > 1 else 1.0)
    axes[0, 0].bar(x - w / 2, a, width=w, label=labels[0])
    axes[0, 0].bar(x + w / 2, b, width=w, label=labels[1])
    axes[0, 0].set_title("masses", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].step(x, ca, where="post", label=f"C_{labels[0]}")
    axes[0, 1].step(x, cb, where="post", label=f"C_{labels[1]}")
    axes[0, 1].fill_between(x, ca, cb, step="post", color="grey", alpha=0.35, label="|C_a − C_b|")
    axes[0, 1].set_title("cumulative sums; area = EMD", fontsize=9)
    axes[0, 1].legend(fontsize=8)
    for ax in axes[0]:
        ax.set_xlabel("position (px)")
    fig.tight_layout()
    return fig


def _default_start(grid: LabelGrid) -> tuple[float, float]:
    """Where :func:`shift_curves` puts the fixed peak by default: one label in from the left edge."""
    return (-grid.max_displacement + grid.step, 0.0)


def shift_curves(
    grid: LabelGrid,
    shifts: Sequence[float],
    start: Sequence[float] | None = None,
    direction_deg: float = 0.0,
    width: float | None = None,
    angles: Sequence[float] = (0.0, 45.0, 90.0, 135.0),
) -> dict[str, np.ndarray]:
    """L1, KL and EMD between a fixed peak and the same peak moved by each shift.

    ``p`` is a tent peak (:func:`peak_histogram`) at ``start``; ``q`` is the same peak at
    ``start + s (cos phi, sin phi)``. Returns a dict of ``(S,)`` arrays: ``"shift"``, ``"l1"``
    (``sum |p - q|``, at most 2), ``"kl"`` (:func:`kl_divergence`), ``"projected_emd"``
    (:func:`pemd_tutorial.emd.projected_emd` at ``angles``, pixels) and ``"exact_emd"``
    (:func:`pemd_tutorial.emd.exact_emd`, pixels).
    """
    if len(shifts) == 0:
        raise ValueError("shift_curves() 'shifts' must not be empty")
    if start is None:
        start = _default_start(grid)
    c, s = math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))
    p = peak_histogram(grid, start, width)
    qs = torch.stack([peak_histogram(grid, (start[0] + t * c, start[1] + t * s), width) for t in shifts])
    ps = p.expand_as(qs)
    pe = projected_emd(ps, qs, grid.shape, angles=angles, step=grid.step, reduction="none")
    ex = exact_emd(ps.contiguous(), qs, grid.shape, step=grid.step)
    return {
        "shift": np.asarray(shifts, float),
        "l1": (ps - qs).abs().sum(dim=-1).numpy(),
        "kl": kl_divergence(ps, qs).numpy(),
        "projected_emd": pe.detach().double().numpy().reshape(-1),
        "exact_emd": ex.double().numpy().reshape(-1),
    }


def _overlay(p: torch.Tensor, q: torch.Tensor, grid: LabelGrid) -> np.ndarray:
    """``p`` in red and ``q`` in blue as one RGB image ``(2R+1, 2R+1, 3)`` (overlap shows magenta)."""
    rgb = np.zeros((*grid.shape, 3))
    rgb[..., 0] = _as_grid_image(p, grid, "p") / max(float(p.max()), 1e-12)
    rgb[..., 2] = _as_grid_image(q, grid, "q") / max(float(q.max()), 1e-12)
    return rgb


def plot_shift_curves(
    curves: Mapping[str, np.ndarray],
    current: float | None = None,
    pair: tuple[torch.Tensor, torch.Tensor] | None = None,
    grid: LabelGrid | None = None,
) -> Figure:
    """L1, KL and EMD against the shift of the peak (the output of :func:`shift_curves`).

    Args:
        curves: dict with ``"shift"``, ``"l1"``, ``"kl"``, ``"exact_emd"``, ``"projected_emd"``.
        current: optional shift to mark with a vertical line.
        pair: optional ``(p, q)`` histograms drawn first (p red, q blue); needs ``grid``.
        grid: the label grid of ``pair``.
    """
    missing = {"shift", "l1", "kl", "exact_emd", "projected_emd"} - set(curves)
    if missing:
        raise ValueError(f"plot_shift_curves() 'curves' lacks {sorted(missing)}")
    if pair is not None and grid is None:
        raise ValueError("plot_shift_curves() 'grid' is needed to draw 'pair'")
    x = curves["shift"]
    first = 0 if pair is None else 1
    fig, axes = _new_figure(3 + first, size=2.7)
    if pair is not None:
        axes[0, 0].imshow(_overlay(pair[0], pair[1], grid), extent=_extent(grid), interpolation="nearest")
        axes[0, 0].set_title("p (red), q (blue)", fontsize=9)
        axes[0, 0].set_xlabel("dx (px)")
        axes[0, 0].set_ylabel("dy (px)")
    ax_l1, ax_kl, ax_emd = axes[0, first:]
    ax_l1.plot(x, curves["l1"], "o-", color="C0")
    ax_l1.set_title("L1 = Σ|p − q|", fontsize=9)
    ax_kl.plot(x, curves["kl"], "o-", color="C1")
    ax_kl.set_title("KL(p‖q)", fontsize=9)
    ax_emd.plot(x, curves["exact_emd"], "o-", color="C2", label="exact 2D EMD")
    ax_emd.plot(x, curves["projected_emd"], "s--", color="C3", label="projected EMD")
    ax_emd.set_title("EMD (px)", fontsize=9)
    ax_emd.legend(fontsize=7)
    for ax in (ax_l1, ax_kl, ax_emd):
        ax.set_xlabel("shift of q (px)")
        if current is not None:
            ax.axvline(current, color="grey", lw=1, ls=":")
    fig.tight_layout()
    return fig


class ShiftExplorer:
    """Widget callback: moves the peak ``q`` by ``shift`` pixels and shows p, q and the curves.

    ``curves`` comes from :func:`shift_curves` with the same ``grid``, ``start`` and ``width``; the
    slider value snaps to the nearest computed shift, whose values are kept in ``last_values``.
    """

    def __init__(self, grid: LabelGrid, curves: Mapping[str, np.ndarray],
                 start: Sequence[float] | None = None, width: float | None = None):
        self.grid = grid
        self.curves = curves
        self.start = tuple(start) if start is not None else _default_start(grid)
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


def plot_correlation(reference: np.ndarray, approximations: Mapping[str, np.ndarray],
                     reference_name: str = "exact EMD (px)") -> Figure:
    """Scatter of each approximation against the reference with its Spearman rank correlation.

    Args:
        reference: ``(N,)`` reference values (e.g. exact 2D EMD).
        approximations: name -> ``(N,)`` values.
        reference_name: x-axis label.
    """
    ref = np.asarray(reference, float).reshape(-1)
    if len(approximations) == 0:
        raise ValueError("plot_correlation() 'approximations' must not be empty")
    fig, axes = _new_figure(len(approximations), size=3.0)
    for ax, (name, vals) in zip(axes[0], approximations.items(), strict=True):
        v = np.asarray(vals, float).reshape(-1)
        if v.shape != ref.shape:
            raise ValueError(
                f"plot_correlation() '{name}' has {v.shape[0]} values, 'reference' {ref.shape[0]}"
            )
        ax.scatter(ref, v, s=6, alpha=0.6)
        ax.set_title(f"{name}\nSpearman ρ = {spearman(ref, v):.3f}", fontsize=9)
        ax.set_xlabel(reference_name)
    fig.tight_layout()
    return fig


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties) of two equally long 1D arrays."""
    a, b = np.asarray(a, float).reshape(-1), np.asarray(b, float).reshape(-1)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"spearman() needs two arrays of equal length >= 2, got {a.shape}, {b.shape}")

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty_like(x)
        r[order] = np.arange(x.size, dtype=float)
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return sums[inv] / counts[inv]

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


# ----------------------------------------------------------------------------------------------
# data, predictions and results (notebooks 03 and 04)
# ----------------------------------------------------------------------------------------------
def _img(x: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D image (singleton axes allowed), got shape {tuple(np.shape(x))}")
    return arr


def plot_modalities(images: Mapping[str, torch.Tensor | np.ndarray], title: str | None = None) -> Figure:
    """Images side by side (e.g. ``{"T1w": ..., "T2w": ..., "GM": ...}``), grey scale, no axes."""
    if len(images) == 0:
        raise ValueError("plot_modalities() 'images' must not be empty")
    fig, axes = _new_figure(len(images), size=2.5)
    for ax, (name, im) in zip(axes[0], images.items(), strict=True):
        ax.imshow(_img(im), cmap="gray", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


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
        self.last_figure = plot_modalities({k: v[index] for k, v in self.volumes.items()},
                                           title=f"slice {index}")
        plt.show()


def plot_control_point_distributions(
    distributions: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    point: tuple[int, int],
    truth: Sequence[float] | None = None,
    ncols: int | None = None,
) -> Figure:
    """Label histograms of several predictions at one control point, on a common colour scale.

    Args:
        distributions: name -> probabilities of shape ``(L, Hc, Wc)`` (one image of a batch).
        grid: the label grid.
        point: ``(row, col)`` index of the control point.
        truth: optional true ``(dx, dy)`` in pixels, marked with a cross.
        ncols: panels per row (default: all in one row).
    """
    if len(distributions) == 0:
        raise ValueError("plot_control_point_distributions() 'distributions' must not be empty")
    hists = {}
    for name, probs in distributions.items():
        if probs.dim() != 3 or probs.shape[0] != grid.n_labels:
            raise ValueError(
                f"plot_control_point_distributions() '{name}' must have shape ({grid.n_labels}, Hc, Wc), "
                f"got {tuple(probs.shape)}"
            )
        r, c = point
        if not (0 <= r < probs.shape[1] and 0 <= c < probs.shape[2]):
            raise ValueError(
                f"plot_control_point_distributions() 'point' {point} is outside {tuple(probs.shape[1:])}"
            )
        hists[name] = probs[:, r, c]
    vmax = max(float(h.max()) for h in hists.values())
    n = len(hists)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = _new_figure(ncols, nrows, size=2.4)
    for ax in axes.reshape(-1)[n:]:
        ax.axis("off")
    for ax, (name, h) in zip(axes.reshape(-1), hists.items(), strict=False):
        plot_histogram(ax, h, grid, title=name, vmax=vmax, mark=truth)
    fig.tight_layout()
    return fig


class ControlPointExplorer:
    """Widget callback: pick a control point ``(row, col)`` and see every prediction's histogram.

    Args:
        distributions: name -> ``(L, Hc, Wc)`` probabilities (e.g. F1/F2 before/after adaptation).
        grid: the label grid.
        truth: optional ``(2, Hc, Wc)`` true displacement at the control points (pixels).
        ncols: panels per row.
    """

    def __init__(self, distributions: Mapping[str, torch.Tensor], grid: LabelGrid,
                 truth: torch.Tensor | None = None, ncols: int | None = None):
        self.distributions = distributions
        self.grid = grid
        self.truth = truth
        self.ncols = ncols
        self.last_figure: Figure | None = None

    def show(self, row: int = 0, col: int = 0) -> None:
        t = None if self.truth is None else [float(self.truth[0, row, col]), float(self.truth[1, row, col])]
        self.last_figure = plot_control_point_distributions(self.distributions, self.grid, (row, col), t,
                                                            self.ncols)
        plt.show()


def plot_displacement_field(
    ax: Axes,
    field: torch.Tensor,
    spacing: int,
    image: torch.Tensor | np.ndarray | None = None,
    color: str = "yellow",
    title: str | None = None,
) -> None:
    """Arrows of a control-point displacement field over an optional image.

    Args:
        ax: target axes.
        field: ``(2, Hc, Wc)`` displacements ``(dx, dy)`` in pixels at the control points.
        spacing: control-point spacing in pixels (points at ``spacing // 2 + spacing * k``).
        image: optional background ``(H, W)``.
        color: arrow colour.
        title: optional title.
    """
    if field.dim() != 3 or field.shape[0] != 2:
        raise ValueError(
            f"plot_displacement_field() 'field' must have shape (2, Hc, Wc), got {tuple(field.shape)}"
        )
    f = field.detach().cpu().float().numpy()
    hc, wc = f.shape[1:]
    o = spacing // 2
    ys, xs = np.meshgrid(np.arange(hc) * spacing + o, np.arange(wc) * spacing + o, indexing="ij")
    if image is not None:
        ax.imshow(_img(image), cmap="gray", interpolation="nearest")
    # angles="xy" with an inverted y axis draws (dx, dy) in image coordinates (y down).
    ax.quiver(xs, ys, f[0], f[1], color=color, angles="xy", scale_units="xy", scale=1.0, width=0.004)
    if image is None:
        ax.set_xlim(0, wc * spacing)
        ax.set_ylim(hc * spacing, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def plot_results(results: Mapping[str, Mapping[str, float]], metric: str = "accuracy",
                 chance: float | None = None) -> Figure:
    """Bar chart of one metric per method with error bars.

    Args:
        results: method -> ``{metric: mean, metric + "_std": std, ...}``.
        metric: which key to plot.
        chance: optional horizontal line (e.g. ``1 / L``).
    """
    if len(results) == 0:
        raise ValueError("plot_results() 'results' must not be empty")
    names = list(results)
    for n in names:
        if metric not in results[n]:
            raise ValueError(f"plot_results() method {n!r} has no {metric!r}")
    means = [float(results[n][metric]) for n in names]
    stds = [float(results[n].get(metric + "_std", 0.0)) for n in names]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 1.5, 2.8))
    ax.bar(range(len(names)), means, yerr=stds, color=[f"C{i}" for i in range(len(names))], capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
