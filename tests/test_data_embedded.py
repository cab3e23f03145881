"""Tests of the embedded MNI152 slices (data_utils.embedded)."""

import json
from importlib import resources

import pytest
import torch

from data_utils import RELAXATION_1P5T, embedded_file_sha256, load_embedded, spin_echo, split_slices


def _tissue_means(sl, contrast):
    t = sl.tissues
    return {k: float(sl.images[contrast][(t[k] > 0.9) & sl.mask].mean()) for k in ("wm", "gm", "csf")}


def test_file_hash_matches_record():
    meta = json.loads((resources.files("data_utils") / "data" / "mni152_slices.json").read_text())
    assert embedded_file_sha256() == meta["sha256"]
    assert meta["bytes"] <= 2 * 1024 * 1024


def test_notice_and_citations_ship_beside_the_file():
    text = (resources.files("data_utils") / "data" / "README.md").read_text()
    for needle in ("Louis Collins", "McGill University", "Fonov", "Collins", "Kwan"):
        assert needle in text


def test_contrast_order_by_tissue_means():
    sl = load_embedded("all", contrasts=("t1", "t2", "pd"), with_tissues=True)
    t1, t2 = _tissue_means(sl, "t1"), _tissue_means(sl, "t2")
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    pd = _tissue_means(sl, "pd")
    assert pd["csf"] > pd["gm"] > pd["wm"]


def test_shapes_ranges_and_dtypes():
    sl = load_embedded("train", contrasts=("t1", "t2"))
    n = len(sl)
    assert n == 32
    for c in ("t1", "t2"):
        im = sl.images[c]
        assert im.shape == (n, 128, 128) and im.dtype == torch.float32
        assert float(im.min()) >= 0.0 and float(im.max()) <= 1.0
        assert float(im.max()) > 0.5  # not degenerate
        assert float(im[~sl.mask].mean()) < 0.02  # brain-extracted: dark outside the mask (bar the rim)
    assert sl.mask.dtype == torch.bool and sl.mask.shape == (n, 128, 128)
    assert sl.slice_index.dtype == torch.int64
    assert sl.tissues is None


def test_resize_keeps_ranges_and_mask_fraction():
    big = load_embedded("val", contrasts=("t1",))
    small = load_embedded("val", contrasts=("t1",), size=64, with_tissues=True)
    assert small.images["t1"].shape == (8, 64, 64) and small.mask.shape == (8, 64, 64)
    assert small.tissues["gm"].shape == (8, 64, 64)
    frac_big, frac_small = big.mask.float().mean(), small.mask.float().mean()
    assert abs(float(frac_big - frac_small)) < 0.02


def test_splits_disjoint_with_gaps():
    pos = {s: set(load_embedded(s, contrasts=("t1",)).slice_index.tolist()) for s in ("train", "val", "test")}
    assert (len(pos["train"]), len(pos["val"]), len(pos["test"])) == (32, 8, 8)
    all_pos = sorted(load_embedded("all", contrasts=("t1",)).slice_index.tolist())
    assert sorted(pos["train"] | pos["val"] | pos["test"]) == all_pos
    for a in pos:
        for b in pos:
            if a < b:
                # no slice in two splits and no neighbour (within 4 voxels = 4 mm) either
                gap = min(abs(x - y) for x in pos[a] for y in pos[b])
                assert gap >= 6, (a, b, gap)


def test_scaling_independent_of_split():
    a = load_embedded("all", contrasts=("t2",))
    v = load_embedded("val", contrasts=("t2",))
    idx = [a.slice_index.tolist().index(z) for z in v.slice_index.tolist()]
    torch.testing.assert_close(a.images["t2"][idx], v.images["t2"], rtol=0, atol=0)


def test_spin_echo_matches_equation_for_pure_tissues():
    tr, te = 4000.0, 100.0
    ones = torch.ones(3)
    for name, (t1, t2, pd) in RELAXATION_1P5T.items():
        tissues = {k: ones * (k == name) for k in RELAXATION_1P5T}
        expected = pd * (1 - torch.exp(torch.tensor(-tr / t1))) * torch.exp(torch.tensor(-te / t2))
        torch.testing.assert_close(spin_echo(tissues, tr, te), ones * expected)


def test_te_changes_contrast():
    sl_short = load_embedded("val", contrasts=("t2",), t2_tr_te=(4000.0, 10.0), with_tissues=True)
    sl_long = load_embedded("val", contrasts=("t2",), t2_tr_te=(4000.0, 150.0), with_tissues=True)
    m_s, m_l = _tissue_means(sl_short, "t2"), _tissue_means(sl_long, "t2")
    assert m_l["csf"] - m_l["wm"] > m_s["csf"] - m_s["wm"]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"split": "training"}, "split"),
        ({"contrasts": ("t1", "t3")}, "contrasts"),
        ({"contrasts": "t1"}, "contrasts"),
        ({"contrasts": ()}, "contrasts"),
        ({"size": 4}, "size"),
        ({"size": 64.0}, "size"),
    ],
)
def test_load_embedded_validates(kwargs, word):
    error = TypeError if kwargs.get("contrasts") == "t1" else ValueError  # a str is not a sequence of names
    with pytest.raises(error, match=word):
        load_embedded(**kwargs)


def test_spin_echo_validates():
    t = {"gm": torch.ones(2)}
    with pytest.raises(ValueError, match="'tr'"):
        spin_echo(t, 0.0, 10.0)
    with pytest.raises(ValueError, match="'te'"):
        spin_echo(t, 100.0, -1.0)
    with pytest.raises(ValueError, match="relaxation"):
        spin_echo({"fat": torch.ones(2)}, 100.0, 10.0)


@pytest.mark.parametrize(
    "fractions, gap", [((0.7, 0.15, 0.15), 2), ((0.75, 0.0, 0.25), 1), ((0.5, 0.25, 0.25), 3)]
)
def test_split_slices_disjoint_with_gaps(fractions, gap):
    sl = load_embedded("all", contrasts=("t1",))
    parts = split_slices(sl, fractions, gap)
    order = sorted(sl.slice_index.tolist())
    rank = {z: r for r, z in enumerate(order)}
    pos = {k: {rank[z] for z in v.slice_index.tolist()} for k, v in parts.items()}
    assert sum(len(p) for p in pos.values()) == len(order) - gap * (3 if fractions[1] > 0 else 2)
    for a in pos:
        for b in pos:
            if a < b and pos[a] and pos[b]:
                assert min(abs(x - y) for x in pos[a] for y in pos[b]) > gap
    for k, f in zip(("train", "val", "test"), fractions, strict=True):
        assert (len(pos[k]) > 0) == (f > 0)
    torch.testing.assert_close(parts["test"].images["t1"][0], sl.images["t1"][order.index(
        parts["test"].slice_index[0].item())], rtol=0, atol=0)


def test_split_slices_validates():
    sl = load_embedded("val", contrasts=("t1",))
    with pytest.raises(ValueError, match="fractions"):
        split_slices(sl, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="gap"):
        split_slices(sl, gap=-1)
    with pytest.raises(ValueError, match="too few"):
        split_slices(sl, (0.4, 0.3, 0.3), gap=3)


def test_build_script_plan_and_writer_match_shipped_file(tmp_path):
    """The build script's slice plan and deterministic writer agree with the shipped file."""
    import importlib.util
    from pathlib import Path

    import numpy as np

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_embedded_data.py"
    spec = importlib.util.spec_from_file_location("build_embedded_data", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shipped = resources.files("data_utils") / "data" / "mni152_slices.npz"
    with resources.as_file(shipped) as p, np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    zs, codes = mod.slice_plan()
    assert np.array_equal(zs, arrays["slice_index"]) and np.array_equal(codes, arrays["split"])
    meta = json.loads((resources.files("data_utils") / "data" / "mni152_slices.json").read_text())
    assert mod.arrays_digest(arrays) == meta["arrays_sha256"]
    mod.write_npz(tmp_path / "a.npz", arrays)
    mod.write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_data_utils_does_not_import_the_model_package():
    """Static check of every module of data_utils: no import of pemd_tutorial (lazy ones included)."""
    import ast
    from pathlib import Path

    import data_utils

    files = sorted(Path(data_utils.__file__).parent.glob("*.py"))
    assert len(files) >= 7
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "pemd_tutorial" for n in names), f"{f.name} imports {names}"


def _best_function_of_t1(contrast: str, bins: int = 64) -> float:
    """R² of the best function of the T1w intensity (piecewise constant on ``bins`` bins) that
    predicts ``contrast`` over the brain: 1 when the contrast is an intensity map of the T1w."""
    sl = load_embedded("all", contrasts=("t1", contrast))
    m = sl.mask
    x, y = sl.images["t1"][m], sl.images[contrast][m]
    idx = (x * (bins - 0.001)).long()
    sums = torch.zeros(bins).index_add_(0, idx, y)
    counts = torch.zeros(bins).index_add_(0, idx, torch.ones_like(y))
    fit = (sums / counts.clamp_min(1))[idx]
    return float(1 - ((y - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_lesion_target_is_not_an_intensity_map_of_the_t1w():
    # T2w and FLAIR-like are mixtures of the same tissue maps as the T1w: a function of its
    # intensity explains most of them; lesions the T1w lacks, a thick direction and a bias field do not
    assert _best_function_of_t1("flair") > 0.9 and _best_function_of_t1("t2") > 0.85
    assert _best_function_of_t1("flair_lesion") < 0.7


def test_lesions_are_bright_in_the_lesion_target_and_inside_the_white_matter():
    from data_utils.embedded import white_matter_lesions

    sl = load_embedded("test", contrasts=("flair", "flair_lesion"), with_tissues=True)
    lesions = white_matter_lesions(sl.tissues["wm"], sl.slice_index)
    core = lesions > 0.9
    assert core.any(dim=(1, 2)).all()  # every slice has lesions
    assert float(sl.tissues["wm"][core].mean()) > 0.8
    img = sl.images["flair_lesion"]
    assert float(img[core].mean()) > 1.3 * float(img[sl.tissues["gm"] > 0.9].mean())
    again = white_matter_lesions(sl.tissues["wm"], sl.slice_index)
    assert torch.equal(lesions, again)  # fixed by the slice position


def test_folds_rotate_the_test_block_and_keep_validation():
    from data_utils import N_FOLDS, fold_splits

    shipped = load_embedded("test", contrasts=("t1",)).slice_index
    assert torch.equal(load_embedded("test", contrasts=("t1",), fold=0).slice_index, shipped)
    seen = set()
    for k in range(N_FOLDS):
        codes = fold_splits(k)
        assert (codes == 2).sum() == 8 and (codes == 1).sum() == 8 and (codes == 0).sum() == 32
        test = load_embedded("test", contrasts=("t1",), fold=k).slice_index.tolist()
        train = set(load_embedded("train", contrasts=("t1",), fold=k).slice_index.tolist())
        assert not train & set(test) and test == sorted(test)
        assert test[-1] - test[0] == 14  # one block of 8 adjacent slices
        val = load_embedded("val", contrasts=("t1",), fold=k).slice_index.tolist()
        assert val == [48, 50, 52, 54, 120, 122, 124, 126]
        seen |= set(test)
    assert len(seen) == 40  # five blocks, every training slice of fold 0 tested once
    with pytest.raises(ValueError, match="fold"):
        load_embedded("test", fold=5)


def test_tissue_order_of_the_contrasts():
    from data_utils import tissue_order

    assert tissue_order("t1") == ("wm", "gm", "csf")
    assert tissue_order("flair_lesion") == tissue_order("flair") == ("gm", "wm", "csf")
    with pytest.raises(ValueError, match="contrast"):
        tissue_order("ct")
