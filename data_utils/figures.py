"""A montage of registration pairs: fixed (with the displacement field), moving, warped moving.

Used by the notebooks and the main job. Matplotlib only; nothing here changes global state (no
``pyplot`` style or backend changes); the caller shows or saves the returned figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from data_utils.deform import warp
from data_utils.grid import check_control_spacing

__all__ = ["plot_pair_montage", "control_to_dense"]


def control_to_dense(displacement: torch.Tensor, spacing: int, size: tuple[int, int]) -> torch.Tensor:
    """Interpolate a field at the control points ``(B, 2, Hc, Wc)`` to pixels ``(B, 2, H, W)``.

    Control point ``(a, b)`` sits on pixel ``(x, y) = (s // 2 + s * b, s // 2 + s * a)`` with
    ``s = spacing`` (see :func:`data_utils.grid.check_control_spacing`); bilinear in between,
    values beyond the outermost control points repeated (``grid_sample`` border padding).
    """
    if displacement.dim() != 4 or displacement.shape[1] != 2:
        raise ValueError(
            f"control_to_dense() 'displacement' must be (B, 2, Hc, Wc), got {tuple(displacement.shape)}"
        )
    h, w = size
    hc, wc = check_control_spacing(h, w, spacing)
    if displacement.shape[-2:] != (hc, wc):
        raise ValueError(
            f"control_to_dense() 'displacement' has {tuple(displacement.shape[-2:])} control points, "
            f"expected {(hc, wc)} for size {size} and spacing {spacing}"
        )
    x = displacement.float() if not displacement.is_floating_point() else displacement
    o = spacing // 2
    ys = (torch.arange(h, dtype=x.dtype, device=x.device) - o) / spacing  # control-point units
    xs = (torch.arange(w, dtype=x.dtype, device=x.device) - o) / spacing
    gy = ys / max(hc - 1, 1) * 2 - 1
    gx = xs / max(wc - 1, 1) * 2 - 1
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    grid = torch.stack([xx, yy], dim=-1)[None].expand(x.shape[0], h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _dense_field(item: dict, field, spacing: int, size: tuple[int, int]) -> torch.Tensor | None:
    if field is None:
        if "field" in item:
            field = item["field"]
        elif "displacement" in item:
            field = item["displacement"]
        else:
            return None
    field = torch.as_tensor(field).detach().float().cpu()
    if field.dim() != 3 or field.shape[0] != 2:
        raise ValueError(
            f"plot_pair_montage() each field must be (2, H, W) or (2, Hc, Wc), got {tuple(field.shape)}"
        )
    if tuple(field.shape[-2:]) == size:
        return field
    return control_to_dense(field[None], spacing, size)[0]


def plot_pair_montage(
    pairs,
    indices: Sequence[int] = (0, 1),
    fields=None,
    arrow_spacing: int | None = None,
    panel_size: float = 2.2,
    title: str | None = None,
) -> Figure:
    """Rows of fixed / moving / warped-moving images with the displacement field drawn as arrows.

    Args:
        pairs: a :class:`~data_utils.pairs.PairDataset` (or any object whose ``[i]`` gives a pair
            dict), or a mapping ``row label -> dataset`` such as ``{"source": s, "target": t}``.
            The true field is drawn when the items carry one (``"field"`` in an evaluation view,
            or ``"displacement"`` at the control points for source pairs); target pairs in the
            training view carry none, and this function never asks for the evaluation view.
        indices: which pairs of every dataset to show.
        fields: optional displacement fields to draw and warp with instead (e.g. a prediction):
            a tensor ``(len(indices), 2, H, W)`` or ``(len(indices), 2, Hc, Wc)`` in pixels, or a
            mapping with the same keys as ``pairs``.
        arrow_spacing: pixels between arrows; default the control-point spacing (or 4).
        panel_size: inches per panel.
        title: figure title.

    Returns:
        The matplotlib figure (3 columns, one row per shown pair). Arrows start at a fixed-image
        point ``x`` and end at ``x + u(x)``, the corresponding moving-image point
        (:mod:`data_utils.grid` convention); the third column is ``warp(moving, u)``, which should
        look like the fixed image when ``u`` is right.
    """
    import matplotlib.pyplot as plt  # imported here: importing data_utils stays light

    groups = dict(pairs) if isinstance(pairs, Mapping) else {"": pairs}
    if not groups:
        raise ValueError("plot_pair_montage() 'pairs' must not be empty")
    indices = list(indices)
    if not indices:
        raise ValueError("plot_pair_montage() 'indices' must not be empty")
    if fields is not None and not isinstance(fields, Mapping):
        if len(groups) != 1:
            raise ValueError("plot_pair_montage() 'fields' must be a mapping when 'pairs' is")
        fields = {next(iter(groups)): fields}
    n_rows = len(groups) * len(indices)
    fig, axes = plt.subplots(n_rows, 3, figsize=(3 * panel_size, n_rows * panel_size), squeeze=False)
    row = 0
    for label, ds in groups.items():
        spacing = int(getattr(ds, "control_spacing", 4))
        for j, i in enumerate(indices):
            if not 0 <= i < len(ds):
                raise ValueError(f"plot_pair_montage() index {i} is out of range for {len(ds)} pairs")
            item = ds[i]
            fixed = item["fixed"].detach().float().cpu()
            moving = item["moving"].detach().float().cpu()
            size = tuple(fixed.shape[-2:])
            given = None
            if fields is not None and fields.get(label) is not None:
                given = fields[label][j]
            u = _dense_field(item, given, spacing, size)
            warped = moving if u is None else warp(moving[None], u[None])[0]
            name = f"{label} #{i}" if label else f"#{i}"
            third = "moving warped" if u is not None else "moving (no field)"
            panels = ((fixed, f"{name} fixed"), (moving, "moving"), (warped, third))
            for col, (img, ttl) in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_title(ttl, fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
            if u is not None:
                step = arrow_spacing or spacing
                o = step // 2
                ys = torch.arange(o, size[0], step)
                xs = torch.arange(o, size[1], step)
                yy, xx = torch.meshgrid(ys, xs, indexing="ij")
                uu = u[:, o::step, o::step]
                axes[row, 0].quiver(xx.numpy(), yy.numpy(), uu[0].numpy(), uu[1].numpy(), color="tab:orange",
                                    angles="xy", scale_units="xy", scale=1.0, width=0.006)
            row += 1
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
