"""Why does MCD-SWD do nothing here? How much each discrepancy pushes the heads and the generator.

From the shipped seed-0 source-only network of the main job, one adaptation per discrepancy (L1,
SWD, projected EMD; the standard profile's λ of each) with ``adapt(..., log_gradients=True)``.
Per MCD iteration it records λ·D on the target batch (step B), the L2 norm of the gradient that
λ·D alone sends into F1 and F2 in step B, and the norm of the gradient of D with respect to G in
step C. The figure ``docs/img/discrepancy_gradients.png`` plots the three over the iterations.

Before that, on the source-only network's predictions for the unlabelled target validation pairs,
it separates scale from sorting: SWD (× L/2, as trained) against the same random projections
compared control point by control point *without* sorting, and L1 and the projected EMD of the
same rows. If the unsorted value is far larger, it is the sorting across control points (SWD
compares the two heads' *sets* of predictions, not each point's pair) that makes SWD small.

    python benchmarks/discrepancy_gradients.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.discrepancies import BASE_DISCREPANCIES  # noqa: E402
from pemd_tutorial.experiment import make_data  # noqa: E402
from pemd_tutorial.figures import plot_discrepancy_gradients  # noqa: E402
from pemd_tutorial.figures.mechanism import DISCREPANCY_LABELS as LABELS  # noqa: E402
from pemd_tutorial.jsonio import SHIPPED_RESULTS_DIR, write_json  # noqa: E402
from pemd_tutorial.pretrained import load_pretrained  # noqa: E402
from pemd_tutorial.training import adapt, control_point_rows  # noqa: E402


@torch.no_grad()
def scale_or_sorting(model, pairs, cfg: Config, n_projections: int = 128) -> dict[str, float]:
    """SWD with and without sorting, L1 and pEMD, of the two heads on the foreground control points."""
    from pemd_tutorial.discrepancies import scaled_discrepancy
    from pemd_tutorial.evaluate import predict

    p1, p2 = predict(model, pairs)
    mask = pairs.batch()["mask"]
    p, q = (control_point_rows(x, mask).double() for x in (p1, p2))
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(p.shape[1], n_projections, generator=gen, dtype=p.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    half_l = cfg.grid.n_labels / 2.0
    pp, pq = theta.T @ p.T, theta.T @ q.T  # (K, M)
    sorted_ = (pp.sort(dim=1).values - pq.sort(dim=1).values).square().mean() * half_l
    unsorted = (pp - pq).square().mean() * half_l
    return {"swd_scaled": float(sorted_), "swd_scaled_without_sorting": float(unsorted),
            "l1_scaled": float(scaled_discrepancy("l1", p, q, cfg.grid)),
            "pemd_scaled": float(scaled_discrepancy("pemd", p, q, cfg.grid)), "n_points": int(p.shape[0])}


def draw(logs: dict, figure: str | Path) -> None:
    """The figure of docs/method.md from the logs (``figures.plot_discrepancy_gradients``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_discrepancy_gradients(logs)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None,
                    help="MCD iterations (default: the standard profile's)")
    ap.add_argument("--out", default=str(SHIPPED_RESULTS_DIR / "discrepancy_gradients.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "img" / "discrepancy_gradients.png"))
    ap.add_argument("--plot-only", action="store_true",
                    help="redraw the figure from the logs in --out instead of measuring again")
    args = ap.parse_args(argv)
    if args.plot_only:
        draw(json.loads(Path(args.out).read_text())["logs"], args.figure)
        print(f"redrew {args.figure} from {args.out}")
        return 0
    cfg = Config.standard(seed=0)
    data = make_data(cfg, 0)
    t0 = time.perf_counter()
    sorting = scale_or_sorting(load_pretrained("source"), data.target_val_images, cfg)
    print("source-only heads on the target validation pairs: "
          + ", ".join(f"{k} {v:.4g}" for k, v in sorting.items()), flush=True)
    logs = {}
    for name in BASE_DISCREPANCIES:
        net = load_pretrained("source")
        log = adapt(net, data.source_train, data.target_train, cfg, discrepancy=name, steps=args.steps,
                    progress=False, log_gradients=True)
        keys = ("step", "disc_b", "lam", "grad_heads_disc", "grad_generator_disc", "source_ce")
        logs[name] = [{k: r[k] for k in keys} for r in log]
        last = logs[name][-20:]
        mean = {k: sum(r[k] for r in last) / len(last) for k in keys[1:5]}
        print(f"{LABELS[name]:9s} λ {cfg.lam(name):<4g} last 20 iterations: "
              f"λ·D {cfg.lam(name) * mean['disc_b']:.3f}  |∇F λD| {mean['grad_heads_disc']:.3g}  "
              f"|∇G D| {mean['grad_generator_disc']:.3g}", flush=True)
    result = {"scale_or_sorting": sorting, "command": " ".join(["python", *sys.argv]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "config": cfg.to_dict(),
              "logs": logs, "wall_time_s": time.perf_counter() - t0}
    write_json(args.out, result)

    draw(logs, args.figure)
    print(f"wrote {args.out} and {args.figure} ({result['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
