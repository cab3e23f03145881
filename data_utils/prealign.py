"""Pre-alignment of a user's pair before the slice-wise deformable step: rigid or affine, in 3D.

:func:`prealign` registers the moving volume to the fixed one with SimpleITK's Mattes mutual
information (a multimodal metric: a T2w volume to a T1w one), multi-resolution, from a small
search over starting orientations; it returns a :class:`Prealignment`, whose ITK transform maps a
point of the fixed image to the corresponding point of the moving image (LPS+ millimetres, ITK's
convention, the convention of ``antsApplyTransforms``). :func:`compose_field` turns a deformable
displacement on the fixed grid into the one displacement of "deformable, then pre-alignment", so
one field reproduces both.

SimpleITK is imported here only (the ``register`` extra: ``pip install "pemd-tutorial[register]"``);
the tutorial itself does not need it.

The **start search** tries the header's placement (the two affines as they are), the centres of
mass brought together, and rotations by 180 degrees about each axis (what a header in the wrong
orientation, e.g. LPS+ data labelled RAS+, looks like), each refined on a coarse level; the best
one starts the full registration. The same coarse refinement on the moving image mirrored left to
right tells whether the header mirrors it (a rigid or affine transform found from the header's
start never undoes a mirror). :attr:`Prealignment.notes` says what was found, in words, for the
caller to warn about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PREALIGN_KINDS", "Prealignment", "compose_field", "grid_points", "import_sitk", "prealign",
           "resample_prealigned", "to_sitk", "voxel_to_lps"]

#: What ``prealign`` accepts: no pre-alignment, rigid (6 parameters) or affine (12, after a rigid stage).
PREALIGN_KINDS = ("none", "rigid", "affine")
_LPS = np.array([-1.0, -1.0, 1.0])
#: A start other than the header's is taken (and reported) only if its coarse metric is better by this much.
START_MARGIN = 0.05
#: About this many voxels are sampled by the metric at each level.
SAMPLES = 20_000
#: The mirrored moving image is reported when its coarse metric is better by this much (relative).
MIRROR_MARGIN = 0.03


def import_sitk():
    """SimpleITK, or an ImportError that says which extra installs it."""
    try:
        import SimpleITK as sitk
    except ImportError:
        raise ImportError(
            "the pre-alignment needs SimpleITK: pip install \"pemd-tutorial[register]\" (or pip install "
            "SimpleITK), or pass prealign='none' (--prealign none)"
        ) from None
    return sitk


def voxel_to_lps(affine: np.ndarray) -> np.ndarray:
    """The 4x4 map from voxel indices to LPS+ world millimetres (ITK's frame) of a NIfTI affine (RAS+)."""
    out = np.array(affine, dtype=np.float64)
    out[:3] *= _LPS[:, None]
    return out


def to_sitk(data: np.ndarray, affine: np.ndarray):
    """A float32 SimpleITK image of ``data`` ``(X, Y, Z)`` with the geometry of the NIfTI ``affine``.

    ITK needs orthonormal directions: a sheared affine is replaced by its nearest rotation (its
    spacing kept), which moves no voxel centre by more than the shear does.
    """
    sitk = import_sitk()
    m = voxel_to_lps(affine)
    spacing = np.sqrt((m[:3, :3] ** 2).sum(axis=0))
    direction = m[:3, :3] / spacing
    u, _, vt = np.linalg.svd(direction)
    direction = u @ vt
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in direction.ravel()])
    img.SetOrigin([float(v) for v in m[:3, 3]])
    return img


def from_sitk(img) -> np.ndarray:
    """A SimpleITK scalar image as a ``(X, Y, Z)`` array."""
    sitk = import_sitk()
    return sitk.GetArrayViewFromImage(img).transpose(2, 1, 0).copy()


@dataclass
class Prealignment:
    """The result of :func:`prealign`.

    Attributes:
        kind: ``"rigid"`` or ``"affine"``.
        transform: the SimpleITK transform (fixed LPS+ point -> moving LPS+ point); write it with
            ``SimpleITK.WriteTransform`` (an ITK ``.tfm`` file that ANTs reads too).
        matrix, translation: the same map as ``q = matrix @ p + translation`` (LPS+ mm).
        start: the start the registration began from (``"header"``, ``"centres of mass"`` or a rotation).
        metric: the final Mattes mutual information (negative; lower = more similar).
        mirrored: the mirrored moving image fitted better than the moving image itself.
        notes: what the caller should tell the user (wrong orientation, mirror), in words.
    """

    kind: str
    transform: object
    matrix: np.ndarray
    translation: np.ndarray
    start: str
    metric: float
    mirrored: bool = False
    notes: list[str] = field(default_factory=list)

    def moving_points(self, p_lps: np.ndarray) -> np.ndarray:
        """The moving LPS+ points of fixed LPS+ points ``(..., 3)``."""
        return p_lps @ self.matrix.T + self.translation


def _levels(shape: tuple[int, ...]) -> list[int]:
    """Shrink factors 4, 2, 1 as far as the smallest side keeps at least 16 voxels."""
    levels = [f for f in (4, 2) if min(shape) // f >= 16]
    return [*levels, 1]


def _method(sitk, shrink: list[int], iterations: int, sampling: list[float], seed: int):
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads seed 0 as sitkWallClock (a new seed every run): shift ours by one
    reg.SetMetricSamplingPercentagePerLevel(sampling, seed + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3,
                                                 numberOfIterations=iterations, relaxationFactor=0.6,
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([0.5 * f for f in shrink])  # in mm-free voxel units of the level
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def _euler(sitk, centre, angles=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0)):
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(v) for v in centre])
    tx.SetRotation(*[float(a) for a in angles])
    tx.SetTranslation([float(v) for v in translation])
    return tx


def _centre(img) -> np.ndarray:
    size = np.array(img.GetSize())
    return np.array(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in (size - 1) / 2]))


def _unwrap(sitk, tx, kind):
    """The one transform of a registration's result (SimpleITK returns it inside a CompositeTransform)."""
    if tx.GetName() == "CompositeTransform":
        tx = sitk.CompositeTransform(tx).GetNthTransform(0)
    return kind(tx)


def _shrunk(sitk, img, factor: int):
    """``img`` smoothed (sigma half the factor, in voxels) and subsampled by ``factor``: the coarse level."""
    if factor == 1:
        return img
    sigma = [0.5 * factor * s for s in img.GetSpacing()]
    return sitk.Shrink(sitk.SmoothingRecursiveGaussian(img, sigma), [factor] * 3)


def _sampling(size, levels: list[int]) -> list[float]:
    """The metric's sampling share at each shrink factor of an image of ``size`` voxels: :data:`SAMPLES`."""
    n = float(np.prod(size))
    return [float(np.clip(SAMPLES * f**3 / n, 0.001, 1.0)) for f in levels]


def _coarse(sitk, fixed, moving, start, seed: int) -> tuple[float, object]:
    """A short rigid registration of the coarse images from ``start``: ``(metric, transform)``."""
    reg = _method(sitk, [1], iterations=40, sampling=_sampling(fixed.GetSize(), [1]), seed=seed)
    reg.SetInitialTransform(sitk.Euler3DTransform(start), inPlace=False)
    try:
        out = reg.Execute(fixed, moving)
    except RuntimeError:  # e.g. too few samples inside the moving image: a start that does not fit
        return math.inf, start
    return float(reg.GetMetricValue()), _unwrap(sitk, out, sitk.Euler3DTransform)


def prealign(fixed_data: np.ndarray, fixed_affine: np.ndarray, moving_data: np.ndarray,
             moving_affine: np.ndarray, kind: str = "rigid", *, seed: int = 0) -> Prealignment:
    """Rigid (or rigid then affine) registration of ``moving`` to ``fixed`` (module docstring).

    Args:
        fixed_data, moving_data: the volumes ``(X, Y, Z)`` (any units; Mattes MI does not mind).
        fixed_affine, moving_affine: their NIfTI affines (RAS+).
        kind: ``"rigid"`` or ``"affine"``.
        seed: of the metric's random sampling (the result is reproducible for a given seed).
    """
    if kind not in ("rigid", "affine"):
        raise ValueError(f"prealign() 'kind' must be 'rigid' or 'affine', got {kind!r}")
    sitk = import_sitk()
    fixed = to_sitk(fixed_data, fixed_affine)
    moving = to_sitk(moving_data, moving_affine)
    levels = _levels(fixed.GetSize())
    fixed_c, moving_c = _shrunk(sitk, fixed, levels[0]), _shrunk(sitk, moving, levels[0])

    centre = _centre(fixed)
    moments = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    shift = np.array(sitk.Euler3DTransform(moments).GetTranslation())
    starts = {"header": _euler(sitk, centre)}
    if np.linalg.norm(shift) > 1.0:
        starts["centres of mass"] = _euler(sitk, centre, translation=shift)
    for axis, name in enumerate(("x (left-right)", "y (front-back)", "z (up-down)")):
        angles = [0.0, 0.0, 0.0]
        angles[axis] = math.pi
        starts[f"a rotation by 180 degrees about {name}"] = _euler(sitk, centre, angles, shift)
    scores = {name: _coarse(sitk, fixed_c, moving_c, tx, seed) for name, tx in starts.items()}
    best = min(scores, key=lambda k: scores[k][0])
    header_score = scores["header"][0]
    notes = []
    if best != "header" and math.isfinite(header_score) and \
            not scores[best][0] < header_score - START_MARGIN * abs(header_score):
        best = "header"
    if not math.isfinite(scores[best][0]):
        raise ValueError("prealign() found no start from which the moving image overlaps the fixed one")
    if best.startswith("a rotation"):
        notes.append(f"the moving image fits the fixed one much better after {best} than as its header "
                     "places it: its header orientation looks wrong (e.g. LPS+ data labelled RAS+); the "
                     "pre-alignment started from that rotation")

    # the mirror test: the same coarse refinement of the moving image flipped left-right in the world
    lr_axis = int(np.argmax(np.abs(np.array(moving.GetDirection()).reshape(3, 3)[0])))
    flip = [False, False, False]
    flip[lr_axis] = True
    mirror_score, _ = _coarse(sitk, fixed_c, sitk.Flip(moving_c, flip, False),
                              sitk.Euler3DTransform(scores[best][1]), seed)
    own = scores[best][0]
    mirrored = bool(mirror_score < own - MIRROR_MARGIN * abs(own))
    if mirrored:
        notes.append("the moving image fits the fixed one better mirrored left-right (Mattes MI "
                     f"{mirror_score:.3f} vs {own:.3f}): its header looks left-right flipped; a rigid or "
                     "affine pre-alignment cannot undo a mirror: fix the header and register again")

    reg = _method(sitk, levels, iterations=100, sampling=_sampling(fixed.GetSize(), levels), seed=seed)
    reg.SetInitialTransform(sitk.Euler3DTransform(scores[best][1]), inPlace=False)
    result = reg.Execute(fixed, moving)
    rigid = _unwrap(sitk, result, sitk.Euler3DTransform)
    final, metric = rigid, float(reg.GetMetricValue())
    if kind == "affine":
        start = sitk.AffineTransform(3)
        start.SetCenter(rigid.GetCenter())
        start.SetMatrix(rigid.GetMatrix())
        start.SetTranslation(rigid.GetTranslation())
        reg = _method(sitk, levels[-2:], iterations=100, sampling=_sampling(fixed.GetSize(), levels[-2:]),
                      seed=seed)
        reg.SetInitialTransform(start, inPlace=False)
        result = reg.Execute(fixed, moving)
        final = _unwrap(sitk, result, sitk.AffineTransform)
        metric = float(reg.GetMetricValue())
    matrix = np.array(final.GetMatrix()).reshape(3, 3)
    c, t = np.array(final.GetCenter()), np.array(final.GetTranslation())
    return Prealignment(kind, final, matrix, c + t - matrix @ c, best, metric, mirrored, notes)


def compose_field(field_ras: np.ndarray, fixed_affine: np.ndarray, pre: Prealignment | None,
                  z: slice) -> np.ndarray:
    """The displacement (LPS+ mm) that ``pre`` after the deformable ``field_ras`` amounts to, for slab ``z``.

    Args:
        field_ras: the deformable displacement on the fixed grid, RAS+ mm, ``(X, Y, Zs, 3)`` for the
            voxels ``[:, :, z]`` (the moved image shows ``prealigned(p + d(p))``).
        fixed_affine: the fixed image's NIfTI affine.
        pre: the pre-alignment, or ``None`` (then the field is only converted to LPS+).
        z: the slab of the fixed grid's third voxel axis that ``field_ras`` covers.

    Returns:
        ``(X, Y, Zs, 3)`` float64 ``D`` in LPS+ with ``moved(p) = moving(p + D(p))`` (ITK's displacement
        field convention), i.e. ``D(p) = T(p + d(p)) - p`` for the pre-alignment ``T``.
    """
    d_lps = np.asarray(field_ras, dtype=np.float64) * _LPS
    if pre is None:
        return d_lps
    p = grid_points(voxel_to_lps(fixed_affine), d_lps.shape[:3], z.start)
    return pre.moving_points(p + d_lps) - p


def grid_points(affine: np.ndarray, shape: tuple[int, int, int], z0: int = 0) -> np.ndarray:
    """World points ``(X, Y, Z, 3)`` of the voxels ``[:, :, z0:z0 + Z]`` of a grid with the 4x4 ``affine``."""
    i, j, k = (np.arange(n, dtype=np.float64) for n in shape)
    k = k + z0
    m = np.asarray(affine, dtype=np.float64)
    return (i[:, None, None, None] * m[:3, 0] + j[None, :, None, None] * m[:3, 1]
            + k[None, None, :, None] * m[:3, 2] + m[:3, 3])


def resample_prealigned(pre: Prealignment, moving_data: np.ndarray, moving_affine: np.ndarray,
                        fixed_shape: tuple[int, int, int], fixed_affine: np.ndarray) -> np.ndarray:
    """The moving volume on the fixed grid through the pre-alignment (trilinear; outside: its minimum)."""
    sitk = import_sitk()
    reference = to_sitk(np.zeros(fixed_shape, dtype=np.float32), fixed_affine)
    out = sitk.Resample(to_sitk(moving_data, moving_affine), reference, pre.transform, sitk.sitkLinear,
                        float(np.min(moving_data)), sitk.sitkFloat32)
    return from_sitk(out).astype(np.float64)
