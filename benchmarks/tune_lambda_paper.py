"""Choose λ for the paper experiment without target labels (protocol: docs/selection.md).

For each discrepancy row of :data:`pemd_tutorial.config.PAPER_METHODS` and each λ of the grid, the
seed's source-only network is adapted (``PaperConfig.standard``, fresh pairs every step, the
package's training engine) and scored on the *unlabelled* validation patches of the target contrast
(``--contrast``) with the label-free scores of :func:`pemd_tutorial.selection.label_free_scores`
(the MIND-SSD of the fixed patch and the moving patch shifted by the predicted label, NMI,
information maximisation, soft neighbourhood density), and on the T1w validation patches (source
accuracy, the collapse rule: a λ lowering it by more than 10 points is not eligible).
:func:`pemd_tutorial.selection.choose_lambda` picks the λ of every score; the target validation
accuracy and the λ it would pick are recorded as a reference only. The test patches are not
touched.

    python benchmarks/tune_lambda_paper.py --lambdas 0.03 0.1 0.3 1 --seed 0 --contrast t2 \
        --set adapt_steps=200 val_every=50

``--set`` overrides fields of the standard profile; with ``val_every`` below ``adapt_steps`` the
target validation curve of every adaptation is recorded too (how many MCD iterations it needs).

The chosen values are per row (``mcd_swd``, ..., ``mcd_pemd16_swd``): written into
:data:`pemd_tutorial.config.PAPER_STANDARD_LAMBDAS` as ``"<contrast>/<row>"`` keys (a test checks
that they equal the recorded choice).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import time
from pathlib import Path

import torch

from pemd_tutorial.config import PAPER_METHODS, PaperConfig
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.model import ConcatNet
from pemd_tutorial.paper import angles_between, evaluation_set, patch_accuracy, training_pairs
from pemd_tutorial.selection import SCORES, choose_lambda, collapsed, label_free_scores
from pemd_tutorial.training import adapt, train_source

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contrast", choices=("t2", "pd", "inter"), default="t2")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                   help="PaperConfig overrides of the standard profile, e.g. adapt_steps=200 val_every=50")
    p.add_argument("--out", default=None,
                   help="default: results/lambda_paper.json (t2) or results/lambda_paper_<contrast>.json")
    args = p.parse_args()
    if args.out is None:
        name = "lambda_paper.json" if args.contrast == "t2" else f"lambda_paper_{args.contrast}.json"
        args.out = str(RESULTS / name)
    seed = args.seed
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set must be FIELD=JSON, got {item!r}")
        overrides[key] = json.loads(value)
    cfg = PaperConfig.standard(seed=seed, **overrides)
    source = training_pairs(cfg, "t1", labelled=True)
    target = training_pairs(cfg, args.contrast, labelled=False)
    val_t = evaluation_set(cfg, "val", args.contrast)
    val_s = evaluation_set(cfg, "val", "t1")
    t0 = time.perf_counter()
    base = ConcatNet(cfg)
    train_source(base, source, cfg, progress=False)
    unlabelled = val_t.without_labels()
    ref = {"target_val": patch_accuracy(base, val_t), "source_val": patch_accuracy(base, val_s),
           **label_free_scores(base, unlabelled)}
    print(f"source only: target val {100 * ref['target_val']:.1f} %, "
          f"source val {100 * ref['source_val']:.1f} %")
    rows: dict[str, dict] = {}
    for method, (label, disc, n_angles) in PAPER_METHODS.items():
        if disc is None:
            continue
        angles = angles_between(n_angles) if n_angles else None
        grid = {}
        for lam in args.lambdas:
            net = copy.deepcopy(base)
            log = adapt(net, source, target, cfg, discrepancy=disc, lam=lam, angles=angles, phase=method,
                        val=val_t, progress=False)
            tv, sv = patch_accuracy(net, val_t), patch_accuracy(net, val_s)
            eligible = not collapsed(ref["source_val"], sv, 0.10)
            curve = [[r["step"], r["val_acc"]] for r in log if r.get("val_acc") is not None]
            scores = label_free_scores(net, unlabelled)
            grid[str(lam)] = {"target_val": tv, "source_val": sv, "source_val_acc": sv, "eligible": eligible,
                              "target_val_curve": curve, **scores}
            print(f"{label:22s} λ {lam:<5g} target val {100 * tv:5.1f} %  source val {100 * sv:5.1f} %  "
                  + "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
                  + f"{'' if eligible else '  (collapse: not eligible)'}", flush=True)
        ok = {lam: r for lam, r in grid.items() if r["eligible"]}
        # reference only: what target validation labels would pick (ties: the smaller weight)
        by_labels = max(sorted(ok, key=float), key=lambda lam: ok[lam]["target_val"]) if ok else None
        table = {float(k): v for k, v in grid.items()}
        try:
            picks = {sc: choose_lambda(table, sc, ref["source_val"], name=method) for sc in SCORES}
        except ValueError as err:
            picks = {"error": str(err)}
        rows[method] = {"label": label, "grid": grid, "label_free": picks,
                        "by_target_labels": None if by_labels is None else float(by_labels)}
    out = {
        "command": "python benchmarks/tune_lambda_paper.py " + " ".join(
            ["--lambdas", *map(str, args.lambdas), "--seed", str(seed), "--contrast", args.contrast,
             *(["--set", *args.set] if args.set else [])]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "config": cfg.to_dict(),
        "source_only": ref,
        "rows": rows,
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json(args.out, out)
    print(f"wrote {args.out} ({out['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
