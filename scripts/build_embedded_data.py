"""Rebuild ``data_utils/data/mni152_slices.npz`` from the MNI ICBM152 2009a files in the nilearn wheel.

The shipped file holds 48 axial slices (128 x 128, 1.4375 mm pixels) of the MNI ICBM152 2009a
symmetric template: the real T1w intensities, the grey/white matter probability maps, a CSF map
(filled brain mask - GM - WM, clipped to [0, 1]) and the brain mask. T2w and PD-weighted images are
*not* stored: :mod:`data_utils.embedded` simulates them from the tissue maps at load time.

Get the wheel (nilearn is only needed here, never at run time)::

    pip download --no-deps nilearn -d /tmp/nilearn_whl
    python scripts/build_embedded_data.py /tmp/nilearn_whl/nilearn-*.whl

The argument may also be an unpacked wheel/site-packages folder that contains
``nilearn/datasets/data/``. Needs numpy, nibabel and scipy (the test extra). Running it again
reproduces the shipped arrays exactly and, since the zip entries carry a fixed time stamp, the same
file bytes (given the same zlib); ``data_utils/data/mni152_slices.json`` records both hashes.

Processing, all in float64:

1. Load ``mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz`` (197 x 233 x 189, 1 mm, RAS,
   uint8). T1 is already brain-extracted; GM and WM are probabilities times 255.
2. Brain mask = ``T1 > 0`` with holes filled slice by slice; CSF = clip(mask - GM - WM, 0, 1).
3. Axial slices ``z`` (voxel index) on a 2 mm raster, in seven blocks
   ``train 8 | val 4 | train 8 | test 8 | train 8 | val 4 | train 8`` with two raster positions
   (4 mm) left out between neighbouring blocks, so that slices of different splits are >= 6 mm
   apart and no shipped neighbour of a slice lies in another split.
4. Each slice becomes an image whose rows run anterior -> posterior (anterior at the top) and whose
   column index grows with the RAS ``x`` coordinate, so the patient's right is on the image's right
   (neurological convention). A square 184 x 184 mm window centred on the brain is resampled to
   128 x 128 with a separable antialiasing triangle filter.
5. Quantised to uint8 (intensities / probabilities * 255) and written to an uncompressed-header,
   deflate-compressed ``.npz`` with fixed zip time stamps.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

FILES = {
    "t1": "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
EXPECTED_SHAPE = (197, 233, 189)
SIZE = 128
WINDOW = 184  # mm (= voxels) of the square in-plane window
CENTRE_XY = (98, 117)  # voxel indices of the window centre (centre of the brain's bounding box)
Z_START = 28  # first raster position (voxel index; MNI z = index - 72 mm)
Z_STEP = 2
GAP = 2  # raster positions left out between blocks
BLOCKS = (("train", 8), ("val", 4), ("train", 8), ("test", 8), ("train", 8), ("val", 4), ("train", 8))
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
OUT_NAME = "mni152_slices.npz"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def _read_volume(source: Path, member: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one template volume from a wheel (zip) or an unpacked folder: (data float64, affine)."""
    if source.is_dir():
        raw = (source / member).read_bytes()
    else:
        with zipfile.ZipFile(source) as zf:
            raw = zf.read(member)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    img = nib.as_closest_canonical(img)
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.shape != EXPECTED_SHAPE:
        raise ValueError(f"{member}: expected shape {EXPECTED_SHAPE}, got {data.shape}")
    return data, img.affine


def slice_plan() -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices ``z`` and split codes of the shipped slices (see the module docstring)."""
    zs, codes = [], []
    pos = 0
    for b, (name, n) in enumerate(BLOCKS):
        if b:
            pos += GAP
        for _ in range(n):
            zs.append(Z_START + Z_STEP * pos)
            codes.append(SPLIT_CODES[name])
            pos += 1
    return np.asarray(zs, dtype=np.int64), np.asarray(codes, dtype=np.int64)


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Antialiasing linear resampling ``(n_out, n_in)``: a triangle filter as wide as the zoom."""
    scale = n_in / n_out
    width = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    t = np.arange(n_in)[None, :] - centres[:, None]
    w = np.clip(1.0 - np.abs(t) / width, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def to_images(volume: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Axial slices ``volume[:, :, z]`` -> images ``(N, SIZE, SIZE)``, anterior at the top."""
    x0 = CENTRE_XY[0] - WINDOW // 2
    y0 = CENTRE_XY[1] - WINDOW // 2
    if x0 < 0 or y0 < 0 or x0 + WINDOW > volume.shape[0] or y0 + WINDOW > volume.shape[1]:
        raise ValueError("the in-plane window leaves the volume")
    a = resample_matrix(WINDOW, SIZE)
    out = []
    for z in zs:
        sl = volume[x0 : x0 + WINDOW, y0 : y0 + WINDOW, z]  # (x, y)
        img = sl.T[::-1, :]  # rows: y descending (anterior first), columns: x ascending
        out.append(a @ img @ a.T)
    return np.stack(out)


def build(source: Path) -> dict[str, np.ndarray]:
    """All arrays of the shipped file."""
    t1, affine = _read_volume(source, FILES["t1"])
    gm, _ = _read_volume(source, FILES["gm"])
    wm, _ = _read_volume(source, FILES["wm"])
    gm /= 255.0
    wm /= 255.0
    mask = np.zeros(t1.shape, dtype=bool)
    for z in range(t1.shape[2]):
        mask[:, :, z] = ndimage.binary_fill_holes(t1[:, :, z] > 0)
    csf = np.clip(mask.astype(np.float64) - gm - wm, 0.0, 1.0)
    zs, codes = slice_plan()
    brain_xy = np.argwhere(mask[:, :, zs].any(axis=2))
    lo, hi = brain_xy.min(0), brain_xy.max(0)
    half = WINDOW // 2
    if (lo < np.asarray(CENTRE_XY) - half).any() or (hi >= np.asarray(CENTRE_XY) + half).any():
        raise ValueError(f"brain bounding box {lo}..{hi} does not fit the in-plane window")

    def q(img: np.ndarray, scale: float) -> np.ndarray:
        return np.clip(np.round(img * scale), 0, 255).astype(np.uint8)

    arrays = {
        "t1": q(to_images(t1, zs), 1.0),
        "gm": q(to_images(gm, zs), 255.0),
        "wm": q(to_images(wm, zs), 255.0),
        "csf": q(to_images(csf, zs), 255.0),
        "mask": to_images(mask.astype(np.float64), zs) >= 0.5,
        "slice_index": zs,
        "split": codes,
        "source_affine": affine.astype(np.float64),
    }
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A ``.npz`` (deflate) whose bytes depend only on the arrays: fixed names, order and dates."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes of the arrays (independent of zlib)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="nilearn wheel (.whl) or unpacked folder")
    default_out = Path(__file__).resolve().parents[1] / "data_utils" / "data"
    parser.add_argument("--out-dir", type=Path, default=default_out)
    args = parser.parse_args(argv)
    arrays = build(args.source)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / OUT_NAME
    write_npz(out, arrays)
    meta_path = args.out_dir / "mni152_slices.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update(
        {
            "file": OUT_NAME,
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
            "arrays_sha256": arrays_digest(arrays),
            "bytes": out.stat().st_size,
            "n_slices": int(len(arrays["slice_index"])),
            "image_size": SIZE,
            "pixel_mm": WINDOW / SIZE,
            "source": "MNI ICBM152 2009a nonlinear symmetric template, files "
            + ", ".join(Path(m).name for m in FILES.values())
            + " from the nilearn wheel",
            "build": "python scripts/build_embedded_data.py <nilearn wheel or folder>",
        }
    )
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes), sha256 {meta['sha256']}")


if __name__ == "__main__":
    main()
