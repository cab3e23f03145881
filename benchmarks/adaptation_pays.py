"""When does adaptation pay? MCD beside today's label-free alternatives, on three targets, five folds.

Every row is an entry of the main job's table (:data:`pemd_tutorial.experiment.METHOD_TABLE`), run
by :func:`pemd_tutorial.experiment.run_experiment` with the standard profile, for three target
contrasts (T2w, FLAIR-like, FLAIR-like with lesions, a thick direction and a bias field) and five
seeds. **Seed ``s`` tests on fold ``s``** (:func:`data_utils.embedded.fold_splits`): the test block
rotates over the five 8-slice blocks of the embedded brain, so the five seeds measure five slabs
(40 slices, 80 mm of one template brain) instead of one. The networks trained on source data only
(source only, contrast randomisation, tissue synthesis) are trained once per seed and shared by
the three targets.

Every setting was fixed before any target label was read: the standard profile's steps, the λ
chosen without labels for T2w and FLAIR-like (the FLAIR-like λ for the lesion target, which was
not swept), the random-contrast transforms' parameters as documented in :mod:`data_utils.contrast`,
the MIND loss's weight 1 and the MCD iteration count. Target labels are read only to score the
test pairs.

Usage (two processes share the seeds; each result is written when it is done, and a rerun skips
what exists, so an interrupted run loses at most one seed and target)::

    python benchmarks/adaptation_pays.py run --seeds 0 2 4 &
    python benchmarks/adaptation_pays.py run --seeds 1 3 &
    python benchmarks/adaptation_pays.py classical  # the classical B-spline row (SimpleITK)
    python benchmarks/adaptation_pays.py report     # the table: pemd_tutorial/results/adaptation_pays.json
                                                    # (shipped; notebook 03 reads it) and its .md here

The classical row (``classical``) registers the same test pairs with SimpleITK's B-spline and
Mattes mutual information (``benchmarks/classical_registration.py``), with the mesh and iterations
that the target validation labels chose on the shipped split (T2w: mesh 4, 50 iterations; FLAIR-like
and the lesion target: mesh 3, 150 iterations; ``benchmarks/results/classical_*.json``): that
choice reads target labels, which favours it. Its label is the quantised displacement at each
control point (accuracy only; it has no histogram, so no end-point error of an expected
displacement is reported for it in this table).

The report gives, per target, every row's mean accuracy over seeds and its paired difference to
MCD-pEMD with a 95 % bootstrap interval over seeds and test slices
(:func:`pemd_tutorial.stats.slice_counts_difference`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data_utils.embedded import CONTRAST_NAMES, N_FOLDS
from pemd_tutorial.config import Config
from pemd_tutorial.experiment import METHOD_NAMES, run_experiment
from pemd_tutorial.jsonio import SHIPPED_RESULTS_DIR, write_json
from pemd_tutorial.stats import slice_counts_difference

TARGETS = ("t2", "flair", "flair_lesion")
ROWS = ("mind", "source", "inverted", "randomized", "synth", "synth_heldout", "mind_loss", "mcd_pemd",
        "mcd_pemd_randomized", "mcd_l1_randomized")
#: Rows run only on request (``run --rows mcd_l1 mcd_pemd_shuffled --targets t2 --tag geometry``):
#: MCD with L1 and with the projected EMD on a shuffled label grid, beside MCD-pEMD on the same
#: seeds and folds, for notebook 03's question whether the label grid's geometry matters.
OPTIONAL_ROWS = ("mcd_l1", "mcd_pemd_shuffled")
#: The classical row's B-spline settings per target (chosen with target validation labels on the
#: shipped split by benchmarks/classical_registration.py; the lesion target takes FLAIR-like's).
CLASSICAL_SETTINGS = {"t2": (4, 50), "flair": (3, 150), "flair_lesion": (3, 150)}
#: The label-free alternatives the best MCD row is compared with, beside the reference.
ALTERNATIVES = ("mind", "inverted", "randomized", "synth", "synth_heldout", "mind_loss", "classical")
BEST_MCD = "mcd_pemd_randomized"
REFERENCE = "mcd_pemd"
HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "adaptation_pays"


def _run(seeds: list[int], targets: list[str], out: Path, threads: int | None, rows=ROWS,
         tag: str = "") -> None:
    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        cache: dict = {}  # the source-side networks of this seed, shared by the targets
        for target in targets:
            path = out / f"seed{seed}_{target}{'_' + tag if tag else ''}.json"
            if path.exists():
                print(f"{path.name}: exists, skipped", flush=True)
                continue
            cfg = Config.standard(target_contrast=target, test_fold=seed % N_FOLDS)
            t0 = time.perf_counter()
            r = run_experiment(cfg, methods=rows, seeds=(seed,), out_dir=None, progress=False,
                               network_cache=cache, command=" ".join(sys.argv))
            r.pop("figures_data", None)
            r.pop("logs", None)
            write_json(path, r)
            print(f"{path.name}: {time.perf_counter() - t0:.0f} s; "
                  + ", ".join(f"{m} {100 * r['per_seed'][m][0]['accuracy']:.1f}" for m in r["methods"]),
                  flush=True)


def _classical(seeds: list[int], targets: list[str], out: Path) -> None:
    """The classical B-spline row on the same test pairs as :func:`_run` (one file per seed and target)."""
    import SimpleITK as sitk

    sys.path.insert(0, str(HERE))
    from classical_registration import bspline_mi

    from data_utils import at_control_points
    from pemd_tutorial.evaluate import per_slice_counts
    from pemd_tutorial.experiment import make_data

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for target in targets:
            path = out / f"seed{seed}_{target}_classical.json"
            if path.exists():
                continue
            cfg = Config.standard(target_contrast=target, test_fold=seed % N_FOLDS)
            pairs = make_data(cfg, seed).target_test
            b = pairs.batch()
            mesh, iterations = CLASSICAL_SETTINGS[target]
            t0 = time.perf_counter()
            fields, failed = [], 0
            for f, m in zip(b["fixed"][:, 0].numpy(), b["moving"][:, 0].numpy(), strict=True):
                try:
                    fields.append(bspline_mi(f, m, mesh, iterations))
                except RuntimeError:  # the optimiser left the overlap: scored as no motion
                    failed += 1
                    fields.append(np.zeros((2, *f.shape)))
            seconds = time.perf_counter() - t0
            disp = at_control_points(torch.from_numpy(np.stack(fields)).float(), cfg.control_spacing)
            labels, _ = cfg.grid.quantise(disp)
            probs = torch.nn.functional.one_hot(labels, cfg.grid.n_labels).permute(0, 3, 1, 2).float()
            counts = per_slice_counts(probs, pairs)
            row = {"seed": seed, "accuracy": sum(counts["correct"]) / sum(counts["total"]),
                   "per_slice": counts, "mesh": mesh, "iterations": iterations, "n_failed": failed,
                   "seconds_per_pair": seconds / len(pairs)}
            write_json(path, {"seed": seed, "target": target, "test_fold": cfg.test_fold, "row": row})
            print(f"{path.name}: {100 * row['accuracy']:.1f} %, {seconds:.0f} s", flush=True)


def _fmt_diff(d: dict) -> str:
    return f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def report(runs: Path, out_json: Path, out_md: Path) -> dict:
    """Combine the per-seed files into one results file and a markdown table."""
    files = sorted(runs.glob("seed*_*.json"))
    files = [f for f in files if f.stem.split("_", 1)[1] in TARGETS]  # not the extra rows' files
    if not files:
        raise SystemExit(f"no results in {runs}: run 'adaptation_pays.py run' first")
    by_target: dict[str, dict[int, dict]] = {}
    for f in files:
        r = json.loads(f.read_text())
        target = r["config"]["target_contrast"]
        by_target.setdefault(target, {})[r["seeds"][0]] = r
        extra = f.with_name(f.stem + "_classical.json")
        if extra.exists():
            r["per_seed"]["classical"] = [json.loads(extra.read_text())["row"]]
        for rerun in sorted(runs.glob(f.stem + "_rerun_*.json")):  # rows run again with other settings
            again = json.loads(rerun.read_text())
            for m in again["methods"]:
                if m != "identity":
                    r["per_seed"][m] = again["per_seed"][m]
                    r.setdefault("reruns", {})[m] = {"file": rerun.name, "command": again["command"]}
    rows_all = ("identity", *ROWS, *OPTIONAL_ROWS, "classical")
    names = {**{m: METHOD_NAMES[m] for m in ("identity", *ROWS, *OPTIONAL_ROWS)},
             "classical": "B-spline + MI (settings: target labels)"}
    table: dict = {"targets": {}, "rows": list(rows_all), "reference": REFERENCE, "method_names": names,
                   "date": dt.date.today().isoformat(),
                   "command": "python benchmarks/adaptation_pays.py report",
                   "design": "standard profile; seed s tests on fold s (data_utils.embedded.fold_splits); "
                             "95 % bootstrap intervals over seeds and test slices (pemd_tutorial.stats)"}
    lines = ["| method | " + " | ".join(CONTRAST_NAMES[t] for t in TARGETS if t in by_target) + " |",
             "|---|" + "---:|" * sum(t in by_target for t in TARGETS)]
    cells: dict[str, list[str]] = {m: [] for m in rows_all}
    for target in TARGETS:
        if target not in by_target:
            continue
        runs_t = by_target[target]
        seeds = sorted(runs_t)
        entry: dict = {"seeds": seeds, "folds": [runs_t[s]["config"]["test_fold"] for s in seeds],
                       "machine": runs_t[seeds[0]]["machine"], "wall_time_s": sum(runs_t[s]["wall_time_s"]
                                                                                   for s in seeds),
                       "rows": {}}
        for m in rows_all:
            if any(m not in runs_t[s]["per_seed"] for s in seeds):
                cells[m].append("")
                continue
            rows = [runs_t[s]["per_seed"][m][0] for s in seeds]
            accs = [r["accuracy"] for r in rows]
            mean = sum(accs) / len(accs)
            std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else 0.0
            row = {"accuracy": mean, "accuracy_std": std, "per_seed": dict(zip(seeds, accs, strict=True))}
            for k in ("within_one", "epe", "source_accuracy"):
                if all(k in r for r in rows):
                    row[k] = sum(r[k] for r in rows) / len(rows)
            text = f"{100 * mean:.1f} ± {100 * std:.1f}"
            if m != REFERENCE and len(seeds) >= 2:
                ref = [runs_t[s]["per_seed"][REFERENCE][0] for s in seeds]
                diff = slice_counts_difference(rows, ref)
                row["vs_" + REFERENCE] = diff
                text += f" ({_fmt_diff(diff)})"
            entry["rows"][m] = row
            cells[m].append(text)
        if len(seeds) >= 2:  # the best MCD row against every label-free alternative
            best = [runs_t[s]["per_seed"][BEST_MCD][0] for s in seeds]
            entry[BEST_MCD + "_vs"] = {
                m: slice_counts_difference(best, [runs_t[s]["per_seed"][m][0] for s in seeds])
                for m in ALTERNATIVES if all(m in runs_t[s]["per_seed"] for s in seeds)}
        if all(m in runs_t[s]["per_seed"] for m in OPTIONAL_ROWS for s in seeds) and len(seeds) >= 2:
            # the geometry control: the shuffled grid against L1 (each against MCD-pEMD is above)
            entry["mcd_pemd_shuffled_vs_mcd_l1"] = slice_counts_difference(
                *([runs_t[s]["per_seed"][m][0] for s in seeds] for m in ("mcd_pemd_shuffled", "mcd_l1")))
        table["targets"][target] = entry
    for m in rows_all:
        lines.append(f"| {names[m]} | " + " | ".join(cells[m]) + " |")
    lines += ["", f"{names[BEST_MCD]} minus each label-free alternative (points, 95 % interval):", "",
              "| alternative | " + " | ".join(CONTRAST_NAMES[t] for t in table["targets"]) + " |",
              "|---|" + "---:|" * len(table["targets"])]
    for m in ALTERNATIVES:
        vals = [table["targets"][t].get(BEST_MCD + "_vs", {}).get(m) for t in table["targets"]]
        lines.append(f"| {names[m]} | " + " | ".join(_fmt_diff(v) if v else "" for v in vals) + " |")
    write_json(out_json, table)
    out_md.write_text("Target test accuracy (%), mean ± std over seeds (seed s tests on fold s); in "
                      "brackets the paired difference to MCD-pEMD in points with its 95 % bootstrap "
                      "interval over seeds and test slices.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score the rows for some seeds", allow_abbrev=False)
    r.add_argument("--seeds", type=int, nargs="+", default=list(range(N_FOLDS)))
    r.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    r.add_argument("--out", type=Path, default=RUNS)
    r.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    r.add_argument("--rows", nargs="+", choices=(*ROWS, *OPTIONAL_ROWS), default=list(ROWS))
    r.add_argument("--tag", default="", help="run the rows again into seed<s>_<target>_rerun_<tag>.json, "
                                              "which the report uses instead of the first run's rows")
    c = sub.add_parser("classical", help="the classical B-spline row on the same test pairs",
                       allow_abbrev=False)
    c.add_argument("--seeds", type=int, nargs="+", default=list(range(N_FOLDS)))
    c.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    c.add_argument("--out", type=Path, default=RUNS)
    q = sub.add_parser("report", help="combine the runs into a table with paired intervals",
                       allow_abbrev=False)
    q.add_argument("--runs", type=Path, default=RUNS)
    q.add_argument("--json", type=Path, default=SHIPPED_RESULTS_DIR / "adaptation_pays.json")
    q.add_argument("--md", type=Path, default=HERE / "results" / "adaptation_pays.md")
    a = p.parse_args(argv)
    if a.command == "run":
        if any(s < 0 for s in a.seeds):
            p.error("--seeds must be >= 0")
        _run(a.seeds, a.targets, a.out, a.threads, tuple(a.rows), "rerun_" + a.tag if a.tag else "")
    elif a.command == "classical":
        _classical(a.seeds, a.targets, a.out)
    else:
        report(a.runs, a.json, a.md)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
