"""Register a real pair of NIfTI volumes: ``python -m pemd_tutorial register``.

:func:`register` is what the command calls. For a fixed volume (e.g. a T1w scan) and a moving
volume (e.g. a T2w scan of the same subject, on any voxel grid):

1. **Read** both with :func:`data_utils.read_nifti_volume`, the project's one NIfTI reader (a 4D
   file needs ``volume_index``; a 2D file, NaN or infinite voxels are refused). A fixed volume of
   more than :data:`WORK_VOXELS` voxels (e.g. 0.5 mm) is registered on a **working grid** of
   voxels an integer factor larger (block means); the moved image is still written on the fixed
   grid, so memory stays bounded whatever the resolution.
2. **Check the headers**: the share of the fixed foreground that the moving foreground covers
   where the two affines place it (a wrong orientation shows as little overlap, none as "does not
   overlap the fixed image"), and whether the two headers differ in handedness (a mirror).
3. **Pre-align** in 3D (``prealign="rigid"``, the default, or ``"affine"``; ``"none"`` to skip):
   :func:`data_utils.prealign.prealign`, SimpleITK's Mattes mutual information from a small
   search over starting orientations; the moving volume is resampled onto the (working) fixed grid
   through it.
4. **Slices** (:func:`data_utils.nifti.slice_volumes`, policy :mod:`data_utils.geometry`): both volumes
   normalised by robust percentiles, the foreground (the given mask or the fixed intensity above
   10 %, holes filled), every slice along ``axis`` of the canonical (RAS+) volume with at least 2 %
   foreground, each resampled **in millimetres** to the model's square image. The same slices as
   :func:`data_utils.load_nifti_pair` makes, so a network adapted on those sees exactly these.
5. **The deformable step**: label probabilities from MIND (``model="mind"``, the default) or a
   network (mean of its heads F1 and F2); the expected displacement at the control points,
   interpolated to every model pixel (:func:`pemd_tutorial.evaluate.dense_field`) and mapped back
   to the voxels in millimetres.
6. **The quality check**: NMI and MIND-SSD (:mod:`pemd_tutorial.similarity`) over the fixed
   foreground after each stage (the headers' placement, the pre-alignment, the deformable step).
   The deformable step is kept only if it makes neither worse; the pre-alignment is dropped only if
   it makes both worse. Whatever is dropped is said, with the numbers. A final NMI near 1 (noise,
   another subject) and a network unsure of the images (its mean label entropy near a uniform
   guess: not a brain like its training data) are warned about too. Every warning is a Python
   :class:`UserWarning`, a ``warning:`` line of the command and an entry of ``metrics["warnings"]``.
7. **Write** (all of it to a staging folder, moved into ``out`` only when everything succeeded):
   ``moved.nii.gz`` (the moving file resampled once, trilinear, through the composed transform, on
   the fixed grid, in the **moving file's intensity units**; ``moved_units="normalised"`` for the
   [0, 1] images the network saw), ``field.nii.gz`` (the one displacement field composing the
   pre-alignment and the deformable step, **64-bit** vectors, LPS+: below), ``prealign.tfm`` (the
   pre-alignment alone, an ITK transform file), ``uncertainty.nii.gz`` (the entropy, in nats, of the
   label probabilities; ``log L`` is a uniform guess), ``montage/slice_<k>.png`` for a few slices
   (fixed, moving before, moving after, with the fixed image's edges drawn) and ``metrics.json``.

**The field's direction and frame.** For a point ``p`` of the fixed image (world coordinates, mm),
the field holds the vector ``D(p)`` such that ``p + D(p)`` is the corresponding point of the moving
image (``moved(p) = moving(p + D(p))``), the convention of ITK's displacement-field transforms. NIfTI
world axes are RAS+, but ITK, ANTs, ITK-SNAP and 3D Slicer read the components of a displacement
field with intent "vector" as **LPS+**, so the file holds LPS+ components, as ANTs writes its own
fields, and ``antsApplyTransforms`` or SimpleITK's ``DisplacementFieldTransform`` apply it to the
moving file as is and reproduce ``moved.nii.gz`` (tests check this with SimpleITK, and with ANTsPy
where it is installed). With the pre-alignment ``T`` and the deformable displacement ``d``,
``D(p) = T(p + d(p)) - p``. The field is on the fixed grid (on the working grid for a larger fixed
image: ITK interpolates it). :attr:`RegistrationResult.field_mm`, for Python users, holds the same
displacement with RAS+ components (``nibabel``'s frame).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import map_coordinates

from data_utils import warp
from data_utils.geometry import (
    display_orientation,
    estimate_foreground,
    from_canonical,
    parse_slices,
    reorient,
    sample_model,
    sample_slices,
    volume_from_slices,
)
from data_utils.nifti import (
    RAS_TO_LPS,
    SlicedPair,
    field_to_world,
    normalise_intensities,
    read_nifti_volume,
    resample_to_grid,
    same_grid,
    slice_volumes,
    write_volume,
)
from data_utils.prealign import (
    PREALIGN_KINDS,
    Prealignment,
    compose_field,
    grid_points,
    import_sitk,
    resample_prealigned,
    voxel_to_lps,
)
from data_utils.prealign import prealign as prealign_pair
from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import dense_field, heads_mean
from pemd_tutorial.figures import plot_registration_montage
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.mind import mind_probs
from pemd_tutorial.pretrained import (
    ARCHITECTURE_FIELDS,
    PAPER_PRETRAINED_NAMES,
    PRETRAINED_NAMES,
    architecture_mismatch,
    load_model,
    load_pretrained,
)
from pemd_tutorial.similarity import mind_ssd, normalised_mutual_information
from pemd_tutorial.staging import publish, staging_folder

__all__ = [
    "MONTAGE_SLICES",
    "MOVED_UNITS",
    "PREALIGN_KINDS",
    "RegistrationResult",
    "display_orientation",
    "load_registration_model",
    "mind_ssd",
    "normalised_mutual_information",
    "parse_slices",
    "register",
    "resample_moving",
]



@dataclass
class RegistrationResult:
    """What :func:`register` computed (all arrays in the fixed volume's original voxel order).

    Attributes:
        moved: the moving volume warped onto the fixed grid, ``(X, Y, Z)`` float32, normalised.
        field_mm: displacement in millimetres along the RAS+ world axes of the NIfTI affine,
            ``(X, Y, Z, 3)`` (``field.nii.gz`` holds the same vectors in LPS+, for ITK).
        uncertainty: label entropy in nats, ``(X, Y, Z)`` (0 outside the registered slices).
        metrics: the dict written to ``metrics.json``.
        files: name -> path of every file written (empty without ``out``).
        slices: indices of the registered slices along ``axis`` of the canonical volume.
        resampled: whether the moving volume had to be resampled onto the fixed grid.
        model_space: per registered slice, the model-resolution images and predictions:
            ``"fixed"``, ``"moving"``, ``"moved"`` ``(N, 1, S, S)``, ``"probs"`` ``(N, L, Hc, Wc)``,
            ``"mask"`` ``(N, S, S)``, ``"pixel_mm"`` (mm per model pixel) and ``"config"``.
    """

    moved: np.ndarray
    field_mm: np.ndarray
    uncertainty: np.ndarray
    metrics: dict[str, Any]
    files: dict[str, Path]
    slices: list[int]
    resampled: bool
    model_space: dict[str, Any] = field(default_factory=dict)
    prealignment: Prealignment | None = None
    kept: str = "deformable"
    montage_slices: list[int] = field(default_factory=list)
    field_affine: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _read(path: str | os.PathLike, role: str, volume_index: int | None, allow_constant: bool = False):
    """:func:`data_utils.nifti.read_nifti_volume` with the messages prefixed by ``register()``."""
    try:
        return read_nifti_volume(path, volume_index, role=role, allow_constant=allow_constant)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"register() {err}") from None
    except ValueError as err:
        raise ValueError(f"register() {err}") from None


def _slice_volumes(data_f, img_f, on_fixed, fixed, moving, axis: int, size: int, mask, mask_data, slices,
                   resampled: bool, fov_margin: float | None = None) -> SlicedPair:
    """:func:`data_utils.nifti.slice_volumes` for ``register()``: the moving volume is on the fixed grid."""
    try:
        return slice_volumes(data_f, img_f, on_fixed, fixed_path=fixed, moving_path=moving, axis=axis,
                             size=size,
                             mask_path=mask, mask_data=mask_data, slices=slices, resampled=resampled,
                             who="register()", fov_margin=fov_margin)
    except (FileNotFoundError, ValueError) as err:
        message = str(err) if str(err).startswith("register()") else f"register() {err}"
        raise type(err)(message) from None


def load_registration_model(spec: str | os.PathLike, device: str | torch.device = "cpu", config=None):
    """``"pretrained:<name>"``, ``"mind"`` or the path of a :func:`pemd_tutorial.save_model` file.

    Returns:
        ``(model or None, Config)``: ``None`` for the MIND baseline, whose grid and image size are
        the standard profile's.

    Raises:
        ValueError: an unknown pretrained name, or a file that is not a model file, or one written
            for another network than ``config`` (when given).
        FileNotFoundError: the file does not exist.
    """

    spec = str(spec)
    if spec == "mind":
        return None, (config or Config.standard(device=str(device)))
    if spec.startswith("pretrained:"):
        name = spec.split(":", 1)[1]
        if name in PAPER_PRETRAINED_NAMES:
            raise ValueError(
                f"register() model {spec!r} is a patch network of the paper experiment: it compares two "
                "small "
                "patches and cannot register slices; use one of "
                + ", ".join(f"pretrained:{n}" for n in PRETRAINED_NAMES) + ", a model file or 'mind'"
            )
        if name not in PRETRAINED_NAMES:
            raise ValueError(f"register() 'model' {spec!r} is not a shipped network: use one of "
                             + ", ".join(f"pretrained:{n}" for n in PRETRAINED_NAMES) + ", a model file "
                                                                                        "or 'mind'")
        model = load_pretrained(name, device=device)
        if config is not None:
            bad = architecture_mismatch(model.config, config, ARCHITECTURE_FIELDS)
            if bad:
                raise ValueError(f"register() model {spec!r} does not fit 'config': " + ", ".join(bad))
        return model, model.config
    model = load_model(spec, config, device=device)
    if not model.dense:
        raise ValueError(f"register() model file '{spec}' holds a {type(model).__name__} (a patch "
                         "network of the "
                         "paper experiment), which cannot register slices; give a RegistrationNet's file")
    return model, model.config


def resample_moving(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    volume_index: int | None = None,
) -> Path:
    """Write the moving volume resampled onto the fixed volume's grid (trilinear), as :func:`register` does.

    The result is on the fixed grid but still misaligned; together with the fixed file it can be
    loaded with :func:`data_utils.load_nifti_pair` to make *unlabelled* target pairs for adapting a
    network to this contrast (notebook 04). Returns ``out_path``.
    """
    data_f, img_f = _read(fixed, "fixed", volume_index)
    data_m, img_m = _read(moving, "moving", volume_index)
    if not same_grid(img_f, img_m):
        data_m = resample_to_grid(data_m, img_m, img_f)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(out_path, data_m.astype(np.float32), img_f.affine)
    return out_path


# --------------------------------------------------------------------------------------------
# The registration
# --------------------------------------------------------------------------------------------


#: How many slices get a PNG montage (evenly spaced over the registered ones).
MONTAGE_SLICES = 5
#: What ``moved_units`` accepts.
MOVED_UNITS = ("moving", "normalised")
#: Below this share of the fixed foreground covered by the moving foreground (placed by the headers),
#: the pair is reported as overlapping little (a wrong header orientation, or a large head movement).
MIN_OVERLAP = 0.8
#: Final NMI below this (over the fixed foreground): the two images share almost no information.
MIN_NMI = 1.03
#: Slices processed together (bounds the memory of the MIND descriptors and of the warps).
CHUNK_SLICES = 16
#: The quality check measures the similarity on at most this many registered slices, evenly spaced.
QUALITY_SLICES = 48
#: A fixed image with more voxels is registered on a working grid of larger voxels (an integer factor);
#: the moved image is still written on the fixed grid, the field and the uncertainty on the working grid.
WORK_VOXELS = 16_000_000


def register(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    model: str | os.PathLike = "mind",
    out: str | os.PathLike | None = None,
    *,
    mask: str | os.PathLike | None = None,
    axis: int = 2,
    slices: str | list[int] | None = None,
    volume_index: int | None = None,
    device: str = "cpu",
    config=None,
    montage: bool = True,
    prealign: str = "rigid",
    moved_units: str = "moving",
    montage_slices: int = MONTAGE_SLICES,
    fov_margin: float | None = None,
) -> RegistrationResult:
    """Pre-align ``moving`` to ``fixed`` in 3D, register the residual slice by slice, check, write.

    Args:
        fixed, moving: NIfTI files (3D, or 4D with ``volume_index``).
        model: ``"mind"`` (default: the training-free MIND baseline, the most accurate slice-wise
            step on notebook 04's stand-in pair, with or without the pre-alignment),
            ``"pretrained:<name>"`` (a shipped network, e.g. ``"pretrained:mcd_pemd"``) or the path
            of a :func:`pemd_tutorial.save_model` file.
        out: output folder (created); ``None`` writes nothing.
        mask: optional NIfTI foreground mask on the fixed grid (non-zero = foreground).
        axis: slicing axis of the canonical (RAS+) volume: 0 sagittal, 1 coronal, 2 axial.
        slices: ``"a:b"`` (end exclusive) or a list of indices along ``axis``; default every slice
            with at least 2 % foreground.
        volume_index: the volume of 4D inputs (for both files).
        device: where the network runs.
        config: optional :class:`~pemd_tutorial.config.Config` the model file must fit.
        montage: write the PNG montages (with ``out``).
        prealign: ``"rigid"`` (default), ``"affine"`` or ``"none"``: the 3D pre-alignment
            (:func:`data_utils.prealign.prealign`, SimpleITK, the ``register`` extra).
        moved_units: ``"moving"`` (default: ``moved.nii.gz`` in the moving file's intensity units) or
            ``"normalised"`` (its robust percentiles mapped to [0, 1], as the network saw it).
        montage_slices: how many slices get a montage (evenly spaced).
        fov_margin: side of the slices' square field of view over the larger side of the
            foreground's bounding box; ``None`` (default): the proportion of the images the networks
            were trained on (:func:`data_utils.embedded.brain_fov_margin`), so that the brain is seen
            at the scale of training. Other values are for seeing what scale does.

    Returns:
        A :class:`RegistrationResult`.

    Raises:
        FileNotFoundError: an input or the model file does not exist.
        ImportError: ``prealign`` other than ``"none"`` without SimpleITK.
        ValueError: a bad input (the message names the file or argument and the problem): 2D or
            4D without ``volume_index``, NaN or infinite voxels, an empty mask or one on another
            grid, a slice range outside the volume, a model file for another network, an
            unwritable output folder, a moving image that does not overlap the fixed one (without
            pre-alignment).

    Warns:
        UserWarning: the quality check's findings (module docstring): little overlap in world space,
        a wrong or mirrored header orientation, a stage that made the similarity worse (its result
        is not kept), images that share almost no information. Also in ``metrics["warnings"]``.
    """
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        raise ValueError(f"register() 'axis' must be 0, 1 or 2, got {axis!r}")
    if volume_index is not None and (isinstance(volume_index, bool) or not isinstance(volume_index, int)):
        raise TypeError(
            f"register() 'volume_index' must be an int or None, got {type(volume_index).__name__}"
        )
    if prealign not in PREALIGN_KINDS:
        raise ValueError(f"register() 'prealign' must be one of {', '.join(PREALIGN_KINDS)}, got "
                         f"{prealign!r}")
    if moved_units not in MOVED_UNITS:
        raise ValueError(f"register() 'moved_units' must be one of {', '.join(MOVED_UNITS)}, got "
                         f"{moved_units!r}")
    if isinstance(montage_slices, bool) or not isinstance(montage_slices, int) or montage_slices < 1:
        raise ValueError(f"register() 'montage_slices' must be a positive int, got {montage_slices!r}")
    if prealign != "none":
        import_sitk()  # before any work: a missing extra is named at once
    staging = staging_folder(out, "register()")
    try:
        if Path(fixed).resolve() == Path(moving).resolve():
            warnings.warn(f"register() 'fixed' and 'moving' are the same file '{fixed}'", stacklevel=2)
        net, cfg = load_registration_model(model, device=device, config=config)
        data_f, img_f = _read(fixed, "fixed", volume_index)
        data_m, img_m = _read(moving, "moving", volume_index)
        resampled = not same_grid(img_f, img_m)
        notes: list[str] = []
        mask_data = _read_mask(mask, img_f)
        # a large fixed image is registered on a working grid (voxels an integer factor larger); the
        # moved image is still written on the fixed grid
        work_f, img_w = _working_grid(data_f, img_f)
        del data_f
        if mask_data is not None:
            mask_data = _working_grid(mask_data.astype(np.float32), img_f)[0] >= 0.5
        work_m, img_mw = _working_grid(data_m, img_m)

        # the headers' placement, and how much of the fixed foreground it covers
        by_header = resample_to_grid(work_m, img_mw, img_w) if not same_grid(img_w, img_mw) else work_m
        fg_f = mask_data if mask_data is not None else estimate_foreground(normalise_intensities(work_f,
                                                                                                 path=fixed))
        overlap = _overlap(fg_f, by_header)
        del fg_f
        if 0.0 < overlap < MIN_OVERLAP:
            notes.append(f"moving file '{moving}' covers only {overlap:.0%} of the fixed foreground "
                         "where the "
                         "headers place it: a wrong header orientation (e.g. LPS+ data labelled RAS+) "
                         "or a large "
                         "head movement" + ("" if prealign == "none" else "; the pre-alignment corrects a "
                                            "movement, check the result for an orientation"))
        if np.linalg.det(img_f.affine[:3, :3]) * np.linalg.det(img_m.affine[:3, :3]) < 0:
            notes.append(f"moving file '{moving}' and fixed file '{fixed}' store their voxels in opposite "
                         "handedness (e.g. LAS+ and RAS+): right if both headers are right; if one was "
                         "edited or "
                         "converted by another tool, check left and right, which a nearly symmetric "
                         "brain does not "
                         "show (no rigid or affine transform undoes a mirror)")
        pre = None
        if prealign != "none":
            try:
                pre = prealign_pair(work_f, img_w.affine, work_m, img_mw.affine, prealign)
            except (ValueError, RuntimeError) as err:  # SimpleITK raises RuntimeError
                notes.append(f"the {prealign} pre-alignment of moving file '{moving}' failed "
                             f"({str(err)[-200:]}); "
                             "continuing without it")
        overlap_message = (f"moving file '{moving}' does not overlap the fixed image '{fixed}': placed "
                           "in the "
                           "world by the two headers' affines, its foreground falls outside the fixed "
                           "foreground")
        if pre is not None:
            if overlap == 0.0:
                notes.append(overlap_message + "; the pre-alignment searched for it (check the result "
                                               "and the "
                             "headers)")
            notes.extend(f"moving file '{moving}': {n}" for n in pre.notes)
            on_fixed = resample_prealigned(pre, work_m, img_mw.affine, work_f.shape, img_w.affine)
        elif overlap == 0.0:
            raise ValueError(f"register() {overlap_message} (check the headers"
                             + (", or pre-align with --prealign rigid)" if prealign == "none" else ")"))
        else:
            on_fixed = by_header
        del work_m
        pair = _slice_volumes(work_f, img_w, on_fixed, fixed, moving, axis, cfg.image_size, mask, mask_data,
                              slices, resampled or pre is not None, fov_margin)
        del on_fixed, work_f
        geometry, chosen, model_images = pair.geometry, pair.slices, pair.model
        frame, canon = geometry.frame, geometry.canonical
        sl_f, sl_m, sl_k = pair.native["fixed"], pair.native["moving"], pair.native["mask"]
        del pair  # its canonical volumes are not needed any more

        # the deformable step on the model images
        img_fixed = torch.from_numpy(model_images["fixed"]).float()[:, None]
        img_moving = torch.from_numpy(model_images["moving"]).float()[:, None]
        model_mask = torch.from_numpy(model_images["mask"] >= 0.5)
        probs = _predict(net, cfg, img_fixed, img_moving, device)
        ctrl = cfg.grid.expected_displacement(probs)  # (N, 2, Hc, Wc) model pixels
        dense = dense_field(ctrl, cfg.image_size, cfg.image_size, cfg.control_spacing)  # (N, 2, S, S)
        entropy = -(probs.clamp_min(1e-12).log() * probs).sum(dim=1, keepdim=True)  # (N, 1, Hc, Wc)
        entropy_dense = F.interpolate(
            entropy, size=(cfg.image_size,) * 2, mode="bilinear", align_corners=False
        )
        moved_model = warp(img_moving, dense)
        (da, db), _ = field_to_world(dense.double().numpy(), geometry, chosen, world=False)
        na, nb = sl_f.shape[1:]
        grid_a, grid_b = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        moved_sl = np.concatenate([
            sample_slices(sl_m[c], grid_a + da[c], grid_b + db[c])
            for c in _chunks(len(chosen))
        ])
        del da, db

        # the quality check: the label-free similarity after each stage, over the fixed foreground of
        # (at most QUALITY_SLICES evenly spaced) registered slices
        q = _spread(len(chosen), QUALITY_SLICES)
        stages = {}
        if pre is not None and overlap == 0.0:  # nothing to compare where the headers place it
            header_sl = np.zeros_like(sl_m)
            stages["header"] = {"nmi": float("nan"), "mind_ssd": float("nan")}
        elif pre is not None:
            header_sl = _canonical_slices(normalise_intensities(by_header, path=moving), canon, axis, chosen)
            stages["header"] = _similarity(sl_f[q], header_sl[q], sl_k[q])
        else:
            header_sl = sl_m
        del by_header
        stages["prealigned" if pre is not None else "header"] = _similarity(sl_f[q], sl_m[q], sl_k[q])
        stages["deformable"] = _similarity(sl_f[q], moved_sl[q], sl_k[q])
        kept, use_pre, use_def = _choose(stages, notes, model, prealign)
        if not use_pre:
            pre = None
        if not use_def:
            moved_sl = sl_m if use_pre else header_sl
        final = stages[kept]
        if final["nmi"] < MIN_NMI:
            notes.append(f"the registered images share almost no information (NMI {final['nmi']:.3f}; 1 = "
                         "independent): noise, another subject or a wrong file? The result is not meaningful")
        mean_entropy = float(entropy_dense[:, 0][model_mask].mean()) if model_mask.any() else float("nan")
        if net is not None and mean_entropy > OOD_ENTROPY * math.log(cfg.n_labels):
            notes.append("the network is unsure about these images (mean label entropy "
                         f"{mean_entropy:.2f} nats "
                         f"of at most {math.log(cfg.n_labels):.2f}): they look unlike the brain slices "
                         "it was "
                         "trained on; its displacements are close to a guess")

        # the outputs: one field composing both stages (on the working grid), the moving file warped once
        field_ras = field_to_world(dense.double().numpy(), geometry, chosen)[1] if use_def else None
        field_lps = _composed_field(field_ras, img_w, pre)
        del field_ras
        if moved_units == "normalised":
            data_m = normalise_intensities(data_m, path=moving)
        moved_vol = _warp_moving(data_m, img_m, img_f, field_lps, img_w)
        del data_m
        mx, my = frame.model_coordinates(na, nb)
        ent = sample_model(entropy_dense[:, 0].double().numpy(), mx, my) * frame.inside(na, nb)
        unc_vol = from_canonical(volume_from_slices(ent, axis, canon.canonical_shape, chosen), canon)

        for note in notes:
            warnings.warn(f"register() {note}", stacklevel=2)
        metrics = _metrics(sl_f, header_sl, moved_sl, sl_k, chosen, fixed, moving, model, resampled, cfg,
                           axis,
                           img_f.shape[:3], stages, kept, pre, prealign, overlap, mean_entropy, notes,
                           moved_units, img_w)
        shown = _spread(len(chosen), montage_slices, ends=False)
        field_mm = field_lps.astype(np.float32)
        field_mm *= RAS_TO_LPS.astype(np.float32)
        result = RegistrationResult(
            moved=moved_vol,
            field_mm=field_mm,
            uncertainty=unc_vol.astype(np.float32),
            metrics=metrics,
            files={},
            slices=[int(i) for i in chosen],
            resampled=resampled,
            model_space={
                "fixed": img_fixed,
                "moving": img_moving,
                "moved": moved_model,
                "probs": probs,
                "mask": model_mask,
                "pixel_mm": frame.pixel,
                "config": cfg,
                "native": {"fixed": sl_f, "moving": header_sl, "moved": moved_sl, "mask": sl_k},
            },
            prealignment=pre,
            kept=kept,
            montage_slices=[int(chosen[i]) for i in shown],
            field_affine=img_w.affine.copy(),
        )
        if staging is not None:
            _write(staging, result, img_f, img_w, field_lps, montage, shown)
            result.files = publish(staging, Path(out))
        return result
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


#: The network's mean label entropy over the foreground above this share of ``log L`` (a uniform guess):
#: the images look unlike its training data.
OOD_ENTROPY = 0.8


def _chunks(n: int, size: int = CHUNK_SLICES):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _overlap(fg_f: np.ndarray, moving_on_fixed: np.ndarray) -> float:
    """Share of the fixed foreground covered by the moving foreground (both on the fixed grid)."""
    lo, hi = float(moving_on_fixed.min()), float(moving_on_fixed.max())
    if hi == lo or not fg_f.any():
        return 0.0
    fg_m = estimate_foreground(normalise_intensities(moving_on_fixed))
    return float((fg_m & fg_f).sum() / fg_f.sum())


def _canonical_slices(volume: np.ndarray, canon, axis: int, chosen) -> np.ndarray:
    return np.moveaxis(reorient(volume, canon), axis, 0)[chosen]


def _similarity(f: np.ndarray, m: np.ndarray, k: np.ndarray) -> dict[str, float]:
    """NMI (pooled) and MIND-SSD (chunks of slices, weighted by their foreground) over the mask ``k``."""
    total, count = 0.0, 0
    for c in _chunks(len(f)):
        n = int(k[c].sum())
        if n:
            total += mind_ssd(f[c], m[c], k[c]) * n
            count += n
    ssd = total / count if count else float("nan")
    return {"nmi": normalised_mutual_information(f, m, k), "mind_ssd": ssd}


def _choose(stages: dict, notes: list[str], model, prealign: str) -> tuple[str, bool, bool]:
    """Which stage's result is kept: ``(name, pre-alignment kept, deformable kept)``.

    The deformable step is kept only when it makes neither similarity worse than the stage before;
    the pre-alignment is dropped only when it makes both worse than the headers' placement.
    """

    def worse(a: dict, b: dict) -> tuple[bool, bool]:  # is a worse than b, by NMI, by MIND-SSD
        return a["nmi"] < b["nmi"], a["mind_ssd"] > b["mind_ssd"]

    def say(a: dict, b: dict) -> str:
        return f"NMI {b['nmi']:.4f} -> {a['nmi']:.4f}, MIND-SSD {b['mind_ssd']:.4f} -> {a['mind_ssd']:.4f}"

    use_pre = "prealigned" in stages
    if use_pre and all(worse(stages["prealigned"], stages["header"])):
        notes.append(f"the {prealign} pre-alignment made the similarity worse than the headers' placement "
                     f"({say(stages['prealigned'], stages['header'])}): it is not used")
        use_pre = False
    before = "prealigned" if use_pre else "header"
    use_def = not any(worse(stages["deformable"], stages[before]))
    if not use_def:
        notes.append(f"the deformable step ({model}) made the similarity worse than the "
                     f"{'pre-alignment' if use_pre else 'headers placement'} alone "
                     f"({say(stages['deformable'], stages[before])}): its field is not used; the result "
                     "is the "
                     f"{'pre-alignment' if use_pre else 'headers placement'} alone")
    return ("deformable" if use_def else before), use_pre, use_def


def _spread(n: int, k: int, ends: bool = True) -> list[int]:
    """``k`` evenly spaced positions among ``n`` (all of them when ``n <= k``); without ``ends``, the
    first and last position are left out (the montages show slices inside the brain, not its edges)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(v)) for v in (np.linspace(0, n - 1, k) if ends
                                           else np.linspace(0, n - 1, k + 2)[1:-1])})


def _read_mask(mask, img_f) -> np.ndarray | None:
    """The mask file as bool on the fixed grid (``None`` without one); errors name the file."""
    if mask is None:
        return None
    data, img = _read(mask, "mask", None, allow_constant=True)
    if not same_grid(img, img_f):
        raise ValueError(
            f"register() mask file '{mask}' is on another grid than the fixed image (shape "
            f"{img.shape[:3]} vs "
            f"{img_f.shape[:3]}, or a different affine); give a mask in the fixed image's space"
        )
    if not (data > 0).any():
        raise ValueError(f"register() mask file '{mask}' is empty (no voxel > 0)")
    return data > 0


def _working_grid(data: np.ndarray, img):
    """``(data, image)`` as they are, or, above :data:`WORK_VOXELS` voxels, averaged over blocks of
    ``f x f x f`` voxels (``f`` the smallest integer that brings it below) with the matching affine."""
    n = int(np.prod(data.shape[:3]))
    f = 1
    while n / f**3 > WORK_VOXELS:
        f += 1
    if f == 1:
        return data, img
    shape = tuple(int(v) // f for v in data.shape[:3])
    blocks = data[: shape[0] * f, : shape[1] * f, : shape[2] * f]
    reduced = blocks.reshape(shape[0], f, shape[1], f, shape[2], f).mean(axis=(1, 3, 5))
    scale = np.diag([f, f, f, 1.0])
    scale[:3, 3] = (f - 1) / 2  # the centre of a block, in the fine voxels
    return reduced, nib.Nifti1Image(reduced, img.affine @ scale)


def _composed_field(field_ras: np.ndarray | None, img_w, pre) -> np.ndarray:
    """The written field ``(X, Y, Z, 3)`` float64, LPS+ mm, on the working grid: pre-alignment after
    the deformable ``field_ras`` (:func:`data_utils.prealign.compose_field`), in slabs."""
    shape = img_w.shape[:3]
    out = np.zeros((*shape, 3), dtype=np.float64)
    for z in _slabs(shape):
        d = np.zeros((shape[0], shape[1], z.stop - z.start, 3)) if field_ras is None else field_ras[:, :, z]
        out[:, :, z] = compose_field(d, img_w.affine, pre, z)
    return out


def _slabs(shape, voxels: float = 1e6) -> list[slice]:
    """Slabs of the third voxel axis of about ``voxels`` voxels each."""
    step = max(1, int(voxels // (shape[0] * shape[1])))
    return [slice(z0, min(z0 + step, shape[2])) for z0 in range(0, shape[2], step)]


def _warp_moving(source: np.ndarray, img_m, img_f, field_lps: np.ndarray, img_w) -> np.ndarray:
    """``source`` (on the moving grid) sampled at ``p + D(p)`` at each fixed voxel ``p`` (trilinear, float32).

    ``D`` is ``field_lps`` (LPS+ mm on the grid of ``img_w``), interpolated trilinearly where that grid
    is coarser than the fixed one (zero outside it, as ITK does), in slabs of the fixed grid's third
    voxel axis so the coordinates never exist for the whole volume at once.
    """
    shape = img_f.shape[:3]
    to_moving = np.linalg.inv(voxel_to_lps(img_m.affine))
    to_world = voxel_to_lps(img_f.affine)
    coarse = not same_grid(img_f, img_w)
    to_work = np.linalg.inv(img_w.affine) @ img_f.affine
    moved = np.zeros(shape, dtype=np.float32)
    cval = float(source.min())
    for z in _slabs(shape):
        if coarse:
            w = grid_points(to_work, (shape[0], shape[1], z.stop - z.start), z.start)
            disp = np.stack([_sample(field_lps[..., c], w, 0.0) for c in range(3)], axis=-1)
            del w
        else:
            disp = field_lps[:, :, z]
        q = grid_points(to_world, (shape[0], shape[1], z.stop - z.start), z.start) + disp
        v = q @ to_moving[:3, :3].T + to_moving[:3, 3]
        del q, disp
        moved[:, :, z] = _sample(source, v, cval)
    return moved


def _sample(volume: np.ndarray, v: np.ndarray, cval: float) -> np.ndarray:
    """Trilinear samples of ``volume`` at voxel coordinates ``v`` ``(..., 3)``, at its borders as ITK's
    linear interpolator: the border voxel's value up to half a voxel outside, ``cval`` beyond."""
    out = map_coordinates(volume, [v[..., 0], v[..., 1], v[..., 2]], order=1, mode="nearest")
    outside = np.zeros(out.shape, dtype=bool)
    for c, n in enumerate(volume.shape[:3]):
        outside |= (v[..., c] < -0.5) | (v[..., c] > n - 0.5)
    out[outside] = cval
    return out


@torch.no_grad()
def _predict(net, cfg, fixed: torch.Tensor, moving: torch.Tensor, device) -> torch.Tensor:
    """Label probabilities ``(N, L, Hc, Wc)`` on the CPU: the network's mean of F1 and F2, or MIND."""
    if net is None:

        return mind_probs(fixed, moving, cfg.grid, cfg.control_spacing)
    net = net.to(device).eval()
    out = []
    for start in range(0, fixed.shape[0], 32):
        f, m = fixed[start : start + 32].to(device), moving[start : start + 32].to(device)
        l1, l2 = net(f, m)
        out.append(heads_mean(l1.softmax(1), l2.softmax(1)).cpu())
    return torch.cat(out)


def _metrics(sl_f, sl_before, moved, mask, chosen, fixed, moving, model, resampled, cfg, axis, fixed_shape,
             stages, kept, pre, prealign, overlap, mean_entropy, notes, moved_units, img_w) -> dict[str, Any]:
    per_slice = []
    for i, k in enumerate(chosen):
        m = mask[i]
        per_slice.append(
            {
                "slice": int(k),
                "nmi_before": normalised_mutual_information(sl_f[i], sl_before[i], m),
                "nmi_after": normalised_mutual_information(sl_f[i], moved[i], m),
            }
        )
    first = stages["header"]
    final = stages[kept]
    return {
        "fixed": str(fixed),
        "moving": str(moving),
        "model": str(model),
        "axis": axis,
        "slices": [int(k) for k in chosen],
        "moving_resampled_to_fixed_grid": resampled,
        "fixed_shape": [int(v) for v in fixed_shape],
        "working_shape": [int(v) for v in img_w.shape[:3]],
        "image_size": cfg.image_size,
        "labels": cfg.n_labels,
        "prealign": prealign,
        "prealign_start": None if pre is None else pre.start,
        "prealign_matrix_lps": None if pre is None else pre.matrix.tolist(),
        "prealign_translation_lps_mm": None if pre is None else pre.translation.tolist(),
        "header_overlap": overlap,
        "stages": stages,
        "kept": kept,
        "mean_label_entropy": mean_entropy,
        "moved_units": moved_units,
        "nmi_before": first["nmi"],
        "nmi_after": final["nmi"],
        "mind_ssd_before": first["mind_ssd"],
        "mind_ssd_after": final["mind_ssd"],
        "per_slice": per_slice,
        "warnings": list(notes),
        "notes": "over the foreground of the registered slices at the fixed image's resolution; "
                 "'before' = the "
        "moving image placed by the headers, 'after' = the kept stage; NMI in [1, 2] "
        "(higher = more similar), MIND-SSD >= 0 (lower = more similar); header_overlap = share of the "
        "fixed foreground covered by the moving foreground as the headers place it",
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _write(folder: Path, result: RegistrationResult, img_f, img_w, field_lps: np.ndarray, montage: bool,
           shown: list[int]) -> None:
    def save(data: np.ndarray, name: str, affine: np.ndarray, vector: bool = False) -> None:
        write_volume(folder / name, data, affine, vector=vector)

    save(result.moved, "moved.nii.gz", img_f.affine)
    # ITK reads an intent-vector field's components as LPS+; 64-bit, as DisplacementFieldTransform needs
    save(field_lps[:, :, :, None, :], "field.nii.gz", img_w.affine, vector=True)
    save(result.uncertainty, "uncertainty.nii.gz", img_w.affine)
    if result.prealignment is not None:
        import_sitk().WriteTransform(result.prealignment.transform, str(folder / "prealign.tfm"))
    write_json(folder / "metrics.json", result.metrics)
    if montage:
        (folder / "montage").mkdir()
        nat = result.model_space["native"]
        for i in shown:
            k = result.slices[i]
            images = (display_orientation(nat[key][i]) for key in ("fixed", "moving", "moved"))
            fig = plot_registration_montage(*images, title=f"slice {k} along axis {result.metrics['axis']}")
            fig.savefig(folder / "montage" / f"slice_{k:03d}.png", dpi=100)
            plt.close(fig)
