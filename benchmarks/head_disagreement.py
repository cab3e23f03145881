"""What maximum classifier discrepancy does to the two heads: their disagreement after steps A, B, C.

From the shipped seed-0 source-only network of the main job, MCD is run step by step with the
package's own steps (``pemd_tutorial.training.mcd_step_a``, ``mcd_step_b``, ``mcd_step_c``), the
batches, seeds, optimisers and λ that ``adapt`` uses, once per discrepancy (L1, SWD, projected EMD)
and for the control ``pemd_shuffled`` (the projected EMD on a shuffled label grid, the λ of pEMD).
Before adaptation and, at chosen iterations, after each of the three steps, the two heads'
predictions on the unlabelled target validation pairs are compared at every foreground control
point:

* ``tv``: their total variation ``½ Σ_l |p1 − p2|`` (0: identical, 1: no overlap), the mean over
  the points;
* ``pemd``: the projected EMD between them, in label steps (how far apart their mass sits);
* ``argmax_differ``: the share of points where the two heads' arg-max labels differ;
* ``accuracy``: the label accuracy of their mean, with the validation labels (read here only to
  report it, never used by the adaptation).

The loop reproduces ``adapt``: the networks it ends with are compared with the shipped MCD
networks (``max_param_diff``; 0 when this CPU and torch version built them), and their target test
accuracy is recorded.

    python benchmarks/head_disagreement.py    # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.discrepancies import scaled_discrepancy  # noqa: E402
from pemd_tutorial.evaluate import heads_mean, pairs_accuracy, predict  # noqa: E402
from pemd_tutorial.experiment import make_data  # noqa: E402
from pemd_tutorial.jsonio import SHIPPED_RESULTS_DIR, write_json  # noqa: E402
from pemd_tutorial.loop import batch_source, make_optimizers, phase_seed  # noqa: E402
from pemd_tutorial.pretrained import load_pretrained  # noqa: E402
from pemd_tutorial.training import (  # noqa: E402
    SOURCE_KEYS,
    TARGET_KEYS,
    control_point_rows,
    mcd_step_a,
    mcd_step_b,
    mcd_step_c,
)

DISCREPANCIES = ("l1", "swd", "pemd", "pemd_shuffled")


@torch.no_grad()
def heads_disagreement(model, pairs, cfg: Config) -> dict[str, float]:
    """How much F1 and F2 disagree on the foreground control points of ``pairs`` (an evaluation view)."""
    p1, p2 = predict(model, pairs)
    b = pairs.batch()
    mask = b["mask"]
    p, q = control_point_rows(p1, mask).double(), control_point_rows(p2, mask).double()
    return {
        "tv": float(scaled_discrepancy("l1", p, q, cfg.grid)),
        "pemd": float(scaled_discrepancy("pemd", p, q, cfg.grid)),
        "argmax_differ": float((p.argmax(1) != q.argmax(1)).double().mean()),
        "accuracy": pairs_accuracy(heads_mean(p1, p2), pairs),
    }


def schedule(steps: int) -> list[int]:
    """The iterations measured: the first ten, then every fifth, and the last."""
    return sorted({*range(1, min(steps, 10) + 1), *range(15, steps + 1, 5), steps})


def run_mcd(name: str, cfg: Config, data, steps: int) -> tuple[torch.nn.Module, list[dict]]:
    """MCD from the shipped source-only network, as ``adapt`` runs it, measuring the heads on the way."""
    model = load_pretrained("source")
    phase, lam, grid = f"adapt_{name}", cfg.lam(name), cfg.grid
    optimizers = make_optimizers(model, cfg.lr)
    g_src = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/source"))
    g_tgt = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/target"))
    g_swd = torch.Generator().manual_seed(phase_seed(cfg.seed, phase + "/swd"))
    draw_source = batch_source(data.source_train, cfg.batch_size, g_src, SOURCE_KEYS, "cpu")
    draw_target = batch_source(data.target_train, cfg.batch_size, g_tgt, TARGET_KEYS, "cpu")

    def discrepancy_fn(p, q):
        return scaled_discrepancy(name, p, q, grid, n_projections=cfg.n_projections, generator=g_swd)

    measured = set(schedule(steps))
    rows = [{"step": 0, "after": "start", **heads_disagreement(model, data.target_val, cfg)}]
    model.train()
    flushed = torch.set_flush_denormal(True)  # as adapt's loop does (pemd_tutorial.loop.run_phase)
    try:
        for step in range(1, steps + 1):
            source_batch, target_batch = draw_source(), draw_target()
            mcd_step_a(model, optimizers, source_batch)
            if step in measured:
                rows.append({"step": step, "after": "A", **heads_disagreement(model, data.target_val, cfg)})
            target_cost = model.cost(target_batch["fixed"], target_batch["moving"])
            mcd_step_b(model, optimizers, source_batch, target_batch, discrepancy_fn, lam,
                       target_cost=target_cost)
            if step in measured:
                rows.append({"step": step, "after": "B", **heads_disagreement(model, data.target_val, cfg)})
            mcd_step_c(model, optimizers, target_batch, discrepancy_fn, cfg.num_k, target_cost=target_cost)
            if step in measured:
                rows.append({"step": step, "after": "C", **heads_disagreement(model, data.target_val, cfg)})
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return model, rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None,
                    help="MCD iterations (default: the standard profile's)")
    ap.add_argument("--out", default=str(SHIPPED_RESULTS_DIR / "head_disagreement.json"))
    args = ap.parse_args(argv)
    cfg = Config.standard(seed=0)
    steps = cfg.adapt_steps if args.steps is None else args.steps
    data = make_data(cfg, 0)
    t0 = time.perf_counter()
    runs = {}
    for name in DISCREPANCIES:
        model, rows = run_mcd(name, cfg, data, steps)
        run = {"lam": cfg.lam(name), "rows": rows, "test_accuracy": pairs_accuracy(model, data.target_test)}
        if f"mcd_{name}" in ("mcd_l1", "mcd_swd", "mcd_pemd") and steps == cfg.adapt_steps:
            shipped = load_pretrained(f"mcd_{name}").state_dict()
            run["max_param_diff"] = max(float((v - shipped[k]).abs().max())
                                        for k, v in model.state_dict().items())
        runs[name] = run
        last = {r["after"]: r for r in rows if r["step"] == steps}
        print(f"{name:14s} λ {cfg.lam(name):<4g} start tv {rows[0]['tv']:.3f} | last iteration: "
              + "  ".join(f"after {k} tv {v['tv']:.3f}" for k, v in last.items())
              + f" | test acc {100 * run['test_accuracy']:.1f} %"
              + (f" | max |Δw| vs shipped {run['max_param_diff']:.1e}" if "max_param_diff" in run else ""),
              flush=True)
    result = {"command": " ".join(["python", *sys.argv]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "config": cfg.to_dict(),
              "pairs": "target validation pairs (no labels read, except for 'accuracy')",
              "n_points": int(data.target_val.batch()["mask"].sum()), "steps": steps, "runs": runs,
              "wall_time_s": time.perf_counter() - t0}
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
