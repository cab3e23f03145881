"""Random contrasts for the moving image of source pairs: the label-free alternatives to adaptation.

Two ways to teach a registration network to ignore contrast before it ever sees a target image,
used as ``moving_transform`` of :class:`data_utils.PairSampler` (applied to the moving image of
every drawn pair, before the usual intensity augmentation of :func:`data_utils.augment_intensity`,
which adds its gamma jitter, bias field and noise):

* :class:`RandomIntensityMap` (**contrast randomisation**): a random piecewise-linear map of the
  moving image's foreground intensities. It knows nothing of tissues: 6 knots equally spaced over
  ``[0, 1]`` take values drawn uniformly from ``[0, 1]``, so the map can be non-monotone (it can
  invert, fold or flatten any intensity range); a share of the pairs is left as it is. Chosen over
  random convolutions (GIN) because it is the simplest transform that reaches every contrast that
  is a function of the T1w intensity, and it leaves the anatomy's edges where they are.
* :class:`TissueSynthesis` (**SynthMorph-style synthesis**): the moving image is made anew from the
  slice's grey-matter, white-matter and CSF probability maps, with a random intensity per tissue
  (uniform in ``[0, 1]``), a random Gaussian blur and a random bias field. Its **held-out arm**
  (``reject_orders``) redraws every draw whose tissues are ordered like a given contrast (e.g. the
  target's, from :func:`data_utils.embedded.tissue_order`), so that the synthesis cannot simply
  contain the target.

Both draw all their randomness from the sampler's ``torch.Generator``: same seed, same images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from data_utils.intensity import bias_field

__all__ = ["TISSUES", "RandomIntensityMap", "TissueSynthesis", "gaussian_blur", "piecewise_linear"]

#: The tissue maps a synthesis reads, in this order.
TISSUES = ("gm", "wm", "csf")


def piecewise_linear(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Map ``x`` in ``[0, 1]`` through the piecewise-linear function with knots equally spaced over
    ``[0, 1]`` and the given ``values``.

    Args:
        x: ``(B, ...)`` values in ``[0, 1]`` (clamped).
        values: ``(B, K)``, ``K >= 2``: the function's value at knot ``k / (K - 1)`` of image ``b``.

    Example:
        >>> piecewise_linear(torch.tensor([[0.0, 0.25, 1.0]]), torch.tensor([[1.0, 0.0, 1.0]])).tolist()
        [[1.0, 0.5, 1.0]]
    """
    b, k = values.shape
    if k < 2 or x.shape[0] != b:
        raise ValueError(f"piecewise_linear() needs (B, K >= 2) values for {x.shape[0]} images, got "
                         f"{tuple(values.shape)}")
    flat = x.reshape(b, -1).clamp(0.0, 1.0) * (k - 1)
    lo = flat.floor().long().clamp_max(k - 2)
    t = flat - lo
    v0 = values.gather(1, lo)
    v1 = values.gather(1, lo + 1)
    return (v0 + t * (v1 - v0)).reshape(x.shape)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each ``(B, 1, H, W)`` image with its own Gaussian of ``sigma[b]`` pixels (0: unchanged)."""
    out = images.clone()
    for i, s in enumerate(sigma.tolist()):
        if s <= 0.05:
            continue
        r = max(1, int(round(3 * s)))
        xs = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
        k = torch.exp(-0.5 * (xs / s) ** 2)
        k = k / k.sum()
        img = images[i : i + 1]
        img = F.conv2d(F.pad(img, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        img = F.conv2d(F.pad(img, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
        out[i : i + 1] = img
    return out


def _check_share(name: str, value: float, cls: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{cls}() '{name}' must be a number in [0, 1), got {value!r}")


@dataclass(frozen=True)
class RandomIntensityMap:
    """Contrast randomisation: a random piecewise-linear map of the foreground (module docstring).

    Attributes:
        n_knots: knots of the map (``>= 2``), equally spaced over ``[0, 1]``.
        keep: share of the images left unchanged, in ``[0, 1)``.
        threshold: the foreground is where the image exceeds ``threshold`` times its maximum (as in
            :func:`data_utils.invert_foreground`); the background stays 0.
    """

    n_knots: int = 6
    keep: float = 0.25
    threshold: float = 0.1
    needs_tissues = False

    def __post_init__(self) -> None:
        if isinstance(self.n_knots, bool) or not isinstance(self.n_knots, int) or self.n_knots < 2:
            raise ValueError(f"RandomIntensityMap() 'n_knots' must be an integer >= 2, got {self.n_knots!r}")
        _check_share("keep", self.keep, "RandomIntensityMap")
        _check_share("threshold", self.threshold, "RandomIntensityMap")

    def __call__(self, moving: torch.Tensor, tissues: torch.Tensor | None,
                 generator: torch.Generator) -> torch.Tensor:
        """``(B, 1, H, W)`` moving images in ``[0, 1]`` -> the same shape, remapped (``tissues`` unused)."""
        b = moving.shape[0]
        values = torch.rand(b, self.n_knots, generator=generator)
        keep = torch.rand(b, generator=generator) < self.keep
        top = moving.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
        x = moving / top
        mapped = torch.where(x > self.threshold, piecewise_linear(x, values.to(moving)), torch.zeros_like(x))
        return torch.where(keep.view(b, 1, 1, 1), moving, mapped)


@dataclass(frozen=True)
class TissueSynthesis:
    """SynthMorph-style synthesis from the tissue maps, with an optional held-out arm.

    Attributes:
        reject_orders: tissue orders (brightest first, e.g. ``("csf", "gm", "wm")``) that a draw
            must not have; a draw that has one is redrawn. All six orders rejected: ``ValueError``.
        blur_max: the Gaussian blur's sigma is uniform in ``[0, blur_max]`` pixels.
        bias_strength: strength of the random bias field (:func:`data_utils.bias_field`).
        max_redraws: redraws before giving up on an image (a ``RuntimeError``; with at most five of
            six orders rejected the chance of reaching it is below ``(5/6) ** max_redraws``).
    """

    reject_orders: tuple[tuple[str, ...], ...] = ()
    blur_max: float = 1.0
    bias_strength: float = 0.3
    max_redraws: int = 200
    needs_tissues = True

    def __post_init__(self) -> None:
        orders = tuple(tuple(o) for o in self.reject_orders)
        object.__setattr__(self, "reject_orders", orders)
        for o in orders:
            if sorted(o) != sorted(TISSUES):
                raise ValueError(f"TissueSynthesis() 'reject_orders' entries must order the tissues "
                                 f"{TISSUES}, got {o!r}")
        if set(itertools.permutations(TISSUES)) <= set(orders):
            raise ValueError("TissueSynthesis() 'reject_orders' rejects all six tissue orders: the held-out "
                             "arm would reject every draw")
        if not isinstance(self.blur_max, (int, float)) or self.blur_max < 0:
            raise ValueError(f"TissueSynthesis() 'blur_max' must be >= 0 pixels, got {self.blur_max!r}")
        if not isinstance(self.bias_strength, (int, float)) or not 0 <= self.bias_strength < 1:
            raise ValueError(f"TissueSynthesis() 'bias_strength' must be in [0, 1), got "
                             f"{self.bias_strength!r}")

    def _intensities(self, b: int, generator: torch.Generator) -> torch.Tensor:
        rejected = [tuple(TISSUES.index(t) for t in o) for o in self.reject_orders]
        c = torch.rand(b, len(TISSUES), generator=generator)
        for _ in range(self.max_redraws):
            order = torch.argsort(c, dim=1, descending=True)
            bad = torch.zeros(b, dtype=torch.bool)
            for r in rejected:
                bad |= (order == torch.tensor(r)).all(dim=1)
            if not bad.any():
                return c
            c = torch.where(bad[:, None], torch.rand(b, len(TISSUES), generator=generator), c)
        raise RuntimeError("TissueSynthesis() redrew an image's intensities too often")

    def __call__(self, moving: torch.Tensor, tissues: torch.Tensor | None,
                 generator: torch.Generator) -> torch.Tensor:
        """Synthesise ``(B, 1, H, W)`` moving images from ``tissues`` ``(B, 3, H, W)`` (order
        :data:`TISSUES`); ``moving`` gives only the shape."""
        if tissues is None or tissues.shape[1] != len(TISSUES) or tissues.shape[0] != moving.shape[0]:
            raise ValueError(f"TissueSynthesis() needs (B, 3, H, W) tissue maps ({', '.join(TISSUES)}) for "
                             f"{moving.shape[0]} images")
        b = moving.shape[0]
        c = self._intensities(b, generator).to(tissues)
        image = (tissues * c[:, :, None, None]).sum(dim=1, keepdim=True)
        sigma = torch.rand(b, generator=generator) * float(self.blur_max)
        image = gaussian_blur(image, sigma)
        if self.bias_strength > 0:
            image = bias_field(image, self.bias_strength, generator=generator)
        top = image.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
        return (image / top).clamp(0.0, 1.0)
