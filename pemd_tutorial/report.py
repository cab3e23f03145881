"""Reports of the main job: ``results.json``, ``results.md`` and three figures.

* ``results.json``: the results dict of :func:`pemd_tutorial.experiment.run_experiment` (config,
  per-seed and summarised numbers, training logs, machine, date, wall time), without the arrays
  kept for the figures.
* ``results.md``: a Markdown table ``mean ± std`` per method (:func:`results_markdown`).
* ``accuracy.png``: target label accuracy per method, bars = mean ± std, dots = seeds.
* ``examples.png``: target test pairs: fixed, moving, the moving image warped by the true field
  and by every method's expected displacement, with the control-point displacements as arrows.
* ``distributions.png``: F1 and F2 label histograms at a few control points of one target test
  pair, before (source only) and after adaptation (MCD-pEMD), with the true displacement marked.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from data_utils.grid import LabelGrid

__all__ = [
    "PAPER_ACCURACY",
    "PAIRS",
    "PAPER_COUNTERPARTS",
    "paired_differences",
    "pick_points",
    "plot_accuracy",
    "plot_distributions",
    "plot_examples",
    "plot_label_histogram",
    "plot_paper_comparison",
    "plot_training_curves",
    "results_markdown",
    "write_report",
]

DPI = 90
# (key, header, scale, decimals)
_COLUMNS = (
    ("accuracy", "target acc. (%)", 100.0, 1),
    ("within_one", "within one (%)", 100.0, 1),
    ("epe", "EPE (px)", 1.0, 2),
    ("ncc", "NCC after warp", 1.0, 3),
    ("source_accuracy", "source acc. (%)", 100.0, 1),
)


def _fmt(mean: float | None, std: float | None, scale: float, decimals: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    s = f"{mean * scale:.{decimals}f}"
    if std is not None and not math.isnan(std):
        s += f" ± {std * scale:.{decimals}f}"
    return s


def results_markdown(results: Mapping[str, Any]) -> str:
    """The Markdown report: a short header (date, machine, command, wall time) and the table.

    Args:
        results: the dict of :func:`~pemd_tutorial.experiment.run_experiment`.

    Returns:
        Markdown text; one row per method, ``mean ± std`` over the seeds.
    """
    summary = results["summary"]
    names = results.get("method_names", {})
    cfg = results.get("config", {})
    m = results.get("machine", {})
    hw = m.get("gpu") or f"CPU ({m.get('cpu_count')} cores, {m.get('torch_threads')} torch threads)"
    radius = int(cfg.get("radius", 0))
    chance = 100 * results.get("chance", float("nan"))
    data = results.get("data", {})
    lines = [
        "# pemd-tutorial: target-domain registration results",
        "",
        f"- date (UTC): {results.get('date')}; wall time: {results.get('wall_time_s', float('nan')):.0f} s",
        f"- machine: {hw}; device `{m.get('device')}`; torch {m.get('torch')}; Python {m.get('python')}",
        f"- command: `{results.get('command')}`",
        f"- seeds: {results.get('seeds')}; data: {data.get('target')}",
        f"- image {cfg.get('image_size')} px, label grid R={radius} step {cfg.get('label_step')} px "
        f"(L={(2 * radius + 1) ** 2}, chance {chance:.1f} %), "
        f"control spacing {cfg.get('control_spacing')} px, {data.get('n_test_pairs')} test pairs",
        f"- λ per discrepancy: {cfg.get('lambdas')}; num_k = {cfg.get('num_k')}; steps source/adapt/oracle = "
        f"{cfg.get('source_steps')}/{cfg.get('adapt_steps')}/{cfg.get('oracle_steps')}",
        "",
        "| method | " + " | ".join(h for _, h, _, _ in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for method in results["methods"]:
        s = summary[method]
        cells = [_fmt(s.get(k), s.get(k + "_std"), sc, d) for k, _, sc, d in _COLUMNS]
        lines.append(f"| {names.get(method, method)} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {n}" for n in results.get("notes", [])], ""]
    lines += _paired_differences(results)
    hist = results.get("label_histogram")
    if hist:
        rings = " / ".join(f"{100 * r:.1f}" for r in hist["ring_shares"])
        outside = f"; {100 * hist['outside']:.1f} % lie outside the grid" if hist["outside"] else ""
        lines += [
            "## True labels of the target test points",
            "",
            f"Share of the {hist['n_points']} foreground control points per ring of the label grid "
            f"(Chebyshev distance 0, 1, ... from the zero displacement): {rings} %; the identity is "
            f"within one label at {100 * hist['identity_within_one']:.1f} % of them{outside}.",
            "Per label (%, rows = dy from -R to R, columns = dx from -R to R):",
            "",
            "```",
            *["  ".join(f"{100 * v:4.1f}" for v in row) for row in hist["shares"]],
            "```",
            "",
        ]
    return "\n".join(lines)


#: Paired comparisons reported under the table: (method, baseline).
PAIRS = (("mcd_pemd", "mcd_swd"), ("mcd_pemd", "source"), ("mcd_pemd", "mcd_l1"), ("oracle", "mind"))


def paired_differences(results: Mapping[str, Any], metric: str = "accuracy") -> dict[str, dict[str, Any]]:
    """Per-seed differences ``method - baseline`` of ``metric`` for the pairs of :data:`PAIRS`.

    Seeds are matched (the same seed's data and source-only network), so the spread of the
    differences is smaller than the spread of either row.

    Returns:
        ``{"mcd_pemd - mcd_swd": {"per_seed": {seed: diff}, "mean": m, "std": s}, ...}`` for the
        pairs whose two methods are in ``results``.
    """
    out: dict[str, dict[str, Any]] = {}
    per_seed = results.get("per_seed", {})
    for a, b in PAIRS:
        if a not in per_seed or b not in per_seed:
            continue
        rows_b = {r["seed"]: r[metric] for r in per_seed[b]}
        diffs = {r["seed"]: r[metric] - rows_b[r["seed"]] for r in per_seed[a] if r["seed"] in rows_b}
        vals = list(diffs.values())
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        out[f"{a} - {b}"] = {"per_seed": diffs, "mean": mean, "std": std}
    return out


def _paired_differences(results: Mapping[str, Any]) -> list[str]:
    diffs = paired_differences(results)
    if not diffs:
        return []
    names = results.get("method_names", {})
    lines = ["## Paired differences (target accuracy, points; per seed, then mean ± std)", ""]
    for key, d in diffs.items():
        a, b = key.split(" - ")
        seeds = ", ".join(f"seed {s}: {100 * v:+.1f}" for s, v in d["per_seed"].items())
        label = f"{names.get(a, a).split(' (')[0]} − {names.get(b, b).split(' (')[0]}"
        lines.append(f"- {label}: {seeds}; mean {100 * d['mean']:+.1f} ± {100 * d['std']:.1f}")
    return [*lines, ""]


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
    ax.bar(x, means, yerr=stds, color=[f"C{i}" for i in x], alpha=0.75, capsize=3 if several else 0)
    for i, m in enumerate(methods):
        vals = [scale * r[metric] for r in per_seed[m] if r.get(metric) is not None]
        offs = [(k - (len(vals) - 1) / 2) * 0.12 for k in range(len(vals))]
        ax.plot([i + o for o in offs], vals, "o", color="k", ms=3)
    if metric == "accuracy" and "chance" in results:
        ax.axhline(scale * results["chance"], color="grey", ls=":", lw=1, label="chance")
        ax.legend(fontsize=8, loc="upper left")
    names = results.get("method_names", {})
    ax.set_xticks(list(x), [names.get(m, m).split(" (")[0] for m in methods], rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel(f"target {metric}" + (" (%)" if scale == 100.0 else ""))
    n = len(results["seeds"])
    ax.set_title("target test pairs, " + (f"{n} seeds: mean ± std, dots = seeds" if n > 1 else "one seed"),
                 fontsize=9)
    fig.tight_layout()
    return fig


#: Target label accuracy (%) of the paper's experiment as the authors' MIDL 2020 talk slides report
#: it (25 displacement classes, 2D patches of canine T1w/T2w MRI from the MICCAI SATA 2013 data).
PAPER_ACCURACY = {"no registration": 4.0, "no adaptation": 31.9, "MCD-SWD": 33.2, "MCD-pEMD (16) + SWD": 44.1}
#: Our rows that play the same role as the paper's bars.
PAPER_COUNTERPARTS = {"no registration": "identity", "no adaptation": "source", "MCD-SWD": "mcd_swd",
                      "MCD-pEMD (16) + SWD": "mcd_pemd"}


def plot_paper_comparison(ours: Mapping[str, float], ours_label: str = "this package") -> Figure:
    """The paper's bars (:data:`PAPER_ACCURACY`) beside ours, as accuracy in %.

    Args:
        ours: method key (``"identity"``, ``"source"``, ``"mcd_swd"``, ``"mcd_pemd"``) -> target
            accuracy in ``[0, 1]``.
        ours_label: legend of our bars.
    """
    missing = [k for k in PAPER_COUNTERPARTS.values() if k not in ours]
    if missing:
        raise ValueError(f"plot_paper_comparison() 'ours' lacks {missing}")
    labels = list(PAPER_ACCURACY)
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    ax.bar([i - 0.2 for i in x], [PAPER_ACCURACY[k] for k in labels], 0.4, color="0.6",
           label="paper (slides): 25 labels, canine T1w/T2w")
    ax.bar([i + 0.2 for i in x], [100 * ours[PAPER_COUNTERPARTS[k]] for k in labels], 0.4, color="C3",
           label=f"{ours_label}: 81 labels, MNI T1w / simulated T2w")
    ours_names = {"no registration": "identity", "no adaptation": "source only", "MCD-SWD": "MCD-SWD",
                  "MCD-pEMD (16) + SWD": "MCD-pEMD (4)"}
    ax.set_xticks(list(x), [f"{k}\nours: {ours_names[k]}" for k in labels], fontsize=7)
    ax.set_ylabel("target label accuracy (%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_training_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]], chance: float | None = None
) -> Figure:
    """Target validation accuracy over training: supervised phases and adaptation on separate axes.

    Args:
        curves: method key -> ``[(step, accuracy), ...]``; ``"source"`` and ``"oracle"`` go on the
            left axes (supervised training from scratch), every other key (the MCD variants,
            which start from the source-only network) on the right.
        chance: optional horizontal line (``1 / L``).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 2.8), sharey=True)
    for i, (name, pts) in enumerate(curves.items()):
        if not pts:
            continue
        ax = left if name in ("source", "oracle") else right
        steps, acc = zip(*pts, strict=True)
        ax.plot(steps, [100 * a for a in acc], "o-", ms=2.5, lw=1.2, color=f"C{i}", label=name)
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
    from pemd_tutorial.viz import plot_histogram

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


def plot_examples(
    batch: Mapping[str, torch.Tensor],
    probs: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    control_spacing: int,
    names: Mapping[str, str] | None = None,
    n_rows: int = 3,
) -> Figure:
    """Example registrations of target test pairs.

    Args:
        batch: evaluation-view batch (``"fixed"``, ``"moving"`` ``(N, 1, H, W)``, ``"displacement"``
            ``(N, 2, Hc, Wc)`` and optionally the dense ``"field"``).
        probs: method -> ``(N, L, Hc, Wc)`` probabilities for the same pairs.
        grid: the label grid.
        control_spacing: control-point spacing in pixels.
        names: optional display names.
        n_rows: pairs shown.

    Returns:
        A figure with columns fixed | moving | warped by the truth | warped by each method; arrows
        are the (expected) displacements at the control points.
    """
    from data_utils import warp
    from pemd_tutorial.correlation import control_point_coordinates
    from pemd_tutorial.evaluate import dense_field

    names = names or {}
    fixed, moving = batch["fixed"].float(), batch["moving"].float()
    n = min(n_rows, fixed.shape[0])
    h, w = fixed.shape[-2:]
    true_cp = batch["displacement"].float()
    true_dense = batch["field"].float() if "field" in batch else dense_field(true_cp, h, w, control_spacing)
    columns: list[tuple[str, torch.Tensor | None, torch.Tensor | None]] = [
        ("fixed", fixed, None), ("moving", moving, None), ("truth", warp(moving, true_dense), true_cp),
    ]
    for m, p in probs.items():
        cp = grid.expected_displacement(p[:n].float())
        warped = warp(moving[:n], dense_field(cp, h, w, control_spacing))
        columns.append((names.get(m, m).split(" (")[0], warped, cp))
    fig, axes = plt.subplots(n, len(columns), figsize=(1.55 * len(columns), 1.6 * n + 0.3), squeeze=False)
    step = max(1, math.ceil((h // control_spacing) / 8))  # at most 8x8 arrows per panel
    xy = control_point_coordinates(h, w, control_spacing)[::step, ::step].numpy()  # (hc', wc', 2) pixels
    for r in range(n):
        for c, (title, img, cp) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(img[r, 0].cpu().numpy(), cmap="gray", interpolation="nearest")
            if cp is not None:
                d = cp[r, :, ::step, ::step].detach().cpu().numpy()
                # angles="xy" with the image's downward y axis draws (dx, dy) in pixel coordinates
                ax.quiver(xy[..., 0], xy[..., 1], d[0], d[1], color="yellow", angles="xy", scale_units="xy",
                          scale=1.0, width=0.006)
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.axis("off")
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def plot_distributions(
    heads: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    grid: LabelGrid,
    points: list[tuple[int, int]],
    truth: torch.Tensor | None = None,
) -> Figure:
    """F1/F2 label histograms at a few control points, one row per point, one column per head and method.

    Args:
        heads: method -> ``(p1, p2)`` with ``p1, p2`` of shape ``(1, L, Hc, Wc)`` (one pair).
        grid: the label grid.
        points: ``(row, col)`` control points to show.
        truth: optional ``(2, Hc, Wc)`` true displacement (pixels), marked with a cross.

    Returns:
        The figure (shared colour scale per row).
    """
    from pemd_tutorial.viz import plot_histogram

    cols = [(f"{m} F{k + 1}", pq[k][0]) for m, pq in heads.items() for k in range(2)]
    fig, axes = plt.subplots(len(points), len(cols), figsize=(1.9 * len(cols), 1.9 * len(points) + 0.2),
                             squeeze=False)
    for r, (a, b) in enumerate(points):
        vmax = max(float(p[:, a, b].max()) for _, p in cols)
        mark = None if truth is None else (float(truth[0, a, b]), float(truth[1, a, b]))
        for c, (title, p) in enumerate(cols):
            ax = axes[r, c]
            label = f"{title}\npoint ({a}, {b})" if r == 0 else f"({a}, {b})"
            plot_histogram(ax, p[:, a, b], grid, title=label, vmax=vmax, mark=mark)
            ax.tick_params(labelsize=6)
            ax.xaxis.label.set_size(7)
            ax.yaxis.label.set_size(7)
            if r < len(points) - 1:
                ax.set_xlabel("")
            if c:
                ax.set_ylabel("")
    fig.tight_layout(pad=0.3)
    return fig


def pick_points(batch: Mapping[str, torch.Tensor], k: int = 3) -> list[tuple[int, int]]:
    """``k`` foreground control points of pair 0 with the largest true displacements (spread out)."""
    valid = (batch["mask"][0] & batch["inside"][0]) if "inside" in batch else batch["mask"][0]
    mag = batch["displacement"][0].norm(dim=0).masked_fill(~valid, -1.0)
    order = torch.argsort(mag.reshape(-1), descending=True)
    wc = mag.shape[1]
    chosen: list[tuple[int, int]] = []
    for idx in order.tolist():
        a, b = divmod(idx, wc)
        if mag[a, b] < 0:
            break
        if all(max(abs(a - p), abs(b - q)) >= 3 for p, q in chosen):
            chosen.append((a, b))
        if len(chosen) == k:
            break
    return chosen


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and the figures into ``out_dir`` (created).

    Returns:
        name -> path of every file written (figures whose data is missing are skipped).
    """
    from data_utils.grid import LabelGrid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    payload = {k: v for k, v in results.items() if k != "figures_data"}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(_jsonable(payload), indent=1, allow_nan=False))
    os.replace(tmp, out / "results.json")
    written["results.json"] = out / "results.json"
    (out / "results.md").write_text(results_markdown(results))
    written["results.md"] = out / "results.md"

    def save(fig: Figure, name: str) -> None:
        fig.savefig(out / name, dpi=DPI)
        plt.close(fig)
        written[name] = out / name

    save(plot_accuracy(results), "accuracy.png")
    cfg = results["config"]
    grid = LabelGrid(int(cfg["radius"]), float(cfg["label_step"]))
    fd = results.get("figures_data") or {}
    names = results.get("method_names", {})
    if fd.get("probs"):
        fig = plot_examples(fd["test_batch"], fd["probs"], grid, int(cfg["control_spacing"]), names)
        save(fig, "examples.png")
    heads = fd.get("heads") or {}
    after = next((m for m in ("mcd_pemd", "mcd_swd", "mcd_l1") if m in heads), None)
    if "source" in heads and after is not None:
        sel = {"source-only": heads["source"], names.get(after, after): heads[after]}
        points = pick_points(fd["test_batch"])
        if points:
            fig = plot_distributions(sel, grid, points, fd["test_batch"]["displacement"][0])
            save(fig, "distributions.png")
    return written
