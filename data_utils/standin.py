"""A stand-in for a user's own scans: a T1w and a T2w NIfTI file on different grids, misaligned.

:func:`write_standin_pair` builds, from the embedded test slices, what a reader of notebook 04
would bring: two volumes of one "subject" that are **not** on the same voxel grid and **not**
aligned, plus the truth that real scans never come with, so that a registration can be scored.

* **fixed** ``fixed_T1w.nii.gz``: the embedded T1w test slices stacked into a volume, 128 x 128
  voxels of 1.4375 mm in-plane, slices 2 mm apart, RAS+ axes, its centre at the world origin.
* **moving** ``moving_T2w.nii.gz``: the simulated T2w image of the same slices, seen through a
  known smooth misalignment ``u`` and written on another grid: 100 x 100 voxels of 1.84 mm
  in-plane (the same field of view, coarser), the same slice positions, LPS+ voxel order (the
  first two voxel axes reversed, as DICOM-derived files often are) and shifted by half a voxel.
* **truth**: ``u`` in millimetres along the world axes on the fixed grid ``(X, Y, Z, 3)``, with
  the convention of :func:`pemd_tutorial.registration.register`: the fixed world point ``x`` shows the
  same anatomy as the moving world point ``x + u(x)``. ``u`` is in-plane (``u_z = 0``): a rotation
  of a few degrees about the slice centre, a translation and a smooth sinusoidal warp.

The moving volume is made by inverting ``y = x + u(x)`` per moving voxel (fixed-point iteration,
which converges because ``u`` is a small, smooth field) and sampling the T2w image at ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_utils.embedded import EMBEDDED_PIXEL_MM, load_embedded
from data_utils.nifti import write_volume

__all__ = ["StandinPair", "misalignment_mm", "write_standin_pair"]

PIXEL_MM = EMBEDDED_PIXEL_MM  # in-plane voxel size of the embedded slices
SLICE_MM = 2.0  # distance between neighbouring embedded test slices


@dataclass(frozen=True)
class StandinPair:
    """Paths of the stand-in pair and its true misalignment.

    Attributes:
        fixed, moving: the NIfTI files.
        truth_mm: ``(X, Y, Z, 3)`` displacement in mm on the fixed grid (world axes, RAS+).
        mask: ``(X, Y, Z)`` bool, the brain mask on the fixed grid (for scoring; not written).
        description: what was done, in words.
    """

    fixed: Path
    moving: Path
    truth_mm: np.ndarray
    mask: np.ndarray
    description: str


def misalignment_mm(points: np.ndarray, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """The known misalignment ``u(x)`` in mm at world points ``(..., 3)`` (RAS+, mm): ``(..., 3)``.

    A rotation by ``3 * scale`` degrees about the z axis, a translation of ``(3, -2) * scale`` mm and
    two sinusoids of about ``2.5 * scale`` mm with wavelengths of 90 to 140 mm; the phases depend on
    ``seed``. The z component is zero.
    """
    rng = np.random.default_rng(seed)
    x, y = points[..., 0], points[..., 1]
    angle = math.radians(3.0 * scale)
    rot_x = (math.cos(angle) - 1.0) * x - math.sin(angle) * y
    rot_y = math.sin(angle) * x + (math.cos(angle) - 1.0) * y
    phase = rng.uniform(0.0, 2.0 * math.pi, size=4)
    wave_x = 2.5 * np.sin(2 * math.pi * y / 140.0 + phase[0]) * np.cos(2 * math.pi * x / 110.0 + phase[1])
    wave_y = 2.5 * np.sin(2 * math.pi * x / 120.0 + phase[2]) * np.cos(2 * math.pi * y / 90.0 + phase[3])
    u = np.zeros(points.shape, dtype=np.float64)
    u[..., 0] = rot_x + scale * (3.0 + wave_x)
    u[..., 1] = rot_y + scale * (-2.0 + wave_y)
    return u


def _world(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def write_standin_pair(folder: str | Path, seed: int = 0, scale: float = 2.0) -> StandinPair:
    """Write the stand-in pair into ``folder`` (created) and return its paths and truth.

    Args:
        folder: output folder.
        seed: phases of the smooth part of the misalignment.
        scale: multiplies the misalignment (0 gives an aligned pair on different grids).
    """
    from scipy.ndimage import map_coordinates


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    test = load_embedded("test", contrasts=("t1", "t2"))
    order = np.argsort(test.slice_index.numpy())
    n, size = len(order), test.images["t1"].shape[-1]

    def volume(images) -> np.ndarray:  # (N, rows, cols) -> (x, y, z): x = column, y = up
        return images.numpy()[order].transpose(2, 1, 0)[:, ::-1, :].astype(np.float64)

    t1, t2, mask = volume(test.images["t1"]), volume(test.images["t2"]), volume(test.mask.float()) > 0.5
    fixed_affine = np.diag([PIXEL_MM, PIXEL_MM, SLICE_MM, 1.0])
    fixed_affine[:3, 3] = -0.5 * (np.array([size, size, n]) - 1) * np.array([PIXEL_MM, PIXEL_MM, SLICE_MM])

    # the moving grid: coarser, LPS+ voxel order, shifted by half a voxel, same slice positions
    m_size, m_pixel = 100, PIXEL_MM * size / 100
    moving_affine = np.diag([-m_pixel, -m_pixel, SLICE_MM, 1.0])
    moving_affine[:3, 3] = [
        0.5 * (m_size - 1) * m_pixel + 0.5 * m_pixel,
        0.5 * (m_size - 1) * m_pixel,
        fixed_affine[2, 3],
    ]
    y = _world(moving_affine, (m_size, m_size, n))
    x = y.copy()
    for _ in range(30):  # x = y - u(x): the fixed point that shows what the moving voxel y shows
        x = y - misalignment_mm(x, seed, scale)
    residual = float(np.abs(x + misalignment_mm(x, seed, scale) - y).max())
    if residual > 1e-6:
        raise RuntimeError(
            f"write_standin_pair(): the misalignment did not invert (residual {residual:g} mm)"
        )
    vox = (x - fixed_affine[:3, 3]) @ np.linalg.inv(fixed_affine[:3, :3]).T
    moving = np.stack(
        [
            map_coordinates(t2[..., k], [vox[..., k, 0], vox[..., k, 1]], order=1, mode="constant")
            for k in range(n)
        ],
        axis=-1,
    )

    fixed_path, moving_path = folder / "fixed_T1w.nii.gz", folder / "moving_T2w.nii.gz"
    for data, affine, path in ((t1, fixed_affine, fixed_path), (moving, moving_affine, moving_path)):
        write_volume(path, data.astype(np.float32), affine)
    truth = misalignment_mm(_world(fixed_affine, t1.shape), seed, scale)
    description = (
        f"fixed: embedded T1w test slices, {size}x{size}x{n} voxels of {PIXEL_MM} x {PIXEL_MM} x "
        f"{SLICE_MM} mm, RAS+; moving: simulated T2w, {m_size}x{m_size}x{n} voxels of "
        f"{m_pixel:.3f} x {m_pixel:.3f} x "
        f"{SLICE_MM} mm, LPS+, misaligned by a rotation of {3 * scale:g} degrees, a shift of "
        f"({3 * scale:g}, {-2 * scale:g}) mm and a smooth warp (seed {seed})"
    )
    return StandinPair(fixed_path, moving_path, truth, mask, description)
