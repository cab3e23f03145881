"""Intensity changes that turn one template slice into many pseudo-subjects.

All functions take images of shape ``(B, C, H, W)`` with values in ``[0, 1]``, draw their random
numbers from an explicit ``torch.Generator`` (same seed -> same result) and return a tensor of the
same shape, device and dtype.
"""

from __future__ import annotations

import math

import torch

from data_utils.deform import smooth_noise

__all__ = ["gamma_jitter", "bias_field", "rician_noise", "augment_intensity", "invert_foreground"]


def _check_image(image: torch.Tensor, fn: str) -> None:
    if image.dim() != 4 or not image.is_floating_point():
        raise ValueError(f"{fn}() 'image' must be a floating point tensor (B, C, H, W), got "
                         f"{image.dtype} {tuple(image.shape)}")


def _uniform(n: int, lo: float, hi: float, generator, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, generator=generator, device=dev, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(device=like.device, dtype=like.dtype).view(n, 1, 1, 1)


def _check_range(rng, fn: str, name: str, positive: bool) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}() '{name}' must be a pair (low, high), got {rng!r}") from None
    if not lo <= hi or (positive and lo <= 0):
        raise ValueError(f"{fn}() '{name}' must satisfy {'0 < ' if positive else ''}low <= high, got {rng!r}")
    return lo, hi


def gamma_jitter(
    image: torch.Tensor,
    gamma_range: tuple[float, float] = (0.7, 1.4),
    contrast_range: tuple[float, float] = (0.9, 1.1),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``x -> c * x ** gamma`` with ``log gamma ~ U(log g_lo, log g_hi)`` and ``c ~ U(c_lo, c_hi)``
    drawn per sample (``x`` is clamped at 0 first)."""
    _check_image(image, "gamma_jitter")
    g_lo, g_hi = _check_range(gamma_range, "gamma_jitter", "gamma_range", positive=True)
    c_lo, c_hi = _check_range(contrast_range, "gamma_jitter", "contrast_range", positive=True)
    n = image.shape[0]
    gamma = torch.exp(_uniform(n, math.log(g_lo), math.log(g_hi), generator, image))
    contrast = _uniform(n, c_lo, c_hi, generator, image)
    return contrast * image.clamp_min(0.0) ** gamma


def bias_field(
    image: torch.Tensor,
    strength: float = 0.2,
    smoothness: float | None = None,
    generator: torch.Generator | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Multiply by a smooth random field with values in ``[1 - strength, 1 + strength]``.

    The field is :func:`data_utils.deform.smooth_noise` with node spacing ``smoothness`` pixels
    (default: half the image side), the same for all channels of a sample, upsampled in
    ``compute_dtype``.
    """
    _check_image(image, "bias_field")
    if not (0.0 <= strength < 1.0):
        raise ValueError(f"bias_field() 'strength' must lie in [0, 1), got {strength!r}")
    b, _, h, w = image.shape
    spacing = max(h, w) / 2 if smoothness is None else smoothness
    s = smooth_noise(b, 1, h, w, spacing, generator=generator, device=image.device, dtype=image.dtype,
                     compute_dtype=compute_dtype)
    return image * (1.0 + strength * s)


def rician_noise(
    image: torch.Tensor, std: float = 0.02, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitude of a complex signal with Gaussian noise: ``sqrt((x + s n1)^2 + (s n2)^2)``."""
    _check_image(image, "rician_noise")
    if not (std >= 0.0):
        raise ValueError(f"rician_noise() 'std' must be >= 0, got {std!r}")
    dev = generator.device if generator is not None else torch.device("cpu")
    n = torch.randn((2, *image.shape), generator=generator, device=dev, dtype=image.dtype).to(image.device)
    return torch.sqrt((image + std * n[0]) ** 2 + (std * n[1]) ** 2)


def augment_intensity(
    image: torch.Tensor,
    generator: torch.Generator | None = None,
    gamma_range: tuple[float, float] = (0.7, 1.4),
    contrast_range: tuple[float, float] = (0.9, 1.1),
    bias_strength: float = 0.2,
    noise_std: float = 0.02,
    bias_smoothness: float | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Gamma/contrast jitter, then a bias field, then Rician noise; clamped to ``[0, 1]``.

    Args:
        image: ``(B, C, H, W)`` in ``[0, 1]``.
        generator: source of randomness (same seed -> same result).
        gamma_range, contrast_range: see :func:`gamma_jitter` (``(1, 1)`` switches it off).
        bias_strength: see :func:`bias_field` (0 switches it off).
        noise_std: see :func:`rician_noise` (0 switches it off).
        bias_smoothness: node spacing of the bias field in pixels (default: half the image side;
            set it to keep the same field when a crop of a larger image is augmented).
        compute_dtype: precision of the bias field's upsampling (float32: faster, equal up to
            rounding).

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, same device and dtype.
    """
    _check_image(image, "augment_intensity")
    out = gamma_jitter(image, gamma_range, contrast_range, generator=generator)
    out = bias_field(out, bias_strength, smoothness=bias_smoothness, generator=generator,
                     compute_dtype=compute_dtype)
    out = rician_noise(out, noise_std, generator=generator)
    return out.clamp(0.0, 1.0)


def invert_foreground(image: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """The trivial contrast trick: each image inverted on its foreground, ``max - x``, 0 elsewhere.

    The foreground of an image is where it exceeds ``threshold`` times its maximum (the noise floor
    of the background stays 0). A simulated T2w slice inverted this way looks much like a T1w slice
    (CSF dark, white matter bright), so a network trained on T1w alone registers it far better than
    the raw T2w: the baseline that any adaptation method has to beat.

    Args:
        image: ``(B, C, H, W)`` floating point, values ``>= 0``.
        threshold: foreground share of the maximum, in ``[0, 1)``.

    Returns:
        ``(B, C, H, W)``, same device and dtype.

    Example:
        >>> x = torch.tensor([[[[0.0, 0.2, 1.0]]]])
        >>> invert_foreground(x).tolist()
        [[[[0.0, 0.800000011920929, 0.0]]]]
    """
    _check_image(image, "invert_foreground")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"invert_foreground() 'threshold' must be in [0, 1), got {threshold!r}")
    top = image.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(image > threshold * top, top - image, torch.zeros_like(image))
