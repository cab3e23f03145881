"""Tests of data_utils.nifti: loading aligned NIfTI pairs, errors naming the file, writing back."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import write_nifti

from data_utils import load_nifti_pair, make_pairs, save_nifti, split_slices
from data_utils.embedded import brain_fov_margin

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
    assert sl.geometry.canonical.canonical_shape == SHAPE and sl.geometry.canonical.shape == SHAPE
    assert sl.geometry.canonical.spacing == (2.0, 1.0, 1.5)


def _world_mm(affine, ijk):
    return (affine @ np.array([*ijk, 1.0]))[:3]


def test_reorientation_to_ras_and_image_layout_in_millimetres(tmp_path):
    """A bright voxel lands where its world position says, measured from the field of view's centre."""
    vol = np.zeros(SHAPE)
    vol[3, 12, 6] = 1.0  # voxel axis i runs right-to-left (x decreasing, 2 mm), j anterior (1 mm)
    vol[10, 8, 6] = 0.5
    f = _write(tmp_path / "a.nii", vol)
    m = _write(tmp_path / "b.nii", vol)
    whole = _write(tmp_path / "mask.nii", np.ones(SHAPE))  # foreground = every voxel: a known field of view
    size = 41  # the larger side (20 voxels x 2 mm = 40 mm) x the training margin 1.016 = 40.6 mm
    sl = load_nifti_pair(f, m, axis=2, size=size, slices=[6], percentiles=(0, 100), mask=whole)
    px = 40.0 * brain_fov_margin() / size
    assert sl.geometry.pixel_mm == pytest.approx(px)
    # centre of the field of view = centre of the mask's bounding box in world mm
    corners = [_world_mm(AFFINE, c) for c in [(0, 0, 6), (SHAPE[0] - 1, SHAPE[1] - 1, 6)]]
    cx, cy = (corners[0][:2] + corners[1][:2]) / 2
    x, y = _world_mm(AFFINE, (3, 12, 6))[:2]
    col = size / 2 + (x - cx) / px - 0.5  # columns to the subject's right (+x)
    row = size / 2 - (y - cy) / px - 0.5  # rows downwards = posterior (-y)
    img = sl.images["t1"][0].numpy()
    r, c = np.unravel_index(int(img.argmax()), img.shape)
    assert abs(r - row) <= 0.5 and abs(c - col) <= 0.5


def test_anisotropic_voxels_are_resampled_in_millimetres_not_stretched(tmp_path):
    """A ball (round in mm) on 2 x 1 mm voxels stays round in the model image."""
    shape = (24, 48, 5)
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    i, j, k = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    ball = ((i * 2.0 - 23.0) ** 2 + (j * 1.0 - 23.5) ** 2) < 18.0**2
    vol = np.where(ball, 100.0, 0.0) + 0.0 * k
    f = _write(tmp_path / "f.nii.gz", vol, affine)
    m = _write(tmp_path / "m.nii.gz", 150.0 - vol, affine)
    sl = load_nifti_pair(f, m, axis=2, size=40)
    fg = sl.images["t1"][0].numpy() > 0.5
    rows, cols = np.nonzero(fg)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(height) - int(width)) <= 1, (height, width)  # stretched, it would be 2:1
    planned = np.pi / 4 / brain_fov_margin() ** 2
    assert 0.75 <= fg.mean() / planned <= 1.25  # the ball fills the field of view as planned


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_round_trip_image_into_input_grid(tmp_path, axis):
    """Model image -> save_nifti -> the input's voxels gives the normalised input back.

    On a linear ramp bilinear interpolation is exact, so the two resamplings (voxels -> mm field of
    view -> voxels) must agree to float precision away from the border: an offset or a flip in one
    direction only fails (the orientation itself is pinned by the single-voxel test above).
    """
    i, j, k = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    ramp = 100.0 + 3 * i + 2 * j + k
    ramp[0] = 0.0  # background, so that the percentiles see the ramp
    f = _write(tmp_path / "f.nii.gz", ramp)
    m = _write(tmp_path / "m.nii.gz", ramp)
    whole = _write(tmp_path / "mask.nii.gz", np.ones(SHAPE))
    sl = load_nifti_pair(f, m, axis=axis, size=64, percentiles=(0, 100), mask=whole)
    assert sl.geometry.pixel_mm < min(sl.geometry.canonical.spacing)  # upsampled: no smoothing
    out = save_nifti(tmp_path / "back.nii.gz", sl.images["t1"], sl)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, AFFINE)
    assert back.shape == SHAPE
    fg = ramp[ramp > 0]
    expected = (ramp - fg.min()) / (fg.max() - fg.min())
    got = back.get_fdata()
    inner = np.zeros(SHAPE, dtype=bool)
    inner[2:-2, 2:-2, 2:-2] = True
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=1e-6)


def test_field_written_in_world_millimetres_as_itk_reads_them(pair, tmp_path):
    sl = load_nifti_pair(*pair, axis=2, size=20)
    px = sl.geometry.pixel_mm
    field = torch.zeros(len(sl), 2, 20, 20)
    field[:, 0] = 1.0  # one model pixel along +column = +x (right)
    field[:, 1] = 2.0  # two model pixels down the rows = -y (posterior)
    out = save_nifti(tmp_path / "field.nii.gz", field, sl)
    img = nib.load(str(out))
    assert img.shape == (*SHAPE, 1, 3)
    assert img.header.get_intent()[0] == "vector"
    src = nib.load(str(pair[0])).get_fdata()
    v = img.get_fdata()[..., 0, :][:, :, sl.slice_index.tolist()]
    inside = (src > 50)[:, :, sl.slice_index.tolist()]
    # RAS+ (px mm right, 2 px mm posterior) written as LPS+ components, as ITK reads intent-vector fields
    np.testing.assert_allclose(v[inside][:, 0], -px, atol=1e-5)
    np.testing.assert_allclose(v[inside][:, 1], 2 * px, atol=1e-5)
    np.testing.assert_allclose(v[..., 2], 0.0, atol=1e-6)


def test_register_sees_exactly_the_slices_load_nifti_pair_makes(pair):
    """One geometry: a network adapted on load_nifti_pair's slices is shown the same images by register
    (without the pre-alignment, which moves the moving image first)."""
    from pemd_tutorial.registration import register

    sl = load_nifti_pair(*pair, axis=2, size=48)
    result = register(*pair, model="mind", axis=2, prealign="none")
    assert result.slices == sl.slice_index.tolist()
    torch.testing.assert_close(result.model_space["fixed"][:, 0], sl.images["t1"])
    torch.testing.assert_close(result.model_space["moving"][:, 0], sl.images["t2"])
    assert torch.equal(result.model_space["mask"], sl.mask)


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
    with pytest.raises(ValueError, match="small.nii.gz.*not on one voxel grid.*shape.*resample=True"):
        load_nifti_pair(pair[0], small)
    moved = AFFINE.copy()
    moved[0, 3] += 0.5
    shifted = _write(tmp_path / "shifted.nii.gz", _phantom(1), moved)
    with pytest.raises(ValueError, match="shifted.nii.gz.*not on one voxel grid.*affines differ"):
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
        ({"slices": [5, 5]}, "distinct"),
        ({"slices": [[1, 2]]}, "1D"),
        ({"slices": []}, "non-empty"),
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
    with pytest.raises(TypeError, match="geometry"):
        save_nifti(tmp_path / "x.nii", sl.images["t1"], None)


def test_nan_voxels_are_refused_with_the_file_named_like_register_does(pair, tmp_path):
    bad = _phantom(0)
    bad[3, 4, 5] = np.nan
    path = _write(tmp_path / "nan.nii.gz", bad)
    with pytest.raises(ValueError, match="nan.nii.gz.* 1 NaN or infinite voxels"):
        load_nifti_pair(path, pair[1])


def test_model_images_are_made_like_the_embedded_training_images():
    """Downsampling a user's slice filters like data_utils.resize_images made the training data.

    An embedded 128 px slice put through the model-image path over the same field of view agrees
    with resize_images(…, 48) to within 0.01 (mean 0.001); without the antialiasing it is off by
    up to 0.14, the aliasing this path exists to avoid.
    """
    from data_utils import load_embedded, resize_images
    from data_utils.geometry import SliceFrame, model_images

    images = load_embedded("val", contrasts=("t1",)).images["t1"][:2].double()  # (2, 128, 128)
    native = np.stack([im.numpy()[::-1].T for im in images])  # display layout -> (a, b) slices
    sp = 1.4375
    frame = SliceFrame(a0=-0.5 * sp, b0=127.5 * sp, pixel=128 * sp / 48, size=48, spacing_a=sp, spacing_b=sp)
    reference = resize_images(images.float(), 48).double().numpy()
    diff = np.abs(model_images(native, frame) - reference)
    assert diff.max() < 0.01 and diff.mean() < 0.002
    assert np.abs(model_images(native, frame, antialias=False) - reference).max() > 0.1


def test_field_to_world_and_pixel_mm_refuse_wrong_input(pair):
    from data_utils import pixel_mm
    from data_utils.nifti import field_to_world

    sl = load_nifti_pair(*pair, size=16)
    with pytest.raises(ValueError, match="field_to_world.*'dense'"):
        field_to_world(np.zeros((len(sl), 2, 8, 8)), sl.geometry, sl.slice_index.tolist())
    assert pixel_mm(128) == 1.4375 and pixel_mm(64) == 2 * 1.4375
    with pytest.raises(ValueError, match="pixel_mm.*'size'"):
        pixel_mm(0)


def test_write_volume_is_the_one_writer_qform_sform_and_vector_intent(tmp_path):
    """data_utils.nifti.write_volume: the dtype as given, the affine as qform and sform (code 1),
    the vector intent for a field; register, the stand-in pair and save_nifti all write through it."""
    from data_utils.nifti import write_volume

    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 2.0)
    path = write_volume(tmp_path / "v.nii.gz", np.arange(24, dtype=np.float64).reshape(2, 3, 4), affine)
    img = nib.load(path)
    assert img.get_data_dtype() == np.float64
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), affine)
    np.testing.assert_allclose(img.get_sform(), affine)
    field = write_volume(tmp_path / "f.nii.gz", np.zeros((2, 3, 4, 1, 3)), affine, vector=True)
    assert nib.load(field).header.get_intent()[0] == "vector"
    with pytest.raises(ValueError, match="4x4"):
        write_volume(tmp_path / "bad.nii.gz", np.zeros((2, 2, 2)), np.eye(3))
    import data_utils.standin
    import pemd_tutorial.registration

    for module in (data_utils.standin, pemd_tutorial.registration):
        source = open(module.__file__).read()
        assert "nib.save(" not in source and "write_volume(" in source, module.__name__
