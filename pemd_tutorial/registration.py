"""Register a real pair of NIfTI volumes with a trained network: ``python -m pemd_tutorial register``.

:func:`register` is what the command calls. For a fixed volume (e.g. a T1w scan) and a moving
volume (e.g. a T2w scan of the same subject, on any voxel grid):

1. **Read** both with :func:`data_utils.read_nifti_volume`, the project's one NIfTI reader (a 4D
   file needs ``volume_index``; a 2D file, NaN or infinite voxels are refused). When the grids
   differ (shape or affine: orientation, voxel size, field of view), the moving volume is
   **resampled onto the fixed grid** with
   :func:`nibabel.processing.resample_from_to` (trilinear; needs SciPy), and the result says so.
2. **Foreground**: the given mask (on the fixed grid), or an estimate: the fixed volume's
   normalised intensity above 0.1, holes filled (:func:`scipy.ndimage.binary_fill_holes`).
3. **Normalise** each volume by robust percentiles (the 1st and 99th percentile of its voxels
   above the minimum map to 0 and 1, clipped).
4. **Slices** along ``axis`` of the canonical (RAS+) volume (0 sagittal, 1 coronal, 2 axial; by
   default every slice with at least 2 % foreground). Each slice is resampled **in millimetres**
   to the model's square image: a square field of view around the foreground of all chosen slices
   (its larger side plus 15 %), so anisotropic voxels keep their true aspect instead of being
   stretched, and the brain fills the image about as much as in the training data (where a
   model pixel is larger than a voxel, with the antialiasing filter that made the training
   images). Steps 1-4 are :func:`data_utils.slice_pair` (policy: :mod:`data_utils.geometry`),
   which also makes the slices of :func:`data_utils.load_nifti_pair`: a network adapted on those
   sees exactly these images.
5. **Predict** label probabilities with the model (mean of F1 and F2), or with the MIND baseline
   (``model="mind"``: no network). The expected displacement at the control points is
   interpolated to every model pixel (:func:`pemd_tutorial.evaluate.dense_field`) and mapped back
   to the fixed grid in millimetres.
6. **Write**, in the fixed image's voxel grid and affine: ``moved.nii.gz`` (the moving volume warped
   at its own resolution; slices not registered keep the resampled moving image),
   ``field.nii.gz`` (the displacement in millimetres, a 5D vector image ``(X, Y, Z, 1, 3)`` with
   intent "vector", zero outside the registered slices, **in ITK's LPS+ convention**: see below),
   ``uncertainty.nii.gz`` (the entropy, in nats, of the label probabilities at each control point,
   interpolated; ``log L`` is a uniform guess), ``montage/slice_<k>.png`` (fixed, moving before,
   moving after, with the fixed image's edges drawn on the moving images) and ``metrics.json``.
   Everything is written to a staging folder first and moved into ``out`` only when all of it
   succeeded, so an error leaves nothing half-written.

What can be measured without ground truth is printed and stored in ``metrics.json``: the
normalised mutual information (NMI, 32 bins) and the MIND-SSD (mean squared difference of MIND
descriptors) between the fixed image and the moving image before and after registration, over
the foreground of the registered slices. NMI should go up and MIND-SSD down when registration
helps.

**The field's direction and frame.** For a point ``p`` of the fixed image (world coordinates, mm),
the field holds the vector ``d(p)`` such that ``p + d(p)`` is the corresponding point of the moving
image (``moved(p) = moving(p + d(p))``), the convention of ITK's displacement-field transforms. NIfTI
world axes are RAS+, but ITK, ANTs, ITK-SNAP and 3D Slicer read the components of a displacement
field with intent "vector" as **LPS+**. So the file holds the LPS+ components
``(-d_x, -d_y, d_z)`` of the RAS+ vector ``(d_x, d_y, d_z)``, as ANTs writes its own fields, and
``antsApplyTransforms`` or SimpleITK's ``DisplacementFieldTransform`` apply it to ``moving`` as is
(a test checks this against ``moved.nii.gz`` with SimpleITK). :attr:`RegistrationResult.field_mm`,
for Python users, keeps the RAS+ components of the NIfTI world (``nibabel``'s frame).
"""

from __future__ import annotations

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

from data_utils import warp
from data_utils.geometry import (
    display_orientation,
    from_canonical,
    parse_slices,
    sample_model,
    sample_slices,
    volume_from_slices,
)
from data_utils.nifti import (
    RAS_TO_LPS,
    SlicedPair,
    field_to_world,
    read_nifti_volume,
    resample_to_grid,
    same_grid,
    slice_pair,
)
from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import dense_field
from pemd_tutorial.figures import plot_registration_montage
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.mind import mind_probs
from pemd_tutorial.pretrained import architecture_mismatch, load_model, load_pretrained
from pemd_tutorial.similarity import mind_ssd, normalised_mutual_information
from pemd_tutorial.staging import publish, staging_folder

__all__ = [
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


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _read(path: str | os.PathLike, role: str, volume_index: int | None):
    """:func:`data_utils.nifti.read_nifti_volume` with the messages prefixed by ``register()``."""
    try:
        return read_nifti_volume(path, volume_index, role=role)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"register() {err}") from None
    except ValueError as err:
        raise ValueError(f"register() {err}") from None


def _slice_pair(fixed, moving, axis: int, size: int, volume_index, mask, slices) -> SlicedPair:
    """:func:`data_utils.nifti.slice_pair` for ``register()``: the moving volume resampled when needed."""
    try:
        return slice_pair(fixed, moving, axis=axis, size=size, volume=volume_index, mask_path=mask,
                          slices=slices, resample=True, who="register()")
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
        model = load_pretrained(spec.split(":", 1)[1], device=device)
        if config is not None:

            bad = architecture_mismatch(model.config, config)
            if bad:
                raise ValueError(f"register() model {spec!r} does not fit 'config': " + ", ".join(bad))
        return model, model.config
    model = load_model(spec, config, device=device)
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
    img = nib.Nifti1Image(data_m.astype(np.float32), img_f.affine)
    img.set_qform(img_f.affine, code=1)
    img.set_sform(img_f.affine, code=1)
    nib.save(img, str(out_path))
    return out_path


# --------------------------------------------------------------------------------------------
# The registration
# --------------------------------------------------------------------------------------------


def register(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    model: str | os.PathLike = "pretrained:mcd_pemd",
    out: str | os.PathLike | None = None,
    *,
    mask: str | os.PathLike | None = None,
    axis: int = 2,
    slices: str | list[int] | None = None,
    volume_index: int | None = None,
    device: str = "cpu",
    config=None,
    montage: bool = True,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` slice by slice and write the results (module docstring).

    Args:
        fixed, moving: NIfTI files (3D, or 4D with ``volume_index``).
        model: ``"pretrained:<name>"`` (a shipped network, e.g. ``"pretrained:mcd_pemd"``), the path
            of a :func:`pemd_tutorial.save_model` file, or ``"mind"`` (the training-free baseline).
        out: output folder (created); ``None`` writes nothing.
        mask: optional NIfTI foreground mask on the fixed grid (non-zero = foreground).
        axis: slicing axis of the canonical (RAS+) volume: 0 sagittal, 1 coronal, 2 axial.
        slices: ``"a:b"`` (end exclusive) or a list of indices along ``axis``; default every slice
            with at least 2 % foreground.
        volume_index: the volume of 4D inputs (for both files).
        device: where the network runs.
        config: optional :class:`~pemd_tutorial.config.Config` the model file must fit.
        montage: write the PNG montages (with ``out``).

    Returns:
        A :class:`RegistrationResult`.

    Raises:
        FileNotFoundError: an input or the model file does not exist.
        ValueError: a bad input (the message names the file or argument and the problem): 2D or
            4D without ``volume_index``, NaN or infinite voxels, an empty mask or one on another
            grid, a slice range outside the volume, a model file for another network, an
            unwritable output folder.
    """
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        raise ValueError(f"register() 'axis' must be 0, 1 or 2, got {axis!r}")
    if volume_index is not None and (isinstance(volume_index, bool) or not isinstance(volume_index, int)):
        raise TypeError(
            f"register() 'volume_index' must be an int or None, got {type(volume_index).__name__}"
        )
    staging = staging_folder(out, "register()")
    try:
        if Path(fixed).resolve() == Path(moving).resolve():
            warnings.warn(f"register() 'fixed' and 'moving' are the same file '{fixed}'", stacklevel=2)
        net, cfg = load_registration_model(model, device=device, config=config)
        pair = _slice_pair(fixed, moving, axis, cfg.image_size, volume_index, mask, slices)
        geometry, chosen, resampled = pair.geometry, pair.slices, pair.resampled
        img_f, frame = pair.fixed_image, geometry.frame
        sl_f, sl_m, sl_k = pair.native["fixed"], pair.native["moving"], pair.native["mask"]

        # model images and predictions
        img_fixed = torch.from_numpy(pair.model["fixed"]).float()[:, None]
        img_moving = torch.from_numpy(pair.model["moving"]).float()[:, None]
        model_mask = torch.from_numpy(pair.model["mask"] >= 0.5)
        probs = _predict(net, cfg, img_fixed, img_moving, device)
        ctrl = cfg.grid.expected_displacement(probs)  # (N, 2, Hc, Wc) model pixels
        dense = dense_field(ctrl, cfg.image_size, cfg.image_size, cfg.control_spacing)  # (N, 2, S, S)
        entropy = -(probs.clamp_min(1e-12).log() * probs).sum(dim=1, keepdim=True)  # (N, 1, Hc, Wc)
        entropy_dense = F.interpolate(
            entropy, size=(cfg.image_size,) * 2, mode="bilinear", align_corners=False
        )
        moved_model = warp(img_moving, dense)

        # back to the native grid: warp every moving slice at its own resolution
        (da, db), field_vol = field_to_world(dense.double().numpy(), geometry, chosen)
        na, nb = sl_f.shape[1:]
        mx, my = frame.model_coordinates(na, nb)
        ent = sample_model(entropy_dense[:, 0].double().numpy(), mx, my) * frame.inside(na, nb)
        grid_a, grid_b = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        moved_sl = sample_slices(sl_m, grid_a + da, grid_b + db)

        canon = geometry.canonical
        shape = canon.canonical_shape
        moved_c = volume_from_slices(moved_sl, axis, shape, chosen, base=pair.canonical["moving"])
        moved_vol = from_canonical(moved_c, canon).astype(np.float32)
        unc_vol = from_canonical(volume_from_slices(ent, axis, shape, chosen), canon).astype(np.float32)

        metrics = _metrics(sl_f, sl_m, moved_sl, sl_k, chosen, fixed, moving, model, resampled, cfg, axis,
                           img_f.shape[:3])
        result = RegistrationResult(
            moved=moved_vol,
            field_mm=field_vol.astype(np.float32),
            uncertainty=unc_vol,
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
                "native": {"fixed": sl_f, "moving": sl_m, "moved": moved_sl, "mask": sl_k},
            },
        )
        if staging is not None:
            _write(staging, result, img_f, montage)
            result.files = publish(staging, Path(out))
        return result
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


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
        out.append((0.5 * (l1.softmax(1) + l2.softmax(1))).cpu())
    return torch.cat(out)


def _metrics(
    sl_f, sl_m, moved, mask, chosen, fixed, moving, model, resampled, cfg, axis, fixed_shape
) -> dict[str, Any]:
    per_slice = []
    for i, k in enumerate(chosen):
        m = mask[i]
        per_slice.append(
            {
                "slice": int(k),
                "nmi_before": normalised_mutual_information(sl_f[i], sl_m[i], m),
                "nmi_after": normalised_mutual_information(sl_f[i], moved[i], m),
            }
        )
    return {
        "fixed": str(fixed),
        "moving": str(moving),
        "model": str(model),
        "axis": axis,
        "slices": [int(k) for k in chosen],
        "moving_resampled_to_fixed_grid": resampled,
        "fixed_shape": [int(v) for v in fixed_shape],
        "image_size": cfg.image_size,
        "labels": cfg.n_labels,
        "nmi_before": normalised_mutual_information(sl_f, sl_m, mask),
        "nmi_after": normalised_mutual_information(sl_f, moved, mask),
        "mind_ssd_before": mind_ssd(sl_f, sl_m, mask),
        "mind_ssd_after": mind_ssd(sl_f, moved, mask),
        "per_slice": per_slice,
        "notes": "over the foreground of the registered slices at the fixed image's resolution; "
        "NMI in [1, 2] "
        "(higher = more similar), MIND-SSD >= 0 (lower = more similar)",
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _write(folder: Path, result: RegistrationResult, img_f, montage: bool) -> None:
    def save(data: np.ndarray, name: str, vector: bool = False) -> None:
        img = nib.Nifti1Image(data, img_f.affine)
        img.set_qform(img_f.affine, code=1)
        img.set_sform(img_f.affine, code=1)
        if vector:
            img.header.set_intent("vector")
        nib.save(img, str(folder / name))

    save(result.moved, "moved.nii.gz")
    # ITK reads the components of an intent-vector field as LPS+: negate x and y of the RAS+ vectors
    save((result.field_mm[:, :, :, None, :] * RAS_TO_LPS).astype(np.float32), "field.nii.gz", vector=True)
    save(result.uncertainty, "uncertainty.nii.gz")
    write_json(folder / "metrics.json", result.metrics)
    if montage:
        (folder / "montage").mkdir()
        nat = result.model_space["native"]
        for i, k in enumerate(result.slices):
            shown = (display_orientation(nat[key][i]) for key in ("fixed", "moving", "moved"))
            fig = plot_registration_montage(*shown, title=f"slice {k} along axis {result.metrics['axis']}")
            fig.savefig(folder / "montage" / f"slice_{k:03d}.png", dpi=100)
            plt.close(fig)
