"""The correlation layer: a cost volume over the displacement labels at every control point.

For a control point at pixel ``c`` (see :func:`data_utils.grid.check_control_spacing`) and a label
with displacement ``d = (dx, dy)`` (see :mod:`data_utils.grid` for the conventions) the cost volume
compares the fixed feature at ``c`` with the moving feature at ``c + d``:

.. math::

    V[b, l, a, k] = \\frac{1}{C} \\sum_{ch} F[b, ch, c_{ak}] \\, M[b, ch, c_{ak} + d_l]
    \\quad(\\text{"dot"}), \\qquad
    V = -\\frac{1}{C} \\sum_{ch} (F - M)^2 \\quad(\\text{"ssd"}).

Moving features are sampled bilinearly (``grid_sample``, ``align_corners=False``, border padding),
so feature maps may be coarser than the image (``feature_stride``) and label steps need not be
integers. No Python loop over labels or points.

Two implementations, equal up to float rounding (a test checks it):

* **lattice** (used when the control spacing is a whole multiple ``r`` of the label step, e.g. the
  default 4 px spacing and 2 px step): every position ``c + d`` lies on one regular lattice of
  ``step``-spaced points, so the moving features are sampled once on that lattice (a small
  ``grid_sample``) and the dot products of each row of control points with the lattice rows
  around it are one batched matrix product, of which the cost volume is a band
  (:func:`_banded_dot`). On a 2-core CPU this made the cost volume's forward + backward about
  five times faster than the general path, which was the largest part of a training step
  (``benchmarks/bench_train_step.py``).
* **general**: one ``grid_sample`` of the moving features at all ``L * Hc * Wc`` positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_utils.grid import LabelGrid, check_control_spacing

__all__ = ["box_filter", "control_point_coordinates", "cost_volume", "pixel_to_normalised", "smooth_cost"]


def pixel_to_normalised(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Map pixel coordinates (pixel centres at integers) to ``grid_sample``'s ``[-1, 1]``.

    Uses the ``align_corners=False`` convention: pixel ``p`` of an axis of ``size`` pixels maps to
    ``(2 p + 1) / size - 1``. The mapping does not depend on the resolution of the sampled feature
    map as long as it covers the same field of view.
    """
    return (2.0 * coord + 1.0) / size - 1.0


def box_filter(volume: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 r + 1) x (2 r + 1)`` window of every map of ``(B, C, H, W)``, borders
    replicated; the shape is kept (``radius = 0`` returns the input)."""
    if radius == 0:
        return volume
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(volume, (radius,) * 4, mode="replicate"), k, stride=1)


def smooth_cost(cost: torch.Tensor, passes: int) -> torch.Tensor:
    """``passes`` 3x3 box filters over neighbouring control points of a cost volume ``(B, L, Hc, Wc)``.

    A displacement field is smooth, so the cost of a label at a control point is evidence for the
    same label at its neighbours: averaging it there (each label on its own) is the regularisation
    of classical discrete registration (the MIND baseline uses the same 2 passes). Differentiable.
    """
    for _ in range(passes):
        cost = box_filter(cost, 1)
    return cost


def control_point_coordinates(
    height: int, width: int, control_spacing: int, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Pixel coordinates ``(x, y)`` of the control points, shape ``(Hc, Wc, 2)``."""
    hc, wc = check_control_spacing(height, width, control_spacing)
    o = control_spacing // 2
    ys = torch.arange(hc, dtype=dtype, device=device) * control_spacing + o
    xs = torch.arange(wc, dtype=dtype, device=device) * control_spacing + o
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def cost_volume(
    feat_fixed: torch.Tensor,
    feat_moving: torch.Tensor,
    grid: LabelGrid,
    control_spacing: int,
    feature_stride: int = 1,
    metric: str = "dot",
) -> torch.Tensor:
    """Cost volume of fixed vs shifted moving features over all labels.

    Args:
        feat_fixed: fixed-image features, shape ``(B, C, Hf, Wf)``.
        feat_moving: moving-image features, same shape.
        grid: the displacement label grid (``L`` labels).
        control_spacing: control-point spacing in image pixels.
        feature_stride: image pixels per feature pixel (the image is ``Hf * stride`` high).
        metric: ``"dot"`` (mean product over channels; higher = more similar) or ``"ssd"``
            (negative mean squared difference; higher = more similar).

    Returns:
        Tensor of shape ``(B, L, Hc, Wc)``; device and dtype follow the features.
    """
    if feat_fixed.dim() != 4:
        raise ValueError(
            f"cost_volume() 'feat_fixed' must have shape (B, C, H, W), got {tuple(feat_fixed.shape)}"
        )
    if feat_moving.shape != feat_fixed.shape:
        raise ValueError(
            f"cost_volume() 'feat_moving' must have the shape of 'feat_fixed' {tuple(feat_fixed.shape)}, "
            f"got {tuple(feat_moving.shape)}"
        )
    if metric not in ("dot", "ssd"):
        raise ValueError(f"cost_volume() 'metric' must be 'dot' or 'ssd', got {metric!r}")
    if isinstance(feature_stride, bool) or not isinstance(feature_stride, int) or feature_stride < 1:
        raise ValueError(f"cost_volume() 'feature_stride' must be an integer >= 1, got {feature_stride!r}")
    b, c, hf, wf = feat_fixed.shape
    height, width = hf * feature_stride, wf * feature_stride
    cp = control_point_coordinates(height, width, control_spacing, feat_fixed.dtype, feat_fixed.device)
    hc, wc = cp.shape[:2]
    size = torch.tensor([width, height], dtype=feat_fixed.dtype, device=feat_fixed.device)

    # fixed features at the control points: (B, C, Hc, Wc)
    g_fix = pixel_to_normalised(cp, size)
    fixed = F.grid_sample(
        feat_fixed, g_fix.expand(b, hc, wc, 2), mode="bilinear", padding_mode="border", align_corners=False
    )
    ratio = control_spacing / float(grid.step)
    if ratio >= 1 and abs(ratio - round(ratio)) < 1e-9:
        lattice = _moving_lattice(feat_moving, grid, control_spacing, int(round(ratio)), hc, wc, size)
        dot = _banded_dot(fixed, lattice, grid.side, int(round(ratio)))  # (B, L, Hc, Wc), sum over C
        if metric == "dot":
            return dot / c
        # ||f - m||^2 = ||f||^2 - 2 f.m + ||m||^2, with ||m||^2 cut from the lattice like the windows
        m_sq = _banded_dot(torch.ones_like(fixed[:, :1]), lattice.square().sum(1, keepdim=True), grid.side,
                           int(round(ratio)))
        return -(fixed.square().sum(1, keepdim=True) - 2.0 * dot + m_sq) / c
    # moving features at control point + every label displacement: (B, C, L, Hc * Wc)
    d = grid.displacements(dtype=feat_fixed.dtype, device=feat_fixed.device)  # (L, 2)
    pos = cp.reshape(1, hc * wc, 2) + d.reshape(-1, 1, 2)  # (L, Hc*Wc, 2)
    g_mov = pixel_to_normalised(pos, size)
    moving = F.grid_sample(
        feat_moving, g_mov.expand(b, *g_mov.shape), mode="bilinear", padding_mode="border",
        align_corners=False,
    )
    moving = moving.reshape(b, c, grid.n_labels, hc, wc)
    fixed = fixed.unsqueeze(2)
    if metric == "dot":
        return (fixed * moving).mean(dim=1)
    return -((fixed - moving) ** 2).mean(dim=1)


def _moving_lattice(
    feat_moving: torch.Tensor, grid: LabelGrid, control_spacing: int, ratio: int, hc: int, wc: int,
    size: torch.Tensor,
) -> torch.Tensor:
    """Moving features on the lattice of all control point + label positions, ``(B, C, Ny, Nx)``.

    With ``control_spacing = ratio * step`` the positions ``c + d`` are the points
    ``o + step * (ratio * a + j - R)`` (``o`` the first control point, ``j in 0..2R``) of one
    regular lattice with ``Ny = ratio * (Hc - 1) + 2R + 1`` rows (and ``Nx`` columns alike).
    Sampling the lattice once gives the same values as sampling every position (same bilinear
    weights, same border rule).
    """
    b = feat_moving.shape[0]
    r, side = grid.radius, grid.side
    step = float(grid.step)
    o = control_spacing // 2
    ny, nx = ratio * (hc - 1) + side, ratio * (wc - 1) + side
    ys = o + step * (torch.arange(ny, dtype=feat_moving.dtype, device=feat_moving.device) - r)
    xs = o + step * (torch.arange(nx, dtype=feat_moving.dtype, device=feat_moving.device) - r)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    g_lat = pixel_to_normalised(torch.stack([xx, yy], dim=-1), size)
    return F.grid_sample(
        feat_moving, g_lat.expand(b, ny, nx, 2), mode="bilinear", padding_mode="border", align_corners=False
    )


def _banded_dot(fixed: torch.Tensor, lattice: torch.Tensor, side: int, ratio: int) -> torch.Tensor:
    """``out[b, j * side + i, a, k] = sum_c fixed[b, c, a, k] * lattice[b, c, ratio a + j, ratio k + i]``.

    Shapes: ``fixed (B, C, Hc, Wc)``, ``lattice (B, C, ratio (Hc - 1) + side, ratio (Wc - 1) + side)``,
    result ``(B, side * side, Hc, Wc)`` in label order (row ``j`` along y, column ``i`` along x).

    One batched matrix product per row of control points: the ``Wc`` fixed vectors of row ``a``
    against every column of the ``side`` lattice rows ``ratio a .. ratio a + side - 1``; the wanted
    entries (column ``ratio k + i`` for control point ``k``) are a band of that product, taken as
    a strided view. The product computes about ``Nx / side`` times more dot products than needed,
    but as one BLAS call, which on a CPU is several times faster than materialising the
    ``(B, C, L, Hc, Wc)`` shifted copies (``benchmarks/bench_train_step.py``).
    """
    b, c, hc, wc = fixed.shape
    nx = lattice.shape[-1]
    rows = lattice.unfold(2, side, ratio)  # (B, C, Hc, Nx, side): lattice rows ratio a + j
    rows = rows.permute(0, 2, 1, 4, 3).reshape(b * hc, c, side * nx)
    vecs = fixed.permute(0, 2, 3, 1).reshape(b * hc, wc, c)
    every = torch.bmm(vecs, rows)  # (B * Hc, Wc, side * Nx): control point k vs (j, column)
    band = every.as_strided((b * hc, wc, side, side), (wc * side * nx, side * nx + ratio, nx, 1),
                            every.storage_offset())
    return band.reshape(b, hc, wc, side * side).permute(0, 3, 1, 2)
