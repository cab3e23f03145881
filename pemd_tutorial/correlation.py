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
integers. Everything is one batched ``grid_sample``: no Python loop over labels or points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_utils.grid import LabelGrid, check_control_spacing

__all__ = ["control_point_coordinates", "cost_volume", "pixel_to_normalised"]


def pixel_to_normalised(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Map pixel coordinates (pixel centres at integers) to ``grid_sample``'s ``[-1, 1]``.

    Uses the ``align_corners=False`` convention: pixel ``p`` of an axis of ``size`` pixels maps to
    ``(2 p + 1) / size - 1``. The mapping does not depend on the resolution of the sampled feature
    map as long as it covers the same field of view.
    """
    return (2.0 * coord + 1.0) / size - 1.0


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
