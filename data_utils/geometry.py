"""Geometry of users' volumes: canonical orientation, slices, and the model's square field of view in mm.

The one policy of the project for turning a NIfTI volume into model images and back, used by
:func:`data_utils.load_nifti_pair` (training on one's own pair), :func:`data_utils.save_nifti` and
:func:`pemd_tutorial.register`:

* volumes are reoriented to the closest canonical (RAS+) orientation and cut into slices along
  one canonical ``axis``; the two in-plane axes ``(a, b)`` are the others, in increasing order;
* the **foreground** is the fixed volume's normalised intensity above
  :data:`FOREGROUND_THRESHOLD`, holes filled (or a mask given by the user); by default the slices
  with at least :data:`MIN_FOREGROUND` of foreground are used;
* every slice is resampled **in millimetres** onto the model's ``size x size`` image: a square
  field of view centred on the foreground of all chosen slices, its side the larger side of the
  foreground's bounding box times :func:`data_utils.embedded.brain_fov_margin` (1.016, measured on
  the embedded slices), so that the brain fills the image as much as in the images the networks
  were trained on and a brain of the template's size is seen at their pixel size (3.83 mm at 48
  pixels). Anisotropic voxels keep their true aspect (they are never stretched); downsampling uses
  the antialiasing filter that made the embedded images (:func:`model_images`).

Image layout, as in the embedded data: columns run along ``+a`` and rows along ``-b`` (for an
axial slice anterior is at the top and the subject's right on the image's right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform
from scipy.ndimage import binary_fill_holes, map_coordinates

from data_utils.embedded import brain_fov_margin

__all__ = ["CANONICAL", "FOREGROUND_THRESHOLD", "MIN_FOREGROUND", "CanonicalFrame",
           "SliceFrame", "choose_slices", "display_orientation", "estimate_foreground", "from_canonical",
           "in_plane_axes", "model_images", "parse_slices", "reorient", "sample_model", "sample_slices",
           "slice_frame", "to_canonical", "volume_from_slices"]

#: nibabel orientation of RAS+ (the canonical orientation).
CANONICAL = np.array([[0, 1], [1, 1], [2, 1]])
#: Normalised fixed intensity above which a voxel counts as foreground (holes filled).
FOREGROUND_THRESHOLD = 0.1
#: Default slices: at least this share of the slice is foreground.
MIN_FOREGROUND = 0.02


@dataclass(frozen=True, eq=False)
class CanonicalFrame:
    """How a volume of ``shape`` with ``affine`` maps to its canonical (RAS+) voxel order.

    Attributes:
        affine, shape: the file's affine and spatial shape (original voxel order).
        canonical_affine, canonical_shape: the same after reorientation.
        spacing: voxel size in mm along the three canonical axes.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    canonical_affine: np.ndarray
    canonical_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]


def to_canonical(affine: np.ndarray, shape: tuple[int, ...]) -> CanonicalFrame:
    """The :class:`CanonicalFrame` of a volume (apply it with :func:`from_canonical`'s inverse)."""
    shape = tuple(int(s) for s in shape[:3])
    to_ras = ornt_transform(io_orientation(affine), CANONICAL)
    can_affine = np.asarray(affine, dtype=np.float64) @ inv_ornt_aff(to_ras, shape)
    can_shape = tuple(int(v) for v in apply_orientation(np.empty(shape, dtype=np.int8), to_ras).shape)
    spacing = tuple(float(v) for v in np.sqrt((can_affine[:3, :3] ** 2).sum(axis=0)))
    return CanonicalFrame(np.asarray(affine, dtype=np.float64).copy(), shape, can_affine, can_shape, spacing)


def reorient(volume: np.ndarray, frame: CanonicalFrame) -> np.ndarray:
    """A volume in the file's voxel order -> canonical (RAS+) voxel order."""
    return apply_orientation(volume, ornt_transform(io_orientation(frame.affine), CANONICAL))


def from_canonical(volume: np.ndarray, frame: CanonicalFrame) -> np.ndarray:
    """A canonical volume ``(X, Y, Z)`` (or ``(X, Y, Z, C)``, per channel) back in the file's voxel order."""
    back = ornt_transform(CANONICAL, io_orientation(frame.affine))
    if volume.ndim == 4:
        return np.stack([apply_orientation(volume[..., c], back) for c in range(volume.shape[-1])], axis=-1)
    return apply_orientation(volume, back)


def in_plane_axes(axis: int) -> tuple[int, int]:
    """The canonical in-plane axes ``(a, b)`` of slices along ``axis``."""
    a, b = (i for i in range(3) if i != axis)
    return a, b


def estimate_foreground(normalised: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """Foreground of a normalised volume: intensity above ``threshold``, holes filled (bool)."""
    return binary_fill_holes(np.asarray(normalised) > threshold)


def parse_slices(text: str | None, n: int, who: str = "register()") -> list[int] | None:
    """``"a:b"`` (end exclusive, like Python), ``"a:"``, ``":b"`` or ``"k"`` -> slice indices in ``[0, n)``.

    Raises:
        ValueError: not of that form, or outside ``[0, n)``, or empty.
    """
    if text is None:
        return None
    text = str(text).strip()
    try:
        if ":" in text:
            lo_s, hi_s = text.split(":", 1)
            lo = int(lo_s) if lo_s.strip() else 0
            hi = int(hi_s) if hi_s.strip() else n
        else:
            lo = int(text)
            hi = lo + 1
    except ValueError:
        raise ValueError(f"{who} 'slices' must look like 40:90, 40: or 42, got {text!r}") from None
    if not (0 <= lo < hi <= n):
        raise ValueError(
            f"{who} 'slices' {text!r} is outside the volume: {n} slices along the axis (0:{n})"
        )
    return list(range(lo, hi))


def choose_slices(mask: np.ndarray, axis: int, slices=None, min_foreground: float = MIN_FOREGROUND,
                  *, who: str = "load_nifti_pair()", name: str = "the fixed volume") -> list[int]:
    """Slice indices along ``axis`` of the canonical ``mask``: ``slices`` checked, or those with foreground.

    ``slices`` is a sequence of indices, a string for :func:`parse_slices` or ``None``.

    Raises:
        ValueError: ``slices`` empty or outside the volume; no slice with enough foreground.
    """
    n_along = mask.shape[axis]
    if isinstance(slices, str):
        slices = parse_slices(slices, n_along, who)
    if slices is not None:
        arr = np.asarray(slices)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{who} 'slices' must be a non-empty 1D sequence of integers, got {slices!r}")
        idx = [int(i) for i in arr]
        if min(idx) < 0 or max(idx) >= n_along or len(set(idx)) != len(idx):
            raise ValueError(f"{who} 'slices' must be distinct indices in [0, {n_along}), got {slices!r}")
        return idx
    share = np.moveaxis(mask, axis, 0).reshape(n_along, -1).mean(axis=1)
    idx = np.nonzero(share >= min_foreground)[0].tolist()
    if not idx:
        raise ValueError(f"{who} no slice of {name} along axis {axis} has >= {min_foreground:.0%} foreground")
    return idx


@dataclass(frozen=True)
class SliceFrame:
    """The square field of view of every slice, in the canonical in-plane voxel axes ``(a, b)``.

    Model pixel ``(row r, column c)`` has its centre at the in-plane point (mm, relative to voxel
    ``(0, 0)``): ``a = a0 + (c + 0.5) * pixel``, ``b = b0 - (r + 0.5) * pixel``; columns run along
    ``+a`` and rows along ``-b``, like the embedded data.
    """

    a0: float
    b0: float
    pixel: float  # mm per model pixel
    size: int
    spacing_a: float  # mm per voxel along a
    spacing_b: float

    def voxel_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """In-plane voxel coordinates ``(a, b)`` of every model pixel centre, each ``(S, S)``."""
        c = (np.arange(self.size) + 0.5) * self.pixel
        a_mm = self.a0 + c[None, :].repeat(self.size, 0)
        b_mm = self.b0 - c[:, None].repeat(self.size, 1)
        return a_mm / self.spacing_a, b_mm / self.spacing_b

    def model_coordinates(self, na: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
        """Model-pixel coordinates ``(column x, row y)`` of every in-plane voxel, each ``(na, nb)``."""
        a_mm = np.arange(na)[:, None] * self.spacing_a
        b_mm = np.arange(nb)[None, :] * self.spacing_b
        x = (a_mm - self.a0) / self.pixel - 0.5
        y = (self.b0 - b_mm) / self.pixel - 0.5
        return np.broadcast_to(x, (na, nb)), np.broadcast_to(y, (na, nb))

    def inside(self, na: int, nb: int) -> np.ndarray:
        """Which in-plane voxels ``(na, nb)`` the field of view covers (bool)."""
        x, y = self.model_coordinates(na, nb)
        hi = self.size - 0.5
        return (x >= -0.5) & (x <= hi) & (y >= -0.5) & (y <= hi)

    def to_voxels(self, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacements in model pixels (``+dx`` along columns, ``+dy`` down rows) -> voxels (a, b)."""
        return dx * self.pixel / self.spacing_a, -dy * self.pixel / self.spacing_b


def slice_frame(mask_slices: np.ndarray, spacing_a: float, spacing_b: float, size: int,
                margin: float | None = None) -> SliceFrame:
    """A square field of view around the foreground of ``mask_slices`` ``(N, na, nb)`` (all if empty).

    Its side is the larger side of the foreground's bounding box times ``margin``, by default
    :func:`data_utils.embedded.brain_fov_margin`: the brain then fills the model image as it filled
    the networks' training images.
    """
    margin = brain_fov_margin() if margin is None else float(margin)
    fg = np.asarray(mask_slices).any(axis=0)
    if not fg.any():
        fg = np.ones_like(fg)
    ia, ib = np.nonzero(fg)
    lo_a, hi_a = ia.min() * spacing_a, ia.max() * spacing_a
    lo_b, hi_b = ib.min() * spacing_b, ib.max() * spacing_b
    side = max(hi_a - lo_a + spacing_a, hi_b - lo_b + spacing_b) * margin
    ca, cb = (lo_a + hi_a) / 2, (lo_b + hi_b) / 2
    return SliceFrame(a0=ca - side / 2, b0=cb + side / 2, pixel=side / size, size=int(size),
                      spacing_a=float(spacing_a), spacing_b=float(spacing_b))


def sample_slices(slices: np.ndarray, a: np.ndarray, b: np.ndarray, order: int = 1) -> np.ndarray:
    """Samples of ``slices (N, na, nb)`` at voxel coordinates ``a, b`` (bilinear; outside: 0).

    ``a`` and ``b`` are one pair of coordinate maps for every slice, or ``(N, ...)`` one per slice.
    """
    a, b = np.asarray(a), np.asarray(b)
    per_slice = a.ndim == 3
    return np.stack([
        map_coordinates(s, [a[i] if per_slice else a, b[i] if per_slice else b], order=order,
                        mode="constant", cval=0.0)
        for i, s in enumerate(np.asarray(slices, dtype=np.float64))
    ])


def model_images(slices: np.ndarray, frame: SliceFrame, antialias: bool = True) -> np.ndarray:
    """Native slices ``(N, na, nb)`` -> model images ``(N, S, S)`` on ``frame`` (bilinear).

    With ``antialias``, where the model pixel is larger than a voxel, the slices are first sampled
    on a grid ``k`` times finer than the model's (``k`` the smallest integer that makes it no
    coarser than the voxels) and then reduced with torch's antialiased bilinear resize, the filter
    that made the embedded training images (:func:`data_utils.resize_images`). Use
    ``antialias=False`` for masks.
    """
    slices = np.asarray(slices, dtype=np.float64)
    k = math.ceil(frame.pixel / min(frame.spacing_a, frame.spacing_b) - 1e-9) if antialias else 1
    if k <= 1:
        va, vb = frame.voxel_coordinates()
        return sample_slices(slices, va, vb)
    fine = SliceFrame(frame.a0, frame.b0, frame.pixel / k, frame.size * k, frame.spacing_a, frame.spacing_b)
    va, vb = fine.voxel_coordinates()
    x = torch.from_numpy(sample_slices(slices, va, vb))[:, None]
    small = F.interpolate(x, size=(frame.size, frame.size), mode="bilinear", align_corners=False,
                          antialias=True)
    return small[:, 0].numpy()


def sample_model(maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``maps (N, S, S)`` (model pixels) at column ``x``, row ``y`` (borders: nearest)."""
    return np.stack([map_coordinates(m, [y, x], order=1, mode="nearest")
                     for m in np.asarray(maps, dtype=np.float64)])


def volume_from_slices(values: np.ndarray, axis: int, shape: tuple[int, int, int], chosen,
                       base: np.ndarray | None = None) -> np.ndarray:
    """Put ``values (N, na, nb)`` at ``chosen`` along ``axis`` of a canonical volume (or of ``base``)."""
    vol = np.zeros(shape, dtype=np.float64) if base is None else np.array(base, dtype=np.float64)
    np.moveaxis(vol, axis, 0)[list(chosen)] = values
    return vol


def display_orientation(slice_ab: np.ndarray) -> np.ndarray:
    """A canonical slice ``(na, nb)`` (first in-plane axis to the right, second up) as an image.

    Rows run downwards along ``-b`` and columns along ``+a``: an axial slice is seen from the feet
    with the subject's right on the right of the image, as in the embedded data.
    """
    return np.ascontiguousarray(np.asarray(slice_ab).T[::-1])
