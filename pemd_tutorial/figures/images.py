"""Images, displacement fields and example registrations (notebooks 03 and 04, the main job, ``register``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid
from pemd_tutorial.evaluate import example_registrations
from pemd_tutorial.figures.base import as_image, new_figure

__all__ = ["pick_points", "plot_displacement_field", "plot_examples", "plot_modalities",
           "plot_registration_montage"]

def plot_modalities(images: Mapping[str, torch.Tensor | np.ndarray], title: str | None = None,
                    size: float = 2.5) -> Figure:
    """Images side by side (e.g. ``{"T1w": ..., "T2w": ..., "GM": ...}``), grey scale, no axes;
    ``size``: inches per panel."""
    if len(images) == 0:
        raise ValueError("plot_modalities() 'images' must not be empty")
    fig, axes = new_figure(len(images), size=size)
    for ax, (name, im) in zip(axes[0], images.items(), strict=True):
        ax.imshow(as_image(im), cmap="gray", interpolation="nearest")
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
        ax.imshow(as_image(image), cmap="gray", interpolation="nearest")
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
        width=0.008,
        headwidth=4.0,
        headlength=4.5,
        headaxislength=4.0,
        minlength=0.5,
    )
    if key:  # a reference arrow under the panel, on a white background so that it shows on any page
        ax.quiverkey(q, 0.22, -0.09, key, f"{key:g} px", labelpos="E", coordinates="axes", color="black",
                     labelcolor="black", fontproperties={"size": 7})
    if image is None:
        ax.set_xlim(0, wc * spacing)
        ax.set_ylim(hc * spacing, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


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
    fixed = batch["fixed"].float()
    n = min(n_rows, fixed.shape[0])
    h, w = fixed.shape[-2:]
    columns = [(names.get(title, title).split(" (")[0], img, cp)
               for title, img, cp in example_registrations(batch, probs, grid, control_spacing, n)]
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
    images = [as_image(fixed), as_image(moving), as_image(moved)]
    if len({im.shape for im in images}) != 1:
        raise ValueError(
            f"plot_registration_montage() 'fixed', 'moving', 'moved' must have one shape, got "
            f"{[im.shape for im in images]}"
        )
    edges = np.ma.masked_where(~_edges(images[0]), np.ones_like(images[0]))
    fig, axes = new_figure(3, size=2.8)
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
