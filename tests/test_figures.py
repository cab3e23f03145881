"""The figures and widget callbacks draw what they claim to draw (pemd_tutorial.figures, .widgets),
and the histogram helpers of notebooks 01 and 02 (peak_histogram, kl_divergence, shift_curves)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from data_utils.grid import (
    LabelGrid,  # noqa: E402
    peak_histogram,  # noqa: E402
)
from pemd_tutorial import figures, widgets  # noqa: E402
from pemd_tutorial.emd import emd_1d  # noqa: E402
from pemd_tutorial.figures import projected_histogram  # noqa: E402
from pemd_tutorial.shifts import kl_divergence, shift_curves  # noqa: E402

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
        p = peak_histogram(GRID, (2.0, -4.0), width=3.0, kind=kind)
        assert p.shape == (GRID.n_labels,)
        assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-12)
        assert int(p.argmax()) == GRID.index(1, -2)
        img = p.reshape(GRID.shape)
        # symmetric about the peak along x: labels i = 0 and i = 2 around i = 1 (column 3+1)
        assert torch.allclose(img[1, 3], img[1, 5], atol=1e-12, rtol=0)
        assert (p >= 0).all()


def test_tent_peaks_two_widths_apart_do_not_overlap():
    p = peak_histogram(GRID, (-4.0, 0.0), width=2.5)
    q = peak_histogram(GRID, (2.0, 0.0), width=2.5)  # 6 px > 2 * 2.5 px apart
    assert float((p * q).sum()) == 0.0
    assert math.isclose(float((p - q).abs().sum()), 2.0, abs_tol=1e-12)


def test_peak_histogram_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'width'"):
        peak_histogram(GRID, (0, 0), width=0.0)
    with pytest.raises(ValueError, match="'kind'"):
        peak_histogram(GRID, (0, 0), kind="box")
    with pytest.raises(ValueError, match="'center'"):
        peak_histogram(GRID, (0, 0, 0))
    with pytest.raises(ValueError, match="'center'"):
        peak_histogram(GRID, (100.0, 0.0), width=1.0, kind="tent")


def test_kl_is_zero_on_itself_positive_otherwise_and_finite_when_disjoint():
    p, q = _random_hist(0), _random_hist(1)
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-5)
    assert float(kl_divergence(p, q)) > 0.01
    a = peak_histogram(GRID, (-4.0, 0.0), width=2.0)
    b = peak_histogram(GRID, (2.0, 0.0), width=2.0)
    c = peak_histogram(GRID, (4.0, 0.0), width=2.0)
    kab, kac = float(kl_divergence(a, b)), float(kl_divergence(a, c))
    assert math.isfinite(kab) and kab == pytest.approx(kac, rel=1e-12)  # saturated


def test_kl_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(torch.ones(3) / 3, torch.ones(4) / 4)
    with pytest.raises(ValueError, match="'eps'"):
        kl_divergence(torch.ones(3) / 3, torch.ones(3) / 3, eps=0.0)


# ---------------------------------------------------------------------------------- projections
def test_projection_at_0_and_90_degrees_are_the_marginals():
    p = _random_hist(2)
    img = p.reshape(GRID.shape)
    pos0, m0 = projected_histogram(p, GRID, 0.0)
    pos90, m90 = projected_histogram(p, GRID, 90.0)
    labels = np.arange(-GRID.radius, GRID.radius + 1) * GRID.step
    np.testing.assert_allclose(pos0, labels, atol=1e-12)
    np.testing.assert_allclose(m0, img.sum(0).numpy(), atol=1e-12)  # summed over y: a function of x
    np.testing.assert_allclose(pos90, labels, atol=1e-12)
    np.testing.assert_allclose(m90, img.sum(1).numpy(), atol=1e-12)


def test_projection_keeps_mass_and_mean_along_the_line():
    p = _random_hist(3)
    d = GRID.displacements(dtype=torch.float64)
    for angle in (0.0, 30.0, 45.0, 117.0):
        pos, mass = projected_histogram(p, GRID, angle)
        assert np.all(np.diff(pos) > 0)
        assert mass.sum() == pytest.approx(1.0, abs=1e-12)
        u = torch.tensor([math.cos(math.radians(angle)), math.sin(math.radians(angle))], dtype=torch.float64)
        assert float((pos * mass).sum()) == pytest.approx(float(p @ (d @ u)), abs=1e-9)


def test_projection_explorer_redraws_for_each_angle():
    p = peak_histogram(GRID, (2.0, 2.0), width=3.0)
    explore = widgets.ProjectionExplorer(p, GRID)
    explore.show(0)
    fig0, proj0 = explore.last_figure, explore.last_projection
    explore.show(45)
    assert explore.last_figure is not fig0
    assert len(explore.last_figure.axes) == 2
    assert "45" in explore.last_figure.axes[0].get_title()
    assert len(explore.last_projection[0]) != len(proj0[0])  # 7 positions at 0 degrees, 13 at 45
    with pytest.raises(ValueError, match="'p'"):
        widgets.ProjectionExplorer(torch.ones(10) / 10, GRID)


def test_explorers_work_with_ipywidgets_interactive():
    ipywidgets = pytest.importorskip("ipywidgets")
    explore = widgets.ProjectionExplorer(peak_histogram(GRID), GRID)
    slider = ipywidgets.IntSlider(value=30, min=0, max=180, description="angle θ")
    w = ipywidgets.interactive(explore.show, angle=slider)
    assert explore.last_projection is not None  # interactive() calls it once with the initial value
    w.children[0].value = 90
    np.testing.assert_allclose(explore.last_projection[1], projected_histogram(explore.p, GRID, 90.0)[1])


def test_plot_histogram_draws_the_grid_image_with_y_down():
    p = _random_hist(4)
    fig, ax = plt.subplots()
    im = figures.plot_histogram(ax, p, GRID, title="t", mark=(2.0, -2.0))
    np.testing.assert_allclose(im.get_array(), p.reshape(GRID.shape).numpy())
    left, right, bottom, top = im.get_extent()
    e = GRID.max_displacement + GRID.step / 2
    assert (left, right, bottom, top) == (-e, e, e, -e)  # top row is dy = -R * step
    with pytest.raises(ValueError, match="'p'"):
        figures.plot_histogram(ax, torch.ones(5), GRID)


def test_multi_angle_and_pair_figures_have_one_panel_per_view():
    p, q = _random_hist(5), _random_hist(6)
    assert len(figures.plot_projection_angles(p, GRID, [0, 45, 90, 135]).axes) == 5
    pair = figures.plot_projection_pair(p, q, GRID, 30.0)
    # p, q, the projections and one colour bar shared by p and q
    assert len(pair.axes) == 4 and pair.axes[-1].get_label() == "<colorbar>"
    with pytest.raises(ValueError, match="'angles'"):
        figures.plot_projection_angles(p, GRID, [])


# ---------------------------------------------------------------------------------- notebook 02
def test_plot_cumsums_shades_the_1d_emd():
    x = np.arange(5) * 2.0
    a = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    b = np.array([0.1, 0.2, 0.3, 0.2, 0.2])  # C_a >= C_b everywhere: the outline does not cross itself
    fig = figures.plot_cumsums(x, a, b)
    poly = fig.axes[1].collections[0]
    # area of the shaded step region (shoelace formula on its outline) equals the 1D EMD
    verts = poly.get_paths()[0].vertices
    xs, ys = verts[:, 0], verts[:, 1]
    area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
    expected = float(emd_1d(torch.tensor(a), torch.tensor(b), spacing=2.0))
    assert area == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="sorted"):
        figures.plot_cumsums(x[::-1], a, b)
    with pytest.raises(ValueError, match="equal length"):
        figures.plot_cumsums(x, a[:3], b)


def test_shift_curves_l1_saturates_while_emd_keeps_growing():
    shifts = np.arange(0.0, 8.1, GRID.step)
    c = shift_curves(GRID, shifts, start=(-4.0, 0.0), width=2.5)
    far = shifts > 5.0
    np.testing.assert_allclose(c["l1"][far], 2.0, atol=1e-12)
    assert np.ptp(c["kl"][far]) < 1e-9
    np.testing.assert_allclose(c["exact_emd"], shifts, atol=1e-6)  # a pure translation moves every unit
    assert np.all(c["projected_emd"] <= c["exact_emd"] + 1e-9)
    # 4 angles, shift along x: |cos 0| + |cos 45| + |cos 90| + |cos 135| over 4 = (1 + sqrt 2) / 4
    np.testing.assert_allclose(c["projected_emd"], shifts * (1 + math.sqrt(2)) / 4, atol=1e-9)
    with pytest.raises(ValueError, match="'shifts'"):
        shift_curves(GRID, [])


def test_shift_explorer_snaps_to_the_nearest_computed_shift():
    shifts = np.arange(0.0, 6.1, 1.0)
    c = shift_curves(GRID, shifts)
    explore = widgets.ShiftExplorer(GRID, c)
    explore.show(3.4)
    assert explore.last_values["shift"] == 3.0
    assert explore.last_values["exact_emd"] == pytest.approx(c["exact_emd"][3])
    assert len(explore.last_figure.axes) == 4
    with pytest.raises(ValueError, match="lacks"):
        figures.plot_shift_curves({"shift": shifts})
    with pytest.raises(ValueError, match="'grid'"):
        figures.plot_shift_curves(c, pair=(torch.ones(1), torch.ones(1)))


def test_plot_correlation_titles_carry_the_rank_correlation():
    ref = np.arange(10.0)
    fig = figures.plot_correlation(ref, {"same order": ref**2, "reversed": -ref})
    assert "1.000" in fig.axes[0].get_title() and "-1.000" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="'bad'"):
        figures.plot_correlation(ref, {"bad": ref[:4]})
    with pytest.raises(ValueError, match="'approximations'"):
        figures.plot_correlation(ref, {})


# ---------------------------------------------------------------------------------- notebooks 03/04
def test_slice_explorer_shows_one_panel_per_volume():
    vols = {"T1w": torch.rand(4, 1, 8, 8), "T2w": torch.rand(4, 8, 8), "GM": np.zeros((4, 8, 8))}
    explore = widgets.SliceExplorer(vols)
    explore.show(2)
    assert len(explore.last_figure.axes) == 3
    np.testing.assert_allclose(explore.last_figure.axes[0].images[0].get_array(), vols["T1w"][2, 0].numpy())
    with pytest.raises(ValueError, match="'index'"):
        explore.show(4)
    with pytest.raises(ValueError, match="same number of slices"):
        widgets.SliceExplorer({"a": torch.rand(3, 8, 8), "b": torch.rand(4, 8, 8)})
    with pytest.raises(ValueError, match="2D image"):
        figures.plot_modalities({"a": torch.rand(2, 3, 8, 8)})


def test_control_point_distributions_show_the_histogram_at_that_point():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(GRID.n_labels, 3, 4, generator=g), dim=0)
    other = torch.softmax(torch.randn(GRID.n_labels, 3, 4, generator=g), dim=0)
    truth = torch.zeros(2, 3, 4)
    explore = widgets.ControlPointExplorer({"F1": probs, "F2": other, "F1 after": probs}, GRID, truth)
    explore.show(row=1, col=2)
    fig = explore.last_figure
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3  # one row (the point), one panel per distribution, plus a colour bar
    np.testing.assert_allclose(panels[1].images[0].get_array(), other[:, 1, 2].reshape(GRID.shape).numpy())
    # one colour scale per row: every panel ends at the row's largest probability
    vmax = max(float(probs[:, 1, 2].max()), float(other[:, 1, 2].max()))
    assert all(ax.images[0].get_clim()[1] == pytest.approx(vmax) for ax in panels)
    with pytest.raises(ValueError, match="outside"):
        figures.plot_distributions({"F1": probs}, GRID, [(3, 0)])
    with pytest.raises(ValueError, match="'F1'"):
        figures.plot_distributions({"F1": probs[:5]}, GRID, [(0, 0)])


def test_displacement_field_arrows_are_the_field():
    field = torch.stack([torch.full((2, 3), 1.5), torch.full((2, 3), -2.0)])
    fig, ax = plt.subplots()
    figures.plot_displacement_field(ax, field, spacing=8, image=torch.zeros(16, 24))
    q = ax.collections[0]
    np.testing.assert_allclose(q.U, 1.5)
    np.testing.assert_allclose(q.V, -2.0)
    np.testing.assert_allclose(np.unique(q.X), [4, 12, 20])
    with pytest.raises(ValueError, match="'field'"):
        figures.plot_displacement_field(ax, torch.zeros(3, 2, 2), spacing=4)


def test_plot_accuracy_bars_are_the_means_and_no_error_bars_for_one_seed():
    rows = {"source": [{"seed": 0, "accuracy": 0.1}, {"seed": 1, "accuracy": 0.2}],
            "mcd_pemd": [{"seed": 0, "accuracy": 0.4}, {"seed": 1, "accuracy": 0.5}]}
    res = {"methods": ["source", "mcd_pemd"], "seeds": [0, 1], "chance": 1 / 49, "per_seed": rows,
           "summary": {"source": {"accuracy": 0.15, "accuracy_std": 0.07}, "mcd_pemd": {"accuracy": 0.45,
                                                                                       "accuracy_std": 0.07}}}
    fig = figures.plot_accuracy(res)
    ax = fig.axes[0]
    assert [b.get_height() for b in ax.patches] == pytest.approx([15.0, 45.0])
    assert len(ax.lines) >= 2 and any(len(c.get_segments()) for c in ax.collections)  # dots and error bars
    one = {**res, "seeds": [0], "per_seed": {m: r[:1] for m, r in rows.items()}}
    ax1 = figures.plot_accuracy(one).axes[0]
    # one seed: no error bars
    assert not any(len(c.get_segments()) for c in ax1.collections if hasattr(c, "get_segments"))


# ---------------------------------------------------------------- what MCD does to the heads
def _disagreement_result() -> dict:
    """Two runs of made-up rows: "grow" is pulled apart by step B and pulled back by step C."""
    def rows(b_step: float, c_step: float) -> list[dict]:
        out, tv = [{"step": 0, "after": "start", "tv": 0.1, "accuracy": 0.0}], 0.1
        for step in (1, 2, 3):
            out.append({"step": step, "after": "A", "tv": tv, "accuracy": 0.1 * step})
            out.append({"step": step, "after": "B", "tv": tv + b_step, "accuracy": 0.1 * step})
            tv = tv + b_step + c_step
            out.append({"step": step, "after": "C", "tv": tv, "accuracy": 0.1 * step})
        return out
    return {"runs": {"grow": {"lam": 1.0, "rows": rows(0.2, -0.05)},
                     "flat": {"lam": 10.0, "rows": rows(0.0, 0.0)}}}


def test_head_disagreement_summary_reads_steps_b_and_c_apart():
    summary = figures.head_disagreement_summary(_disagreement_result())
    grow, flat = summary["grow"], summary["flat"]
    assert grow["before"] == pytest.approx(0.1) and grow["end"] == pytest.approx(0.55)
    assert grow["peak"] == pytest.approx(0.55) and grow["peak_step"] == 3
    assert grow["b_raises"] == 1.0 and grow["b_change"] == pytest.approx(0.2)
    assert grow["c_lowers"] == 1.0 and grow["c_change"] == pytest.approx(-0.05)
    assert grow["accuracy_end"] == pytest.approx(0.3)
    assert flat["b_raises"] == 0.0 and flat["c_lowers"] == 0.0 and flat["peak_step"] == 1


def test_plot_head_disagreement_draws_steps_b_and_c_of_every_run():
    result = _disagreement_result()
    fig = figures.plot_head_disagreement(result)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["grow (λ 1)", "flat (λ 10)"]
    after_c = panels[0].lines[1]  # after step B, after step C, then the level before adaptation
    assert list(after_c.get_xdata()) == [0, 1, 2, 3]
    assert list(after_c.get_ydata()) == pytest.approx([0.1, 0.25, 0.4, 0.55])
    assert panels[0].lines[2].get_ydata()[0] == pytest.approx(0.1)


def test_plot_discrepancy_gradients_has_three_log_panels_one_line_per_discrepancy():
    row = {"lam": 2.0, "grad_heads_disc": 1.0, "grad_generator_disc": 0.5}
    logs = {name: [{**row, "step": s, "disc_b": 0.1 * s} for s in (1, 2)] for name in ("l1", "swd", "pemd")}
    fig = figures.plot_discrepancy_gradients(logs)
    assert len(fig.axes) == 3 and all(ax.get_yscale() == "log" for ax in fig.axes)
    assert all(len(ax.lines) == 3 for ax in fig.axes)
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([0.2, 0.4])  # λ·D


def test_benchmark_result_reads_the_shipped_results_and_rejects_paths():
    result = figures.benchmark_result("head_disagreement")
    assert set(result["runs"]) == {"l1", "swd", "pemd", "pemd_shuffled"}
    for bad in ("../secrets", "nope", ""):
        with pytest.raises(ValueError, match="read_shipped_results"):
            figures.benchmark_result(bad)
