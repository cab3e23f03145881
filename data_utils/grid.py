"""The displacement label grid: the one place that defines labels, their order and their geometry.

Conventions (used everywhere in this project; other modules link here instead of restating them):

* Images are tensors of shape ``(B, C, H, W)``; ``x`` is the column index (along ``W``), ``y`` the
  row index (along ``H``). Displacements are in **pixels**.
* A displacement field has shape ``(B, 2, H, W)``; channel 0 is ``dx`` (along ``W``), channel 1 is
  ``dy`` (along ``H``).
* A fixed-image point ``(x, y)`` corresponds to the moving-image point ``(x + dx, y + dy)``
  (backward warping: ``warped(x) = moving(x + u(x))``).
* The label grid holds the displacements ``d = step * (i, j)`` for ``i, j in -R..R``: ``i`` moves
  along ``x``, ``j`` along ``y``. It has ``L = (2R + 1) ** 2`` labels.
* **Label order is row-major over (j, i)**: label ``k = (j + R) * (2R + 1) + (i + R)``. So a
  histogram of shape ``(..., L)`` reshapes to ``(..., 2R + 1, 2R + 1)`` with the last axis along
  ``x`` and the second-last along ``y``, exactly like an image patch; ``grid_shape = (2R+1, 2R+1)``
  is ``(H, W)`` in the language of :func:`pemd_tutorial.emd.projected_emd`, whose angle 0 points
  along ``x`` (the last axis) and 90 degrees along ``y``.

This module imports only torch, so both :mod:`data_utils` and :mod:`pemd_tutorial` can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["LabelGrid", "at_control_points", "check_control_spacing", "peak_histogram"]


@dataclass(frozen=True)
class LabelGrid:
    """A square 2D grid of displacement labels.

    Args:
        radius: ``R``; labels run over ``i, j in -R..R`` (``R >= 1``).
        step: spacing between neighbouring labels in pixels (``> 0``).

    Example:
        >>> g = LabelGrid(radius=1, step=2.0)
        >>> g.n_labels, g.shape
        (9, (3, 3))
        >>> g.displacements()[0].tolist(), g.displacements()[5].tolist()
        ([-2.0, -2.0], [2.0, 0.0])
    """

    radius: int = 4
    step: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 1:
            raise ValueError(f"LabelGrid 'radius' must be an integer >= 1, got {self.radius!r}")
        if not (float(self.step) > 0.0) or self.step != self.step:
            raise ValueError(f"LabelGrid 'step' must be a positive number of pixels, got {self.step!r}")

    @property
    def side(self) -> int:
        """Number of labels along one axis, ``2R + 1``."""
        return 2 * self.radius + 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(2R + 1, 2R + 1)``: the histogram shape ``(y, x)`` of one control point."""
        return (self.side, self.side)

    @property
    def n_labels(self) -> int:
        """``L = (2R + 1) ** 2``."""
        return self.side * self.side

    @property
    def max_displacement(self) -> float:
        """Largest representable displacement along one axis, ``R * step`` pixels."""
        return self.radius * float(self.step)

    def offsets(self, device=None) -> torch.Tensor:
        """Integer label offsets ``(i, j)`` of every label, shape ``(L, 2)``, dtype int64."""
        r = torch.arange(-self.radius, self.radius + 1, device=device)
        jj, ii = torch.meshgrid(r, r, indexing="ij")
        return torch.stack([ii.reshape(-1), jj.reshape(-1)], dim=1)

    def displacements(self, dtype=torch.float32, device=None) -> torch.Tensor:
        """Displacements ``(dx, dy)`` in pixels of every label, shape ``(L, 2)``."""
        return self.offsets(device=device).to(dtype) * float(self.step)

    def index(self, i: int | torch.Tensor, j: int | torch.Tensor):
        """Label index of the integer offset ``(i, j)`` (``i`` along x, ``j`` along y)."""
        return (j + self.radius) * self.side + (i + self.radius)

    def quantise(self, field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest label of every displacement.

        Args:
            field: displacements in pixels, shape ``(..., 2, *spatial)`` with channel ``(dx, dy)``
                at dimension ``-3`` for 2D spatial shapes, i.e. ``(B, 2, H, W)``.

        Returns:
            ``(labels, inside)``: int64 labels of shape ``(B, H, W)`` (the displacement clamped
            to the grid before rounding) and a bool tensor of the same shape that is ``False``
            where the true displacement lies more than half a step outside the grid (such
            points are clamped to the border label and must be excluded from metrics).
        """
        if field.dim() != 4 or field.shape[1] != 2:
            raise ValueError(f"quantise() 'field' must have shape (B, 2, H, W), got {tuple(field.shape)}")
        units = field / float(self.step)
        rounded = torch.round(units)
        inside = (rounded.abs() <= self.radius).all(dim=1)
        k = rounded.clamp(-self.radius, self.radius).long()
        labels = self.index(k[:, 0], k[:, 1])
        return labels, inside

    def to_displacement(self, labels: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """Displacement ``(dx, dy)`` of integer labels: ``(B, H, W)`` -> ``(B, 2, H, W)`` pixels."""
        if labels.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise ValueError("to_displacement() 'labels' must be an integer tensor")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_labels):
            raise ValueError(f"to_displacement() 'labels' must lie in [0, {self.n_labels})")
        d = self.displacements(dtype=dtype, device=labels.device)[labels]  # (..., 2)
        return d.movedim(-1, 1)

    def expected_displacement(self, probs: torch.Tensor) -> torch.Tensor:
        """Expected displacement ``sum_k p_k d_k`` of label probabilities.

        Args:
            probs: shape ``(B, L, H, W)``, summing to one over ``L``.

        Returns:
            ``(B, 2, H, W)`` in pixels, ``(dx, dy)`` order; device and dtype follow ``probs``.
        """
        if probs.dim() != 4 or probs.shape[1] != self.n_labels:
            raise ValueError(
                f"expected_displacement() 'probs' must have shape (B, {self.n_labels}, H, W), "
                f"got {tuple(probs.shape)}"
            )
        d = self.displacements(dtype=probs.dtype, device=probs.device)  # (L, 2)
        return torch.einsum("blhw,lc->bchw", probs, d)


def check_control_spacing(height: int, width: int, spacing: int) -> tuple[int, int]:
    """Validate a control-point spacing for an image size; return ``(Hc, Wc)``.

    Control points sit on the pixels ``(spacing // 2 + spacing * b, spacing // 2 + spacing * a)``
    (``x``, ``y``) for ``a < Hc = H // spacing`` and ``b < Wc = W // spacing``: the centre pixel
    of every ``spacing x spacing`` cell. ``H`` and ``W`` must be multiples of ``spacing``.
    """
    if isinstance(spacing, bool) or not isinstance(spacing, int) or spacing < 1:
        raise ValueError(f"'control_spacing' must be an integer >= 1, got {spacing!r}")
    if height % spacing or width % spacing:
        raise ValueError(
            f"'control_spacing'={spacing} must divide the image size {height}x{width}"
        )
    return height // spacing, width // spacing


def at_control_points(tensor: torch.Tensor, spacing: int) -> torch.Tensor:
    """Sample a dense ``(..., H, W)`` tensor at the control points: ``(..., Hc, Wc)``.

    No interpolation: it picks the centre pixel of every cell (see
    :func:`check_control_spacing`).
    """
    h, w = tensor.shape[-2:]
    check_control_spacing(h, w, spacing)
    o = spacing // 2
    return tensor[..., o::spacing, o::spacing]


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
