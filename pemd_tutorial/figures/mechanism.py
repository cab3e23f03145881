"""What maximum classifier discrepancy does inside the network (notebook 03, docs/method.md §5).

Figures drawn from measured results that ship with the package in ``pemd_tutorial/results/``
(read with :func:`benchmark_result`):

* :func:`plot_head_disagreement`: how much the two heads disagree on target points before
  adaptation and after steps A, B and C (``benchmarks/head_disagreement.py``);
* :func:`plot_discrepancy_gradients`: λ·D and the gradients each discrepancy sends into the heads
  and into G during MCD (``benchmarks/discrepancy_gradients.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pemd_tutorial.figures.base import method_colour
from pemd_tutorial.jsonio import read_shipped_results

__all__ = ["benchmark_result", "head_disagreement_summary", "plot_discrepancy_gradients",
           "plot_head_disagreement"]

#: Display names of the discrepancies, as in the main job's tables.
DISCREPANCY_LABELS = {"l1": "MCD-L1", "swd": "MCD-SWD", "pemd": "MCD-pEMD",
                      "pemd_shuffled": "MCD-pEMD, shuffled grid"}


def benchmark_result(name: str) -> dict[str, Any]:
    """The measured result ``<name>.json`` that ships with the package
    (:func:`pemd_tutorial.jsonio.read_shipped_results`; the benchmark that makes it writes it
    there), so that the notebooks read it wherever the package is installed, without a download.

    Raises:
        ValueError: no such result (the message lists the shipped ones).
    """
    return read_shipped_results(name)


def _colour(name: str) -> str:
    return method_colour(f"mcd_{name}")


def head_disagreement_summary(result: Mapping[str, Any], metric: str = "tv") -> dict[str, dict[str, Any]]:
    """Per discrepancy, what the rows of ``pemd_tutorial/results/head_disagreement.json`` say about
    ``metric``.

    Returns, per discrepancy: ``"before"`` (the source-only network), ``"peak"`` and ``"peak_step"``
    (the largest value after step C and its iteration), ``"end"`` (after the last step C), the
    share of measured iterations in which step B raised the value (``"b_raises"``) and step C
    lowered it (``"c_lowers"``), with their mean changes ``"b_change"`` and ``"c_change"``, and
    ``"accuracy_end"`` (the validation accuracy after the last step C).
    """
    summary = {}
    for name, run in result["runs"].items():
        rows = {(r["step"], r["after"]): r for r in run["rows"]}
        steps = sorted({step for step, _ in rows if step > 0})
        after_c = [rows[step, "C"][metric] for step in steps]
        by_b = [rows[step, "B"][metric] - rows[step, "A"][metric] for step in steps]
        by_c = [rows[step, "C"][metric] - rows[step, "B"][metric] for step in steps]
        peak = max(range(len(steps)), key=after_c.__getitem__)
        summary[name] = {
            "before": rows[0, "start"][metric], "peak": after_c[peak], "peak_step": steps[peak],
            "end": after_c[-1], "b_raises": sum(d > 0 for d in by_b) / len(by_b),
            "b_change": sum(by_b) / len(by_b), "c_lowers": sum(d < 0 for d in by_c) / len(by_c),
            "c_change": sum(by_c) / len(by_c), "accuracy_end": rows[steps[-1], "C"]["accuracy"],
        }
    return summary


def plot_head_disagreement(result: Mapping[str, Any], metric: str = "tv",
                           names: Sequence[str] | None = None) -> Figure:
    """The heads' disagreement on target points during MCD, one panel per discrepancy.

    Each panel: ``metric`` after step B (dashed) and after step C (solid) at the measured
    iterations, its value before adaptation (dotted), and on a second axis the target validation
    accuracy of the mean of both heads (grey).

    Args:
        result: ``pemd_tutorial/results/head_disagreement.json``: per discrepancy, rows ``{"step",
            "after": "start" | "A" | "B" | "C", metric: ..., "accuracy": ...}``.
        metric: ``"tv"`` (total variation), ``"pemd"`` (label steps) or ``"argmax_differ"``.
        names: the discrepancies to show, in order (default: all of ``result["runs"]``).
    """
    runs = result["runs"]
    names = list(runs) if names is None else list(names)
    ylabel = {"tv": "total variation F1 vs F2", "pemd": "projected EMD F1 vs F2 (label steps)",
              "argmax_differ": "share of points where\nF1 and F2 pick other labels"}[metric]
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names) + 0.8, 3.1), sharey=True,
                             layout="constrained")
    top = max(r[metric] for name in names for r in runs[name]["rows"]) * 1.1
    twins = []
    for ax, name in zip(axes, names, strict=True):
        rows = runs[name]["rows"]
        start = next(r for r in rows if r["after"] == "start")
        for after, label, ls, lw in (("B", "after step B", "--", 1.0), ("C", "after step C", "-", 1.6)):
            pts = [(0, start[metric])] + [(r["step"], r[metric]) for r in rows if r["after"] == after]
            ax.plot(*zip(*pts, strict=True), ls=ls, lw=lw, color=_colour(name), label=f"{label}")
        ax.axhline(start[metric], color="k", lw=0.8, ls=":", label="before adaptation")
        ax.set_ylim(0, top)
        ax.set_title(f"{DISCREPANCY_LABELS.get(name, name)} (λ {runs[name]['lam']:g})", fontsize=9)
        ax.set_xlabel("MCD iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        twin = ax.twinx()
        pts = [(0, start["accuracy"])] + [(r["step"], r["accuracy"]) for r in rows if r["after"] == "C"]
        twin.plot([p[0] for p in pts], [100 * p[1] for p in pts], color="0.6", lw=1.0,
                  label="target validation accuracy (%, right axis)")
        twin.set_ylim(0, 60)
        twin.tick_params(labelsize=7, colors="0.4")
        twins.append(twin)
    # every panel keeps its accuracy ticks: a reader compares each discrepancy's curve on its own
    twins[-1].set_ylabel("target validation accuracy (%)", fontsize=8, color="0.4")
    axes[0].set_ylabel(ylabel, fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    more_handles, more_labels = twins[0].get_legend_handles_labels()
    fig.legend(handles + more_handles, labels + more_labels, loc="outside lower center",
               ncol=len(labels) + 1, fontsize=7)
    return fig


def plot_discrepancy_gradients(logs: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """λ·D and the gradient norms of each discrepancy per MCD iteration (log scale).

    Args:
        logs: discrepancy name -> rows ``{"step", "lam", "disc_b", "grad_heads_disc",
            "grad_generator_disc"}`` (``adapt(..., log_gradients=True)``;
            ``pemd_tutorial/results/discrepancy_gradients.json``).
    """
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.0), layout="constrained")
    panels = (("λ·D on the target batch (step B)", lambda r: r["lam"] * r["disc_b"]),
              ("|gradient of λ·D into F1, F2| (step B)", lambda r: r["grad_heads_disc"]),
              ("|gradient of D into G| (step C)", lambda r: r["grad_generator_disc"]))
    for ax, (title, value) in zip(axes, panels, strict=True):
        for name, log in logs.items():
            ax.plot([r["step"] for r in log], [value(r) for r in log], lw=1, color=_colour(name),
                    label=DISCREPANCY_LABELS.get(name, name))
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("MCD iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    return fig
