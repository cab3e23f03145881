"""Users' own data: two aligned NIfTI volumes of one subject -> 2D slices, and a NIfTI writer.

:func:`load_nifti_pair` reads e.g. a T1w and a T2w volume of one subject (the paper's canine
data, or any pair that is already aligned), checks that they share the voxel grid, reorients both
to the closest canonical (RAS+) orientation, normalises intensities by percentiles, cuts 2D slices
along ``axis`` and resamples them to the model's size. The result has the structure of the
embedded data (:class:`data_utils.embedded.EmbeddedSlices`), so
``make_pairs(..., data=slices)`` builds source/target pairs with labels from it.

Slice images follow the embedded data's layout: for the two in-plane canonical axes ``(a, b)``
(in increasing axis order), image columns run along ``+a`` and image rows along ``-b`` (so for an
axial slice anterior is at the top and the subject's right on the image's right). Each slice is
zero-padded to a centred square and then resampled (antialiased bilinear) to ``size x size``;
in-plane voxels are assumed square (anisotropic voxels are stretched, not resampled;
:func:`pemd_tutorial.register` resamples in millimetres instead).

:func:`save_nifti` writes model-space images or displacement fields back into the input's voxel
grid, orientation and affine (see its docstring for the units of fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from data_utils.embedded import EmbeddedSlices

__all__ = ["RAS_TO_LPS", "SliceGeometry", "NiftiSlices", "load_nifti_pair", "normalise_intensities",
           "read_nifti_volume", "save_nifti"]


@dataclass(frozen=True, eq=False)
class SliceGeometry:
    """Where the slices of a :class:`NiftiSlices` came from (needed by :func:`save_nifti`).

    Attributes:
        affine: ``(4, 4)`` affine of the input files (original orientation).
        shape: spatial shape of the input volumes (original orientation).
        canonical_affine: ``(4, 4)`` affine after reorientation to RAS+.
        canonical_shape: spatial shape after reorientation.
        axis: slicing axis in the canonical volume (0, 1 or 2).
        side: side of the zero-padded square in voxels; ``pad``: ``(rows, cols)`` offsets of the
            slice inside that square.
        size: side of the resampled images in pixels.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    canonical_affine: np.ndarray
    canonical_shape: tuple[int, int, int]
    axis: int
    side: int
    pad: tuple[int, int]
    size: int


@dataclass
class NiftiSlices(EmbeddedSlices):
    """:class:`~data_utils.embedded.EmbeddedSlices` plus the :class:`SliceGeometry` of the input."""

    geometry: SliceGeometry | None = None


#: Multiply a RAS+ vector (NIfTI's world axes) by this to get its LPS+ components (ITK's frame).
#: Displacement fields are written in LPS+ with the NIfTI intent "vector", which ITK, ANTs,
#: ITK-SNAP and 3D Slicer read as LPS+ (what ANTs writes for its own fields).
RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def _describe(path: Path, role: str | None = None) -> str:
    return f"{role} file '{path}'" if role else f"'{path}'"


def read_nifti_volume(
    path: str | Path, volume: int | None = None, *, role: str | None = None, allow_constant: bool = False
) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a 3D volume (or one volume of a 4D file) as float64: ``(data, image)``.

    The one reader of the project (:func:`load_nifti_pair`, :func:`pemd_tutorial.register`): a NIfTI-1
    or NIfTI-2 file; NaN or infinite voxels are refused (never silently replaced).

    Args:
        path: the file.
        volume: for a 4D file with more than one volume, which one.
        role: how error messages name the file (e.g. ``"moving"``: "moving file '...'").
        allow_constant: accept an all-zero or constant volume (a mask may be all ones).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a NIfTI file or corrupt, not 3D/4D, 4D without ``volume``, ``volume`` out
            of range, NaN or infinite voxels, empty (all zero) or constant. Every message names the file.
    """
    path = Path(path)
    name = _describe(path, role)
    if not path.is_file():
        raise FileNotFoundError(f"{role} file not found: '{path}'" if role
                                else f"NIfTI file '{path}' does not exist")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ValueError(f"{name} is not a readable NIfTI file ({err})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ValueError(f"{name} is not a NIfTI file (nibabel read it as {type(img).__name__})")
    shape = img.shape
    if len(shape) < 3:
        raise ValueError(f"{name} is {len(shape)}D {shape}; a 3D volume is needed")
    if len(shape) == 4 and shape[3] == 1 and volume is None:
        volume = 0
    if len(shape) == 4:
        if volume is None:
            raise ValueError(f"{name} is 4D with {shape[3]} volumes: choose one with --volume-index "
                             f"(volume_index=, or 'volume' of load_nifti_pair)")
        if isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume < shape[3]:
            raise ValueError(f"volume index {volume!r} is out of range for {name} with {shape[3]} volumes")
        img = img.slicer[..., volume]
    elif len(shape) != 3:
        raise ValueError(f"{name} must be a 3D volume (or 4D with a volume index), got shape {shape}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as err:
        raise ValueError(f"{name} is corrupt: its voxel data cannot be read ({err})") from None
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} NaN or infinite voxels")
    if not allow_constant:
        if not data.any():
            raise ValueError(f"{name} is empty (all voxels are zero)")
        if data.max() == data.min():
            raise ValueError(f"{name} is constant (every voxel is {data.max():g})")
    return data, img


def normalise_intensities(data: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0),
                          path: str | Path | None = None) -> np.ndarray:
    """Map the percentiles ``(lo, hi)`` of the voxels above the minimum to ``[0, 1]`` (clipped).

    The one intensity normalisation of users' volumes (:func:`load_nifti_pair`,
    :func:`pemd_tutorial.register`). When the two percentiles coincide (a binary image, or a few
    bright voxels), the volume's minimum and maximum are used instead; ``path`` names the file in
    the error raised for a constant volume.
    """
    fg = data[data > data.min()]
    lo, hi = np.percentile(fg if fg.size else data, percentiles)
    if not hi > lo:
        lo, hi = float(data.min()), float(data.max())
    if not hi > lo:
        where = f"'{path}': " if path is not None else ""
        raise ValueError(f"{where}the volume is constant: no intensity range to normalise")
    return np.clip((data - lo) / (hi - lo), 0.0, 1.0)


def _to_square_images(vol: np.ndarray, axis: int, side: int, pad: tuple[int, int]) -> np.ndarray:
    """``(X, Y, Z)`` -> ``(N, side, side)``: slices along ``axis`` in the image layout, zero-padded."""
    sl = np.moveaxis(vol, axis, 0)  # (N, a, b)
    img = np.transpose(sl, (0, 2, 1))[:, ::-1, :]  # rows along -b, columns along +a
    out = np.zeros((img.shape[0], side, side), dtype=np.float64)
    out[:, pad[0] : pad[0] + img.shape[1], pad[1] : pad[1] + img.shape[2]] = img
    return out


def _from_square_images(imgs: np.ndarray, axis: int, shape: tuple[int, int, int], pad) -> np.ndarray:
    """Inverse of :func:`_to_square_images` for the selected slices: ``(N, side, side)`` -> ``(N, a, b)``."""
    rest = [shape[i] for i in range(3) if i != axis]
    a, b = rest
    crop = imgs[:, pad[0] : pad[0] + b, pad[1] : pad[1] + a]  # (N, b, a)
    return np.transpose(crop[:, ::-1, :], (0, 2, 1))  # (N, a, b)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, S, S)`` -> ``(N, C, size, size)``, antialiased bilinear."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


def load_nifti_pair(
    fixed_path: str | Path,
    moving_path: str | Path,
    axis: int = 2,
    size: int = 64,
    volume: int | tuple[int | None, int | None] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    affine_atol: float = 1e-3,
    contrasts: tuple[str, str] = ("t1", "t2"),
    mask_threshold: float = 0.05,
    min_foreground: float = 0.02,
    slices: list[int] | None = None,
) -> NiftiSlices:
    """Load two aligned NIfTI volumes of one subject as 2D slices shaped like the embedded data.

    Args:
        fixed_path, moving_path: the volume of the fixed contrast (e.g. T1w) and of the moving one
            (e.g. T2w); they must share the voxel grid.
        axis: slicing axis of the canonical (RAS+) volume: 0 sagittal, 1 coronal, 2 axial.
        size: side length of the output images in pixels.
        volume: for 4D files, the volume index (one int for both, or a pair for (fixed, moving)).
        percentiles: intensity percentiles (of the voxels above the volume's minimum) mapped to
            0 and 1; values outside are clipped.
        affine_atol: largest allowed absolute difference between the two affines (mm for the
            translation, mm per voxel for the matrix part), compared after reorientation.
        contrasts: names of the two contrasts in ``images`` (use them as ``fixed_contrast`` /
            ``moving_contrast`` in :func:`data_utils.pairs.make_pairs`).
        mask_threshold: foreground = normalised fixed intensity ``> mask_threshold``.
        min_foreground: keep slices whose foreground covers at least this fraction of the slice
            (ignored if ``slices`` is given).
        slices: explicit slice indices along ``axis`` of the canonical volume.

    Returns:
        :class:`NiftiSlices` with ``images[contrasts[0]]``, ``images[contrasts[1]]`` ``(N, size,
        size)`` in ``[0, 1]``, ``mask``, ``slice_index`` (along ``axis``), ``tissues=None`` and the
        ``geometry`` for :func:`save_nifti`.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_nifti_volume`; also shape or affine
        mismatch, bad arguments, no slice with foreground.
    """
    fixed_path, moving_path = Path(fixed_path), Path(moving_path)
    if axis not in (0, 1, 2):
        raise ValueError(f"load_nifti_pair() 'axis' must be 0, 1 or 2, got {axis!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"load_nifti_pair() 'size' must be an integer >= 8, got {size!r}")
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(
            f"load_nifti_pair() 'percentiles' must satisfy 0 <= low < high <= 100, got {percentiles}"
        )
    if len(contrasts) != 2 or contrasts[0] == contrasts[1]:
        raise ValueError(f"load_nifti_pair() 'contrasts' must be two different names, got {contrasts!r}")
    vol_f, vol_m = volume if isinstance(volume, tuple) else (volume, volume)

    data_f, img_f = read_nifti_volume(fixed_path, vol_f)
    data_m, img_m = read_nifti_volume(moving_path, vol_m)
    if data_f.shape != data_m.shape:
        raise ValueError(
            f"shape mismatch: {_describe(fixed_path)} has {data_f.shape}, {_describe(moving_path)} has "
            f"{data_m.shape}; the volumes must be aligned on one voxel grid"
        )
    if not np.allclose(img_f.affine, img_m.affine, rtol=0, atol=affine_atol):
        diff = float(np.abs(img_f.affine - img_m.affine).max())
        raise ValueError(
            f"affine mismatch between {_describe(fixed_path)} and {_describe(moving_path)}: largest "
            f"difference {diff:.4g} > affine_atol={affine_atol}; the volumes must be aligned"
        )
    ornt = io_orientation(img_f.affine)
    to_ras = ornt_transform(ornt, np.array([[0, 1], [1, 1], [2, 1]]))
    can_f = apply_orientation(data_f, to_ras)
    can_m = apply_orientation(data_m, to_ras)
    can_affine = img_f.affine @ inv_ornt_aff(to_ras, data_f.shape)

    norm_f = normalise_intensities(can_f, percentiles, fixed_path)
    norm_m = normalise_intensities(can_m, percentiles, moving_path)
    fg = norm_f > mask_threshold
    n_along = can_f.shape[axis]
    if slices is None:
        frac = np.moveaxis(fg, axis, 0).reshape(n_along, -1).mean(axis=1)
        idx = np.nonzero(frac >= min_foreground)[0]
        if idx.size == 0:
            raise ValueError(
                f"{_describe(fixed_path)}: no slice along axis {axis} has >= {min_foreground:.0%} foreground"
            )
    else:
        idx = np.asarray(slices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n_along:
            raise ValueError(f"load_nifti_pair() 'slices' must be indices in [0, {n_along}), got {slices!r}")
    rest = [can_f.shape[i] for i in range(3) if i != axis]  # (a, b)
    side = max(rest)
    pad = ((side - rest[1]) // 2, (side - rest[0]) // 2)

    def prep(vol: np.ndarray) -> torch.Tensor:
        sq = _to_square_images(np.take(vol, idx, axis=axis), axis, side, pad)
        return _resize(torch.from_numpy(sq).float()[:, None], size)[:, 0].clamp(0.0, 1.0).contiguous()

    geometry = SliceGeometry(
        affine=img_f.affine.copy(),
        shape=tuple(int(s) for s in data_f.shape),
        canonical_affine=can_affine,
        canonical_shape=tuple(int(s) for s in can_f.shape),
        axis=axis,
        side=side,
        pad=pad,
        size=size,
    )
    return NiftiSlices(
        images={contrasts[0]: prep(norm_f), contrasts[1]: prep(norm_m)},
        mask=prep(fg.astype(np.float64)) >= 0.5,
        tissues=None,
        slice_index=torch.from_numpy(idx.astype(np.int64)),
        geometry=geometry,
    )


def save_nifti(
    path: str | Path,
    data: torch.Tensor | np.ndarray,
    geometry: SliceGeometry | NiftiSlices,
    slice_index: torch.Tensor | np.ndarray | list[int] | None = None,
    is_field: bool | None = None,
) -> Path:
    """Write model-space slices back into the input's voxel grid, with the input's affine.

    Images ``(N, H, W)`` or ``(N, 1, H, W)`` are resampled to the slice size and written as a 3D
    float32 volume (slices not in ``slice_index`` are 0). Displacement fields ``(N, 2, H, W)``
    (``(dx, dy)`` in model pixels, :mod:`data_utils.grid` convention) are converted to
    **millimetres** and written as a 5D NIfTI ``(X, Y, Z, 1, 3)`` with the vector intent, in ITK's
    **LPS+** components (:data:`RAS_TO_LPS`; the component along the slicing axis is 0), so that
    ITK, ANTs, ITK-SNAP and Slicer apply them as written.

    Args:
        path: output file (``.nii`` or ``.nii.gz``); its folder must exist.
        data: the tensor to write; ``H = W = geometry.size``.
        geometry: from :func:`load_nifti_pair` (``slices.geometry`` or the slices object).
        slice_index: slice positions along the slicing axis, one per item, no repeats; default
            the positions of the loaded slices (``slices.slice_index``).
        is_field: force the interpretation; default: a 4D tensor with 2 channels is a field.

    Returns:
        The path written.
    """
    if isinstance(geometry, NiftiSlices):
        if slice_index is None:
            slice_index = geometry.slice_index
        geometry = geometry.geometry
    if not isinstance(geometry, SliceGeometry):
        raise ValueError("save_nifti() 'geometry' must be a SliceGeometry or the NiftiSlices it came with")
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"save_nifti() 'path' must end in .nii or .nii.gz, got '{path}'")
    if not path.parent.is_dir():
        raise ValueError(f"save_nifti() folder of 'path' does not exist: '{path.parent}'")
    x = torch.as_tensor(data).detach().to("cpu", torch.float64)
    if is_field is None:
        is_field = x.dim() == 4 and x.shape[1] == 2
    if x.dim() == 3 and not is_field:
        x = x[:, None]
    want_c = 2 if is_field else 1
    if x.dim() != 4 or x.shape[1] != want_c or x.shape[-2:] != (geometry.size, geometry.size):
        s = geometry.size
        expected = f"(N, 2, {s}, {s})" if is_field else f"(N, {s}, {s})"
        raise ValueError(f"save_nifti() 'data' must have shape {expected}, got {tuple(x.shape)}")
    if slice_index is None:
        raise ValueError("save_nifti() needs 'slice_index' when 'geometry' is a SliceGeometry")
    idx = np.asarray(torch.as_tensor(slice_index).cpu(), dtype=np.int64).reshape(-1)
    n_along = geometry.canonical_shape[geometry.axis]
    if idx.size != x.shape[0] or len(set(idx.tolist())) != idx.size or idx.min() < 0 or idx.max() >= n_along:
        raise ValueError(
            f"save_nifti() 'slice_index' must hold {x.shape[0]} distinct indices in [0, {n_along}), "
            f"got {idx.tolist()}"
        )
    scale = geometry.side / geometry.size  # voxels per model pixel
    big = F.interpolate(x, size=(geometry.side, geometry.side), mode="bilinear", align_corners=False).numpy()
    axis, shape = geometry.axis, geometry.canonical_shape
    a_axis, b_axis = [i for i in range(3) if i != axis]
    to_orig = ornt_transform(np.array([[0, 1], [1, 1], [2, 1]]), io_orientation(geometry.affine))

    if not is_field:
        vol = np.zeros(shape, dtype=np.float64)
        slabs = _from_square_images(big[:, 0], axis, shape, geometry.pad)  # (N, a, b)
        np.moveaxis(vol, axis, 0)[idx] = slabs
        out = apply_orientation(vol, to_orig).astype(np.float32)
        img = nib.Nifti1Image(out, geometry.affine)
    else:
        # pixels -> canonical voxel steps: +dx along +a, +dy (rows, downwards) along -b
        va = _from_square_images(big[:, 0], axis, shape, geometry.pad) * scale
        vb = -_from_square_images(big[:, 1], axis, shape, geometry.pad) * scale
        vox = np.zeros((*shape, 3), dtype=np.float64)
        va_full = np.zeros(shape)
        vb_full = np.zeros(shape)
        np.moveaxis(va_full, axis, 0)[idx] = va
        np.moveaxis(vb_full, axis, 0)[idx] = vb
        vox[..., a_axis] = va_full
        vox[..., b_axis] = vb_full
        mm = vox @ geometry.canonical_affine[:3, :3].T * RAS_TO_LPS  # world displacement in mm, LPS+
        out = np.stack([apply_orientation(mm[..., c], to_orig) for c in range(3)], axis=-1)
        img = nib.Nifti1Image(out[:, :, :, None, :].astype(np.float32), geometry.affine)
        img.header.set_intent("vector")
    img.set_qform(geometry.affine, code=1)
    img.set_sform(geometry.affine, code=1)
    nib.save(img, str(path))
    return path
