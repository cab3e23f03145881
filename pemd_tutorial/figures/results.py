"""Results: accuracies, training curves, predicted distributions and the paper's published bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from data_utils.embedded import CONTRAST_NAMES
from data_utils.grid import LabelGrid
from pemd_tutorial.config import PAPER_ACCURACY, SLIDES_COUNTERPARTS
from pemd_tutorial.figures.base import method_colour
from pemd_tutorial.figures.histograms import plot_histogram

#: The main job's rows beside the slides' bars, and the patch experiment's.
_MAIN_JOB_ROWS = {bar: rows["main_job"] for bar, rows in SLIDES_COUNTERPARTS.items()}
_PATCH_ROWS = {bar: rows["patch_experiment"] for bar, rows in SLIDES_COUNTERPARTS.items()}

__all__ = ["plot_accuracy", "plot_adaptation_pays", "plot_distributions", "plot_label_histogram",
           "plot_paper_comparison", "plot_paper_experiment", "plot_training_curves"]


def plot_accuracy(results: Mapping[str, Any], metric: str = "accuracy") -> Figure:
    """Bars of ``metric`` (mean ± std over seeds) per method; every seed a dot; chance a line."""
    methods = list(results["methods"])
    summary, per_seed = results["summary"], results["per_seed"]
    scale = 100.0 if metric in ("accuracy", "within_one", "source_accuracy") else 1.0
    fig, ax = plt.subplots(figsize=(1.0 * len(methods) + 1.6, 3.0))
    x = range(len(methods))
    means = [scale * summary[m].get(metric, float("nan")) for m in methods]
    several = len(results["seeds"]) > 1  # error bars only for a spread over seeds
    stds = [scale * summary[m].get(metric + "_std", 0.0) for m in methods] if several else None
    ax.bar(x, means, yerr=stds, color=[method_colour(m, i) for i, m in enumerate(methods)], alpha=0.75,
           capsize=3 if several else 0)
    for i, m in enumerate(methods):
        vals = [scale * r[metric] for r in per_seed[m] if r.get(metric) is not None]
        offs = [(k - (len(vals) - 1) / 2) * 0.12 for k in range(len(vals))]
        ax.plot([i + o for o in offs], vals, "o", color="k", ms=3)
    if metric == "accuracy" and "chance" in results:
        ax.axhline(scale * results["chance"], color="grey", ls=":", lw=1)
        # a label on the line rather than a legend box, which would hide the dots of a high bar
        ax.text(1.01, scale * results["chance"], "chance", ha="left", va="center", fontsize=7, color="grey",
                transform=ax.get_yaxis_transform())  # just right of the axes, at the chance level
    names = results.get("method_names", {})
    ax.set_xticks(
        list(x), [names.get(m, m).split(" (")[0] for m in methods], rotation=30, ha="right", fontsize=8
    )
    ax.set_ylabel(f"target {metric}" + (" (%)" if scale == 100.0 else ""))
    n = len(results["seeds"])
    ax.set_title(
        "target test pairs, " + (f"{n} seeds: mean ± std, dots = seeds" if n > 1 else "one seed"), fontsize=9
    )
    fig.tight_layout()
    return fig


def plot_paper_comparison(ours: Mapping[str, float], names: Mapping[str, str] | None = None,
                          ours_label: str = "this package") -> Figure:
    """The paper's bars (:data:`pemd_tutorial.config.PAPER_ACCURACY`) beside ours, as accuracy in %.

    Args:
        ours: method key (``"identity"``, ``"source"``, ``"mcd_swd"``, ``"mcd_pemd"``) -> target
            accuracy in ``[0, 1]``.
        names: display names of our keys (e.g. :data:`pemd_tutorial.experiment.METHOD_NAMES`);
            the keys themselves without it.
        ours_label: legend of our bars.
    """
    missing = [k for k in _MAIN_JOB_ROWS.values() if k not in ours]
    if missing:
        raise ValueError(f"plot_paper_comparison() 'ours' lacks {missing}")
    labels = list(PAPER_ACCURACY)
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    ax.bar(
        [i - 0.2 for i in x],
        [PAPER_ACCURACY[k] for k in labels],
        0.4,
        color="0.6",
        label="paper (slides): 25 labels, canine T1w/T2w",
    )
    ax.bar(
        [i + 0.2 for i in x],
        [100 * ours[_MAIN_JOB_ROWS[k]] for k in labels],
        0.4,
        color="C3",
        label=f"{ours_label}: 81 labels, MNI T1w / simulated T2w",
    )
    names = names or {}
    ours_names = {k: names.get(_MAIN_JOB_ROWS[k], _MAIN_JOB_ROWS[k]).split(" (")[0] for k in labels}
    ax.set_xticks(list(x), [f"{k}\nours: {ours_names[k]}" for k in labels], fontsize=7)
    ax.set_ylabel("target label accuracy (%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_training_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]], chance: float | None = None,
    names: Mapping[str, str] | None = None,
) -> Figure:
    """Target validation accuracy over training: supervised phases and adaptation on separate axes.

    Args:
        curves: method key -> ``[(step, accuracy), ...]``; ``"source"`` and ``"oracle"`` go on the
            left axes (supervised training from scratch), every other key (the MCD variants,
            which start from the source-only network) on the right.
        chance: optional horizontal line (``1 / L``).
        names: display names of the keys for the legends (e.g.
            :data:`pemd_tutorial.experiment.METHOD_NAMES`); the keys without it.
    """
    names = names or {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 2.8), sharey=True)
    for i, (name, pts) in enumerate(curves.items()):
        if not pts:
            continue
        ax = left if name in ("source", "oracle") else right
        steps, acc = zip(*pts, strict=True)
        ax.plot(steps, [100 * a for a in acc], "o-", ms=2.5, lw=1.2, color=method_colour(name, i),
                label=names.get(name, name).split(" (")[0])
    left.set_title("supervised phases (from scratch)", fontsize=9)
    right.set_title("adaptation (from the source-only network)", fontsize=9)
    for ax in (left, right):
        if chance is not None:
            ax.axhline(100 * chance, color="grey", ls=":", lw=1, label="chance")
        ax.set_xlabel("training step of the phase")
        ax.legend(fontsize=7)
    left.set_ylabel("target validation accuracy (%)")
    fig.tight_layout()
    return fig


def plot_label_histogram(histogram: Mapping[str, Any], grid: LabelGrid) -> Figure:
    """The true-label distribution of :func:`pemd_tutorial.evaluate.true_label_histogram`: a map of
    the label grid and the share per ring (Chebyshev distance from the zero displacement)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.0, 2.6), gridspec_kw={"width_ratios": [1, 1.2]})
    im = plot_histogram(a, torch.tensor(histogram["shares"]) * 100, grid, title="share of points (%)")
    fig.colorbar(im, ax=a, fraction=0.046)
    rings = [100 * r for r in histogram["ring_shares"]]
    b.bar(range(len(rings)), rings, color="C0")
    b.set_xlabel("ring (labels from zero displacement)")
    b.set_ylabel("share of points (%)")
    b.set_title(f"identity within one label: {100 * histogram['identity_within_one']:.0f} %", fontsize=9)
    fig.tight_layout()
    return fig


def plot_distributions(
    distributions: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    points: Sequence[tuple[int, int]],
    truth: torch.Tensor | None = None,
) -> Figure:
    """Label histograms of several predictions at a few control points: one row per point, one
    column per prediction, one colour scale (and colour bar) per row.

    Args:
        distributions: name -> probabilities ``(L, Hc, Wc)`` of one image (e.g. ``"F1 source"``,
            ``"F2 source"``, ``"F1 MCD-pEMD"``, ...).
        grid: the label grid.
        points: ``(row, col)`` control points to show.
        truth: optional ``(2, Hc, Wc)`` true displacement in pixels, marked with a cross.

    Returns:
        The figure.
    """
    if len(distributions) == 0:
        raise ValueError("plot_distributions() 'distributions' must not be empty")
    if len(points) == 0:
        raise ValueError("plot_distributions() 'points' must not be empty")
    for name, probs in distributions.items():
        if not isinstance(probs, torch.Tensor) or probs.dim() != 3 or probs.shape[0] != grid.n_labels:
            got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
            raise ValueError(
                f"plot_distributions() '{name}' must have shape ({grid.n_labels}, Hc, Wc), got {got}"
            )
        for r, c in points:
            if not (0 <= r < probs.shape[1] and 0 <= c < probs.shape[2]):
                raise ValueError(f"plot_distributions() point {(r, c)} is outside {tuple(probs.shape[1:])}")
    cols = list(distributions.items())
    fig, axes = plt.subplots(
        len(points), len(cols), figsize=(1.95 * len(cols) + 0.9, 1.85 * len(points) + 0.6), squeeze=False,
        layout="constrained",
    )
    for r, (a, b) in enumerate(points):
        vmax = max(float(p[:, a, b].max()) for _, p in cols)
        mark = None if truth is None else (float(truth[0, a, b]), float(truth[1, a, b]))
        for c, (title, p) in enumerate(cols):
            ax = axes[r, c]
            im = plot_histogram(ax, p[:, a, b], grid, title=title if r == 0 else None, vmax=vmax, mark=mark)
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_size(8)
            ax.yaxis.label.set_size(8)
            if r < len(points) - 1:
                ax.set_xlabel("")
            ax.set_ylabel(f"control point: row {a}, column {b}\ndy (px)" if c == 0 else "")
        bar = fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("probability", fontsize=7)
    if truth is not None:
        axes[0, 0].plot([], [], "x", color="cyan", mew=2, label="true displacement")
        axes[0, 0].legend(fontsize=6, loc="lower left", framealpha=0.8)
    return fig


def plot_paper_experiment(results: Mapping[str, Any]) -> Figure:
    """The slides' bars beside the paper experiment's (:func:`pemd_tutorial.paper.run_paper_experiment`).

    One grey bar per slide value, then one bar per target contrast of ours (mean, with the sample
    standard deviation over seeds as an error bar), in target label accuracy (%).
    """
    columns = results["columns"]
    labels = list(PAPER_ACCURACY)
    n = 1 + len(columns)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    xs = np.arange(len(labels))
    ax.bar(xs - 0.4 + width / 2, [PAPER_ACCURACY[k] for k in labels], width, color="0.6",
           label="paper (slides): canine T1w → T2w")
    names = {c: f"ours: MNI T1w → simulated {CONTRAST_NAMES.get(c, c)}" for c in columns}
    for c, (contrast, col) in enumerate(columns.items()):
        keys = [_PATCH_ROWS[k] for k in labels]
        means = [100 * col["summary"][k]["accuracy"] if k in col["summary"] else np.nan for k in keys]
        stds = [100 * col["summary"][k]["accuracy_std"] if k in col["summary"] else 0.0 for k in keys]
        ax.bar(xs - 0.4 + width * (c + 1.5), means, width, yerr=stds, capsize=2, color=f"C{c + 3}",
               label=names.get(contrast, contrast))
    ax.axhline(100 * results["chance"], color="k", ls=":", lw=1)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("target label accuracy (%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_adaptation_pays(table: Mapping[str, Any], rows: Sequence[str] | None = None) -> Figure:
    """One panel per target: each row's paired difference to the reference (MCD-pEMD) in points,
    with its 95 % bootstrap interval over seeds and test slices; 0 is a dashed line.

    Args:
        table: the results of ``benchmarks/adaptation_pays.py report`` (``"targets"``,
            ``"reference"``, ``"method_names"``; per target ``rows[m]["vs_<reference>"]``).
        rows: the rows to show, top to bottom (default: every row with an interval).
    """
    ref = table["reference"]
    targets = list(table["targets"])
    if not targets:
        raise ValueError("plot_adaptation_pays() 'table' has no targets")
    key = "vs_" + ref
    if rows is None:
        rows = [m for m in table["rows"]
                if all(key in table["targets"][t]["rows"].get(m, {}) for t in targets)]
    fig, axes = plt.subplots(1, len(targets), figsize=(3.4 * len(targets) + 1.8, 0.32 * len(rows) + 1.2),
                             sharey=True, squeeze=False)
    names = table["method_names"]
    for ax, t in zip(axes[0], targets, strict=True):
        for i, m in enumerate(rows):
            d = table["targets"][t]["rows"][m][key]
            y = len(rows) - 1 - i
            colour = method_colour(m, i)
            ax.plot([100 * d["low"], 100 * d["high"]], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
            ax.plot(100 * d["difference"], y, "o", color=colour, ms=5, mec="k", mew=0.5)
        ax.axvline(0.0, color="k", ls="--", lw=0.8)
        ax.set_title(CONTRAST_NAMES.get(t, t), fontsize=10)
        ax.set_xlabel(f"accuracy − {names[ref]} (points)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)))
    axes[0][0].set_yticklabels([names[m] for m in reversed(rows)], fontsize=8)
    fig.tight_layout()
    return fig
