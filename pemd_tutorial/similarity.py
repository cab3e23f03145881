"""How alike two images look without knowing their true alignment: NMI and MIND-SSD.

These are the measures every registration method without labels relies on, and the ones the
package uses wherever no label may be read: :mod:`pemd_tutorial.registration` reports them before and
after registration, and :mod:`pemd_tutorial.selection` chooses λ with them.

* :func:`normalised_mutual_information`: ``(H(a) + H(b)) / H(a, b)`` of the joint intensity
  histogram, between 1 (independent) and 2 (one image a function of the other); higher is better.
  It rewards any consistent intensity mapping, so it fits a T1w/T2w pair.
* :func:`mind_ssd`: the mean squared difference of MIND-SSC self-similarity descriptors
  (:func:`pemd_tutorial.mind.mind_descriptors`), which describe local structure independently of
  the intensity mapping; lower is better.
"""

from __future__ import annotations

import numpy as np
import torch

from pemd_tutorial.mind import mind_descriptors

__all__ = ["mind_ssd", "normalised_mutual_information"]


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def normalised_mutual_information(a, b, mask, bins: int = 32) -> float:
    """``(H(a) + H(b)) / H(a, b)`` over ``mask`` with ``bins`` equal bins on ``[0, 1]`` (1 to 2).

    Args:
        a, b: arrays (NumPy or torch) of the same shape, values in ``[0, 1]``.
        mask: bool array of that shape: the pixels that count (all of them pooled in one histogram).
        bins: histogram bins per image.

    Returns:
        The NMI, or NaN when the mask is empty. When both images are constant over the mask (one
        bin each: no information in either), the ratio is 0 / 0; it is then 1, the value of a pair
        in which one image is constant.

    Example:
        >>> x = np.linspace(0, 1, 100)
        >>> round(normalised_mutual_information(x, 1 - x, np.ones(100, bool)), 6)
        2.0
    """
    a, b, mask = _as_numpy(a), _as_numpy(b), _as_numpy(mask).astype(bool)
    if a.shape != b.shape or mask.shape != a.shape:
        raise ValueError(f"normalised_mutual_information() 'a', 'b' and 'mask' must have one shape, got "
                         f"{a.shape}, {b.shape} and {mask.shape}")
    x, y = a[mask], b[mask]
    if x.size == 0:
        return float("nan")
    joint, _, _ = np.histogram2d(x, y, bins=bins, range=[[0.0, 1.0], [0.0, 1.0]])
    p = joint / joint.sum()

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    joint_entropy = entropy(p)
    if joint_entropy == 0.0:  # both constant over the mask
        return 1.0
    return (entropy(p.sum(1)) + entropy(p.sum(0))) / joint_entropy


def mind_ssd(a, b, mask) -> float:
    """Mean squared difference of MIND-SSC descriptors of two ``(N, H, W)`` stacks over ``mask``.

    Args:
        a, b: ``(N, H, W)`` image stacks (NumPy or torch).
        mask: ``(N, H, W)`` bool: the pixels averaged over.

    Returns:
        The mean over the masked pixels (lower is more similar), or NaN when the mask is empty.
    """
    a, b, mask = _as_numpy(a), _as_numpy(b), _as_numpy(mask).astype(bool)
    if a.ndim != 3 or a.shape != b.shape or mask.shape != a.shape:
        raise ValueError(f"mind_ssd() 'a', 'b' and 'mask' must be (N, H, W) of one shape, got "
                         f"{a.shape}, {b.shape} and {mask.shape}")
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))[:, None]
    d = (mind_descriptors(ta) - mind_descriptors(tb)).square().mean(dim=1).numpy()
    return float(d[mask].mean()) if mask.any() else float("nan")
