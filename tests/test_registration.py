"""The register command: a real misaligned pair on different grids in, NIfTI out in the fixed space.

The stand-in pair (:func:`data_utils.standin.write_standin_pair`) knows its true misalignment, so
the written field can be scored; every bad input is a small NIfTI file made here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import write_nifti

from data_utils import load_nifti_pair, pixel_mm
from data_utils.embedded import brain_fov_margin
from data_utils.standin import write_standin_pair
from pemd_tutorial.__main__ import main
from pemd_tutorial.registration import normalised_mutual_information, parse_slices, register

pytestmark = pytest.mark.filterwarnings(r"ignore:register\(\) 'fixed' and 'moving' are the same:UserWarning")

OUTPUTS = {"moved.nii.gz", "field.nii.gz", "uncertainty.nii.gz", "metrics.json"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_standin_pair(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="module")
def registered(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "sub01"
    return register(pair.fixed, pair.moving, "pretrained:mcd_pemd", out), out


_save = write_nifti


def _epe(field_mm: np.ndarray, pair) -> float:
    return float(np.linalg.norm(field_mm - pair.truth_mm, axis=-1)[pair.mask].mean())


def test_standin_pair_is_misaligned_on_different_grids(pair):
    fixed, moving = nib.load(pair.fixed), nib.load(pair.moving)
    assert fixed.shape != moving.shape and not np.allclose(fixed.affine, moving.affine)
    assert nib.aff2axcodes(moving.affine) == ("L", "P", "S")
    size = np.linalg.norm(pair.truth_mm, axis=-1)[pair.mask]
    assert size.mean() > 5.0 and np.abs(pair.truth_mm[..., 2]).max() == 0.0


def test_register_writes_every_output_in_the_fixed_space(registered, pair):
    result, out = registered
    fixed = nib.load(pair.fixed)
    assert OUTPUTS <= {p.name for p in out.iterdir()}
    assert len(result.slices) == 8 and len(list((out / "montage").glob("slice_*.png"))) == 5  # a few, not all
    for name in ("moved.nii.gz", "uncertainty.nii.gz"):
        img = nib.load(out / name)
        assert img.shape == fixed.shape and np.allclose(img.affine, fixed.affine)
    field = nib.load(out / "field.nii.gz")
    assert field.shape == (*fixed.shape, 1, 3) and field.header.get_intent()[0] == "vector"
    assert result.resampled
    unc = np.asarray(nib.load(out / "uncertainty.nii.gz").dataobj)
    assert 0.0 <= unc.min() and unc.max() <= np.log(81) + 1e-5
    assert not list(out.parent.glob(".*staging"))  # the staging folder is gone


def test_registration_recovers_the_known_misalignment(registered, pair):
    """Wrong sign, units or axes of the field would make it worse than doing nothing."""
    result, out = registered
    identity = float(np.linalg.norm(pair.truth_mm, axis=-1)[pair.mask].mean())
    written = np.asarray(nib.load(out / "field.nii.gz").dataobj)[:, :, :, 0, :]
    assert _epe(written * [-1, -1, 1], pair) < 0.75 * identity  # the file holds LPS+ components
    assert _epe(result.field_mm, pair) < 0.75 * identity  # the result keeps RAS+
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nmi_after"] > metrics["nmi_before"]
    assert metrics["mind_ssd_after"] < metrics["mind_ssd_before"]
    assert metrics["moving_resampled_to_fixed_grid"] is True


def test_the_brain_is_shown_at_the_scale_the_networks_were_trained_on(registered, pair):
    """The stand-in is made of the embedded slices: its model pixel must be the training pixel.

    The networks learnt displacements in pixels of the embedded 128-pixel slices resized to their
    image size (3.83 mm at 48 pixels); a field of view 1.15 times the brain gave 4.37 mm, a brain
    12 % smaller than in training. ``load_nifti_pair`` must show the same scale as ``register``.
    """
    result, _ = registered
    size = result.model_space["config"].image_size
    assert result.model_space["pixel_mm"] == pytest.approx(pixel_mm(size), rel=0.02)
    sl = load_nifti_pair(pair.fixed, pair.moving, axis=2, size=size, resample=True)
    assert sl.geometry.pixel_mm == pytest.approx(result.model_space["pixel_mm"], rel=1e-9)
    wider = load_nifti_pair(pair.fixed, pair.moving, axis=2, size=size, resample=True, fov_margin=1.15)
    assert wider.geometry.pixel_mm == pytest.approx(sl.geometry.pixel_mm * 1.15 / brain_fov_margin())
    with pytest.raises(ValueError, match="fov_margin"):
        load_nifti_pair(pair.fixed, pair.moving, axis=2, size=size, resample=True, fov_margin=0.5)


def test_mind_model_needs_no_network_and_also_helps(pair, tmp_path):
    result = register(pair.fixed, pair.moving, "mind", None)
    identity = float(np.linalg.norm(pair.truth_mm, axis=-1)[pair.mask].mean())
    assert _epe(result.field_mm, pair) < 0.75 * identity and result.files == {}


@pytest.mark.slow
def test_same_grid_is_not_resampled_and_an_identical_pair_barely_moves(pair, tmp_path):
    with pytest.warns(UserWarning, match="same file"):
        result = register(pair.fixed, pair.fixed, "mind", tmp_path / "same")
    assert not result.resampled
    assert np.linalg.norm(result.field_mm, axis=-1)[pair.mask].mean() < 1.5  # mm


def test_anisotropic_voxels_keep_their_aspect(tmp_path):
    # a disc of radius 40 mm, voxels 1 x 2.5 mm in-plane: the model image must show a disc
    affine = np.diag([1.0, 2.5, 3.0, 1.0])
    x, y = np.meshgrid(np.arange(120) * 1.0 - 60, np.arange(48) * 2.5 - 60, indexing="ij")
    disc = ((x**2 + y**2) < 40**2).astype(float)
    disc[60:63, 22:25] = 2.0  # a small bright spot, so the image is not binary
    vol = np.repeat(disc[:, :, None], 3, axis=2)
    path = _save(tmp_path / "aniso.nii.gz", vol, affine)
    with pytest.warns(UserWarning, match="same file"):
        result = register(path, path, "mind", None, slices="1")
    mask = result.model_space["fixed"][0, 0].numpy() > 0.3
    rows, cols = np.nonzero(mask)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(height - width) <= 2, (height, width)


def test_parse_slices():
    assert parse_slices("2:5", 10) == [2, 3, 4] and parse_slices("7:", 10) == [7, 8, 9]
    assert parse_slices(":2", 10) == [0, 1] and parse_slices("4", 10) == [4] and parse_slices(None, 3) is None
    for bad in ("5:20", "8:3", "a:b", "-1:2"):
        with pytest.raises(ValueError, match="'slices'"):
            parse_slices(bad, 10)


def test_nmi_of_an_image_with_itself_is_two():
    rng = np.random.default_rng(0)
    a = rng.random((20, 20))
    assert normalised_mutual_information(a, a, np.ones_like(a, bool)) == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------- bad input


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(1)
    vol = np.zeros((24, 24, 4))
    vol[4:20, 4:20] = 0.5 + rng.random((16, 16, 4))
    return _save(tmp_path / "small.nii.gz", vol)


def _untouched(out: Path) -> None:
    assert not out.exists(), "nothing may be written to --out on an error"
    assert not list(out.parent.glob(".*staging"))


@pytest.mark.parametrize(
    "case, match",
    [
        ("4d", r"4D with 3 volumes.*--volume-index"),
        ("2d", r"is 2D"),
        ("nan", r"2 NaN or infinite voxels"),
        ("empty_mask", r"mask file .* is empty"),
        ("mask_grid", r"mask file .* another grid"),
        ("slices", r"'slices' '10:40' is outside the volume: 4 slices"),
        ("not_a_model", r"not a pemd-tutorial model file"),
        ("model_grid", r"does not fit|architecture|radius"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(case, match, small, tmp_path):
    out = tmp_path / "out"
    kwargs: dict = {"fixed": small, "moving": small, "model": "mind"}
    data = np.asarray(nib.load(small).dataobj)
    if case == "4d":
        kwargs["moving"] = _save(tmp_path / "four.nii.gz", np.stack([data] * 3, axis=-1))
    elif case == "2d":
        kwargs["fixed"] = _save(tmp_path / "flat.nii.gz", data[:, :, 0])
    elif case == "nan":
        bad = data.copy()
        bad[5, 5, 1] = np.nan
        bad[6, 6, 2] = np.inf
        kwargs["moving"] = _save(tmp_path / "nan.nii.gz", bad)
    elif case == "empty_mask":
        kwargs["mask"] = _save(tmp_path / "mask.nii.gz", np.zeros_like(data))
    elif case == "mask_grid":
        kwargs["mask"] = _save(tmp_path / "mask.nii.gz", np.ones((12, 12, 4)))
    elif case == "slices":
        kwargs["slices"] = "10:40"
    elif case == "not_a_model":
        torch.save({"weights": 1}, tmp_path / "junk.pt")
        kwargs["model"] = tmp_path / "junk.pt"
    elif case == "model_grid":
        from pemd_tutorial import Config, RegistrationNet, save_model

        save_model(RegistrationNet(Config.quick(radius=3)), tmp_path / "other.pt")
        kwargs.update(model=tmp_path / "other.pt", config=Config.quick())
    with pytest.raises(ValueError, match=match):
        register(out=out, **kwargs)
    _untouched(out)


def test_file_names_appear_in_errors(small, tmp_path):
    with pytest.raises(FileNotFoundError, match="moving file not found: '.*nope.nii.gz'"):
        register(small, tmp_path / "nope.nii.gz", "mind", tmp_path / "out")
    _untouched(tmp_path / "out")
    vol = np.stack([np.asarray(nib.load(small).dataobj)] * 3, axis=-1)
    four = _save(tmp_path / "four.nii.gz", vol)
    result = register(four, four, "mind", None, volume_index=2)  # a 4D file with --volume-index works
    assert result.moved.shape == (24, 24, 4)


def test_unwritable_output_folder(small, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write to the output folder|is not a folder"):
        register(small, small, "mind", blocker / "out")
    with pytest.raises(ValueError, match="is not a folder"):
        register(small, small, "mind", blocker)


def test_an_error_keeps_earlier_results(small, tmp_path):
    out = tmp_path / "out"
    register(small, small, "mind", out, montage=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ValueError):
        register(small, small, "mind", out, slices="30:40")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_cli_register_and_its_errors(pair, small, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["register", "--fixed", str(pair.fixed), "--moving", str(pair.moving), "--model", "mind",
                 "--out", str(out), "--no-montage"]) == 0
    printed = capsys.readouterr().out
    assert "resampled onto the fixed grid" in printed and "NMI" in printed and "kept:" in printed
    assert OUTPUTS <= {p.name for p in out.iterdir()} and not (out / "montage").exists()
    with pytest.raises(SystemExit) as stop:
        main(["register", "--fixed", str(small), "--moving", str(small), "--out", str(tmp_path / "x"),
              "--model", "mind", "--slices", "9:12"])
    assert stop.value.code == 2
    assert "'slices' '9:12' is outside the volume" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemExit):
            main(["register", "--fixed", str(small), "--moving", str(small), "--out", str(tmp_path / "y"),
                  "--model", "pretrained:nope"])


def test_resample_moving_puts_the_moving_volume_on_the_fixed_grid(pair, tmp_path):
    from pemd_tutorial.registration import resample_moving

    path = resample_moving(pair.fixed, pair.moving, tmp_path / "on_fixed.nii.gz")
    img, fixed = nib.load(path), nib.load(pair.fixed)
    assert img.shape == fixed.shape and np.allclose(img.affine, fixed.affine)
    data = np.asarray(img.dataobj)
    assert data[pair.mask].mean() > 5 * max(float(np.abs(data[~pair.mask]).mean()), 1e-3)  # brain inside


def test_itk_applies_the_written_field_as_register_did(registered, pair):
    """An independent implementation (SimpleITK's DisplacementFieldTransform) reads field.nii.gz and
    resamples the original moving file: it must reproduce moved.nii.gz. With the RAS+ components
    (what the file held before) x and y of the field come out with the wrong sign."""
    sitk = pytest.importorskip("SimpleITK")
    result, out = registered
    fixed_img = sitk.ReadImage(str(pair.fixed), sitk.sitkFloat64)
    moving_img = sitk.ReadImage(str(pair.moving), sitk.sitkFloat64)
    field_img = sitk.ReadImage(str(out / "field.nii.gz"))
    assert field_img.GetNumberOfComponentsPerPixel() == 3

    def resample(field) -> np.ndarray:
        field = sitk.Cast(field, sitk.sitkVectorFloat64)
        field.CopyInformation(fixed_img)
        tx = sitk.DisplacementFieldTransform(field)
        moved = sitk.Resample(moving_img, fixed_img, tx, sitk.sitkLinear, 0.0)
        return np.transpose(sitk.GetArrayFromImage(moved), (2, 1, 0))  # (z, y, x) -> (x, y, z)

    ours = np.asarray(nib.load(out / "moved.nii.gz").dataobj)
    fg = np.zeros(ours.shape, bool)
    fg[:, :, result.slices] = pair.mask[:, :, result.slices]
    assert fg.sum() > 1000

    def corr(a):
        return float(np.corrcoef(a[fg], ours[fg])[0, 1])

    as_written = corr(resample(field_img))
    arr = sitk.GetArrayFromImage(field_img) * np.array([-1.0, -1.0, 1.0])  # the RAS+ components
    wrong = sitk.GetImageFromArray(arr, isVector=True)
    as_ras = corr(resample(wrong))
    assert as_written > 0.97, as_written
    assert as_written > as_ras + 0.05, (as_written, as_ras)


def test_the_function_and_the_module_have_different_names():
    import pemd_tutorial
    import pemd_tutorial.registration as registration

    assert pemd_tutorial.register is registration.register  # the function, at the top level
    assert callable(pemd_tutorial.registration.resample_moving)  # the module's helpers by attribute
