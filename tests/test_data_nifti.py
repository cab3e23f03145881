"""Tests of data_utils.nifti: loading aligned NIfTI pairs, errors naming the file, writing back."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import write_nifti

from data_utils import load_nifti_pair, make_pairs, save_nifti, split_slices

SHAPE = (20, 16, 12)
# voxel axes: i -> L (x decreasing, 2 mm), j -> A (1 mm), k -> S (1.5 mm): not canonical
AFFINE = np.array([[-2.0, 0, 0, 30.0], [0, 1.0, 0, -10.0], [0, 0, 1.5, 5.0], [0, 0, 0, 1]])


def _phantom(seed=0):
    """A blob with structure, so every slice has foreground and the orientation is checkable."""
    i, j, k = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    r2 = ((i - 9.5) / 8) ** 2 + ((j - 7.5) / 6) ** 2 + ((k - 5.5) / 6) ** 2
    vol = np.where(r2 < 1, 100.0 + 50.0 * np.sin(i / 2.0) + 10.0 * j, 0.0)
    vol += np.random.default_rng(seed).uniform(0, 1, SHAPE)
    return vol


def _write(path, data, affine=AFFINE):
    return write_nifti(path, data, affine)


@pytest.fixture
def pair(tmp_path):
    f = _write(tmp_path / "t1.nii.gz", _phantom(0))
    m = _write(tmp_path / "t2.nii.gz", 300.0 - _phantom(1))
    return f, m


def test_load_shapes_ranges_and_structure(pair):
    sl = load_nifti_pair(*pair, axis=2, size=32)
    n = len(sl)
    assert 1 <= n <= SHAPE[2]
    assert sl.images["t1"].shape == (n, 32, 32) and sl.images["t2"].shape == (n, 32, 32)
    for im in sl.images.values():
        assert im.dtype == torch.float32 and float(im.min()) >= 0 and float(im.max()) <= 1
    assert sl.mask.dtype == torch.bool and sl.mask.any()
    assert sl.tissues is None and sl.slice_index.dtype == torch.int64
    assert sl.geometry.canonical_shape == SHAPE and sl.geometry.shape == SHAPE


def test_reorientation_to_ras_and_image_layout(tmp_path):
    # a single bright voxel at voxel (i, j, k); i runs right-to-left (x decreasing)
    vol = np.zeros(SHAPE)
    vol[3, 12, 6] = 1.0
    vol[10, 8, 6] = 0.5  # a second value so the volume is not "constant"
    f = _write(tmp_path / "a.nii", vol)
    m = _write(tmp_path / "b.nii", vol)
    sl = load_nifti_pair(f, m, axis=2, size=20, slices=[6], percentiles=(0, 100), mask_threshold=0.0)
    img = sl.images["t1"][0]
    # canonical x index = 19 - i = 16 -> column 16 (+pad); row = (16 - 1 - j) + pad = 3 + 2
    side = 20
    pad_rows = (side - 16) // 2
    r, c = np.unravel_index(int(img.argmax()), img.shape)
    assert (int(r), int(c)) == (16 - 1 - 12 + pad_rows, 19 - 3)


def test_round_trip_image_into_input_grid(pair, tmp_path):
    # side = max(20, 12) = 20 = size: no resampling, so the round trip is exact
    sl = load_nifti_pair(*pair, axis=1, size=20, percentiles=(0, 100))
    out = save_nifti(tmp_path / "back.nii.gz", sl.images["t1"], sl)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, AFFINE)
    assert back.shape == SHAPE
    src = nib.load(str(pair[0])).get_fdata()
    fg = src[src > src.min()]
    expected = np.clip((src - fg.min()) / (fg.max() - fg.min()), 0, 1)
    got = back.get_fdata()
    # canonical axis 1 (y) is voxel axis j of the input
    for j in sl.slice_index.tolist():
        np.testing.assert_allclose(got[:, j, :], expected[:, j, :], rtol=0, atol=1e-5)


def test_field_written_in_world_millimetres_as_itk_reads_them(pair, tmp_path):
    sl = load_nifti_pair(*pair, axis=2, size=20)
    field = torch.zeros(len(sl), 2, 20, 20)
    field[:, 0] = 1.0  # one model pixel along +column = +x (right) = 1 voxel of 2 mm
    field[:, 1] = 2.0  # two model pixels down the rows = -y (posterior) = 2 voxels of 1 mm
    out = save_nifti(tmp_path / "field.nii.gz", field, sl)
    img = nib.load(str(out))
    assert img.shape == (*SHAPE, 1, 3)
    assert img.header.get_intent()[0] == "vector"
    v = img.get_fdata()[:, :, sl.slice_index.tolist(), 0, :]
    # RAS+ (2 mm right, 2 mm posterior) written as LPS+ components, as ITK reads intent-vector fields
    np.testing.assert_allclose(v[..., 0], -2.0, atol=1e-5)
    np.testing.assert_allclose(v[..., 1], 2.0, atol=1e-5)
    np.testing.assert_allclose(v[..., 2], 0.0, atol=1e-6)


def test_split_keeps_geometry(pair, tmp_path):
    sl = load_nifti_pair(*pair, size=16)
    parts = split_slices(sl, (0.5, 0.0, 0.5), gap=1)
    assert parts["test"].geometry is sl.geometry and len(parts["test"]) > 0
    save_nifti(tmp_path / "t.nii", parts["test"].images["t1"], parts["test"])


def test_pairs_from_nifti(pair):
    sl = load_nifti_pair(*pair, size=32)
    p = make_pairs("target", n_pairs=6, size=32, data=sl, seed=0)
    assert "labels" not in p[0] and "labels" in p.evaluation_view()[0]
    assert p[0]["fixed"].shape == (1, 32, 32)
    assert set(p.batch()["slice_index"].tolist()) <= set(sl.slice_index.tolist())


def test_four_d_input(tmp_path):
    vol = np.stack([_phantom(0), 2 * _phantom(0)], axis=-1)
    f = _write(tmp_path / "f4.nii.gz", vol)
    m = _write(tmp_path / "m.nii.gz", _phantom(1))
    with pytest.raises(ValueError, match="f4.nii.gz.*4D"):
        load_nifti_pair(f, m)
    sl = load_nifti_pair(f, m, volume=(1, None), size=16)
    assert len(sl) > 0
    with pytest.raises(ValueError, match="out of range"):
        load_nifti_pair(f, m, volume=(5, None))


def test_missing_file(pair, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        load_nifti_pair(tmp_path / "nope.nii.gz", pair[1])


def test_not_nifti_and_corrupt(pair, tmp_path):
    txt = tmp_path / "notes.nii"
    txt.write_text("this is not an image")
    with pytest.raises(ValueError, match="notes.nii"):
        load_nifti_pair(txt, pair[1])
    raw = gzip.decompress(pair[0].read_bytes())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(ValueError, match="cut.nii.gz"):
        load_nifti_pair(cut, pair[1])


def test_shape_and_affine_mismatch(pair, tmp_path):
    small = _write(tmp_path / "small.nii.gz", _phantom(0)[:-2])
    with pytest.raises(ValueError, match="shape mismatch.*small.nii.gz"):
        load_nifti_pair(pair[0], small)
    moved = AFFINE.copy()
    moved[0, 3] += 0.5
    shifted = _write(tmp_path / "shifted.nii.gz", _phantom(1), moved)
    with pytest.raises(ValueError, match="affine mismatch.*shifted.nii.gz"):
        load_nifti_pair(pair[0], shifted)
    moved[0, 3] = AFFINE[0, 3] + 1e-5  # within the documented tolerance
    ok = _write(tmp_path / "ok.nii.gz", _phantom(1), moved)
    assert len(load_nifti_pair(pair[0], ok, size=16)) > 0


def test_empty_and_constant(pair, tmp_path):
    empty = _write(tmp_path / "empty.nii.gz", np.zeros(SHAPE))
    const = _write(tmp_path / "const.nii.gz", np.full(SHAPE, 7.0))
    with pytest.raises(ValueError, match="empty.nii.gz.*empty"):
        load_nifti_pair(empty, pair[1])
    with pytest.raises(ValueError, match="const.nii.gz.*constant"):
        load_nifti_pair(pair[0], const)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"axis": 3}, "axis"),
        ({"size": 4}, "size"),
        ({"percentiles": (99, 1)}, "percentiles"),
        ({"contrasts": ("a", "a")}, "contrasts"),
        ({"slices": [100]}, "slices"),
    ],
)
def test_load_validates_arguments(pair, kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_nifti_pair(*pair, **kwargs)


def test_save_validates(pair, tmp_path):
    sl = load_nifti_pair(*pair, size=16)
    with pytest.raises(ValueError, match="'data'"):
        save_nifti(tmp_path / "x.nii.gz", torch.zeros(len(sl), 16, 8), sl)
    with pytest.raises(ValueError, match="slice_index"):
        save_nifti(tmp_path / "x.nii.gz", torch.zeros(2, 16, 16), sl.geometry, slice_index=[1, 1])
    with pytest.raises(ValueError, match="'path'"):
        save_nifti(tmp_path / "x.png", sl.images["t1"], sl)
    with pytest.raises(ValueError, match="folder"):
        save_nifti(tmp_path / "missing" / "x.nii", sl.images["t1"], sl)
    with pytest.raises(ValueError, match="geometry"):
        save_nifti(tmp_path / "x.nii", sl.images["t1"], None)


def test_nan_voxels_are_refused_with_the_file_named_like_register_does(pair, tmp_path):
    bad = _phantom(0)
    bad[3, 4, 5] = np.nan
    path = _write(tmp_path / "nan.nii.gz", bad)
    with pytest.raises(ValueError, match="nan.nii.gz.* 1 NaN or infinite voxels"):
        load_nifti_pair(path, pair[1])
