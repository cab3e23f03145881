"""The embedded default data: 48 axial slices of the MNI ICBM152 2009a template, T1w real, T2w/PD simulated.

The shipped file ``data_utils/data/mni152_slices.npz`` (built by ``scripts/build_embedded_data.py``
from the nilearn wheel; provenance, hashes and the McGill copyright notice are in
``data_utils/data/README.md``) holds, for 48 axial slices of 128 x 128 pixels (1.4375 mm):

* ``t1``: the real T1w template intensities (uint8),
* ``gm``, ``wm``, ``csf``: tissue probabilities times 255 (CSF = filled brain mask - GM - WM),
* ``mask``: the brain mask (the template is brain-extracted), ``slice_index``: axial voxel index
  ``z`` in the MNI volume (MNI z = index - 72 mm), ``split``: 0 train, 1 val, 2 test.

Images have rows running anterior -> posterior and the patient's right on the image's right; pixel
and displacement conventions are those of :mod:`data_utils.grid`.

**T2w and PD-weighted images** are simulated per pixel with the spin-echo signal equation over the
three tissues ``t``:

.. math::

    S = \\sum_t p_t \\, PD_t \\, (1 - e^{-TR / T1_t}) \\, e^{-TE / T2_t}

with the BrainWeb 1.5 T tissue parameters (Kwan, Evans & Pike 1999; Cocosco et al. 1997):

=====  ========  ========  ====
tissue T1 (ms)   T2 (ms)   PD
=====  ========  ========  ====
CSF    2569      329       1.00
GM      833       83       0.86
WM      500       70       0.77
=====  ========  ========  ====

Defaults: T2w with TR/TE = 4000/100 ms (CSF > GM > WM), PD-weighted with TR/TE = 4000/15 ms.

A **FLAIR-like** image (contrast ``"flair"``) is simulated with the inversion-recovery signal

.. math::

    S = \\sum_t p_t \\, PD_t \\, |1 - 2 e^{-TI / T1_t} + e^{-TR / T1_t}| \\, e^{-TE / T2_t}

with TR/TI/TE = 9000/1700/100 ms: the inversion time nulls CSF (0.001) and leaves GM (0.19)
slightly brighter than WM (0.17). Unlike T2w, which is close to an inverted T1w, no monotone
intensity map turns it into the T1w image (CSF is dark in both, GM and WM swap their order).

A **FLAIR-like image with lesions, acquired differently** (contrast ``"flair_lesion"``) is the
target that no intensity map of the T1w reproduces: the FLAIR-like signal above plus bright
white-matter lesions that the T1w does not show (:func:`white_matter_lesions`: 3 to 6 blobs of 4 to
10 mm per slice inside the white matter, placed with a fixed seed, signal 1.8 times the grey
matter's), acquired at a third of the in-plane resolution along the anterior-posterior axis (a
4.3 mm "thick" direction, :func:`thick_direction`), with its own fixed bias field (±25 %).

**Splits** are by slice position: blocks ``train 8 | val 4 | train 8 | test 8 | train 8 | val 4 |
train 8`` on a 2 mm raster with 4 mm left out between blocks, so slices of different splits are at
least 6 mm apart. "val" is for choosing hyper-parameters (lambda), "test" only for the final table.
**Folds** rotate the test block over the five 8-slice blocks (``fold=0`` is the shipped split
above; fold ``k`` makes the ``k``-th other block the test block and the shipped test block a
training block; the two val blocks never move), so that five runs measure five slabs of the brain
instead of one (:data:`N_FOLDS`, :func:`fold_splits`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "RELAXATION_1P5T",
    "SPLITS",
    "EMBEDDED_CONTRASTS",
    "CONTRAST_NAMES",
    "EmbeddedSlices",
    "load_embedded",
    "spin_echo",
    "inversion_recovery",
    "resize_images",
    "embedded_file_sha256",
    "EMBEDDED_PIXEL_MM",
    "EMBEDDED_SIZE",
    "pixel_mm",
    "brain_fov_margin",
    "split_slices",
    "N_FOLDS",
    "fold_splits",
    "tissue_order",
    "white_matter_lesions",
    "thick_direction",
]

#: BrainWeb 1.5 T tissue parameters ``tissue: (T1 ms, T2 ms, PD)`` (Kwan et al. 1999, IEEE TMI
#: 18(11):1085-1097; Cocosco et al. 1997, NeuroImage 5(4):S425).
RELAXATION_1P5T: dict[str, tuple[float, float, float]] = {
    "csf": (2569.0, 329.0, 1.00),
    "gm": (833.0, 83.0, 0.86),
    "wm": (500.0, 70.0, 0.77),
}
SPLITS = ("train", "val", "test", "all")
#: Display names of every contrast of the project, the one table the package and its figures read
#: (``"inter"``, the intermediate-weighted spin echo, exists for the patch experiment only:
#: :data:`data_utils.patches.SEQUENCES`).
CONTRAST_NAMES: dict[str, str] = {"t1": "T1w", "t2": "T2w", "pd": "PD-weighted", "flair": "FLAIR-like",
                                  "flair_lesion": "FLAIR-like with lesions, thick, biased",
                                  "inter": "intermediate-weighted"}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_FILE = "mni152_slices.npz"
#: Side of the shipped slices in pixels, and their pixel size in mm (a field of view of 184 mm).
EMBEDDED_SIZE, EMBEDDED_PIXEL_MM = 128, 1.4375


def pixel_mm(size: int) -> float:
    """Millimetres per pixel of the embedded slices resized to ``size x size`` (e.g. 3.83 at 48 px).

    >>> round(pixel_mm(48), 3)
    3.833
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"pixel_mm() 'size' must be a positive integer, got {size!r}")
    return EMBEDDED_PIXEL_MM * EMBEDDED_SIZE / size


@functools.lru_cache(maxsize=1)
def brain_fov_margin() -> float:
    """Side of the shipped slices' field of view over the larger side of the brain's bounding box.

    The networks were trained on the shipped slices, every one of them the same 184 mm field of
    view, in which the brain mask of all 48 slices together spans 126 of the 128 pixels (front to
    back; 101 left to right): 128 / 126 = 1.016. :func:`data_utils.geometry.slice_frame` makes the
    field of view of a user's slices this many times the larger side of their foreground's bounding
    box, so that the brain fills the model image as the template's filled the training images.

    >>> round(brain_fov_margin(), 3)
    1.016
    """
    union = np.asarray(_raw()["mask"]).any(axis=0)
    rows, cols = np.nonzero(union.any(axis=1))[0], np.nonzero(union.any(axis=0))[0]
    side = max(int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1)
    return EMBEDDED_SIZE / side


@dataclass
class EmbeddedSlices:
    """2D slices with several contrasts.

    Attributes:
        images: ``contrast -> (N, H, W)`` float32, each contrast scaled to ``[0, 1]`` (by its
            maximum over all shipped slices, so the scaling does not depend on the split).
        mask: ``(N, H, W)`` bool, brain (foreground) mask.
        tissues: ``"gm", "wm", "csf" -> (N, H, W)`` float32 probabilities, or ``None``.
        slice_index: ``(N,)`` int64, slice position in the source volume (axial voxel index for
            the embedded data).
    """

    images: dict[str, torch.Tensor]
    mask: torch.Tensor
    tissues: dict[str, torch.Tensor] | None
    slice_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.slice_index.shape[0])

    def select(self, indices: torch.Tensor | list[int]) -> EmbeddedSlices:
        """A new object holding only the slices ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return dataclasses.replace(
            self,
            images={k: v[idx] for k, v in self.images.items()},
            mask=self.mask[idx],
            tissues=None if self.tissues is None else {k: v[idx] for k, v in self.tissues.items()},
            slice_index=self.slice_index[idx],
        )


def _data_path():
    return resources.files("data_utils") / "data" / _FILE


#: Number of folds of :func:`fold_splits` (the five 8-slice blocks that take turns as the test block).
N_FOLDS = 5
# the test block of each fold, as (first, last + 1) positions in the shipped slice order: fold 0 is
# the shipped test block, folds 1-4 the training blocks from inferior to superior
_FOLD_TEST_BLOCKS = ((20, 28), (0, 8), (12, 20), (28, 36), (40, 48))


def fold_splits(fold: int = 0) -> np.ndarray:
    """The split code of each of the 48 shipped slices in fold ``fold`` (0 train, 1 val, 2 test).

    Example:
        >>> codes = fold_splits(1)
        >>> codes[:8].tolist(), int((codes == 2).sum()), int((codes == 1).sum())
        ([2, 2, 2, 2, 2, 2, 2, 2], 8, 8)
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < N_FOLDS:
        raise ValueError(f"'fold' must be an integer in [0, {N_FOLDS}), got {fold!r}")
    codes = np.asarray(_raw()["split"]).copy()
    if fold:
        lo, hi = _FOLD_TEST_BLOCKS[0]
        codes[lo:hi] = _SPLIT_CODES["train"]
        lo, hi = _FOLD_TEST_BLOCKS[fold]
        codes[lo:hi] = _SPLIT_CODES["test"]
    return codes


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, np.ndarray]:
    with resources.as_file(_data_path()) as path, np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def embedded_file_sha256() -> str:
    """sha256 of the shipped ``.npz`` file (compare with ``data_utils/data/mni152_slices.json``)."""
    return hashlib.sha256(_data_path().read_bytes()).hexdigest()


def spin_echo(
    tissues: dict[str, torch.Tensor],
    tr: float,
    te: float,
    relaxation: dict[str, tuple[float, float, float]] | None = None,
) -> torch.Tensor:
    """Spin-echo signal ``S = sum_t p_t PD_t (1 - exp(-TR/T1_t)) exp(-TE/T2_t)``.

    Args:
        tissues: ``tissue -> probability map`` of any common shape, e.g. ``(N, H, W)``.
        tr: repetition time in ms (``> 0``).
        te: echo time in ms (``>= 0``).
        relaxation: ``tissue -> (T1 ms, T2 ms, PD)``; default :data:`RELAXATION_1P5T`. Every key
            of ``tissues`` must be present.

    Returns:
        The unscaled signal, same shape, dtype and device as the tissue maps.
    """
    if not (tr > 0):
        raise ValueError(f"spin_echo() 'tr' must be > 0 ms, got {tr!r}")
    if not (te >= 0):
        raise ValueError(f"spin_echo() 'te' must be >= 0 ms, got {te!r}")
    return _mixture(tissues, relaxation, "spin_echo",
                    lambda t1, t2, pd: pd * (1.0 - math.exp(-tr / t1)) * math.exp(-te / t2))


def _mixture(tissues: dict[str, torch.Tensor], relaxation, fn: str, weight) -> torch.Tensor:
    """``sum_t p_t weight(T1_t, T2_t, PD_t)`` over the tissues, with the checks both simulations share."""
    relaxation = RELAXATION_1P5T if relaxation is None else relaxation
    if not tissues:
        raise ValueError(f"{fn}() 'tissues' must not be empty")
    signal = None
    for name, p in tissues.items():
        if name not in relaxation:
            raise ValueError(f"{fn}() 'relaxation' has no values for tissue {name!r}")
        w = weight(*relaxation[name])
        signal = p * w if signal is None else signal + p * w
    return signal


def inversion_recovery(
    tissues: dict[str, torch.Tensor],
    tr: float,
    ti: float,
    te: float,
    relaxation: dict[str, tuple[float, float, float]] | None = None,
) -> torch.Tensor:
    """Magnitude inversion-recovery signal of the tissue mixture.

    ``S = sum_t p_t PD_t |1 - 2 exp(-TI/T1_t) + exp(-TR/T1_t)| exp(-TE/T2_t)``.

    Args:
        tissues: ``tissue -> probability map`` of any common shape.
        tr: repetition time in ms (``> 0``).
        ti: inversion time in ms (``0 < ti < tr``).
        te: echo time in ms (``>= 0``).
        relaxation: ``tissue -> (T1 ms, T2 ms, PD)``; default :data:`RELAXATION_1P5T`.

    Returns:
        The unscaled signal, same shape, dtype and device as the tissue maps.

    Example:
        >>> p = {"csf": torch.ones(1), "gm": torch.zeros(1), "wm": torch.zeros(1)}
        >>> float(inversion_recovery(p, 9000.0, 1700.0, 100.0)) < 0.01  # TI nulls CSF
        True
    """
    if not (tr > 0):
        raise ValueError(f"inversion_recovery() 'tr' must be > 0 ms, got {tr!r}")
    if not (0 < ti < tr):
        raise ValueError(f"inversion_recovery() 'ti' must be in (0, tr) ms, got {ti!r} (tr {tr!r})")
    if not (te >= 0):
        raise ValueError(f"inversion_recovery() 'te' must be >= 0 ms, got {te!r}")
    return _mixture(tissues, relaxation, "inversion_recovery",
                    lambda t1, t2, pd: pd * abs(1.0 - 2.0 * math.exp(-ti / t1) + math.exp(-tr / t1))
                    * math.exp(-te / t2))


def resize_images(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, H, W)`` images to ``(N, size, size)`` (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    x = images[:, None].float()
    shrink = size < max(images.shape[-2:])
    out = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=shrink)
    return out[:, 0].to(images.dtype) if images.is_floating_point() else out[:, 0]


def _real_t1(raw, tissues, sequence, relaxation) -> torch.Tensor:
    return torch.from_numpy(raw["t1"].astype(np.float32))


def _spin_echo(raw, tissues, sequence, relaxation) -> torch.Tensor:
    return spin_echo(tissues, *sequence, relaxation)


def _inversion_recovery(raw, tissues, sequence, relaxation) -> torch.Tensor:
    return inversion_recovery(tissues, *sequence, relaxation)


def white_matter_lesions(wm: torch.Tensor, slice_index: torch.Tensor, pixel: float = EMBEDDED_PIXEL_MM,
                         seed: int = 20201) -> torch.Tensor:
    """Soft maps of simulated white-matter lesions, ``(N, H, W)`` in ``[0, 1]``, one set per slice.

    Per slice, with a generator seeded from ``seed`` and the slice's position (so a slice always
    gets the same lesions, whatever split it is in): 3 to 6 discs of diameter 4 to 10 mm centred on
    pixels of at least 90 % white matter, with a soft edge (a logistic of 0.7 px), kept inside the
    white matter plus a 1-pixel margin.

    Args:
        wm: ``(N, H, W)`` white-matter probabilities.
        slice_index: ``(N,)`` slice positions (seed the lesions of each slice).
        pixel: pixel size in mm.
        seed: base seed.
    """
    n, h, w = wm.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    allowed = F.max_pool2d((wm > 0.5).float()[:, None], 3, stride=1, padding=1)[:, 0]
    out = torch.zeros(n, h, w)
    for i in range(n):
        rng = np.random.default_rng(seed + int(slice_index[i]))
        candidates = torch.nonzero(wm[i] > 0.9)
        if len(candidates) == 0:
            continue
        for _ in range(int(rng.integers(3, 7))):
            cy, cx = candidates[int(rng.integers(len(candidates)))].tolist()
            radius = float(rng.uniform(2.0, 5.0)) / pixel
            d = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
            out[i] = torch.maximum(out[i], torch.sigmoid((radius - d) / 0.7))
    return out * allowed


def thick_direction(images: torch.Tensor, factor: int = 3) -> torch.Tensor:
    """``(N, H, W)`` images as acquired with ``factor`` times coarser pixels along the rows (the
    anterior-posterior axis): antialiased downsampling of that axis, then bilinear upsampling back."""
    h, w = images.shape[-2:]
    x = images[:, None].float()
    low = F.interpolate(x, size=(max(1, round(h / factor)), w), mode="bilinear", align_corners=False,
                        antialias=True)
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


def _fixed_bias(n: int, h: int, w: int, strength: float = 0.25, seed: int = 7) -> torch.Tensor:
    """A smooth multiplicative field ``1 + strength * f``, ``f`` in ``[-1, 1]`` from a 4 x 4 node grid."""
    g = torch.Generator().manual_seed(seed)
    nodes = torch.rand(n, 1, 4, 4, generator=g) * 2.0 - 1.0
    f = F.interpolate(nodes, size=(h, w), mode="bicubic", align_corners=True)[:, 0].clamp(-1.0, 1.0)
    return 1.0 + strength * f


def _flair_with_lesions(raw, tissues, sequence, relaxation) -> torch.Tensor:
    flair = inversion_recovery(tissues, *sequence, relaxation)
    gm_only = {"csf": torch.zeros(1), "gm": torch.ones(1), "wm": torch.zeros(1)}
    lesion_signal = 1.8 * float(inversion_recovery(gm_only, *sequence, relaxation))
    lesions = white_matter_lesions(tissues["wm"], torch.from_numpy(raw["slice_index"]))
    signal = (1.0 - lesions) * flair + lesions * lesion_signal
    signal = thick_direction(signal).clamp_min(0.0)
    return signal * _fixed_bias(*signal.shape)


#: How each embedded contrast is made from the shipped file: ``(raw arrays, tissue maps, sequence
#: parameters, relaxation) -> (N, 128, 128)``. The one table of contrasts: adding one is a function,
#: an entry here, its sequence parameters in :func:`load_embedded` and a display name in
#: :data:`CONTRAST_NAMES`.
_CONTRAST_MAKERS = {"t1": _real_t1, "t2": _spin_echo, "pd": _spin_echo, "flair": _inversion_recovery,
                    "flair_lesion": _flair_with_lesions}
#: The contrasts :func:`load_embedded` makes.
EMBEDDED_CONTRASTS = tuple(_CONTRAST_MAKERS)


def load_embedded(
    split: str = "train",
    contrasts: tuple[str, ...] | list[str] = ("t1", "t2"),
    size: int | None = None,
    with_tissues: bool = False,
    t2_tr_te: tuple[float, float] = (4000.0, 100.0),
    pd_tr_te: tuple[float, float] = (4000.0, 15.0),
    flair_tr_ti_te: tuple[float, float, float] = (9000.0, 1700.0, 100.0),
    relaxation: dict[str, tuple[float, float, float]] | None = None,
    fold: int = 0,
) -> EmbeddedSlices:
    """Load the embedded MNI152 slices of one split.

    Args:
        split: ``"train"`` (32 slices), ``"val"`` (8), ``"test"`` (8) or ``"all"`` (48).
        contrasts: any of ``"t1"`` (real template), ``"t2"``, ``"pd"`` (spin-echo simulations),
            ``"flair"`` (inversion-recovery simulation), ``"flair_lesion"`` (the same with lesions,
            a thick direction and a bias field).
        size: output side length (e.g. 64); ``None`` keeps 128. Images and tissues are resampled
            bilinearly with antialiasing, the mask is the resampled mask ``>= 0.5``.
        with_tissues: also return the GM/WM/CSF probability maps.
        t2_tr_te, pd_tr_te: ``(TR, TE)`` in ms of the simulated T2w and PD-weighted images.
        flair_tr_ti_te: ``(TR, TI, TE)`` in ms of the simulated FLAIR-like image.
        relaxation: tissue parameters for the simulation; default :data:`RELAXATION_1P5T`.
        fold: which 8-slice block is the test split (:func:`fold_splits`; 0: the shipped split).

    Returns:
        :class:`EmbeddedSlices` on the CPU, slices ordered by position (inferior first).

    Example:
        >>> sl = load_embedded("val", contrasts=("t1", "t2"), size=64)
        >>> sl.images["t2"].shape, sl.mask.dtype
        (torch.Size([8, 64, 64]), torch.bool)
    """
    if split not in SPLITS:
        raise ValueError(f"load_embedded() 'split' must be one of {SPLITS}, got {split!r}")
    if isinstance(contrasts, str):
        raise TypeError("load_embedded() 'contrasts' must be a sequence of names, e.g. ('t1', 't2')")
    if not contrasts:
        raise ValueError("load_embedded() 'contrasts' must not be empty")
    for c in contrasts:
        if c not in EMBEDDED_CONTRASTS:
            raise ValueError(f"load_embedded() 'contrasts' entries must be in {EMBEDDED_CONTRASTS}, "
                             f"got {c!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ValueError(f"load_embedded() 'size' must be None or an integer >= 8, got {size!r}")

    codes = fold_splits(fold)
    raw = _raw()
    keep = np.ones(len(codes), dtype=bool) if split == "all" else codes == _SPLIT_CODES[split]
    tissues_all = {k: torch.from_numpy(raw[k].astype(np.float32) / 255.0) for k in ("gm", "wm", "csf")}
    images: dict[str, torch.Tensor] = {}
    sequences = {"t2": t2_tr_te, "pd": pd_tr_te, "flair": flair_tr_ti_te, "flair_lesion": flair_tr_ti_te}
    for c in contrasts:
        full = _CONTRAST_MAKERS[c](raw, tissues_all, sequences.get(c), relaxation)
        full = full / full.max()  # scale over all slices: independent of the split
        images[c] = full[torch.from_numpy(keep)].contiguous()
    mask = torch.from_numpy(raw["mask"][keep].copy())
    tissues = None
    if with_tissues:
        tissues = {k: v[torch.from_numpy(keep)].contiguous() for k, v in tissues_all.items()}
    if size is not None:
        images = {k: resize_images(v, size).clamp_(0.0, 1.0) for k, v in images.items()}
        mask = resize_images(mask.float(), size) >= 0.5
        if tissues is not None:
            tissues = {k: resize_images(v, size).clamp_(0.0, 1.0) for k, v in tissues.items()}
    return EmbeddedSlices(images=images, mask=mask, tissues=tissues,
                          slice_index=torch.from_numpy(raw["slice_index"][keep].copy()))


@functools.cache
def tissue_order(contrast: str) -> tuple[str, ...]:
    """The three tissues from brightest to darkest in an embedded contrast (the mean intensity of the
    pixels of at least 90 % of one tissue over all shipped slices).

    Example:
        >>> tissue_order("t1"), tissue_order("t2"), tissue_order("flair")
        (('wm', 'gm', 'csf'), ('csf', 'gm', 'wm'), ('gm', 'wm', 'csf'))
    """
    if contrast not in EMBEDDED_CONTRASTS:
        raise ValueError(f"tissue_order() 'contrast' must be one of {EMBEDDED_CONTRASTS}, got {contrast!r}")
    sl = load_embedded("all", contrasts=(contrast,), with_tissues=True)
    image = sl.images[contrast]
    means = {t: float(image[p >= 0.9].mean()) for t, p in sl.tissues.items()}
    return tuple(sorted(means, key=means.get, reverse=True))


def split_slices(
    slices: EmbeddedSlices,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    gap: int = 2,
) -> dict[str, EmbeddedSlices]:
    """Split slices by position into ``"train"``, ``"val"``, ``"test"`` with gaps between the blocks.

    For the user's own volumes (the embedded data comes split already). Slices are ordered by
    ``slice_index`` and cut into the blocks ``train | val | test | train`` (the val and test
    blocks sit in the middle, where the anatomy is most typical; train takes both ends), with
    ``gap`` slices left out at every border between two different splits, so no slice or
    neighbour is in two splits.

    Args:
        slices: e.g. from :func:`data_utils.nifti.load_nifti_pair`.
        fractions: shares of ``(train, val, test)`` among the slices that are kept; each ``>= 0``,
            summing to 1. A zero share gives an empty split.
        gap: slices dropped between neighbouring blocks of different splits (``>= 0``).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``, each of the input's type.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split_slices() 'fractions' must be 3 shares >= 0 summing to 1, got {fractions!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"split_slices() 'gap' must be an integer >= 0, got {gap!r}")
    order = torch.argsort(slices.slice_index).tolist()
    names = [n for n, f in zip(("train", "val", "test"), fractions, strict=True) if f > 0]
    borders = {"train": 2, "val": 1, "test": 1}  # train is split over both ends
    n_blocks = sum(borders[n] for n in names)
    usable = len(order) - gap * (n_blocks - 1)
    share = dict(zip(("train", "val", "test"), fractions, strict=True))
    counts = {n: int(round(usable * share[n])) for n in names}
    if usable < len(names) or any(c < 1 for c in counts.values()):
        raise ValueError(
            f"split_slices() has {len(order)} slices: too few for fractions {fractions} with gap {gap}"
        )
    counts[names[0]] += usable - sum(counts.values())  # rounding remainder
    blocks = []
    if "train" in counts:
        low = counts["train"] // 2
        blocks += [("train", low)]
    blocks += [(n, counts[n]) for n in ("val", "test") if n in counts]
    if "train" in counts:
        blocks += [("train", counts["train"] - counts["train"] // 2)]
    chosen: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    pos = 0
    for b, (name, n) in enumerate(blocks):
        if b and n and blocks[b - 1][0] != name:
            pos += gap
        chosen[name] += order[pos : pos + n]
        pos += n
    return {k: slices.select(v) for k, v in chosen.items()}
