"""Label histograms, their projections and the 1D EMD (notebooks 01 and 02).

Histograms are drawn like image patches: ``x`` to the right, ``y`` **down**, so a projection angle
``theta`` (0 along ``x``, 90 degrees along ``y``) turns clockwise on screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid
from pemd_tutorial.emd import project_histogram
from pemd_tutorial.figures.base import histogram_extent, histogram_image, new_figure

__all__ = ["plot_correlation", "plot_cumsums", "plot_histogram", "plot_projection", "plot_projection_angles",
           "plot_projection_pair", "plot_shift_curves", "projected_histogram"]

def projected_histogram(
    p: torch.Tensor | np.ndarray, grid: LabelGrid, angle_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pemd_tutorial.emd.project_histogram` of one histogram, as float64 ``(positions, masses)``."""
    hist = torch.as_tensor(histogram_image(p, grid)).reshape(-1)
    pos, mass = project_histogram(hist, grid.shape, float(angle_deg), grid.step)
    return pos.double().numpy(), mass.double().numpy()


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
    img = histogram_image(p, grid)
    im = ax.imshow(
        img,
        cmap=cmap,
        extent=histogram_extent(grid),
        vmin=0.0,
        vmax=vmax or float(img.max()) or 1.0,
        interpolation="nearest",
    )
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
    ax.annotate(
        "",
        xy=(r * c, r * s),
        xytext=(0.55 * r * c, 0.55 * r * s),
        arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5},
    )


def _stem(
    ax: Axes, pos: np.ndarray, mass: np.ndarray, color: str, label: str | None = None, offset: float = 0.0
) -> None:
    ax.vlines(pos + offset, 0.0, mass, color=color, lw=2.0, label=label)
    ax.plot(pos + offset, mass, "o", color=color, markersize=3)


def plot_projection(p: torch.Tensor, grid: LabelGrid, angle_deg: float) -> Figure:
    """The histogram with the projection line, and its 1D projection at ``angle_deg``.

    Left: ``p`` on the label grid with the direction ``(cos theta, sin theta)``. Right: the mass
    that lands at each projected position ``<d_k, (cos theta, sin theta)>`` (equal positions merged).
    """
    pos, mass = projected_histogram(p, grid, angle_deg)
    fig, axes = new_figure(2, size=3.0)
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


def plot_projection_angles(p: torch.Tensor, grid: LabelGrid, angles: Sequence[float],
                           name: str = "p") -> Figure:
    """One histogram (titled ``name``) projected at several angles: the histogram, then one 1D plot
    per angle."""
    if len(angles) == 0:
        raise ValueError("plot_projection_angles() 'angles' must not be empty")
    fig, axes = new_figure(len(angles) + 1, size=2.4)
    plot_histogram(axes[0, 0], p, grid, title=name)
    for i, a in enumerate(angles):
        _draw_direction(axes[0, 0], grid, a, color=f"C{i}")
        pos, mass = projected_histogram(p, grid, a)
        ax = axes[0, i + 1]
        _stem(ax, pos, mass, f"C{i}")
        ax.set_title(f"θ = {a:g}°", fontsize=9)
        ax.set_xlabel("px")
    fig.tight_layout()
    return fig


def plot_projection_pair(p: torch.Tensor, q: torch.Tensor, grid: LabelGrid, angle_deg: float,
                         names: tuple[str, str] = ("p", "q"), same_scale: bool = True) -> Figure:
    """Two histograms side by side and their projections at ``angle_deg`` on common axes.

    ``names`` title the panels and the legend; with ``same_scale`` both histograms share one colour
    scale (one colour bar), otherwise each has its own (for a broad histogram beside a peak).
    """
    pp, mp = projected_histogram(p, grid, angle_deg)
    pq, mq = projected_histogram(q, grid, angle_deg)
    vmax = float(max(histogram_image(p, grid).max(), histogram_image(q, grid).max())) if same_scale else None
    fig, axes = new_figure(3, size=2.8)
    im_p = plot_histogram(axes[0, 0], p, grid, title=names[0], vmax=vmax)
    im = plot_histogram(axes[0, 1], q, grid, title=names[1] + (" (same colour scale)" if same_scale else ""),
                        vmax=vmax)
    if not same_scale:
        fig.colorbar(im_p, ax=axes[0, 0], shrink=0.8).ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8).ax.tick_params(labelsize=7)
    for ax in axes[0, :2]:
        _draw_direction(ax, grid, angle_deg)
    dx = 0.08 * grid.step
    _stem(axes[0, 2], pp, mp, "C0", names[0], -dx)
    _stem(axes[0, 2], pq, mq, "C1", names[1], dx)
    axes[0, 2].legend(fontsize=8)
    axes[0, 2].set_title(f"projections at θ = {angle_deg:g}°", fontsize=9)
    axes[0, 2].set_xlabel("position on the line (px)")
    axes[0, 2].set_ylabel("mass")
    fig.tight_layout()
    return fig


def plot_cumsums(
    positions: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    labels: tuple[str, str] = ("a", "b"),
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
    gap = float(np.min(np.diff(x))) if x.size > 1 else 1.0
    # one more position right of the support, so that both cumulative sums visibly reach 1
    xe = np.append(x, x[-1] + gap)
    ca, cb = np.append(np.cumsum(a), a.sum()), np.append(np.cumsum(b), b.sum())
    fig, axes = new_figure(2, size=3.2)
    w = 0.35 * gap
    axes[0, 0].bar(x - w / 2, a, width=w, label=labels[0])
    axes[0, 0].bar(x + w / 2, b, width=w, label=labels[1])
    axes[0, 0].set_title("masses", fontsize=9)
    axes[0, 0].set_ylabel("mass")
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].step(xe, ca, where="post", label=f"C_{labels[0]}")
    axes[0, 1].step(xe, cb, where="post", label=f"C_{labels[1]}")
    axes[0, 1].fill_between(xe, ca, cb, step="post", color="grey", alpha=0.35, label="|C_a − C_b|")
    axes[0, 1].set_title("cumulative sums; area = EMD", fontsize=9)
    axes[0, 1].set_ylabel("cumulative mass")
    axes[0, 1].set_ylim(0.0, 1.05 * max(float(ca[-1]), float(cb[-1]), 1e-12))
    axes[0, 1].legend(fontsize=8)
    for ax in axes[0]:
        ax.set_xlabel("position (px)")
    fig.tight_layout()
    return fig


def _overlay(p: torch.Tensor, q: torch.Tensor, grid: LabelGrid) -> np.ndarray:
    """``p`` in red and ``q`` in blue as one RGB image ``(2R+1, 2R+1, 3)`` (overlap shows magenta)."""
    rgb = np.zeros((*grid.shape, 3))
    rgb[..., 0] = histogram_image(p, grid, "p") / max(float(p.max()), 1e-12)
    rgb[..., 2] = histogram_image(q, grid, "q") / max(float(q.max()), 1e-12)
    return rgb


def plot_shift_curves(
    curves: Mapping[str, np.ndarray],
    current: float | None = None,
    pair: tuple[torch.Tensor, torch.Tensor] | None = None,
    grid: LabelGrid | None = None,
) -> Figure:
    """L1, KL and EMD against the shift of the peak (the output of :func:`pemd_tutorial.shifts.shift_curves`).

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
    fig, axes = new_figure(3 + first, size=2.7)
    if pair is not None:
        axes[0, 0].imshow(_overlay(pair[0], pair[1], grid), extent=histogram_extent(grid),
                          interpolation="nearest")
        axes[0, 0].set_title("p (red), q (blue)", fontsize=9)
        axes[0, 0].set_xlabel("dx (px)")
        axes[0, 0].set_ylabel("dy (px)")
    ax_l1, ax_kl, ax_emd = axes[0, first:]
    ax_l1.plot(x, curves["l1"], "o-", color="C0")
    ax_l1.set_title("L1 = Σ|p − q|", fontsize=9)
    ax_kl.plot(x, curves["kl"], "o-", color="C1")
    ax_kl.set_title("KL(p‖q) (nats)", fontsize=9)
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


def plot_correlation(
    reference: np.ndarray, approximations: Mapping[str, np.ndarray], reference_name: str = "exact EMD (px)"
) -> Figure:
    """Scatter of each approximation against the reference with its Spearman rank correlation.

    Args:
        reference: ``(N,)`` reference values (e.g. exact 2D EMD).
        approximations: name -> ``(N,)`` values.
        reference_name: x-axis label.
    """
    from scipy.stats import spearmanr

    ref = np.asarray(reference, float).reshape(-1)
    if len(approximations) == 0:
        raise ValueError("plot_correlation() 'approximations' must not be empty")
    fig, axes = new_figure(len(approximations), size=3.0)
    for ax, (name, vals) in zip(axes[0], approximations.items(), strict=True):
        v = np.asarray(vals, float).reshape(-1)
        if v.shape != ref.shape:
            raise ValueError(
                f"plot_correlation() '{name}' has {v.shape[0]} values, 'reference' {ref.shape[0]}"
            )
        ax.scatter(ref, v, s=6, alpha=0.6)
        ax.set_title(f"{name}\nSpearman ρ = {float(spearmanr(ref, v).statistic):.3f}", fontsize=9)
        ax.set_xlabel(reference_name)
        ax.set_ylabel(name)
    fig.tight_layout()
    return fig
