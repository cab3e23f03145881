"""Users' own data: NIfTI volumes in and out, with one reader and one slice geometry.

:func:`read_nifti_volume` is the project's one NIfTI reader (NaN or infinite voxels refused, the
file named in every error). :func:`slice_pair` turns a fixed and a moving volume into model-sized
slices with the one policy of :mod:`data_utils.geometry` (canonical RAS+ orientation, a square
field of view resampled in millimetres, never stretched); :func:`pemd_tutorial.register` and
:func:`load_nifti_pair` both use it, so a network adapted on ``load_nifti_pair``'s slices sees
exactly what ``register`` shows it. :func:`load_nifti_pair` returns the structure of the embedded
data (:class:`data_utils.embedded.EmbeddedSlices`), so ``make_pairs(..., data=slices)`` builds
source/target pairs with labels from it.

:func:`save_nifti` writes model-space images or displacement fields back into the input's voxel
grid, orientation and affine (see its docstring for the units and frame of fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from nibabel.processing import resample_from_to

from data_utils.embedded import EmbeddedSlices
from data_utils.geometry import (
    MIN_FOREGROUND,
    CanonicalFrame,
    SliceFrame,
    choose_slices,
    estimate_foreground,
    from_canonical,
    in_plane_axes,
    model_images,
    reorient,
    sample_model,
    slice_frame,
    to_canonical,
    volume_from_slices,
)

__all__ = ["RAS_TO_LPS", "SliceGeometry", "SlicedPair", "NiftiSlices", "field_to_world", "load_nifti_pair",
           "normalise_intensities", "read_nifti_volume", "resample_to_grid", "same_grid", "save_nifti",
           "slice_pair", "slice_volumes", "write_volume"]


@dataclass(frozen=True, eq=False)
class SliceGeometry:
    """Where the slices of a :class:`NiftiSlices` came from (needed by :func:`save_nifti`).

    Attributes:
        canonical: the input's affine and shape, before and after reorientation to RAS+.
        axis: slicing axis in the canonical volume (0, 1 or 2).
        frame: the square field of view in mm of the model images (:class:`data_utils.geometry.SliceFrame`).
    """

    canonical: CanonicalFrame
    axis: int
    frame: SliceFrame

    @property
    def size(self) -> int:
        """Side of the model images in pixels."""
        return self.frame.size

    @property
    def pixel_mm(self) -> float:
        """Millimetres per model pixel."""
        return self.frame.pixel


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


def same_grid(img_a, img_b, atol: float = 1e-3) -> bool:
    """Whether two nibabel images share the voxel grid (shape and affine within ``atol`` mm)."""
    return img_a.shape[:3] == img_b.shape[:3] and np.allclose(img_a.affine, img_b.affine, rtol=0, atol=atol)


def resample_to_grid(data: np.ndarray, img, target) -> np.ndarray:
    """``data`` of the image ``img`` resampled onto the grid of the image ``target`` (trilinear, in mm).

    Voxels outside ``img``'s field of view get its minimum. Uses :func:`nibabel.processing.resample_from_to`.
    """
    src = nib.Nifti1Image(np.asarray(data, dtype=np.float64), img.affine)
    out = resample_from_to(src, (target.shape[:3], target.affine), order=1, mode="constant",
                           cval=float(np.min(data)))
    return np.asarray(out.dataobj, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SlicedPair:
    """A fixed and a moving volume cut into slices on one model field of view (:func:`slice_pair`).

    Attributes:
        fixed_image: the fixed file's nibabel image (its affine and header are the output space).
        geometry: where the slices came from (:class:`SliceGeometry`).
        slices: indices of the chosen slices along ``geometry.axis`` of the canonical volume.
        canonical: ``"fixed"``, ``"moving"`` (normalised, canonical RAS+ voxel order) and ``"mask"`` (bool).
        native: the chosen slices ``(N, na, nb)`` of each, at the volume's own resolution.
        model: the model images ``(N, S, S)`` of each (float64; the mask as 0/1).
        resampled: whether the moving volume was resampled onto the fixed grid.
    """

    fixed_image: nib.Nifti1Image
    geometry: SliceGeometry
    slices: list[int]
    canonical: dict[str, np.ndarray]
    native: dict[str, np.ndarray]
    model: dict[str, np.ndarray]
    resampled: bool


def slice_pair(
    fixed_path: str | Path,
    moving_path: str | Path,
    *,
    axis: int = 2,
    size: int = 64,
    volume: int | tuple[int | None, int | None] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    mask_path: str | Path | None = None,
    slices=None,
    min_foreground: float = MIN_FOREGROUND,
    resample: bool = False,
    affine_atol: float = 1e-3,
    who: str = "load_nifti_pair()",
    fov_margin: float | None = None,
) -> SlicedPair:
    """Read a fixed and a moving volume and cut them into model-sized slices (the module's one policy).

    Both are read with :func:`read_nifti_volume`; a moving volume on another grid is resampled onto
    the fixed grid in mm (``resample=True``) or refused. Intensities are normalised with
    :func:`normalise_intensities`; the foreground is ``mask_path`` (non-zero voxels, on the fixed grid)
    or :func:`data_utils.geometry.estimate_foreground` of the fixed volume; the slices and the square
    field of view in mm follow :mod:`data_utils.geometry` (``fov_margin``: see :func:`load_nifti_pair`).
    ``who`` names the caller in error messages.
    """
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ValueError(f"{who} 'axis' must be 0, 1 or 2, got {axis!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"{who} 'size' must be an integer >= 8, got {size!r}")
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(f"{who} 'percentiles' must satisfy 0 <= low < high <= 100, got {percentiles}")
    vol_f, vol_m = volume if isinstance(volume, tuple) else (volume, volume)
    fixed_path, moving_path = Path(fixed_path), Path(moving_path)

    data_f, img_f = read_nifti_volume(fixed_path, vol_f, role="fixed")
    data_m, img_m = read_nifti_volume(moving_path, vol_m, role="moving")
    resampled = not same_grid(img_f, img_m, affine_atol)
    if resampled and not resample:
        if data_f.shape != data_m.shape:
            detail = f"shape {data_f.shape} vs {data_m.shape}"
        else:
            detail = f"affines differ by up to {float(np.abs(img_f.affine - img_m.affine).max()):.4g} mm"
        raise ValueError(
            f"{who} fixed file '{fixed_path}' and moving file '{moving_path}' are not on one voxel grid "
            f"({detail}; affine_atol={affine_atol}): pass resample=True to resample the moving volume onto "
            f"the fixed grid"
        )
    if resampled:
        data_m = resample_to_grid(data_m, img_m, img_f)
        if data_m.max() == data_m.min():
            raise ValueError(
                f"{who} moving file '{moving_path}' does not overlap the fixed image '{fixed_path}': "
                "placed in the world by the two headers' affines, none of it falls inside the fixed "
                "field of view (check the headers, or pre-align the pair)"
            )
    return slice_volumes(data_f, img_f, data_m, fixed_path=fixed_path, moving_path=moving_path, axis=axis,
                         size=size, percentiles=percentiles, mask_path=mask_path, slices=slices,
                         min_foreground=min_foreground, affine_atol=affine_atol, resampled=resampled, who=who,
                         fov_margin=fov_margin)


def slice_volumes(
    data_f: np.ndarray,
    img_f: nib.Nifti1Image,
    data_m: np.ndarray,
    *,
    fixed_path: str | Path,
    moving_path: str | Path,
    axis: int = 2,
    size: int = 64,
    percentiles: tuple[float, float] = (1.0, 99.0),
    mask_path: str | Path | None = None,
    mask_data: np.ndarray | None = None,
    slices=None,
    min_foreground: float = MIN_FOREGROUND,
    affine_atol: float = 1e-3,
    resampled: bool = False,
    who: str = "load_nifti_pair()",
    fov_margin: float | None = None,
) -> SlicedPair:
    """:func:`slice_pair` from volumes already read: ``data_m`` already on the fixed grid of ``img_f``.

    :func:`pemd_tutorial.register` calls it with the pre-aligned moving volume; the paths name the
    files in error messages only. ``mask_data`` (bool, on the grid of ``img_f``) is a mask already
    read, used instead of reading ``mask_path``.
    """
    norm_f = normalise_intensities(data_f, percentiles, fixed_path)
    norm_m = normalise_intensities(data_m, percentiles, moving_path)
    if mask_data is not None:
        fg = np.asarray(mask_data, dtype=bool)
        if fg.shape != data_f.shape[:3] or not fg.any():
            raise ValueError(f"{who} the mask of '{mask_path}' must be a non-empty volume of shape "
                             f"{data_f.shape[:3]}, got {fg.shape}")
    elif mask_path is not None:
        data_k, img_k = read_nifti_volume(mask_path, None, role="mask", allow_constant=True)
        if not same_grid(img_k, img_f, affine_atol):
            raise ValueError(
                f"{who} mask file '{mask_path}' is on another grid than the fixed image (shape "
                f"{img_k.shape[:3]} vs {img_f.shape[:3]}, or a different affine); give a mask in the "
                f"fixed image's space"
            )
        fg = data_k > 0
        if not fg.any():
            raise ValueError(f"{who} mask file '{mask_path}' is empty (no voxel > 0)")
    else:
        fg = estimate_foreground(norm_f)

    canon = to_canonical(img_f.affine, data_f.shape)
    cf, cm = reorient(norm_f, canon), reorient(norm_m, canon)
    ck = reorient(fg.astype(np.int8), canon) > 0
    chosen = choose_slices(ck, axis, slices, min_foreground, who=who, name=f"'{fixed_path}'")
    canonical = {"fixed": cf, "moving": cm, "mask": ck}
    native = {key: np.moveaxis(v, axis, 0)[chosen] for key, v in canonical.items()}
    if not native["mask"].any():
        raise ValueError(f"{who} the foreground is empty in the chosen slices")
    a_ax, b_ax = in_plane_axes(axis)
    numeric = isinstance(fov_margin, (int, float)) and not isinstance(fov_margin, bool)
    if fov_margin is not None and not (numeric and 1.0 <= fov_margin <= 4.0):
        raise ValueError(f"{who} 'fov_margin' must be a number in [1, 4] or None, got {fov_margin!r}")
    frame = slice_frame(native["mask"], canon.spacing[a_ax], canon.spacing[b_ax], size, margin=fov_margin)
    model = {
        "fixed": np.clip(model_images(native["fixed"], frame), 0.0, 1.0),
        "moving": np.clip(model_images(native["moving"], frame), 0.0, 1.0),
        "mask": (model_images(native["mask"].astype(np.float64), frame, antialias=False) >= 0.5) * 1.0,
    }
    geometry = SliceGeometry(canon, axis, frame)
    return SlicedPair(img_f, geometry, chosen, canonical, native, model, resampled)


def load_nifti_pair(
    fixed_path: str | Path,
    moving_path: str | Path,
    axis: int = 2,
    size: int = 64,
    volume: int | tuple[int | None, int | None] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    affine_atol: float = 1e-3,
    contrasts: tuple[str, str] = ("t1", "t2"),
    mask: str | Path | None = None,
    min_foreground: float = MIN_FOREGROUND,
    slices: list[int] | None = None,
    resample: bool = False,
    *,
    fov_margin: float | None = None,
) -> NiftiSlices:
    """Load two aligned NIfTI volumes of one subject as 2D slices shaped like the embedded data.

    The slices are made exactly as :func:`pemd_tutorial.register` makes them (:func:`slice_pair`):
    with the same ``axis``, ``mask``, ``slices`` and ``size`` (the network's ``cfg.image_size``;
    48 for the shipped networks) they are identical, so a network adapted on them sees what
    ``register`` will show it. The field of view follows the foreground of the chosen slices: a
    square ``fov_margin`` times the larger side of their bounding box, by default the proportion of
    the embedded images the networks were trained on (:func:`data_utils.embedded.brain_fov_margin`,
    1.016), so that the brain is seen at the scale of training.

    Args:
        fixed_path, moving_path: the volume of the fixed contrast (e.g. T1w) and of the moving one
            (e.g. T2w); they must share the voxel grid unless ``resample``.
        axis: slicing axis of the canonical (RAS+) volume: 0 sagittal, 1 coronal, 2 axial.
        size: side length of the output images in pixels.
        volume: for 4D files, the volume index (one int for both, or a pair for (fixed, moving)).
        percentiles: intensity percentiles (of the voxels above the volume's minimum) mapped to
            0 and 1; values outside are clipped.
        affine_atol: largest allowed absolute difference between the two affines (mm for the
            translation, mm per voxel for the matrix part).
        contrasts: names of the two contrasts in ``images`` (use them as ``fixed_contrast`` /
            ``moving_contrast`` in :func:`data_utils.pairs.make_pairs`).
        mask: optional foreground mask file on the fixed grid (non-zero = foreground); default the
            fixed volume's normalised intensity above 0.1, holes filled.
        min_foreground: keep slices whose foreground covers at least this fraction of the slice
            (ignored if ``slices`` is given).
        slices: explicit slice indices along ``axis`` of the canonical volume.
        resample: resample a moving volume on another grid onto the fixed grid (trilinear, in mm,
            as :func:`pemd_tutorial.register` does); by default such a pair is refused.
        fov_margin: side of the square field of view over the larger side of the foreground's
            bounding box, in ``[1, 4]``; ``None`` (default): the training images' proportion. A
            larger value shows the brain smaller than the networks saw it in training.

    Returns:
        :class:`NiftiSlices` with ``images[contrasts[0]]``, ``images[contrasts[1]]`` ``(N, size,
        size)`` in ``[0, 1]``, ``mask``, ``slice_index`` (along ``axis``), ``tissues=None`` and the
        ``geometry`` for :func:`save_nifti`.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_nifti_volume`; also grids that differ, bad
        arguments, no slice with foreground.
    """
    if len(contrasts) != 2 or contrasts[0] == contrasts[1]:
        raise ValueError(f"load_nifti_pair() 'contrasts' must be two different names, got {contrasts!r}")
    pair = slice_pair(fixed_path, moving_path, axis=axis, size=size, volume=volume, percentiles=percentiles,
                      mask_path=mask, slices=slices, min_foreground=min_foreground, affine_atol=affine_atol,
                      resample=resample, fov_margin=fov_margin)

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(pair.model[key]).float().contiguous()

    return NiftiSlices(
        images={contrasts[0]: tensor("fixed"), contrasts[1]: tensor("moving")},
        mask=tensor("mask") >= 0.5,
        tissues=None,
        slice_index=torch.tensor(pair.slices, dtype=torch.int64),
        geometry=pair.geometry,
    )


def field_to_world(dense: np.ndarray, geometry: SliceGeometry, chosen,
                   world: bool = True) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """Model-space displacements ``(N, 2, S, S)`` (model pixels) at slices ``chosen`` -> the input's grid.

    Returns:
        ``(voxels, mm)``: the displacement in canonical voxels along ``(a, b)``, each ``(N, na, nb)``
        (0 outside the field of view), and the world displacement in mm along the RAS+ axes of the
        file's affine, ``(X, Y, Z, 3)`` in the file's voxel order (0 outside the chosen slices);
        ``mm`` is ``None`` with ``world=False`` (the slices only, without a whole-volume array).
    """
    canon, frame, axis = geometry.canonical, geometry.frame, geometry.axis
    dense = np.asarray(dense)
    if dense.shape != (len(chosen), 2, frame.size, frame.size):
        raise ValueError(f"field_to_world() 'dense' must have shape ({len(chosen)}, 2, {frame.size}, "
                         f"{frame.size}) for {len(chosen)} slices, got {dense.shape}")
    shape = canon.canonical_shape
    a_ax, b_ax = in_plane_axes(axis)
    na, nb = shape[a_ax], shape[b_ax]
    mx, my = frame.model_coordinates(na, nb)
    inside = frame.inside(na, nb)
    dx, dy = (sample_model(dense[:, c], mx, my) * inside for c in (0, 1))
    da, db = frame.to_voxels(dx, dy)
    if not world:
        return (da, db), None
    vox = np.zeros((*shape, 3))
    vox[..., a_ax] = volume_from_slices(da, axis, shape, chosen)
    vox[..., b_ax] = volume_from_slices(db, axis, shape, chosen)
    mm = vox @ canon.canonical_affine[:3, :3].T
    return (da, db), from_canonical(mm, canon)


def write_volume(path: str | Path, data: np.ndarray, affine: np.ndarray, *, vector: bool = False) -> Path:
    """Write ``data`` (as it is: its dtype is kept) with ``affine`` as both qform and sform (code 1,
    scanner), so that every reader places it the same way; ``vector``: a displacement field
    ``(X, Y, Z, 1, 3)`` marked with the NIfTI vector intent, whose components ITK reads as LPS+.
    The one NIfTI writer of the package. Returns the path."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"write_volume() 'affine' must be a 4x4 matrix, got shape {affine.shape} for "
                         f"{str(path)!r}")
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if vector:
        img.header.set_intent("vector")
    nib.save(img, str(path))
    return Path(path)


def save_nifti(
    path: str | Path,
    data: torch.Tensor | np.ndarray,
    geometry: SliceGeometry | NiftiSlices,
    slice_index: torch.Tensor | np.ndarray | list[int] | None = None,
    is_field: bool | None = None,
) -> Path:
    """Write model-space slices back into the input's voxel grid, with the input's affine.

    Images ``(N, H, W)`` or ``(N, 1, H, W)`` are resampled from the model's field of view to the
    input's voxels (bilinear) and written as a 3D float32 volume (0 outside the chosen slices and
    the field of view). Displacement fields ``(N, 2, H, W)`` (``(dx, dy)`` in model pixels,
    :mod:`data_utils.grid` convention) are converted to **millimetres** and written as a 5D NIfTI
    ``(X, Y, Z, 1, 3)`` with the vector intent, in ITK's **LPS+** components (:data:`RAS_TO_LPS`;
    the component along the slicing axis is 0), so that ITK, ANTs, ITK-SNAP and Slicer apply them
    as written.

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
        raise TypeError("save_nifti() 'geometry' must be a SliceGeometry or the NiftiSlices it came with, "
                        f"got {type(geometry).__name__}")
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
    s = geometry.size
    if x.dim() != 4 or x.shape[1] != want_c or x.shape[-2:] != (s, s):
        expected = f"(N, 2, {s}, {s})" if is_field else f"(N, {s}, {s})"
        raise ValueError(f"save_nifti() 'data' must have shape {expected}, got {tuple(x.shape)}")
    if slice_index is None:
        raise ValueError("save_nifti() needs 'slice_index' when 'geometry' is a SliceGeometry")
    idx = np.asarray(torch.as_tensor(slice_index).cpu(), dtype=np.int64).reshape(-1)
    canon, axis = geometry.canonical, geometry.axis
    n_along = canon.canonical_shape[axis]
    if idx.size != x.shape[0] or len(set(idx.tolist())) != idx.size or idx.min() < 0 or idx.max() >= n_along:
        raise ValueError(
            f"save_nifti() 'slice_index' must hold {x.shape[0]} distinct indices in [0, {n_along}), "
            f"got {idx.tolist()}"
        )
    x = x.numpy()
    if not is_field:
        a_ax, b_ax = in_plane_axes(axis)
        na, nb = canon.canonical_shape[a_ax], canon.canonical_shape[b_ax]
        mx, my = geometry.frame.model_coordinates(na, nb)
        values = sample_model(x[:, 0], mx, my) * geometry.frame.inside(na, nb)
        vol = volume_from_slices(values, axis, canon.canonical_shape, idx)
        return write_volume(path, from_canonical(vol, canon).astype(np.float32), canon.affine)
    _, mm = field_to_world(x, geometry, idx)
    write_volume(path, (mm * RAS_TO_LPS)[:, :, :, None, :].astype(np.float32), canon.affine, vector=True)
    return path
