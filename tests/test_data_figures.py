"""Tests of data_utils.figures (montage and control-point interpolation)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

from data_utils import PairDataset, at_control_points, control_to_dense, make_pairs, plot_pair_montage  # noqa: E402


@pytest.fixture(scope="module")
def pairs():
    src = make_pairs("source", "val", n_pairs=3, size=32, seed=0)
    tgt = make_pairs("target", "val", n_pairs=3, size=32, seed=0)
    return src, tgt


def _quivers(ax):
    return [c for c in ax.collections if isinstance(c, Quiver)]


def test_montage_layout_and_arrows(pairs):
    src, tgt = pairs
    fig = plot_pair_montage({"source": src, "target": tgt.evaluation_view()}, indices=[0, 2], title="t")
    axes = fig.axes
    assert len(axes) == 4 * 3
    # arrows on the fixed column of every row: source has labels, target's evaluation view a field
    assert all(len(_quivers(axes[3 * r])) == 1 for r in range(4))
    q = _quivers(axes[0])[0]
    assert q.N == (32 // 4) ** 2
    plt.close(fig)


def test_montage_never_asks_for_hidden_labels(pairs, monkeypatch):
    _, tgt = pairs

    def forbidden(self):
        raise RuntimeError("evaluation_view called")

    monkeypatch.setattr(PairDataset, "evaluation_view", forbidden)
    fig = plot_pair_montage(tgt, indices=[1])
    assert len(fig.axes) == 3 and not _quivers(fig.axes[0])  # no field to draw
    assert fig.axes[2].get_title() == "moving (no field)"
    plt.close(fig)


def test_montage_with_given_fields_warps_moving(pairs):
    src, _ = pairs
    u = torch.zeros(1, 2, 32, 32)
    u[:, 0] = 3.0
    fig = plot_pair_montage(src, indices=[0], fields=u, arrow_spacing=8)
    shown = fig.axes[2].images[0].get_array()
    expected = torch.roll(src[0]["moving"][0], -3, dims=-1)
    assert torch.allclose(torch.as_tensor(shown[4:-4, 4:-4]).float(), expected[4:-4, 4:-4], atol=1e-5)
    assert _quivers(fig.axes[0])[0].N == 16
    plt.close(fig)


def test_control_to_dense_interpolates_and_hits_control_points():
    g = torch.Generator().manual_seed(0)
    disp = torch.randn(2, 2, 8, 8, generator=g)
    dense = control_to_dense(disp, 4, (32, 32))
    assert dense.shape == (2, 2, 32, 32)
    torch.testing.assert_close(at_control_points(dense, 4), disp, rtol=0, atol=1e-5)
    # a linear field is reproduced exactly between the control points
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    lin = torch.stack([xx, 2 * yy])[None]
    d = control_to_dense(lin, 4, (32, 32))
    torch.testing.assert_close(d[0, 0, 5, 2:30], (torch.arange(2, 30.0) - 2) / 4, rtol=0, atol=1e-5)


def test_validation(pairs):
    src, tgt = pairs
    with pytest.raises(ValueError, match="index"):
        plot_pair_montage(src, indices=[5])
    with pytest.raises(ValueError, match="'indices'"):
        plot_pair_montage(src, indices=[])
    with pytest.raises(ValueError, match="'fields'"):
        plot_pair_montage({"s": src, "t": tgt}, fields=torch.zeros(2, 2, 32, 32))
    with pytest.raises(ValueError, match="control points"):
        control_to_dense(torch.zeros(1, 2, 4, 4), 4, (32, 32))
    with pytest.raises(ValueError, match="'displacement'"):
        control_to_dense(torch.zeros(1, 3, 8, 8), 4, (32, 32))
    plt.close("all")
