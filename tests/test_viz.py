"""The notebook plots and widget callbacks draw what they claim to draw."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from data_utils.grid import LabelGrid  # noqa: E402
from pemd_tutorial import viz  # noqa: E402
from pemd_tutorial.emd import emd_1d  # noqa: E402

GRID = LabelGrid(radius=3, step=2.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random_hist(seed: int, n: int = GRID.n_labels) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64) ** 4
    return x / x.sum()


# ---------------------------------------------------------------------------------- fixtures
def test_peak_histogram_on_a_label_is_symmetric_and_peaks_there():
    for kind in ("tent", "gaussian"):
        p = viz.peak_histogram(GRID, (2.0, -4.0), width=3.0, kind=kind)
        assert p.shape == (GRID.n_labels,)
        assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-12)
        assert int(p.argmax()) == GRID.index(1, -2)
        img = p.reshape(GRID.shape)
        # symmetric about the peak along x: labels i = 0 and i = 2 around i = 1 (column 3+1)
        assert torch.allclose(img[1, 3], img[1, 5], atol=1e-12, rtol=0)
        assert (p >= 0).all()


def test_tent_peaks_two_widths_apart_do_not_overlap():
    p = viz.peak_histogram(GRID, (-4.0, 0.0), width=2.5)
    q = viz.peak_histogram(GRID, (2.0, 0.0), width=2.5)  # 6 px > 2 * 2.5 px apart
    assert float((p * q).sum()) == 0.0
    assert math.isclose(float((p - q).abs().sum()), 2.0, abs_tol=1e-12)


def test_peak_histogram_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'width'"):
        viz.peak_histogram(GRID, (0, 0), width=0.0)
    with pytest.raises(ValueError, match="'kind'"):
        viz.peak_histogram(GRID, (0, 0), kind="box")
    with pytest.raises(ValueError, match="'center'"):
        viz.peak_histogram(GRID, (0, 0, 0))
    with pytest.raises(ValueError, match="'center'"):
        viz.peak_histogram(GRID, (100.0, 0.0), width=1.0, kind="tent")


def test_kl_is_zero_on_itself_positive_otherwise_and_finite_when_disjoint():
    p, q = _random_hist(0), _random_hist(1)
    assert float(viz.kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-5)
    assert float(viz.kl_divergence(p, q)) > 0.01
    a = viz.peak_histogram(GRID, (-4.0, 0.0), width=2.0)
    b = viz.peak_histogram(GRID, (2.0, 0.0), width=2.0)
    c = viz.peak_histogram(GRID, (4.0, 0.0), width=2.0)
    kab, kac = float(viz.kl_divergence(a, b)), float(viz.kl_divergence(a, c))
    assert math.isfinite(kab) and kab == pytest.approx(kac, rel=1e-12)  # saturated


def test_kl_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        viz.kl_divergence(torch.ones(3) / 3, torch.ones(4) / 4)
    with pytest.raises(ValueError, match="'eps'"):
        viz.kl_divergence(torch.ones(3) / 3, torch.ones(3) / 3, eps=0.0)


# ---------------------------------------------------------------------------------- projections
def test_projection_at_0_and_90_degrees_are_the_marginals():
    p = _random_hist(2)
    img = p.reshape(GRID.shape)
    pos0, m0 = viz.project(p, GRID, 0.0)
    pos90, m90 = viz.project(p, GRID, 90.0)
    labels = np.arange(-GRID.radius, GRID.radius + 1) * GRID.step
    np.testing.assert_allclose(pos0, labels, atol=1e-12)
    np.testing.assert_allclose(m0, img.sum(0).numpy(), atol=1e-12)  # summed over y: a function of x
    np.testing.assert_allclose(pos90, labels, atol=1e-12)
    np.testing.assert_allclose(m90, img.sum(1).numpy(), atol=1e-12)


def test_projection_keeps_mass_and_mean_along_the_line():
    p = _random_hist(3)
    d = GRID.displacements(dtype=torch.float64)
    for angle in (0.0, 30.0, 45.0, 117.0):
        pos, mass = viz.project(p, GRID, angle)
        assert np.all(np.diff(pos) > 0)
        assert mass.sum() == pytest.approx(1.0, abs=1e-12)
        u = torch.tensor([math.cos(math.radians(angle)), math.sin(math.radians(angle))], dtype=torch.float64)
        assert float((pos * mass).sum()) == pytest.approx(float(p @ (d @ u)), abs=1e-9)


def test_projection_explorer_redraws_for_each_angle():
    p = viz.peak_histogram(GRID, (2.0, 2.0), width=3.0)
    explore = viz.ProjectionExplorer(p, GRID)
    explore.show(0)
    fig0, proj0 = explore.last_figure, explore.last_projection
    explore.show(45)
    assert explore.last_figure is not fig0
    assert len(explore.last_figure.axes) == 2
    assert "45" in explore.last_figure.axes[0].get_title()
    assert len(explore.last_projection[0]) != len(proj0[0])  # 7 positions at 0 degrees, 13 at 45
    with pytest.raises(ValueError, match="'p'"):
        viz.ProjectionExplorer(torch.ones(10) / 10, GRID)


def test_explorers_work_with_ipywidgets_interactive():
    widgets = pytest.importorskip("ipywidgets")
    explore = viz.ProjectionExplorer(viz.peak_histogram(GRID), GRID)
    slider = widgets.IntSlider(value=30, min=0, max=180, description="angle θ")
    w = widgets.interactive(explore.show, angle=slider)
    assert explore.last_projection is not None  # interactive() calls it once with the initial value
    w.children[0].value = 90
    np.testing.assert_allclose(explore.last_projection[1], viz.project(explore.p, GRID, 90.0)[1])


def test_plot_histogram_draws_the_grid_image_with_y_down():
    p = _random_hist(4)
    fig, ax = plt.subplots()
    im = viz.plot_histogram(ax, p, GRID, title="t", mark=(2.0, -2.0))
    np.testing.assert_allclose(im.get_array(), p.reshape(GRID.shape).numpy())
    left, right, bottom, top = im.get_extent()
    e = GRID.max_displacement + GRID.step / 2
    assert (left, right, bottom, top) == (-e, e, e, -e)  # top row is dy = -R * step
    with pytest.raises(ValueError, match="'p'"):
        viz.plot_histogram(ax, torch.ones(5), GRID)


def test_multi_angle_and_pair_figures_have_one_panel_per_view():
    p, q = _random_hist(5), _random_hist(6)
    assert len(viz.plot_projection_angles(p, GRID, [0, 45, 90, 135]).axes) == 5
    assert len(viz.plot_projection_pair(p, q, GRID, 30.0).axes) == 3
    with pytest.raises(ValueError, match="'angles'"):
        viz.plot_projection_angles(p, GRID, [])


# ---------------------------------------------------------------------------------- notebook 02
def test_plot_cumsums_shades_the_1d_emd():
    x = np.arange(5) * 2.0
    a = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    b = np.array([0.1, 0.2, 0.3, 0.2, 0.2])  # C_a >= C_b everywhere: the outline does not cross itself
    fig = viz.plot_cumsums(x, a, b)
    poly = fig.axes[1].collections[0]
    # area of the shaded step region (shoelace formula on its outline) equals the 1D EMD
    verts = poly.get_paths()[0].vertices
    xs, ys = verts[:, 0], verts[:, 1]
    area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
    expected = float(emd_1d(torch.tensor(a), torch.tensor(b), spacing=2.0))
    assert area == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="sorted"):
        viz.plot_cumsums(x[::-1], a, b)
    with pytest.raises(ValueError, match="equal length"):
        viz.plot_cumsums(x, a[:3], b)


def test_shift_curves_l1_saturates_while_emd_keeps_growing():
    shifts = np.arange(0.0, 8.1, GRID.step)
    c = viz.shift_curves(GRID, shifts, start=(-4.0, 0.0), width=2.5)
    far = shifts > 5.0
    np.testing.assert_allclose(c["l1"][far], 2.0, atol=1e-12)
    assert np.ptp(c["kl"][far]) < 1e-9
    np.testing.assert_allclose(c["exact_emd"], shifts, atol=1e-6)  # a pure translation moves every unit
    assert np.all(c["projected_emd"] <= c["exact_emd"] + 1e-9)
    # 4 angles, shift along x: |cos 0| + |cos 45| + |cos 90| + |cos 135| over 4 = (1 + sqrt 2) / 4
    np.testing.assert_allclose(c["projected_emd"], shifts * (1 + math.sqrt(2)) / 4, atol=1e-9)
    with pytest.raises(ValueError, match="'shifts'"):
        viz.shift_curves(GRID, [])


def test_shift_explorer_snaps_to_the_nearest_computed_shift():
    shifts = np.arange(0.0, 6.1, 1.0)
    c = viz.shift_curves(GRID, shifts)
    explore = viz.ShiftExplorer(GRID, c)
    explore.show(3.4)
    assert explore.last_values["shift"] == 3.0
    assert explore.last_values["exact_emd"] == pytest.approx(c["exact_emd"][3])
    assert len(explore.last_figure.axes) == 4
    with pytest.raises(ValueError, match="lacks"):
        viz.plot_shift_curves({"shift": shifts})
    with pytest.raises(ValueError, match="'grid'"):
        viz.plot_shift_curves(c, pair=(torch.ones(1), torch.ones(1)))


def test_spearman_matches_scipy_with_ties_and_is_rank_invariant():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 50).astype(float)
    b = a + rng.normal(0, 2, 50)
    assert viz.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert viz.spearman(b, np.exp(b)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal length"):
        viz.spearman(a, b[:3])


def test_plot_correlation_titles_carry_the_rank_correlation():
    ref = np.arange(10.0)
    fig = viz.plot_correlation(ref, {"same order": ref**2, "reversed": -ref})
    assert "1.000" in fig.axes[0].get_title() and "-1.000" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="'bad'"):
        viz.plot_correlation(ref, {"bad": ref[:4]})
    with pytest.raises(ValueError, match="'approximations'"):
        viz.plot_correlation(ref, {})


# ---------------------------------------------------------------------------------- notebooks 03/04
def test_slice_explorer_shows_one_panel_per_volume():
    vols = {"T1w": torch.rand(4, 1, 8, 8), "T2w": torch.rand(4, 8, 8), "GM": np.zeros((4, 8, 8))}
    explore = viz.SliceExplorer(vols)
    explore.show(2)
    assert len(explore.last_figure.axes) == 3
    np.testing.assert_allclose(explore.last_figure.axes[0].images[0].get_array(), vols["T1w"][2, 0].numpy())
    with pytest.raises(ValueError, match="'index'"):
        explore.show(4)
    with pytest.raises(ValueError, match="same number of slices"):
        viz.SliceExplorer({"a": torch.rand(3, 8, 8), "b": torch.rand(4, 8, 8)})
    with pytest.raises(ValueError, match="2D image"):
        viz.plot_modalities({"a": torch.rand(2, 3, 8, 8)})


def test_control_point_distributions_show_the_histogram_at_that_point():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(GRID.n_labels, 3, 4, generator=g), dim=0)
    other = torch.softmax(torch.randn(GRID.n_labels, 3, 4, generator=g), dim=0)
    truth = torch.zeros(2, 3, 4)
    explore = viz.ControlPointExplorer({"F1": probs, "F2": other, "F1 after": probs}, GRID, truth, ncols=2)
    explore.show(row=1, col=2)
    fig = explore.last_figure
    assert len(fig.axes) == 4 and not fig.axes[3].axison  # 3 panels on a 2x2 layout
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), other[:, 1, 2].reshape(GRID.shape).numpy())
    with pytest.raises(ValueError, match="'point'"):
        viz.plot_control_point_distributions({"F1": probs}, GRID, (3, 0))
    with pytest.raises(ValueError, match="'F1'"):
        viz.plot_control_point_distributions({"F1": probs[:5]}, GRID, (0, 0))


def test_displacement_field_arrows_are_the_field():
    field = torch.stack([torch.full((2, 3), 1.5), torch.full((2, 3), -2.0)])
    fig, ax = plt.subplots()
    viz.plot_displacement_field(ax, field, spacing=8, image=torch.zeros(16, 24))
    q = ax.collections[0]
    np.testing.assert_allclose(q.U, 1.5)
    np.testing.assert_allclose(q.V, -2.0)
    np.testing.assert_allclose(np.unique(q.X), [4, 12, 20])
    with pytest.raises(ValueError, match="'field'"):
        viz.plot_displacement_field(ax, torch.zeros(3, 2, 2), spacing=4)


def test_plot_results_bars_are_the_means():
    res = {"source only": {"accuracy": 0.1, "accuracy_std": 0.01}, "MCD-pEMD": {"accuracy": 0.4}}
    fig = viz.plot_results(res, "accuracy", chance=1 / 49)
    heights = [b.get_height() for b in fig.axes[0].patches]
    assert heights == pytest.approx([0.1, 0.4])
    with pytest.raises(ValueError, match="'epe'"):
        viz.plot_results(res, "epe")
    with pytest.raises(ValueError, match="'results'"):
        viz.plot_results({}, "accuracy")
