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

__all__ = ["random_deformation", "smooth_noise", "warp", "identity_grid"]


def _check_generator(generator: torch.Generator | None, name: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"{name}() 'generator' must be a torch.Generator or None, got {type(generator)}")


def smooth_noise(
    batch: int,
    channels: int,
    height: int,
    width: int,
    spacing: float,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Smooth random fields ``(B, C, H, W)`` with maximum absolute value 1 per sample.

    Standard normal values on a coarse lattice with about ``spacing`` pixels between nodes are
    upsampled bicubically (``align_corners=True``) to ``H x W``; each sample is then divided by its
    maximum absolute value. Larger ``spacing`` gives smoother fields. The random numbers are drawn
    on the generator's device (CPU if ``generator`` is ``None``) and moved to ``device`` after.
    """
    _check_generator(generator, "smooth_noise")
    if not (spacing >= 1.0):
        raise ValueError(f"smooth_noise() 'spacing' must be >= 1 pixel, got {spacing!r}")
    nh = max(2, round(height / spacing) + 1)
    nw = max(2, round(width / spacing) + 1)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    coarse = torch.randn(batch, channels, nh, nw, generator=generator, device=gen_device, dtype=torch.float64)
    dense = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    peak = dense.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    out = dense / peak
    return out.to(device=device if device is not None else gen_device, dtype=dtype)


def random_deformation(
    batch: int,
    height: int,
    width: int,
    max_displacement: float = 6.0,
    smoothness: float = 16.0,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    min_fraction: float = 0.5,
) -> torch.Tensor:
    """Smooth random displacement fields in pixels.

    Each field is :func:`smooth_noise` (2 channels, node spacing ``smoothness`` pixels) times an
    amplitude ``a * max_displacement`` with ``a ~ U(min_fraction, 1)`` drawn per sample, so every
    component satisfies ``|dx|, |dy| <= max_displacement`` everywhere (the Chebyshev bound that
    matches the square label grid) and the largest component of each field equals
    ``a * max_displacement``.

    Args:
        batch, height, width: output size ``(B, 2, H, W)``.
        max_displacement: bound on every component in pixels (``>= 0``).
        smoothness: spacing in pixels of the random control lattice (``>= 1``; larger is smoother).
        generator: source of randomness; the same seed gives the same fields.
        device, dtype: of the result (random numbers are drawn on the generator's device).
        min_fraction: lower end of the random amplitude fraction, in ``[0, 1]``.

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
    if not (smoothness >= 1.0):
        raise ValueError(f"random_deformation() 'smoothness' must be >= 1 pixel, got {smoothness!r}")
    if not (0.0 <= min_fraction <= 1.0):
        raise ValueError(f"random_deformation() 'min_fraction' must lie in [0, 1], got {min_fraction!r}")
    noise = smooth_noise(batch, 2, height, width, smoothness, generator=generator, dtype=torch.float64)
    amp = torch.rand(batch, 1, 1, 1, generator=generator, device=noise.device, dtype=torch.float64)
    amp = (min_fraction + (1.0 - min_fraction) * amp) * float(max_displacement)
    field = noise * amp
    return field.to(device=device if device is not None else noise.device, dtype=dtype)


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
