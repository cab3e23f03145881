"""A training-free classical baseline: MIND self-similarity descriptors + the same discrete label search.

MIND (Heinrich et al., MedIA 2012; MIND-SSC: Heinrich et al., MICCAI 2013) describes every pixel by
how similar small patches around it are to each other *within the same image*. Those
self-similarities depend on the local structure, not on the intensity mapping, so descriptors of a
T1w and a T2w image of the same anatomy can be compared with a plain sum of squared differences.

For a set of patch pairs ``(a_c, b_c)``, ``c = 1..C`` (offsets in pixels),

.. math::

    D_c(x) = \\big(G_\\sigma * (I(\\cdot + a_c) - I(\\cdot + b_c))^2\\big)(x), \\qquad
    V(x) = \\frac{1}{C} \\sum_c D_c(x), \\qquad
    \\mathrm{MIND}_c(x) = \\frac{\\exp(-D_c(x) / V(x))}{\\max_{c'} \\exp(-D_{c'}(x) / V(x))}

with ``G_sigma`` a box filter of side ``2 * patch_radius + 1`` (the patch distance). Two 2D
neighbourhoods are offered, both with ``C = 4`` channels and neighbour distance ``dilation``:

* ``"ssc"`` (self-similarity context, the default): the pairs of 4-neighbours that are
  ``sqrt(2) * dilation`` apart: ``(+x, +y), (+y, -x), (-x, -y), (-y, +x)``; the centre pixel
  takes no part, which makes the descriptor robust to noise at the centre.
* ``"nbh4"`` (original MIND, 4-neighbourhood): the centre against each of its 4 neighbours.

The baseline (:func:`mind_probs`, :func:`mind_baseline`) compares fixed and moving descriptors with
the project's correlation layer (:func:`pemd_tutorial.correlation.cost_volume`, ``metric="ssd"``)
densely for every label, averages the cost over the ``(2 (s//2) + 1)^2`` patch centred on every
control point (``s`` = control spacing), smooths it over neighbouring control points (a few 3x3
box-filter iterations: a cheap stand-in for a regulariser) and turns it into label probabilities
with a softmax at temperature ``T``: ``p_l = softmax_l(-SSD_l / T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_utils.grid import LabelGrid, check_control_spacing
from pemd_tutorial.correlation import box_filter, cost_volume, smooth_cost

__all__ = ["MIND_NEIGHBOURHOODS", "mind_baseline", "mind_cost", "mind_descriptors", "mind_patch_costs",
           "mind_probs"]

# unit offsets (dx, dy) of the patch pairs of each neighbourhood; multiplied by `dilation`
MIND_NEIGHBOURHOODS: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = {
    "ssc": (((1, 0), (0, 1)), ((0, 1), (-1, 0)), ((-1, 0), (0, -1)), ((0, -1), (1, 0))),
    "nbh4": (((0, 0), (1, 0)), ((0, 0), (0, 1)), ((0, 0), (-1, 0)), ((0, 0), (0, -1))),
}


def _shift(img: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``out(x, y) = img(x + dx, y + dy)`` with replicated borders; ``img`` is ``(B, C, H, W)``."""
    if dx == 0 and dy == 0:
        return img
    p = max(abs(dx), abs(dy))
    h, w = img.shape[-2:]
    padded = F.pad(img, (p, p, p, p), mode="replicate")
    return padded[..., p + dy : p + dy + h, p + dx : p + dx + w]


def mind_descriptors(
    img: torch.Tensor,
    *,
    patch_radius: int = 1,
    dilation: int = 1,
    neighbourhood: str = "ssc",
    eps: float = 1e-12,
) -> torch.Tensor:
    """MIND descriptors of a batch of single-channel images.

    Args:
        img: images, shape ``(B, 1, H, W)``, float.
        patch_radius: half-side of the box filter that turns squared differences into patch
            distances (``>= 0``).
        dilation: distance in pixels between the centre and its neighbours (``>= 1``).
        neighbourhood: ``"ssc"`` or ``"nbh4"`` (see the module docstring).
        eps: lower bound of ``V`` (only matters for constant images); ``V`` is first clamped to
            ``[1e-3, 1e3]`` times its image mean, so flat regions and edges stay well scaled (as in
            the MIND-SSC reference code) and an intensity scaling leaves the descriptor unchanged.

    Returns:
        Descriptors of shape ``(B, 4, H, W)`` in ``(0, 1]`` (the largest channel of every pixel is 1);
        device and dtype follow ``img``. An affine intensity map ``a I + b`` (``a != 0``) leaves them
        unchanged up to rounding.
    """
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 1:
        got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"mind_descriptors() 'img' must have shape (B, 1, H, W), got {got}")
    if not img.is_floating_point():
        raise ValueError(f"mind_descriptors() 'img' must be floating point, got {img.dtype}")
    if neighbourhood not in MIND_NEIGHBOURHOODS:
        raise ValueError(
            f"mind_descriptors() 'neighbourhood' must be one of {sorted(MIND_NEIGHBOURHOODS)}, "
            f"got {neighbourhood!r}"
        )
    if isinstance(patch_radius, bool) or not isinstance(patch_radius, int) or patch_radius < 0:
        raise ValueError(f"mind_descriptors() 'patch_radius' must be an integer >= 0, got {patch_radius!r}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"mind_descriptors() 'dilation' must be an integer >= 1, got {dilation!r}")

    dist = []
    for (ax, ay), (bx, by) in MIND_NEIGHBOURHOODS[neighbourhood]:
        diff = _shift(img, ax * dilation, ay * dilation) - _shift(img, bx * dilation, by * dilation)
        dist.append(box_filter(diff.square(), patch_radius))
    d = torch.cat(dist, dim=1)  # (B, 4, H, W)
    d = d - d.amin(dim=1, keepdim=True)  # exp(-D/V) / max_c: only differences of D matter
    v = d.mean(dim=1, keepdim=True)
    v_mean = v.mean(dim=(2, 3), keepdim=True)
    v = torch.minimum(torch.maximum(v, 1e-3 * v_mean), 1e3 * v_mean).clamp_min(eps)
    return torch.exp(-d / v)


def _patch_pool(vol: torch.Tensor, spacing: int) -> torch.Tensor:
    """Mean of a dense ``(B, L, H, W)`` map over the ``(2 (s//2) + 1)^2`` patch centred on each control
    point: ``(B, L, Hc, Wc)``."""
    o = spacing // 2
    k = 2 * o + 1
    extra = k - spacing  # 1 for even spacings, 0 for odd: pad right/bottom so every window exists
    padded = F.pad(vol, (0, extra, 0, extra), mode="replicate") if extra else vol
    return F.avg_pool2d(padded, k, stride=spacing)


def mind_cost(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    grid: LabelGrid,
    control_spacing: int,
    *,
    smooth_iterations: int = 2,
    chunk: int = 8,
    **mind_kwargs,
) -> torch.Tensor:
    """Patch-averaged, smoothed SSD of MIND descriptors for every label at every control point.

    Args:
        fixed: ``(B, 1, H, W)``.
        moving: ``(B, 1, H, W)``.
        grid: the label grid.
        control_spacing: ``s``; ``H`` and ``W`` must be multiples of it.
        smooth_iterations: 3x3 box-filter passes over neighbouring control points (``>= 0``).
        chunk: images per dense cost-volume evaluation (memory: ``chunk * L * 4 * H * W`` floats).
        **mind_kwargs: passed to :func:`mind_descriptors`.

    Returns:
        ``(B, L, Hc, Wc)`` costs (mean squared descriptor difference, ``>= 0``; lower = better).
    """
    if fixed.dim() != 4 or fixed.shape[1] != 1:
        raise ValueError(f"mind_cost() 'fixed' must have shape (B, 1, H, W), got {tuple(fixed.shape)}")
    if moving.shape != fixed.shape:
        raise ValueError(
            f"mind_cost() 'moving' must have the shape of 'fixed' {tuple(fixed.shape)}, "
            f"got {tuple(moving.shape)}"
        )
    check_control_spacing(fixed.shape[-2], fixed.shape[-1], control_spacing)
    if isinstance(smooth_iterations, bool) or not isinstance(smooth_iterations, int) or smooth_iterations < 0:
        raise ValueError(
            f"mind_cost() 'smooth_iterations' must be an integer >= 0, got {smooth_iterations!r}"
        )
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"mind_cost() 'chunk' must be an integer >= 1, got {chunk!r}")
    out = []
    for start in range(0, fixed.shape[0], chunk):
        f = mind_descriptors(fixed[start : start + chunk], **mind_kwargs)
        m = mind_descriptors(moving[start : start + chunk], **mind_kwargs)
        dense = -cost_volume(f, m, grid, control_spacing=1, metric="ssd")  # (b, L, H, W), >= 0
        out.append(_patch_pool(dense, control_spacing))
    return smooth_cost(torch.cat(out, dim=0), smooth_iterations)


def mind_probs(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    grid: LabelGrid,
    control_spacing: int,
    *,
    temperature: float = 0.02,
    smooth_iterations: int = 2,
    **mind_kwargs,
) -> torch.Tensor:
    """Label probabilities of the MIND baseline: ``softmax_l(-cost_l / temperature)``.

    Args:
        fixed, moving, grid, control_spacing, smooth_iterations, mind_kwargs: see :func:`mind_cost`.
        temperature: softmax temperature ``T > 0`` in units of the descriptor SSD (descriptors lie
            in ``(0, 1]``); smaller = more peaked. Only the EPE and the image similarity depend on
            it; the arg-max label does not.

    Returns:
        ``(B, L, Hc, Wc)`` probabilities (sum to one over ``L``).
    """
    if not (float(temperature) > 0.0):
        raise ValueError(f"mind_probs() 'temperature' must be > 0, got {temperature!r}")
    cost = mind_cost(fixed, moving, grid, control_spacing, smooth_iterations=smooth_iterations, **mind_kwargs)
    return torch.softmax(-cost / float(temperature), dim=1)


@torch.no_grad()
def mind_baseline(eval_pairs, cfg, **kwargs) -> torch.Tensor:
    """Run the MIND baseline on a pair dataset (only ``"fixed"`` and ``"moving"`` are read).

    Args:
        eval_pairs: any :mod:`data_utils` pair dataset or evaluation view (``.batch()``).
        cfg: the configuration (its ``grid`` and ``control_spacing``).
        **kwargs: passed to :func:`mind_probs` (``temperature``, ``smooth_iterations``,
            ``patch_radius``, ``dilation``, ``neighbourhood``).

    Returns:
        ``(N, L, Hc, Wc)`` probabilities on the CPU, in the order of ``eval_pairs``.
    """
    batch = eval_pairs.batch()
    fixed = batch["fixed"].float()
    moving = batch["moving"].float()
    return mind_probs(fixed, moving, cfg.grid, int(cfg.control_spacing), **kwargs).cpu()


@torch.no_grad()
def mind_patch_costs(fixed: torch.Tensor, moving: torch.Tensor, grid: LabelGrid,
                     margin: int | None = None) -> torch.Tensor:
    """MIND-SSD of a fixed patch and the moving patch shifted by every label: ``(N, L)``.

    For each label ``d`` of ``grid``: the mean squared difference between the fixed descriptors at
    ``x`` and the moving descriptors at ``x + d`` over the centre of the patch (``margin`` pixels
    from every border, default the grid's reach ``R * step``, so that every shift stays inside).
    The arg-min over labels is the classical patch answer (the paper experiment's MIND row); the
    cost at a network's predicted label says, without a label, how well that prediction aligns
    the pair (:mod:`pemd_tutorial.selection`).

    Args:
        fixed, moving: ``(N, 1, P, P)`` patches.
        grid: the label grid (integer displacements).
        margin: pixels left out at every border (``>= R * step``).
    """
    if fixed.dim() != 4 or fixed.shape[1] != 1 or moving.shape != fixed.shape:
        raise ValueError(f"mind_patch_costs() 'fixed' and 'moving' must be (N, 1, P, P) of one shape, got "
                         f"{tuple(fixed.shape)} and {tuple(moving.shape)}")
    reach = int(round(grid.max_displacement))
    m = reach if margin is None else int(margin)
    p = fixed.shape[-1]
    if m < reach or 2 * m >= p:
        raise ValueError(f"mind_patch_costs() 'margin' must be in [{reach}, {(p - 1) // 2}], got {margin!r}")
    df, dm = mind_descriptors(fixed.float()), mind_descriptors(moving.float())
    a = df[..., m : p - m, m : p - m]
    costs = []
    for dx, dy in grid.displacements().round().long().tolist():
        b = dm[..., m + dy : p - m + dy, m + dx : p - m + dx]
        costs.append((a - b).square().mean(dim=(1, 2, 3)))
    return torch.stack(costs, dim=1)
