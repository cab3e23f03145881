"""Smooth random displacement fields and backward warping.

Conventions (from :mod:`data_utils.grid`): fields have shape ``(B, 2, H, W)`` in **pixels**,
channel 0 is ``dx`` (along ``W``, the column index), channel 1 is ``dy`` (along ``H``, the row
index). Warping is backward: ``warped(x) = image(x + u(x))``.

Pixel <-> ``grid_sample`` coordinates (written down here once): with ``align_corners=True`` the
normalised coordinate ``-1`` is the centre of the first pixel and ``+1`` the centre of the last,
so a pixel position ``p`` in ``[0, W - 1]`` maps to ``2 p / (W - 1) - 1`` (same for rows with
``H``). Samples outside the image repeat the border pixel (``padding_mode="border"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_deformation", "smooth_noise", "warp", "identity_grid", "jacobian_determinant"]


def _check_generator(generator: torch.Generator | None, name: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name}() 'generator' must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")


def smooth_noise(
    batch: int,
    channels: int,
    height: int,
    width: int,
    spacing: float,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Smooth random fields ``(B, C, H, W)`` with maximum absolute value 1 per sample.

    Standard normal values on a coarse lattice with about ``spacing`` pixels between nodes are
    upsampled bicubically (``align_corners=True``) to ``H x W``; each sample is then divided by its
    maximum absolute value. Larger ``spacing`` gives smoother fields. The random numbers are drawn
    on the generator's device (CPU if ``generator`` is ``None``) and moved to ``device`` after.
    ``compute_dtype``: precision of the upsampling (the random numbers are float64 either way).
    """
    _check_generator(generator, "smooth_noise")
    dense = _smooth_dense(batch, channels, height, width, spacing, generator, "smooth_noise", compute_dtype)
    peak = dense.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    out = dense / peak
    return out.to(device=device if device is not None else dense.device, dtype=dtype)


def _smooth_dense(
    batch, channels, height, width, spacing, generator, fn: str, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Bicubically upsampled standard normal lattice on the generator's device.

    The lattice is always drawn in float64 (the same random stream whatever ``dtype``); the
    upsampling runs in ``dtype``.
    """
    if not (spacing >= 1.0):
        raise ValueError(f"{fn}() 'smoothness'/'spacing' must be >= 1 pixel, got {spacing!r}")
    nh = max(2, round(height / spacing) + 1)
    nw = max(2, round(width / spacing) + 1)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    coarse = torch.randn(batch, channels, nh, nw, generator=generator, device=gen_device, dtype=torch.float64)
    return F.interpolate(coarse.to(dtype), size=(height, width), mode="bicubic", align_corners=True)


def random_deformation(
    batch: int,
    height: int,
    width: int,
    max_displacement: float = 6.0,
    smoothness: float = 24.0,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    min_fraction: float = 0.5,
    min_jacobian: float | None = 0.2,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Smooth random displacement fields in pixels, bounded and free of folding.

    A standard normal lattice with ``smoothness`` pixels between nodes is upsampled bicubically to
    ``z`` of shape ``(B, 2, H, W)``, scaled to unit root-mean-square per sample, and mapped through

    .. math::

        u = a \\, m \\, \\tanh(z), \\qquad a \\sim U(\\text{min\\_fraction}, 1)

    with ``m = max_displacement`` and ``a`` drawn per sample. The ``tanh`` keeps the field smooth
    while bounding every component: ``|dx|, |dy| < a m <= m`` everywhere (the Chebyshev bound that
    matches the square label grid), and it spreads the displacements over the whole range instead
    of concentrating them near zero.

    No folding: where ``min_jacobian`` is not ``None``, a field whose Jacobian determinant
    ``det(I + grad u)`` (central differences) drops below ``min_jacobian`` somewhere is scaled down
    by the largest factor ``s < 1`` that keeps ``det(I + s grad u) >= min_jacobian`` everywhere
    (per pixel a quadratic in ``s``; its smallest positive root is solved exactly).

    Args:
        batch, height, width: output size ``(B, 2, H, W)``.
        max_displacement: bound on every component in pixels (``>= 0``).
        smoothness: spacing in pixels of the random control lattice (``>= 1``; larger is smoother).
        generator: source of randomness; the same seed gives the same fields.
        device, dtype: of the result (random numbers are drawn on the generator's device).
        min_fraction: lower end of the random amplitude fraction, in ``[0, 1]``.
        min_jacobian: smallest allowed Jacobian determinant, in ``(0, 1)``; ``None`` switches the
            folding check off.
        compute_dtype: precision of the computation (random numbers are drawn in float64 either
            way, so the fields differ only by rounding); float32 is about twice as fast.

    Returns:
        ``(B, 2, H, W)`` displacements ``(dx, dy)`` in pixels (see :mod:`data_utils.grid`).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> u = random_deformation(2, 32, 32, max_displacement=4.0, generator=g)
        >>> u.shape, bool(u.abs().max() <= 4.0)
        (torch.Size([2, 2, 32, 32]), True)
    """
    _check_generator(generator, "random_deformation")
    for name, v in (("batch", batch), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"random_deformation() '{name}' must be a positive integer, got {v!r}")
    if not (max_displacement >= 0.0):
        raise ValueError(
            f"random_deformation() 'max_displacement' must be >= 0 pixels, got {max_displacement!r}"
        )
    if min_jacobian is not None and not (0.0 < min_jacobian < 1.0):
        raise ValueError(
            f"random_deformation() 'min_jacobian' must lie in (0, 1) or be None, got {min_jacobian!r}"
        )
    if not (0.0 <= min_fraction <= 1.0):
        raise ValueError(f"random_deformation() 'min_fraction' must lie in [0, 1], got {min_fraction!r}")
    if compute_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"random_deformation() 'compute_dtype' must be torch.float32 or torch.float64, "
                         f"got {compute_dtype!r}")
    z = _smooth_dense(batch, 2, height, width, smoothness, generator, "random_deformation", compute_dtype)
    z = z / z.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
    amp = torch.rand(batch, 1, 1, 1, generator=generator, device=z.device, dtype=torch.float64)
    amp = ((min_fraction + (1.0 - min_fraction) * amp) * float(max_displacement)).to(compute_dtype)
    field = amp * torch.tanh(z)
    if min_jacobian is not None:
        field = field * _fold_free_scale(field, float(min_jacobian))
    return field.to(device=device if device is not None else z.device, dtype=dtype)


def _central_differences(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d/dx, d/dy)`` of ``(B, C, H, W)``: central inside, one-sided at the borders (H, W >= 2)."""
    gx = torch.empty_like(field)
    gy = torch.empty_like(field)
    gx[..., 1:-1] = (field[..., 2:] - field[..., :-2]) * 0.5
    gx[..., 0] = field[..., 1] - field[..., 0]
    gx[..., -1] = field[..., -1] - field[..., -2]
    gy[..., 1:-1, :] = (field[..., 2:, :] - field[..., :-2, :]) * 0.5
    gy[..., 0, :] = field[..., 1, :] - field[..., 0, :]
    gy[..., -1, :] = field[..., -1, :] - field[..., -2, :]
    return gx, gy


def jacobian_determinant(field: torch.Tensor) -> torch.Tensor:
    """``det(I + grad u)`` of ``(B, 2, H, W)`` pixel fields by central differences: ``(B, H, W)``."""
    if field.dim() != 4 or field.shape[1] != 2 or min(field.shape[-2:]) < 2:
        raise ValueError(
            f"jacobian_determinant() 'field' must have shape (B, 2, H>=2, W>=2), got {tuple(field.shape)}"
        )
    gx, gy = _central_differences(field)
    return (1 + gx[:, 0]) * (1 + gy[:, 1]) - gy[:, 0] * gx[:, 1]


def _fold_free_scale(field: torch.Tensor, c: float) -> torch.Tensor:
    """Per-sample factor ``s in (0, 1]`` with ``det(I + s grad u) >= c`` everywhere, ``(B, 1, 1, 1)``.

    ``det(I + s G) = 1 + s tr(G) + s^2 det(G)``; the first ``s > 0`` where it equals ``c`` bounds
    the admissible scale.
    """
    if min(field.shape[-2:]) < 2:
        return torch.ones(field.shape[0], 1, 1, 1, dtype=field.dtype, device=field.device)
    gx, gy = _central_differences(field)
    t = gx[:, 0] + gy[:, 1]
    d = gx[:, 0] * gy[:, 1] - gy[:, 0] * gx[:, 1]
    k = 1.0 - c  # solve d s^2 + t s + k = 0 for the smallest positive s
    inf = torch.full_like(t, float("inf"))
    lin = torch.where(t < 0, -k / t.clamp(max=-1e-300), inf)
    disc = t * t - 4.0 * d * k
    sq = disc.clamp_min(0).sqrt()
    safe_d = torch.where(d.abs() > 1e-12, d, torch.ones_like(d))
    r1 = (-t - sq) / (2 * safe_d)
    r2 = (-t + sq) / (2 * safe_d)
    r1 = torch.where(r1 > 0, r1, inf)
    r2 = torch.where(r2 > 0, r2, inf)
    quad = torch.where(disc >= 0, torch.minimum(r1, r2), inf)
    root = torch.where(d.abs() > 1e-12, quad, lin)
    s = root.amin(dim=(1, 2)).mul(0.999).clamp(max=1.0)
    return s.view(-1, 1, 1, 1)


def identity_grid(height: int, width: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel coordinates ``(1, 2, H, W)``: channel 0 the column ``x``, channel 1 the row ``y``."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None]


def warp(image: torch.Tensor, field: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warping ``warped(x) = image(x + field(x))`` with border padding.

    Args:
        image: ``(B, C, H, W)`` floating point.
        field: ``(B, 2, H, W)`` displacements ``(dx, dy)`` in pixels; a batch of 1 on either side
            is broadcast to the other's batch size.
        mode: ``"bilinear"`` or ``"nearest"`` (``grid_sample`` modes).

    Returns:
        ``(B, C, H, W)``, differentiable with respect to both ``image`` and ``field``; device and
        dtype follow ``image``.
    """
    if image.dim() != 4:
        raise ValueError(f"warp() 'image' must have shape (B, C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"warp() 'image' must be a floating point tensor, got {image.dtype}")
    if field.dim() != 4 or field.shape[1] != 2:
        raise ValueError(f"warp() 'field' must have shape (B, 2, H, W), got {tuple(field.shape)}")
    if field.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"warp() 'field' spatial size {tuple(field.shape[-2:])} must equal the image's "
            f"{tuple(image.shape[-2:])}"
        )
    b_img, b_fld = image.shape[0], field.shape[0]
    if b_img != b_fld and 1 not in (b_img, b_fld):
        raise ValueError(f"warp() batch sizes of 'image' ({b_img}) and 'field' ({b_fld}) do not match")
    h, w = image.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"warp() 'image' must be at least 2x2 pixels, got {h}x{w}")
    b = max(b_img, b_fld)
    field = field.to(image.dtype)
    pos = identity_grid(h, w, device=image.device, dtype=image.dtype) + field  # (B, 2, H, W) pixels
    gx = pos[:, 0] * (2.0 / (w - 1)) - 1.0
    gy = pos[:, 1] * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).expand(b, h, w, 2)
    src = image.expand(b, -1, -1, -1)
    return F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)
