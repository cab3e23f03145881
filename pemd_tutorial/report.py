"""Reports of both experiments: ``results.json``, ``results.md`` and three figures for the main job;
``paper_results.json``, ``paper_results.md`` and ``paper_accuracy.png`` for the paper experiment
(:func:`paper_markdown`, :func:`write_paper_report`).

The main job's files:

* ``results.json``: the results dict of :func:`pemd_tutorial.experiment.run_experiment` (config,
  per-seed and summarised numbers, paired differences, training logs, machine, date, wall time),
  without the arrays kept for the figures.
* ``results.md``: a Markdown table ``mean ± std`` per method (:func:`results_markdown`), the paired
  per-seed differences (:func:`paired_differences`) and the true-label histogram of the test pairs.
* ``accuracy.png``, ``examples.png``, ``distributions.png``: drawn by
  :func:`pemd_tutorial.figures.plot_accuracy`, :func:`~pemd_tutorial.figures.plot_examples` and
  :func:`~pemd_tutorial.figures.plot_distributions`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from data_utils.grid import LabelGrid
from pemd_tutorial.config import PAPER_TARGET_CONTRASTS
from pemd_tutorial.figures import (
    DPI,
    pick_points,
    plot_accuracy,
    plot_distributions,
    plot_examples,
    plot_paper_experiment,
)
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.stats import slice_counts_difference

__all__ = ["PAIRS", "paired_differences", "paper_markdown", "results_markdown", "write_paper_report",
           "write_report"]


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
PAIRS = (("mcd_pemd", "mcd_swd"), ("mcd_pemd", "source"), ("mcd_pemd", "inverted"), ("mcd_pemd", "mcd_l1"),
         ("mcd_pemd", "mind"), ("oracle", "mind"), ("mcd_pemd", "mcd_pemd_shuffled"),
         ("mcd_swd_rescaled", "mcd_swd"),
         ("mcd_pemd_randomized", "randomized"), ("mcd_pemd", "randomized"))


def paired_differences(results: Mapping[str, Any], metric: str = "accuracy") -> dict[str, dict[str, Any]]:
    """Per-seed differences ``method - baseline`` of ``metric`` for the pairs of :data:`PAIRS`.

    Seeds are matched (the same seed's data and source-only network), so the spread of the
    differences is smaller than the spread of either row. With at least two seeds and the rows'
    per-slice counts (``"per_slice"``, written by the main job), the accuracy difference also gets
    its 95 % bootstrap interval over seeds and test slices
    (:func:`pemd_tutorial.stats.slice_counts_difference`) under ``"interval"``.

    Returns:
        ``{"mcd_pemd - mcd_swd": {"per_seed": {seed: diff}, "mean": m, "std": s, "interval": ...},
        ...}`` for the pairs whose two methods are in ``results``.
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
        rows_a = sorted(per_seed[a], key=lambda r: r["seed"])
        rows_b = sorted(per_seed[b], key=lambda r: r["seed"])
        paired = [r["seed"] for r in rows_a] == [r["seed"] for r in rows_b]
        if metric == "accuracy" and len(rows_a) >= 2 and paired \
                and all("per_slice" in r for r in (*rows_a, *rows_b)):
            out[f"{a} - {b}"]["interval"] = slice_counts_difference(rows_a, rows_b)
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
        line = f"- {label}: {seeds}; mean {100 * d['mean']:+.1f} ± {100 * d['std']:.1f}"
        if "interval" in d:
            ci = d["interval"]
            line += (f"; 95 % interval over seeds and test slices [{100 * ci['low']:+.1f}, "
                     f"{100 * ci['high']:+.1f}]" + (" (within noise)" if ci["within_noise"] else ""))
        lines.append(line)
    return [*lines, ""]


def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and the figures into ``out_dir`` (created).

    Returns:
        name -> path of every file written (figures whose data is missing are skipped).
    """


    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    payload = {k: v for k, v in results.items() if k != "figures_data"}
    written["results.json"] = write_json(out / "results.json", payload)
    (out / "results.md").write_text(results_markdown(results))
    written["results.md"] = out / "results.md"

    def save(fig, name: str) -> None:
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
        label = names.get(after, after)
        dists = {f"source-only F{k + 1}": heads["source"][k][0] for k in range(2)}
        dists.update({f"{label} F{k + 1}": heads[after][k][0] for k in range(2)})
        points = pick_points(fd["test_batch"])
        if points:
            fig = plot_distributions(dists, grid, points, fd["test_batch"]["displacement"][0])
            save(fig, "distributions.png")
    return written


# ----------------------------------------------------------------------------------------------
# The paper experiment (pemd_tutorial.paper)
# ----------------------------------------------------------------------------------------------


def paper_markdown(results: dict[str, Any]) -> str:
    """The results table: one row per method, one column per target contrast (mean ± std, %)."""
    cols = list(results["columns"])
    head = "| method | " + " | ".join(
        f"target {PAPER_TARGET_CONTRASTS.get(c, c)} acc. (%) | source acc. (%)" for c in cols
    ) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(cols)]
    for m in results["methods"]:
        cells = []
        for c in cols:
            s = results["columns"][c]["summary"][m]
            acc = f"{100 * s['accuracy']:.1f} ± {100 * s['accuracy_std']:.1f}"
            src = (f"{100 * s['source_accuracy']:.1f} ± {100 * s['source_accuracy_std']:.1f}"
                   if "source_accuracy" in s else "")
            cells += [acc, src]
        lines.append(f"| {results['method_names'][m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_paper_report(results: dict[str, Any], out_dir) -> None:
    """``paper_results.json`` (without the networks), ``paper_results.md`` and ``paper_accuracy.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = {k: v for k, v in results.items() if k != "networks"}
    write_json(out / "paper_results.json", saved)
    text = (
        f"# {results['title']}\n\n{results.get('command', '')}\n\n"
        f"Seeds {results['seeds']}; mean ± sample std; "
        f"chance {100 * results['chance']:.0f} %; weights: extractor {results['weights']['extractor']}, "
        f"each classifier {results['weights']['classifier']}; wall time {results['wall_time_s']:.0f} s.\n\n"
        + paper_markdown(results)
        + "\n"
    )
    (out / "paper_results.md").write_text(text)
    fig = plot_paper_experiment(results)
    fig.savefig(out / "paper_accuracy.png", dpi=DPI)
    plt.close(fig)
