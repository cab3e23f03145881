"""Data for pemd-tutorial: the embedded MNI152 T1w/T2w slices, synthetic deformations, labels and
NIfTI loaders. Imports nothing of :mod:`pemd_tutorial`'s model or training code.

The displacement label grid and every coordinate convention are defined in :mod:`data_utils.grid`.

Modules, in data-flow order:

* :mod:`data_utils.embedded`: :func:`load_embedded` (48 MNI152 slices: real T1w, spin-echo T2w/PD
  simulated from tissue maps,
  FLAIR-like by inversion recovery, FLAIR-like with lesions; train/val/test by position with gaps,
  rotated over five folds), :func:`split_slices`.
* :mod:`data_utils.deform`: :func:`random_deformation` (smooth, bounded, fold-free, seeded) and
  :func:`warp` (backward warping, ``warped(x) = image(x + u(x))``).
* :mod:`data_utils.intensity`: :func:`augment_intensity` (gamma/contrast, bias field, Rician noise).
* :mod:`data_utils.contrast`: random contrasts of the source's moving image
  (:class:`RandomIntensityMap`, :class:`TissueSynthesis` with its held-out arm).
* :mod:`data_utils.pairs`: :func:`make_pairs` / :class:`PairDataset` (source pairs with labels,
  target pairs whose labels only :meth:`PairDataset.evaluation_view` returns),
  :func:`evaluation_pairs` (fixed evaluation sets).
* :mod:`data_utils.geometry`: the one slice geometry of users' volumes (canonical orientation, a
  square field of view resampled in millimetres, and the way back).
* :mod:`data_utils.nifti`: :func:`read_nifti_volume` (the one reader), :func:`slice_pair`,
  :func:`load_nifti_pair`, :func:`save_nifti` for users' own volumes.
* :mod:`data_utils.figures`: :func:`plot_pair_montage`.
"""

from data_utils.contrast import RandomIntensityMap, TissueSynthesis
from data_utils.deform import identity_grid, jacobian_determinant, random_deformation, smooth_noise, warp
from data_utils.embedded import (
    CONTRAST_NAMES,
    EMBEDDED_CONTRASTS,
    N_FOLDS,
    RELAXATION_1P5T,
    SPLITS,
    EmbeddedSlices,
    embedded_file_sha256,
    fold_splits,
    inversion_recovery,
    load_embedded,
    pixel_mm,
    resize_images,
    spin_echo,
    split_slices,
    tissue_order,
)
from data_utils.figures import control_to_dense, plot_pair_montage
from data_utils.grid import LabelGrid, at_control_points, check_control_spacing
from data_utils.intensity import augment_intensity, bias_field, gamma_jitter, invert_foreground, rician_noise
from data_utils.nifti import (
    NiftiSlices,
    SlicedPair,
    SliceGeometry,
    load_nifti_pair,
    read_nifti_volume,
    save_nifti,
    slice_pair,
)
from data_utils.pairs import (
    DOMAINS,
    EVALUATION_SEEDS,
    GROUND_TRUTH_KEYS,
    PairDataset,
    PairSampler,
    evaluation_pairs,
    iterate_batches,
    make_pairs,
)

__all__ = [
    "LabelGrid",
    "at_control_points",
    "check_control_spacing",
    "EMBEDDED_CONTRASTS",
    "CONTRAST_NAMES",
    "RELAXATION_1P5T",
    "SPLITS",
    "EmbeddedSlices",
    "embedded_file_sha256",
    "load_embedded",
    "pixel_mm",
    "resize_images",
    "spin_echo",
    "inversion_recovery",
    "split_slices",
    "N_FOLDS",
    "fold_splits",
    "tissue_order",
    "RandomIntensityMap",
    "TissueSynthesis",
    "identity_grid",
    "jacobian_determinant",
    "random_deformation",
    "smooth_noise",
    "warp",
    "augment_intensity",
    "bias_field",
    "gamma_jitter",
    "invert_foreground",
    "rician_noise",
    "DOMAINS",
    "EVALUATION_SEEDS",
    "GROUND_TRUTH_KEYS",
    "PairDataset",
    "PairSampler",
    "evaluation_pairs",
    "iterate_batches",
    "make_pairs",
    "NiftiSlices",
    "SlicedPair",
    "SliceGeometry",
    "load_nifti_pair",
    "read_nifti_volume",
    "save_nifti",
    "slice_pair",
    "control_to_dense",
    "plot_pair_montage",
]
