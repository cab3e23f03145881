r"""Discrepancies between two classifiers' label histograms: L1, sliced Wasserstein and projected EMD.

This module is pure math on tensors: it imports nothing else of the project. The label grid's
geometry is passed in as ``grid_shape`` and ``step``; the conventions are those of
:mod:`data_utils.grid`:

* A 2D histogram of shape ``(..., H, W)`` (or flattened ``(..., H * W)``, row-major) has its last
  axis along ``x`` and its second-last along ``y``. The support point (a displacement, in pixels)
  of bin ``(y, x)`` is ``step * (x - (W - 1) / 2, y - (H - 1) / 2)``.
* A 3D histogram ``(..., D, H, W)`` has axes ``(z, y, x)``; bin ``(z, y, x)`` sits at
  ``step * (x - (W - 1) / 2, y - (H - 1) / 2, z - (D - 1) / 2)``.
* **Angles are in degrees**: angle ``0`` is the direction ``+x`` (the last axis), ``90`` is ``+y``.
  In 3D, directions are 3-vectors in ``(x, y, z)`` order (normalised here).

The projected EMD of two histograms ``p`` and ``q`` on the label grid is

.. math::

    \mathrm{pEMD}(p, q) = \frac{1}{K} \sum_{k=1}^{K} \mathrm{EMD}_{1D}(P_k p, P_k q),
    \qquad \mathrm{EMD}_{1D}(a, b) = \sum_{j=1}^{n_k - 1} \Big| \sum_{i \le j} (a_i - b_i) \Big|
    \, (t_{j+1} - t_j),

where :math:`P_k` projects the mass of every label onto the line ``k`` (support points
``t_1 < ... < t_{n_k}``, the distinct projected positions). The inner cumulative sums are a fixed
linear map of ``p - q``, so the whole discrepancy is one small matrix product ``(p - q) @ A``, an
absolute value and a weighted sum; its gradient is ``(sign((p - q) @ A) * w) @ A.T``.

Input checks (on by default, ``validate=False`` switches them off in hot loops): shapes, finite
values, no entry below ``-16 * eps(dtype)`` (rounding noise is tolerated) and every histogram
summing to one within ``sum_tolerance(dtype, n_bins) = max(1e-6, 16 * eps(dtype) * n_bins)``
(float32, 81 bins: 1.5e-4; float64: 1e-6). Each failed check raises a :class:`ValueError` that
names the argument.

References:
    Heinrich, M. P., Hansen, L. "Unsupervised learning of multimodal image registration using
    domain adaptation with projected Earth Mover's discrepancies." MIDL 2020 (short paper).

    Saito, K. et al. "Maximum classifier discrepancy for unsupervised domain adaptation." CVPR 2018.

    Lee, C.-Y. et al. "Sliced Wasserstein discrepancy for unsupervised domain adaptation." CVPR 2019.

    Bonneel, N. et al. "Sliced and Radon Wasserstein barycenters of measures." JMIV 51, 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch

__all__ = [
    "check_reduction",
    "emd_1d",
    "exact_emd",
    "l1_discrepancy",
    "project_histogram",
    "projected_emd",
    "sliced_wasserstein_discrepancy",
    "sum_tolerance",
]

#: Default projection angles in degrees for 2D label grids (lattice points fall into exact bins).
DEFAULT_ANGLES_2D: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)

#: Default directions ``(x, y, z)`` for 3D label grids: the 3 axes, the 6 face diagonals and the
#: 4 body diagonals of the lattice (13 directions, each up to sign; normalised before use).
DEFAULT_DIRECTIONS_3D: tuple[tuple[float, float, float], ...] = (
    (1, 0, 0), (0, 1, 0), (0, 0, 1),
    (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1),
)  # fmt: skip

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def sum_tolerance(dtype: torch.dtype, n_bins: int) -> float:
    """Absolute tolerance on ``|sum(histogram) - 1|``: ``max(1e-6, 16 * eps(dtype) * n_bins)``."""
    return max(1e-6, 16.0 * torch.finfo(dtype).eps * max(int(n_bins), 1))


def _neg_tolerance(dtype: torch.dtype) -> float:
    """Entries down to ``-16 * eps(dtype)`` count as rounding noise, smaller ones as negative."""
    return 16.0 * torch.finfo(dtype).eps


def _fn_name(fn: str, name: str) -> str:
    return f"{fn}() '{name}'"


def _check_tensor(x, fn: str, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{_fn_name(fn, name)} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{_fn_name(fn, name)} must be a floating-point tensor, got {x.dtype}")


def _check_pair(p, q, fn: str) -> None:
    _check_tensor(p, fn, "p")
    _check_tensor(q, fn, "q")
    if p.shape != q.shape:
        raise ValueError(
            f"{fn}() 'p' and 'q' must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    if p.dtype != q.dtype:
        raise ValueError(f"{fn}() 'p' and 'q' must have the same dtype, got {p.dtype} and {q.dtype}")
    if p.device != q.device:
        raise ValueError(f"{fn}() 'p' and 'q' must be on the same device, got {p.device} and {q.device}")


def _check_histograms(x: torch.Tensor, fn: str, name: str, dims: tuple[int, ...]) -> None:
    """Finite, non-negative (up to rounding) and summing to one over ``dims`` (one host sync)."""
    if x.numel() == 0:
        raise ValueError(f"{_fn_name(fn, name)} must not be empty, got shape {tuple(x.shape)}")
    n_bins = math.prod(x.shape[d] for d in dims)
    with torch.no_grad():
        stats = torch.stack(
            [torch.isfinite(x).all().to(x.dtype), x.min(), (x.sum(dim=dims) - 1.0).abs().max()]
        )
        finite, lowest, worst = stats.tolist()  # one device-to-host copy
    if not finite:
        raise ValueError(f"{_fn_name(fn, name)} contains NaN or infinite values")
    if lowest < -_neg_tolerance(x.dtype):
        raise ValueError(f"{_fn_name(fn, name)} has negative entries (minimum {lowest:.3g})")
    tol = sum_tolerance(x.dtype, n_bins)
    if worst > tol:
        raise ValueError(
            f"{_fn_name(fn, name)} histograms must sum to 1 "
            f"(largest |sum - 1| = {worst:.3g} > tolerance {tol:.3g})"
        )


def _check_step(step, fn: str, name: str = "step") -> float:
    if isinstance(step, bool) or not isinstance(step, (int, float)):
        raise ValueError(f"{_fn_name(fn, name)} must be a positive number, got {step!r}")
    step = float(step)
    if not (math.isfinite(step) and step > 0.0):
        raise ValueError(f"{_fn_name(fn, name)} must be a positive finite number, got {step!r}")
    return step


def _check_grid_shape(grid_shape, fn: str) -> tuple[int, ...]:
    try:
        shape = tuple(grid_shape)
    except TypeError:
        msg = f"{fn}() 'grid_shape' must be a tuple (H, W) or (D, H, W), got {grid_shape!r}"
        raise ValueError(msg) from None
    if len(shape) not in (2, 3) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(
            f"{fn}() 'grid_shape' must be (H, W) or (D, H, W) of positive ints, got {grid_shape!r}"
        )
    if math.prod(shape) < 2:
        raise ValueError(f"{fn}() 'grid_shape' must hold at least 2 labels, got {grid_shape!r}")
    return shape


def _flatten(p: torch.Tensor, q: torch.Tensor, grid_shape: tuple[int, ...], fn: str):
    """``(..., *grid_shape)`` or ``(..., L)`` -> ``((N, L), (N, L), batch_shape)``."""
    n_labels = math.prod(grid_shape)
    nd = len(grid_shape)
    if p.dim() >= nd and tuple(p.shape[-nd:]) == grid_shape:
        batch = tuple(p.shape[:-nd])
    elif p.dim() >= 1 and p.shape[-1] == n_labels:
        batch = tuple(p.shape[:-1])
    else:
        raise ValueError(
            f"{fn}() 'grid_shape'={grid_shape} does not match 'p' of shape {tuple(p.shape)}: expected "
            f"(..., {n_labels}) or (..., {', '.join(map(str, grid_shape))})"
        )
    return p.reshape(-1, n_labels), q.reshape(-1, n_labels), batch


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def check_reduction(reduction, fn: str) -> None:
    """Raise ``ValueError`` naming ``fn`` unless ``reduction`` is "mean", "sum" or "none"."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}() 'reduction' must be one of {_REDUCTIONS}, got {reduction!r}")


# --------------------------------------------------------------------------------------------
# 1D EMD
# --------------------------------------------------------------------------------------------


def emd_1d(
    p: torch.Tensor, q: torch.Tensor, spacing: float = 1.0, dim: int = -1, *, validate: bool = True
) -> torch.Tensor:
    r"""Exact 1D Earth Mover's distance between histograms on equally spaced bins.

    .. math::

        \mathrm{EMD}_{1D}(p, q) = \Delta x \sum_{j=0}^{n-2} \Big| \sum_{i \le j} (p_i - q_i) \Big|

    The last cumulative sum (the total mass, equal for both histograms) has no gap after it and is
    left out, so the sum runs over the ``n - 1`` gaps between neighbouring bins.

    Args:
        p: histograms, any shape, bins along ``dim``; each sums to one.
        q: same shape, dtype and device as ``p``.
        spacing: distance ``\Delta x`` between neighbouring bins (``> 0``).
        dim: the bin dimension.
        validate: check the inputs (see the module docstring); ``False`` for hot loops.

    Returns:
        The distances, shape of ``p`` without ``dim``; differentiable, on ``p``'s device and dtype.

    Example:
        >>> emd_1d(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), spacing=2.0)
        tensor(4.)
    """
    fn = "emd_1d"
    _check_pair(p, q, fn)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -max(p.dim(), 1) <= dim < max(p.dim(), 1):
        raise ValueError(f"{fn}() 'dim' must be an int in [-{p.dim()}, {p.dim()}), got {dim!r}")
    if p.dim() == 0:
        raise ValueError(f"{fn}() 'p' must have at least one dimension (the bins)")
    spacing = _check_step(spacing, fn, "spacing")
    if validate:
        d = dim % p.dim()
        _check_histograms(p, fn, "p", (d,))
        _check_histograms(q, fn, "q", (d,))
    cum = torch.cumsum(p - q, dim=dim)
    cum = cum.narrow(dim, 0, cum.shape[dim] - 1)
    return cum.abs().sum(dim=dim) * spacing


# --------------------------------------------------------------------------------------------
# Geometry of the projections (shared by projected_emd and project_histogram)
# --------------------------------------------------------------------------------------------


def _lattice(grid_shape: tuple[int, ...]) -> torch.Tensor:
    """Centred integer lattice (label units), ``(L, ndim)`` in ``(x, y[, z])`` order, float64."""
    axes = [torch.arange(s, dtype=torch.float64) - (s - 1) / 2.0 for s in grid_shape]
    mesh = torch.meshgrid(*axes, indexing="ij")  # (z,) y, x
    return torch.stack([m.reshape(-1) for m in reversed(mesh)], dim=1)


def _normalise_directions(angles, grid_shape: tuple[int, ...], fn: str) -> tuple[tuple[float, ...], ...]:
    """Unit directions ``(K, ndim)`` as a hashable tuple; 2D: angles in degrees; 3D: ``(K, 3)`` vectors."""
    nd = len(grid_shape)
    if angles is None:
        if nd == 2:
            angles = DEFAULT_ANGLES_2D
        else:
            angles = DEFAULT_DIRECTIONS_3D
    try:
        a = torch.as_tensor(angles, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{fn}() 'angles' must be numbers, got {angles!r}") from None
    if nd == 2:
        if a.dim() == 0:
            a = a.reshape(1)
        if a.dim() != 1 or a.numel() == 0:
            raise ValueError(f"{fn}() 'angles' must be a non-empty 1D sequence of degrees for a 2D grid")
        if not torch.isfinite(a).all():
            raise ValueError(f"{fn}() 'angles' must be finite")
        rad = torch.deg2rad(a)
        dirs = torch.stack([torch.cos(rad), torch.sin(rad)], dim=1)
    else:
        if a.dim() == 1 and a.numel() == 3:
            a = a.reshape(1, 3)
        if a.dim() != 2 or a.shape[1] != 3 or a.shape[0] == 0:
            raise ValueError(
                f"{fn}() 'angles' must be directions of shape (K, 3) in (x, y, z) order for a 3D grid, "
                f"got shape {tuple(a.shape)}"
            )
        if not torch.isfinite(a).all():
            raise ValueError(f"{fn}() 'angles' must be finite")
        norms = a.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            raise ValueError(f"{fn}() 'angles' directions must be non-zero vectors")
        dirs = a / norms
    return tuple(tuple(float(v) for v in row) for row in dirs.tolist())


@lru_cache(maxsize=256)
def _line_groups(grid_shape: tuple[int, ...], direction: tuple[float, ...]):
    """Distinct sorted projected positions (label units) of the lattice on one line.

    Returns:
        ``(positions, group)``: float64 ``(n,)`` sorted distinct positions and int64 ``(L,)``, the
        index into ``positions`` of every label. Positions closer than ``1e-9`` of the grid extent
        are merged (so at 45 degrees the lattice diagonals fall into exact bins).
    """
    proj = _lattice(grid_shape) @ torch.tensor(direction, dtype=torch.float64)
    order = torch.argsort(proj, stable=True)
    sorted_proj = proj[order]
    tol = 1e-9 * (1.0 + float(sorted_proj.abs().max()))
    new_group = torch.ones_like(sorted_proj, dtype=torch.bool)
    new_group[1:] = (sorted_proj[1:] - sorted_proj[:-1]) > tol
    gid_sorted = torch.cumsum(new_group.long(), 0) - 1
    group = torch.empty_like(gid_sorted)
    group[order] = gid_sorted
    positions = sorted_proj[new_group]  # the first member of every group
    return positions, group


@lru_cache(maxsize=64)
def _cumulative_operator_cpu(grid_shape: tuple[int, ...], directions: tuple[tuple[float, ...], ...]):
    """The fixed linear map of projected EMD, in label units, float64 on the CPU.

    Returns:
        ``(A, w)``: ``A`` of shape ``(L, C)`` with ``A[l, c] = 1`` if label ``l`` projects at or
        before the ``c``-th distinct position of its line (the last position of each line is left
        out, its cumulative sum is the total mass), ``w`` of shape ``(C,)``: the gap to the next
        position divided by the number of lines ``K``. Then
        ``pEMD = step * sum_c w_c |((p - q) @ A)_c|``.
    """
    cols_a, cols_w = [], []
    for direction in directions:
        positions, group = _line_groups(grid_shape, direction)
        n = positions.numel()
        c = torch.arange(n - 1)
        cols_a.append((group[:, None] <= c[None, :]).to(torch.float64))
        cols_w.append(positions[1:] - positions[:-1])
    a = torch.cat(cols_a, dim=1)
    w = torch.cat(cols_w) / len(directions)
    return a, w


_OPERATOR_CACHE: dict = {}


def _cumulative_operator(grid_shape, directions, dtype, device):
    """:func:`_cumulative_operator_cpu` cast to ``dtype`` and moved to ``device`` (cached)."""
    key = (grid_shape, directions, dtype, str(device))
    hit = _OPERATOR_CACHE.get(key)
    if hit is None:
        a, w = _cumulative_operator_cpu(grid_shape, directions)
        hit = (a.to(device=device, dtype=dtype).contiguous(), w.to(device=device, dtype=dtype).contiguous())
        if len(_OPERATOR_CACHE) > 64:
            _OPERATOR_CACHE.clear()
        _OPERATOR_CACHE[key] = hit
    return hit


def project_histogram(
    p: torch.Tensor, grid_shape: Sequence[int], angle: float | Sequence[float], step: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project histograms over a label grid onto the line at ``angle``.

    Args:
        p: histograms ``(..., *grid_shape)`` or ``(..., prod(grid_shape))`` (not checked for
            summing to one, so any mass map can be projected).
        grid_shape: ``(H, W)`` (or ``(D, H, W)``, see the module docstring).
        angle: degrees for a 2D grid (0 = +x, 90 = +y); a direction ``(x, y, z)`` for a 3D grid.
        step: label spacing in pixels.

    Returns:
        ``(positions, masses)``: ``positions`` of shape ``(n,)``, the sorted distinct projected
        support positions in pixels; ``masses`` of shape ``(..., n)``, the summed mass at each.
        Both on ``p``'s device and dtype. This is the geometry :func:`projected_emd` uses.

    Example:
        >>> pos, m = project_histogram(torch.full((3, 3), 1 / 9), (3, 3), 45.0)
        >>> pos.numel(), round(float(m.sum()), 6)
        (5, 1.0)
    """
    fn = "project_histogram"
    _check_tensor(p, fn, "p")
    shape = _check_grid_shape(grid_shape, fn)
    step = _check_step(step, fn)
    dirs = _normalise_directions(angle, shape, fn)
    if len(dirs) != 1:
        raise ValueError(f"{fn}() 'angle' must be a single angle (2D) or direction (3D), got {len(dirs)}")
    flat, _, batch = _flatten(p, p, shape, fn)
    positions, group = _line_groups(shape, dirs[0])
    one_hot = torch.nn.functional.one_hot(group, positions.numel()).to(device=p.device, dtype=p.dtype)
    masses = (flat @ one_hot).reshape(*batch, positions.numel())
    return (positions * step).to(device=p.device, dtype=p.dtype), masses


# --------------------------------------------------------------------------------------------
# Projected EMD
# --------------------------------------------------------------------------------------------


class _ProjectedEMDFunction(torch.autograd.Function):
    """Per-histogram ``sum_c w_c |((p - q) @ A)_c|`` with the closed-form gradient."""

    @staticmethod
    def forward(ctx, p, q, a, w):  # p, q: (N, L); a: (L, C); w: (C,)
        ctx.save_for_backward(p, q, a, w)
        return ((p - q) @ a).abs() @ w

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # grad_out: (N,)
        p, q, a, w = ctx.saved_tensors
        signed = torch.sign((p - q) @ a) * w  # (N, C)
        g = (signed * grad_out[:, None]) @ a.T  # (N, L)
        return (
            g if ctx.needs_input_grad[0] else None,
            -g if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def projected_emd(
    p: torch.Tensor,
    q: torch.Tensor,
    grid_shape: Sequence[int],
    angles=None,
    step: float = 1.0,
    reduction: str = "mean",
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""Projected (sliced 1-Wasserstein) Earth Mover's distance between histograms on a label grid.

    Each histogram is projected onto ``K`` lines through the grid centre; on each line the exact
    1D EMD is taken (support points sorted along the line, the gaps between consecutive distinct
    positions as spacing) and the ``K`` values are averaged (see the module docstring for the
    formula). It is the sliced 1-Wasserstein distance for these directions, never above the exact
    2D EMD with Euclidean ground cost, and in pixels.

    Args:
        p: histograms ``(..., *grid_shape)`` or flattened ``(..., prod(grid_shape))`` (row-major,
            last axis = x); each sums to one.
        q: same shape, dtype and device as ``p``.
        grid_shape: ``(H, W)``; or ``(D, H, W)`` for 3D label grids.
        angles: 2D: angles in **degrees** (0 = +x, 90 = +y), default ``(0, 45, 90, 135)``.
            3D: directions ``(K, 3)`` in ``(x, y, z)`` order, default the 13 lattice directions
            :data:`DEFAULT_DIRECTIONS_3D`.
        step: label spacing in pixels (``> 0``).
        reduction: ``"mean"`` (over histograms), ``"sum"`` or ``"none"`` (shape ``p.shape`` without
            the grid dimensions).
        validate: check the inputs (module docstring); ``False`` for hot loops.

    On CUDA the PyTorch path is a float32 cuBLAS product: if TF32 is switched on
    (``torch.backends.cuda.matmul.allow_tf32 = True``) its relative error grows to ~1e-3.

    Returns:
        A 0-dim tensor, or one value per histogram for ``reduction="none"``; differentiable with
        respect to ``p`` and ``q`` (closed-form gradient); on ``p``'s device, in ``p``'s dtype.

    Example:
        >>> p = torch.zeros(9, 9); p[4, 4] = 1
        >>> q = torch.zeros(9, 9); q[4, 7] = 1  # moved 3 labels along +x
        >>> float(projected_emd(p, q, (9, 9), angles=[0.0], step=2.0))
        6.0
    """
    fn = "projected_emd"
    _check_pair(p, q, fn)
    shape = _check_grid_shape(grid_shape, fn)
    step = _check_step(step, fn)
    check_reduction(reduction, fn)
    dirs = _normalise_directions(angles, shape, fn)
    p2, q2, batch = _flatten(p, q, shape, fn)
    if validate:
        _check_histograms(p2, fn, "p", (1,))
        _check_histograms(q2, fn, "q", (1,))
    a, w = _cumulative_operator(shape, dirs, p.dtype, p.device)
    w = w * step
    values = _ProjectedEMDFunction.apply(p2, q2, a, w)
    return _reduce(values.reshape(batch), reduction)


# --------------------------------------------------------------------------------------------
# L1 and sliced Wasserstein discrepancies
# --------------------------------------------------------------------------------------------


def l1_discrepancy(
    p: torch.Tensor, q: torch.Tensor, *, validate: bool = True, reduction: str = "mean"
) -> torch.Tensor:
    r"""Saito et al.'s classifier discrepancy, :math:`\frac{1}{ML} \sum_{m, l} |p_{ml} - q_{ml}|`.

    Args:
        p: probability vectors, histograms along the last dimension, e.g. ``(M, L)``.
        q: same shape, dtype and device.
        validate: check the inputs; ``False`` for hot loops.
        reduction: ``"mean"`` (the formula above), ``"sum"`` (of the per-row means over ``L``) or
            ``"none"`` (the per-row means, shape ``p.shape[:-1]``).

    Returns:
        0-dim tensor (``"mean"``, ``"sum"``) or one value per histogram (``"none"``).
    """
    fn = "l1_discrepancy"
    _check_pair(p, q, fn)
    if p.dim() == 0:
        raise ValueError(f"{fn}() 'p' must have at least one dimension (the labels)")
    check_reduction(reduction, fn)
    if validate:
        _check_histograms(p, fn, "p", (p.dim() - 1,))
        _check_histograms(q, fn, "q", (q.dim() - 1,))
    if reduction == "mean":
        return (p - q).abs().mean()
    return _reduce((p - q).abs().mean(dim=-1), reduction)


def sliced_wasserstein_discrepancy(
    p: torch.Tensor,
    q: torch.Tensor,
    n_projections: int = 128,
    generator: torch.Generator | None = None,
    *,
    validate: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Lee et al.'s sliced Wasserstein discrepancy between two point clouds of probability vectors.

    The ``M`` rows of ``p`` and of ``q`` are two point clouds in :math:`\mathbb{R}^L`. With ``K``
    random unit directions :math:`\theta_k` (normal draws normalised over ``L``, drawn anew each
    call), both clouds are projected, sorted along the batch axis ``M`` and compared:

    .. math::

        \mathrm{SWD} = \frac{1}{MK} \sum_{k, m}
            \big(\mathrm{sort}(p\theta_k)_m - \mathrm{sort}(q\theta_k)_m\big)^2

    It ignores the geometry of the label grid.

    Args:
        p: ``(M, L)`` probability vectors (rows sum to one).
        q: ``(M, L)``, same dtype and device.
        n_projections: ``K >= 1``.
        generator: random source of the directions (CPU generator or one on ``p``'s device);
            the same seed gives the same result.
        validate: check the inputs; ``False`` for hot loops.
        reduction: ``"mean"`` (the formula above), ``"sum"`` (of the per-direction means) or
            ``"none"`` (one mean per direction, shape ``(K,)``).

    Returns:
        0-dim tensor, or ``(K,)`` for ``reduction="none"``.
    """
    fn = "sliced_wasserstein_discrepancy"
    _check_pair(p, q, fn)
    if p.dim() != 2:
        raise ValueError(f"{fn}() 'p' must have shape (M, L), got {tuple(p.shape)}")
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"{fn}() 'n_projections' must be an int >= 1, got {n_projections!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{fn}() 'generator' must be a torch.Generator or None, got {type(generator).__name__}"
        )
    check_reduction(reduction, fn)
    if validate:
        _check_histograms(p, fn, "p", (1,))
        _check_histograms(q, fn, "q", (1,))
    gen_device = generator.device if generator is not None else p.device
    theta = torch.randn(p.shape[1], n_projections, generator=generator, device=gen_device, dtype=p.dtype)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(p.device)
    # projections as rows (K, M): sorting along the contiguous last axis is faster on a CPU
    sp = torch.sort(theta.T @ p.T, dim=1).values
    sq = torch.sort(theta.T @ q.T, dim=1).values
    if reduction == "mean":
        return (sp - sq).square().mean()
    return _reduce((sp - sq).square().mean(dim=1), reduction)


# --------------------------------------------------------------------------------------------
# Exact EMD (POT), for tests, notebooks and benchmarks
# --------------------------------------------------------------------------------------------


def exact_emd(
    p: torch.Tensor, q: torch.Tensor, grid_shape: Sequence[int], step: float = 1.0, *, validate: bool = True
) -> torch.Tensor:
    r"""Exact EMD between histograms on a label grid, Euclidean ground cost in pixels (POT's ``emd2``).

    .. math::

        \mathrm{EMD}(p, q) = \min_{T \ge 0,\ T 1 = p,\ T^\top 1 = q}
            \sum_{l, m} T_{lm} \, \lVert d_l - d_m \rVert_2

    Solved as a linear program per pair (a Python loop: for tests, notebooks and benchmarks only).
    Needs the optional dependency POT (``pip install "pemd-tutorial[test]"`` or ``pip install POT``).

    Args:
        p: histograms ``(..., *grid_shape)`` or ``(..., prod(grid_shape))``.
        q: same shape, dtype and device.
        grid_shape: ``(H, W)`` or ``(D, H, W)``.
        step: label spacing in pixels.
        validate: check the inputs.

    Returns:
        One value per histogram, shape ``p.shape`` without the grid dimensions, ``p``'s dtype and
        device (computed in float64 on the CPU; differentiable through POT's dual potentials).
    """
    fn = "exact_emd"
    _check_pair(p, q, fn)
    shape = _check_grid_shape(grid_shape, fn)
    step = _check_step(step, fn)
    p2, q2, batch = _flatten(p, q, shape, fn)
    if validate:
        _check_histograms(p2, fn, "p", (1,))
        _check_histograms(q2, fn, "q", (1,))
    try:
        import ot
    except ImportError as err:
        raise ImportError(
            "exact_emd() needs the optional dependency POT: "
            "pip install 'pemd-tutorial[test]' (or: pip install POT)"
        ) from err
    pts = _lattice(shape) * step
    cost = torch.cdist(pts, pts)
    p64 = p2.to(device="cpu", dtype=torch.float64)
    q64 = q2.to(device="cpu", dtype=torch.float64)
    # POT's LP wants equal masses to ~1e-7: rescale each q row to p's mass (a no-op on valid input).
    q64 = q64 * (p64.sum(1, keepdim=True) / q64.sum(1, keepdim=True).clamp_min(1e-300))
    values = torch.stack([ot.emd2(p64[i], q64[i], cost) for i in range(p64.shape[0])])
    return values.to(device=p.device, dtype=p.dtype).reshape(batch)
