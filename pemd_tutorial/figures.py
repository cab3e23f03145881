"""Every figure of the package: the main job's report and the tutorials draw with these.

Each ``plot_*`` function draws one kind of figure and returns its
:class:`~matplotlib.figure.Figure` (the caller shows or saves it); the widgets of
:mod:`pemd_tutorial.widgets` call them with a slider's value. Figures are sized for a page about
900 pixels wide at 100 dpi (:data:`DPI`), the width GitHub shows a notebook at.

Conventions are those of :mod:`data_utils.grid`: a label histogram has shape ``(L,)`` or
``(2R + 1, 2R + 1)`` with the last axis along ``x`` and the second-last along ``y``; displacements are
``(dx, dy)`` in pixels. Histograms are drawn like image patches: ``x`` to the right, ``y`` **down**,
so a projection angle ``theta`` (0 along ``x``, 90 degrees along ``y``) turns clockwise on screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data_utils import warp
from data_utils.embedded import CONTRAST_NAMES
from data_utils.grid import LabelGrid
from pemd_tutorial.emd import project_histogram
from pemd_tutorial.evaluate import dense_field

__all__ = [
    "DPI",
    "PAPER_ACCURACY",
    "PAPER_COUNTERPARTS",
    "histogram_image",
    "pick_points",
    "plot_accuracy",
    "plot_correlation",
    "plot_cumsums",
    "plot_displacement_field",
    "plot_distributions",
    "plot_examples",
    "plot_histogram",
    "plot_label_histogram",
    "plot_modalities",
    "plot_paper_comparison",
    "plot_projection",
    "plot_projection_angles",
    "plot_projection_pair",
    "plot_shift_curves",
    "plot_training_curves",
    "projected_histogram",
]

#: Resolution of saved figures and of the figures in the notebooks.
DPI = 100


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


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


def _extent(grid: LabelGrid) -> tuple[float, float, float, float]:
    """imshow extent in pixels with ``y`` pointing down: ``(left, right, bottom, top)``."""
    e = grid.max_displacement + grid.step / 2.0
    return (-e, e, e, -e)


def _new_figure(ncols: int, nrows: int = 1, size: float = 2.6, **kw) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, **kw)
    return fig, axes


def projected_histogram(
    p: torch.Tensor | np.ndarray, grid: LabelGrid, angle_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pemd_tutorial.emd.project_histogram` of one histogram, as float64 ``(positions, masses)``."""
    hist = torch.as_tensor(histogram_image(p, grid)).reshape(-1)
    pos, mass = project_histogram(hist, grid.shape, float(angle_deg), grid.step)
    return pos.double().numpy(), mass.double().numpy()


# ----------------------------------------------------------------------------------------------
# label histograms and their projections (notebook 01)
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
    img = histogram_image(p, grid)
    im = ax.imshow(
        img,
        cmap=cmap,
        extent=_extent(grid),
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
        pos, mass = projected_histogram(p, grid, a)
        ax = axes[0, i + 1]
        _stem(ax, pos, mass, f"C{i}")
        ax.set_title(f"θ = {a:g}°", fontsize=9)
        ax.set_xlabel("px")
    fig.tight_layout()
    return fig


def plot_projection_pair(p: torch.Tensor, q: torch.Tensor, grid: LabelGrid, angle_deg: float) -> Figure:
    """Two histograms side by side and their projections at ``angle_deg`` on common axes."""
    pp, mp = projected_histogram(p, grid, angle_deg)
    pq, mq = projected_histogram(q, grid, angle_deg)
    vmax = float(max(histogram_image(p, grid).max(), histogram_image(q, grid).max()))
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


# ----------------------------------------------------------------------------------------------
# cumulative sums, saturation, correlation (notebook 02)
# ----------------------------------------------------------------------------------------------


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
    fig, axes = _new_figure(2, size=3.2)
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
    fig, axes = _new_figure(len(approximations), size=3.0)
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


# ----------------------------------------------------------------------------------------------
# images, fields, predictions and results (notebooks 03 and 04, the main job's report)
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


def plot_displacement_field(
    ax: Axes,
    field: torch.Tensor,
    spacing: int,
    image: torch.Tensor | np.ndarray | None = None,
    color: str = "yellow",
    title: str | None = None,
    mask: torch.Tensor | None = None,
    key: float | None = None,
    origin: int | None = None,
) -> None:
    """Arrows of a control-point displacement field over an optional image.

    Args:
        ax: target axes.
        field: ``(2, Hc, Wc)`` displacements ``(dx, dy)`` in pixels at the control points.
        spacing: control-point spacing in pixels (points at ``spacing // 2 + spacing * k``).
        image: optional background ``(H, W)``.
        color: arrow colour.
        title: optional title.
        mask: optional ``(Hc, Wc)`` bool: arrows only where it is true (e.g. the foreground).
        key: draw a reference arrow of this many pixels below the panel (arrows are drawn to scale).
        origin: pixel of the first control point along each axis (default ``spacing // 2``; give
            it when ``field`` is a subsample ``[::k, ::k]`` of a finer grid).
    """
    if field.dim() != 3 or field.shape[0] != 2:
        raise ValueError(
            f"plot_displacement_field() 'field' must have shape (2, Hc, Wc), got {tuple(field.shape)}"
        )
    if mask is not None and tuple(mask.shape) != tuple(field.shape[1:]):
        raise ValueError(
            f"plot_displacement_field() 'mask' must have shape {tuple(field.shape[1:])}, "
            f"got {tuple(mask.shape)}"
        )
    f = field.detach().cpu().float().numpy()
    hc, wc = f.shape[1:]
    o = spacing // 2 if origin is None else origin
    ys, xs = np.meshgrid(np.arange(hc) * spacing + o, np.arange(wc) * spacing + o, indexing="ij")
    keep = np.ones((hc, wc), bool) if mask is None else mask.detach().cpu().numpy().astype(bool)
    if image is not None:
        ax.imshow(_img(image), cmap="gray", interpolation="nearest")
    # angles="xy" with an inverted y axis draws (dx, dy) in image coordinates (y down).
    q = ax.quiver(
        xs[keep],
        ys[keep],
        f[0][keep],
        f[1][keep],
        color=color,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        width=0.006,
    )
    if key:
        ax.quiverkey(
            q, 0.5, -0.06, key, f"{key:g} px", labelpos="E", coordinates="axes", fontproperties={"size": 7}
        )
    if image is None:
        ax.set_xlim(0, wc * spacing)
        ax.set_ylim(hc * spacing, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def plot_accuracy(results: Mapping[str, Any], metric: str = "accuracy") -> Figure:
    """Bars of ``metric`` (mean ± std over seeds) per method; every seed a dot; chance a line."""
    methods = list(results["methods"])
    summary, per_seed = results["summary"], results["per_seed"]
    scale = 100.0 if metric in ("accuracy", "within_one", "source_accuracy") else 1.0
    fig, ax = plt.subplots(figsize=(1.0 * len(methods) + 1.6, 3.0))
    x = range(len(methods))
    means = [scale * summary[m].get(metric, float("nan")) for m in methods]
    several = len(results["seeds"]) > 1  # error bars only for a spread over seeds
    stds = [scale * summary[m].get(metric + "_std", 0.0) for m in methods] if several else None
    ax.bar(x, means, yerr=stds, color=[f"C{i}" for i in x], alpha=0.75, capsize=3 if several else 0)
    for i, m in enumerate(methods):
        vals = [scale * r[metric] for r in per_seed[m] if r.get(metric) is not None]
        offs = [(k - (len(vals) - 1) / 2) * 0.12 for k in range(len(vals))]
        ax.plot([i + o for o in offs], vals, "o", color="k", ms=3)
    if metric == "accuracy" and "chance" in results:
        ax.axhline(scale * results["chance"], color="grey", ls=":", lw=1, label="chance")
        ax.legend(fontsize=8, loc="upper left")
    names = results.get("method_names", {})
    ax.set_xticks(
        list(x), [names.get(m, m).split(" (")[0] for m in methods], rotation=30, ha="right", fontsize=8
    )
    ax.set_ylabel(f"target {metric}" + (" (%)" if scale == 100.0 else ""))
    n = len(results["seeds"])
    ax.set_title(
        "target test pairs, " + (f"{n} seeds: mean ± std, dots = seeds" if n > 1 else "one seed"), fontsize=9
    )
    fig.tight_layout()
    return fig


#: Target label accuracy (%) of the paper's experiment as the authors' MIDL 2020 talk slides report
#: it (25 displacement classes, 2D patches of canine T1w/T2w MRI from the MICCAI SATA 2013 data).
PAPER_ACCURACY = {"no registration": 4.0, "no adaptation": 31.9, "MCD-SWD": 33.2, "MCD-pEMD (16) + SWD": 44.1}

#: Our rows that play the same role as the paper's bars.
PAPER_COUNTERPARTS = {
    "no registration": "identity",
    "no adaptation": "source",
    "MCD-SWD": "mcd_swd",
    "MCD-pEMD (16) + SWD": "mcd_pemd",
}


def plot_paper_comparison(ours: Mapping[str, float], ours_label: str = "this package") -> Figure:
    """The paper's bars (:data:`PAPER_ACCURACY`) beside ours, as accuracy in %.

    Args:
        ours: method key (``"identity"``, ``"source"``, ``"mcd_swd"``, ``"mcd_pemd"``) -> target
            accuracy in ``[0, 1]``.
        ours_label: legend of our bars.
    """
    missing = [k for k in PAPER_COUNTERPARTS.values() if k not in ours]
    if missing:
        raise ValueError(f"plot_paper_comparison() 'ours' lacks {missing}")
    labels = list(PAPER_ACCURACY)
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    ax.bar(
        [i - 0.2 for i in x],
        [PAPER_ACCURACY[k] for k in labels],
        0.4,
        color="0.6",
        label="paper (slides): 25 labels, canine T1w/T2w",
    )
    ax.bar(
        [i + 0.2 for i in x],
        [100 * ours[PAPER_COUNTERPARTS[k]] for k in labels],
        0.4,
        color="C3",
        label=f"{ours_label}: 81 labels, MNI T1w / simulated T2w",
    )
    ours_names = {
        "no registration": "identity",
        "no adaptation": "source only",
        "MCD-SWD": "MCD-SWD",
        "MCD-pEMD (16) + SWD": "MCD-pEMD (4)",
    }
    ax.set_xticks(list(x), [f"{k}\nours: {ours_names[k]}" for k in labels], fontsize=7)
    ax.set_ylabel("target label accuracy (%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_training_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]], chance: float | None = None
) -> Figure:
    """Target validation accuracy over training: supervised phases and adaptation on separate axes.

    Args:
        curves: method key -> ``[(step, accuracy), ...]``; ``"source"`` and ``"oracle"`` go on the
            left axes (supervised training from scratch), every other key (the MCD variants,
            which start from the source-only network) on the right.
        chance: optional horizontal line (``1 / L``).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 2.8), sharey=True)
    for i, (name, pts) in enumerate(curves.items()):
        if not pts:
            continue
        ax = left if name in ("source", "oracle") else right
        steps, acc = zip(*pts, strict=True)
        ax.plot(steps, [100 * a for a in acc], "o-", ms=2.5, lw=1.2, color=f"C{i}", label=name)
    left.set_title("supervised phases (from scratch)", fontsize=9)
    right.set_title("adaptation (from the source-only network)", fontsize=9)
    for ax in (left, right):
        if chance is not None:
            ax.axhline(100 * chance, color="grey", ls=":", lw=1, label="chance")
        ax.set_xlabel("training step of the phase")
        ax.legend(fontsize=7)
    left.set_ylabel("target validation accuracy (%)")
    fig.tight_layout()
    return fig


def plot_label_histogram(histogram: Mapping[str, Any], grid: LabelGrid) -> Figure:
    """The true-label distribution of :func:`pemd_tutorial.evaluate.true_label_histogram`: a map of
    the label grid and the share per ring (Chebyshev distance from the zero displacement)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.0, 2.6), gridspec_kw={"width_ratios": [1, 1.2]})
    im = plot_histogram(a, torch.tensor(histogram["shares"]) * 100, grid, title="share of points (%)")
    fig.colorbar(im, ax=a, fraction=0.046)
    rings = [100 * r for r in histogram["ring_shares"]]
    b.bar(range(len(rings)), rings, color="C0")
    b.set_xlabel("ring (labels from zero displacement)")
    b.set_ylabel("share of points (%)")
    b.set_title(f"identity within one label: {100 * histogram['identity_within_one']:.0f} %", fontsize=9)
    fig.tight_layout()
    return fig


def plot_examples(
    batch: Mapping[str, torch.Tensor],
    probs: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    control_spacing: int,
    names: Mapping[str, str] | None = None,
    n_rows: int = 3,
) -> Figure:
    """Example registrations of target test pairs.

    Args:
        batch: evaluation-view batch (``"fixed"``, ``"moving"`` ``(N, 1, H, W)``, ``"displacement"``
            ``(N, 2, Hc, Wc)``, ``"mask"`` ``(N, Hc, Wc)`` and optionally the dense ``"field"``).
        probs: method -> ``(N, L, Hc, Wc)`` probabilities for the same pairs.
        grid: the label grid.
        control_spacing: control-point spacing in pixels.
        names: optional display names.
        n_rows: pairs shown.

    Returns:
        A figure with columns fixed | moving | warped by the truth | warped by each method. Arrows
        are the (expected) displacements at the foreground control points, to scale (the key
        under the first row shows the label step).
    """

    names = names or {}
    fixed, moving = batch["fixed"].float(), batch["moving"].float()
    n = min(n_rows, fixed.shape[0])
    h, w = fixed.shape[-2:]
    true_cp = batch["displacement"].float()
    true_dense = batch["field"].float() if "field" in batch else dense_field(true_cp, h, w, control_spacing)
    columns: list[tuple[str, torch.Tensor, torch.Tensor | None]] = [
        ("fixed", fixed, None),
        ("moving", moving, None),
        ("truth", warp(moving, true_dense), true_cp),
    ]
    for m, p in probs.items():
        cp = grid.expected_displacement(p[:n].float())
        warped = warp(moving[:n], dense_field(cp, h, w, control_spacing))
        columns.append((names.get(m, m).split(" (")[0], warped, cp))
    fig, axes = plt.subplots(
        n, len(columns), figsize=(min(9.0, 1.3 * len(columns)), 1.4 * n + 0.4), squeeze=False
    )
    step = max(1, math.ceil((h // control_spacing) / 8))  # at most 8x8 arrows per panel
    sub = control_spacing * step
    for r in range(n):
        mask = batch["mask"][r, ::step, ::step] if "mask" in batch else None
        for c, (title, img, cp) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(img[r, 0].cpu().numpy(), cmap="gray", interpolation="nearest")
            if cp is not None:  # arrows on the foreground only; the key (first row): two label steps
                plot_displacement_field(
                    ax,
                    cp[r, :, ::step, ::step],
                    sub,
                    mask=mask,
                    origin=control_spacing // 2,
                    key=2 * grid.step if r == 0 else None,
                )
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.axis("off")
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def plot_distributions(
    distributions: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    points: Sequence[tuple[int, int]],
    truth: torch.Tensor | None = None,
) -> Figure:
    """Label histograms of several predictions at a few control points: one row per point, one
    column per prediction, one colour scale (and colour bar) per row.

    Args:
        distributions: name -> probabilities ``(L, Hc, Wc)`` of one image (e.g. ``"F1 source"``,
            ``"F2 source"``, ``"F1 MCD-pEMD"``, ...).
        grid: the label grid.
        points: ``(row, col)`` control points to show.
        truth: optional ``(2, Hc, Wc)`` true displacement in pixels, marked with a cross.

    Returns:
        The figure.
    """
    if len(distributions) == 0:
        raise ValueError("plot_distributions() 'distributions' must not be empty")
    if len(points) == 0:
        raise ValueError("plot_distributions() 'points' must not be empty")
    for name, probs in distributions.items():
        if not isinstance(probs, torch.Tensor) or probs.dim() != 3 or probs.shape[0] != grid.n_labels:
            got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
            raise ValueError(
                f"plot_distributions() '{name}' must have shape ({grid.n_labels}, Hc, Wc), got {got}"
            )
        for r, c in points:
            if not (0 <= r < probs.shape[1] and 0 <= c < probs.shape[2]):
                raise ValueError(f"plot_distributions() point {(r, c)} is outside {tuple(probs.shape[1:])}")
    cols = list(distributions.items())
    fig, axes = plt.subplots(
        len(points), len(cols), figsize=(1.95 * len(cols) + 0.5, 1.95 * len(points) + 0.3), squeeze=False
    )
    for r, (a, b) in enumerate(points):
        vmax = max(float(p[:, a, b].max()) for _, p in cols)
        mark = None if truth is None else (float(truth[0, a, b]), float(truth[1, a, b]))
        for c, (title, p) in enumerate(cols):
            ax = axes[r, c]
            label = f"{title}\npoint ({a}, {b})" if r == 0 else f"point ({a}, {b})"
            im = plot_histogram(ax, p[:, a, b], grid, title=label, vmax=vmax, mark=mark)
            ax.tick_params(labelsize=6)
            ax.xaxis.label.set_size(7)
            ax.yaxis.label.set_size(7)
            if r < len(points) - 1:
                ax.set_xlabel("")
            if c:
                ax.set_ylabel("")
        fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01).ax.tick_params(labelsize=6)
    return fig


def pick_points(batch: Mapping[str, torch.Tensor], k: int = 3) -> list[tuple[int, int]]:
    """``k`` foreground control points of pair 0 with the largest true displacements (spread out)."""
    valid = (batch["mask"][0] & batch["inside"][0]) if "inside" in batch else batch["mask"][0]
    mag = batch["displacement"][0].norm(dim=0).masked_fill(~valid, -1.0)
    order = torch.argsort(mag.reshape(-1), descending=True)
    wc = mag.shape[1]
    chosen: list[tuple[int, int]] = []
    for idx in order.tolist():
        a, b = divmod(idx, wc)
        if mag[a, b] < 0:
            break
        if all(max(abs(a - p), abs(b - q)) >= 3 for p, q in chosen):
            chosen.append((a, b))
        if len(chosen) == k:
            break
    return chosen


# ----------------------------------------------------------------------------------------------
# registering a user's pair (pemd_tutorial.registration, notebook 04)
# ----------------------------------------------------------------------------------------------


def _edges(image: np.ndarray, quantile: float = 0.85) -> np.ndarray:
    """Strong edges of an image: gradient magnitude above its ``quantile`` inside the image."""
    gy, gx = np.gradient(np.asarray(image, float))
    mag = np.hypot(gx, gy)
    positive = mag[mag > 0]
    return mag > (np.quantile(positive, quantile) if positive.size else np.inf)


def plot_registration_montage(
    fixed: np.ndarray | torch.Tensor,
    moving: np.ndarray | torch.Tensor,
    moved: np.ndarray | torch.Tensor,
    title: str | None = None,
) -> Figure:
    """One registered slice: fixed, moving before, moving after; the fixed image's edges drawn on both.

    All three images are ``(rows, columns)`` in display orientation, on the same pixel grid. Where
    the registration helped, the edges of the fixed image (red) follow the structures of the
    moving image after registration better than before.
    """
    images = [_img(fixed), _img(moving), _img(moved)]
    if len({im.shape for im in images}) != 1:
        raise ValueError(
            f"plot_registration_montage() 'fixed', 'moving', 'moved' must have one shape, got "
            f"{[im.shape for im in images]}"
        )
    edges = np.ma.masked_where(~_edges(images[0]), np.ones_like(images[0]))
    fig, axes = _new_figure(3, size=2.8)
    for ax, im, name in zip(axes[0], images, ("fixed", "moving, before", "moving, after"), strict=True):
        ax.imshow(im, cmap="gray", vmin=0.0, vmax=max(float(np.percentile(im, 99.5)), 1e-6))
        if name != "fixed":
            ax.imshow(edges, cmap="autumn", alpha=0.6, interpolation="nearest")
        ax.set_title(name + (" (edges: fixed)" if name != "fixed" else ""), fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


#: The paper experiment's rows that stand beside the slides' bars.
PAPER_EXPERIMENT_COUNTERPARTS = {
    "no registration": "identity",
    "no adaptation": "source",
    "MCD-SWD": "mcd_swd",
    "MCD-pEMD (16) + SWD": "mcd_pemd16_swd",
}


def plot_paper_experiment(results: Mapping[str, Any]) -> Figure:
    """The slides' bars beside the paper experiment's (:func:`pemd_tutorial.paper.run_paper_experiment`).

    One grey bar per slide value, then one bar per target contrast of ours (mean, with the sample
    standard deviation over seeds as an error bar), in target label accuracy (%).
    """
    columns = results["columns"]
    labels = list(PAPER_ACCURACY)
    n = 1 + len(columns)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    xs = np.arange(len(labels))
    ax.bar(xs - 0.4 + width / 2, [PAPER_ACCURACY[k] for k in labels], width, color="0.6",
           label="paper (slides): canine T1w → T2w")
    names = {c: f"ours: MNI T1w → simulated {CONTRAST_NAMES.get(c, c)}" for c in columns}
    for c, (contrast, col) in enumerate(columns.items()):
        keys = [PAPER_EXPERIMENT_COUNTERPARTS[k] for k in labels]
        means = [100 * col["summary"][k]["accuracy"] if k in col["summary"] else np.nan for k in keys]
        stds = [100 * col["summary"][k]["accuracy_std"] if k in col["summary"] else 0.0 for k in keys]
        ax.bar(xs - 0.4 + width * (c + 1.5), means, width, yerr=stds, capsize=2, color=f"C{c + 3}",
               label=names.get(contrast, contrast))
    ax.axhline(100 * results["chance"], color="k", ls=":", lw=1)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("target label accuracy (%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
